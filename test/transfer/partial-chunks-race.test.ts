/**
 * The partial-chunk log against a hard link planted at its path, opened by two data threads at once (as `portal
 * serve`'s two data threads open the same output's log): one replaced the planted link between the other's open and
 * its fstat, and the other took the planted file, left with one link, for its own and wrote its records into it (the
 * security suite's hard-link test failed one run in ten). Real worker threads on the built module (dist/, made by
 * `npm run build` before the tests).
 */
import { linkSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { makeTempDir } from './fixtures.js';

const MODULE = pathToFileURL(path.resolve('dist/transfer/partial-chunks.js')).href;

/** A thread that opens the log beside each output it is sent, records one chunk and closes it. */
const SOURCE = `const { parentPort, workerData } = require('node:worker_threads');
import(workerData.module).then((m) => parentPort.on('message', (out) => {
  try {
    const log = m.openPartialChunkLog(out);
    log.record(0, 'ff'.repeat(32), 65536);
    log.close();
    parentPort.postMessage('ok');
  } catch (err) {
    parentPort.postMessage(String(err && err.code));
  }
}));`;

test('two threads opening the log over a planted hard link never write into the planted file (300 rounds)', async () => {
  const tmp = await makeTempDir('partial-race');
  const threads = [0, 1].map(() => new Worker(SOURCE, { eval: true, workerData: { module: MODULE } }));
  const ask = (w: Worker, out: string) =>
    new Promise<string>((resolve) => {
      w.once('message', resolve);
      w.postMessage(out);
    });
  try {
    const writtenThrough: number[] = [];
    for (let i = 0; i < 300; i++) {
      const victim = path.join(tmp.dir, `victim-${i}`);
      writeFileSync(victim, 'KEEP');
      const out = path.join(tmp.dir, `out-${i}`);
      linkSync(victim, `${out}.partial`);
      const answers = await Promise.all(threads.map((w) => ask(w, out)));
      for (const a of answers) expect(['ok', 'EEXIST', 'EAGAIN']).toContain(a);
      if (readFileSync(victim, 'utf8') !== 'KEEP') writtenThrough.push(i);
    }
    expect(writtenThrough).toEqual([]); // before the fix: ~8 % of the rounds
  } finally {
    await Promise.all(threads.map((w) => w.terminate()));
    await tmp.cleanup();
  }
}, 60_000);
