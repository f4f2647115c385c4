/**
 * `portal fetch` sources across a rerun and at the start, against the built CLI as a real process and real
 * loopback mirrors (test/helpers/bad-mirror.ts): a rerun after a kill takes the sources of its command line
 * and keeps the journal's chunks (W1); a mirror that accepts TCP and never answers does not hold the start, and
 * a mirror that answers late joins when it agrees and is excluded naming why when not (D3).
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { startBadMirror, type BadMirror, type MirrorMode } from '../helpers/bad-mirror.js';
import { lastJson, runPortal } from '../helpers/portal-cli.js';
import { FETCH_ENV, fetchFixture } from '../helpers/fetch-fixture.js';

const SIZE = 3 * 262144 + 4321; // 4 chunks of 256 KiB
const env = FETCH_ENV;
const f = fetchFixture('cli-fetch-resume-sources', SIZE);
const out = (): string => f.out();
const mirrors: BadMirror[] = [];
const checksum = (): string[] => ['--checksum', `sha-256=${f.sha}`];

async function mirror(
  mode: (n: number) => MirrorMode = () => ({ kind: 'ok' }),
  of = f.bytes,
): Promise<BadMirror> {
  const s = await startBadMirror(of, mode);
  mirrors.push(s);
  return s;
}

/** A server that accepts TCP connections and never answers (nor closes them). */
async function silentServer(): Promise<string> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  f.closeLater(
    () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  );
  return `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/file.bin`;
}

async function sha256Of(p: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(p))
    .digest('hex');
}

/**
 * Runs `portal fetch args` and SIGKILLs it once a --progress-json line reports a complete chunk (and the journal,
 * saved every 100 ms, has had time to list it).
 */
async function fetchKilledAfterAChunk(args: string[]): Promise<void> {
  let killing = false;
  const r = await runPortal(['fetch', ...args, '--progress-json'], {
    env,
    onLine: (line, child) => {
      const j = JSON.parse(line) as { type?: string; complete?: number };
      if (killing || j.type !== 'progress' || (j.complete ?? 0) < 1) return;
      killing = true;
      setTimeout(() => child.kill('SIGKILL'), 400);
    },
  });
  expect(r.signal).toBe('SIGKILL');
}

afterAll(async () => {
  await Promise.all(mirrors.map((s) => s.close()));
});

describe('portal fetch: a rerun after a kill takes the sources of its command line (W1)', () => {
  test('a manifest fetch killed on one mirror, rerun naming another: the new one serves the missing chunks, the old one gets no request, the kept chunks are not fetched again', async () => {
    const manifest = path.join(f.dir, 'w1.manifest.json');
    const made = await runPortal(['manifest', f.src, '--chunk-size', '262144', '--out', manifest], { env });
    expect(made.code).toBe(0);
    // the old mirror serves one chunk, then stalls: the first run is killed with one chunk verified
    const old = await mirror((k) => (k === 0 ? { kind: 'ok' } : { kind: 'stall' }));
    const fresh = await mirror();
    const o = out();
    await fetchKilledAfterAChunk([manifest, '--edge', `${old.url}#mirror`, '--out', o]);
    const oldRequests = old.requests.length;
    const r = await runPortal(['fetch', manifest, '--edge', `${fresh.url}#mirror`, '--out', o, '--json'], {
      env,
    });
    expect(r.code).toBe(0);
    expect(await sha256Of(o)).toBe(f.sha);
    const j = lastJson(r);
    expect(j.resumedChunks).toBe(1);
    expect(j.fetchedChunks).toBe(3);
    expect(j.sourcesJoined).toEqual([fresh.url]);
    expect(j.sourcesDropped).toEqual([old.url]);
    // dropped as asked: not a source given up, neither in the result nor as a warning (trial L6)
    expect(j.sourcesGivenUp).toBeUndefined();
    expect(r.stderr).not.toContain('source given up');
    // the chunk kept from the first run (the one the old mirror served) was not fetched again: the new mirror
    // served exactly the other three
    const kept = old.requests[0].range;
    const all = ['bytes=0-262143', 'bytes=262144-524287', 'bytes=524288-786431', `bytes=786432-${SIZE - 1}`];
    expect(all).toContain(kept);
    expect(fresh.requests.map((q) => q.range).sort()).toEqual(all.filter((x) => x !== kept).sort());
    // the dropped mirror got nothing from the rerun
    expect(old.requests.length).toBe(oldRequests);
  });

  test('URLs: a rerun naming a new mirror and one serving another size excludes that one naming the size the resume expects, and completes with the new one (1 vs 1 would be refused without the journal)', async () => {
    const old = await mirror((k) => (k <= 1 ? { kind: 'ok' } : { kind: 'stall' }));
    const fresh = await mirror();
    const other = await mirror(() => ({ kind: 'ok' }), randomBytes(SIZE + 1000));
    const o = out();
    await fetchKilledAfterAChunk([old.url, '--out', o, ...checksum()]);
    const r = await runPortal(['fetch', fresh.url, other.url, '--out', o, ...checksum()], { env });
    expect(r.stderr).toContain(
      `portal: excluded ${other.url}: size ${SIZE + 1000} differs from the ${SIZE} bytes of the file being resumed (its journal)`,
    );
    expect(r.stderr).toContain(`portal: resuming: ${fresh.url} joins as a new source`);
    expect(r.stderr).toContain(`portal: resuming: ${old.url} is no longer named as a source; dropped`);
    expect(r.stderr).not.toContain('source given up');
    expect(r.code).toBe(0);
    expect(await sha256Of(o)).toBe(f.sha);
    // the mirror of the other file served no chunk
    expect(other.requests.every((q) => q.range === 'bytes=0-0')).toBe(true);
  });

  test('a rerun whose sources serve another file (another size) is refused naming both; --force discards the journal and fetches the new file', async () => {
    const old = await mirror((k) => (k <= 1 ? { kind: 'ok' } : { kind: 'stall' }));
    const o = out();
    await fetchKilledAfterAChunk([old.url, '--out', o]);
    const newBytes = randomBytes(SIZE + 7);
    const other = await mirror(() => ({ kind: 'ok' }), newBytes);
    const r = await runPortal(['fetch', other.url, '--out', o], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      `has the journal of another file (file.bin, ${SIZE} bytes, no checksum); the sources now give file.bin, ${SIZE + 7} bytes, no checksum`,
    );
    expect(r.stderr).toMatch(
      /--force to discard the journal and fetch the new file \[PORTAL_OUTPUT_REFUSED\]/,
    );
    expect(existsSync(o)).toBe(false);
    const forced = await runPortal(['fetch', other.url, '--out', o, '--force'], { env });
    expect(forced.code).toBe(0);
    expect(forced.stderr).toContain(`portal: discarding the journal beside ${o}`);
    expect((await readFile(o)).equals(newBytes)).toBe(true);
  });

  test('a rerun with another --checksum than the journal holds is refused naming both sha-256s', async () => {
    const old = await mirror((k) => (k <= 1 ? { kind: 'ok' } : { kind: 'stall' }));
    const fresh = await mirror();
    const o = out();
    await fetchKilledAfterAChunk([old.url, '--out', o, ...checksum()]);
    const wrong = 'ab'.repeat(32);
    const r = await runPortal(['fetch', fresh.url, '--out', o, '--checksum', `sha-256=${wrong}`], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      `sha-256 ${f.sha} (from --checksum)); the rerun asks for file.bin, ${SIZE} bytes, sha-256 ${wrong} (from --checksum)`,
    );
  });
});

/**
 * Writes a preload that counts the file system calls (open, readdir) made inside readJournaledTransfer on a
 * `.portal` journal folder, printed at exit as `JOURNAL_IO {"open":N,"readdir":M}` on stderr; returns its path.
 */
function writeJournalIoCounter(): string {
  const file = path.join(f.dir, 'journal-io.cjs');
  writeFileSync(
    file,
    [
      "const fsp = require('node:fs/promises');",
      "const { syncBuiltinESMExports } = require('node:module');",
      "const { isMainThread } = require('node:worker_threads');",
      'const counts = { open: 0, readdir: 0 };',
      'for (const fn of Object.keys(counts)) {',
      '  const orig = fsp[fn];',
      '  fsp[fn] = function (p, ...rest) {',
      "    if (typeof p === 'string' && /\\.portal(\\/|$)/.test(p) && new Error().stack.includes('readJournaledTransfer')) counts[fn]++;",
      '    return orig.call(this, p, ...rest);',
      '  };',
      '}',
      'syncBuiltinESMExports();',
      "if (isMainThread) process.on('exit', () => process.stderr.write(`JOURNAL_IO ${JSON.stringify(counts)}\\n`));",
      '',
    ].join('\n'),
  );
  return file;
}

const journalIo = (stderr: string): unknown => JSON.parse(/^JOURNAL_IO (.*)$/m.exec(stderr)?.[1] ?? 'null');

describe('portal fetch: a rerun reads its journal once', () => {
  test('a manifest fetch killed after a chunk, rerun: its journal is read once (the file system calls of one readJournaledTransfer), and it resumes', async () => {
    const manifest = path.join(f.dir, 'once.manifest.json');
    expect(
      (await runPortal(['manifest', f.src, '--chunk-size', '262144', '--out', manifest], { env })).code,
    ).toBe(0);
    const first = await mirror((k) => (k === 0 ? { kind: 'ok' } : { kind: 'stall' }));
    const o = out();
    await fetchKilledAfterAChunk([manifest, '--edge', `${first.url}#mirror`, '--out', o]);
    const counter = writeJournalIoCounter();
    // what one read of this journal costs, measured alone (before the rerun changes the journal)
    const one = spawnSync(
      process.execPath,
      [
        '--require',
        counter,
        '--input-type=module',
        '-e',
        `const m = await import(${JSON.stringify(pathToFileURL(path.resolve('dist/node/journaled-transfer.js')).href)}); if (!(await m.readJournaledTransfer(${JSON.stringify(o)}))) process.exit(9);`,
      ],
      { encoding: 'utf8' },
    );
    expect(one.status).toBe(0);
    const oneRead = journalIo(one.stderr);
    expect(oneRead).toMatchObject({ open: expect.any(Number) as number });
    const fresh = await mirror();
    const r = await runPortal(['fetch', manifest, '--edge', `${fresh.url}#mirror`, '--out', o, '--json'], {
      env: { ...env, NODE_OPTIONS: `--require ${counter}` },
    });
    expect(r.code).toBe(0);
    expect(lastJson(r).resumedChunks).toBe(1);
    expect(await sha256Of(o)).toBe(f.sha);
    expect(journalIo(r.stderr)).toEqual(oneRead);
  });
});

describe('portal fetch: a source that does not answer its probe does not hold the start (D3)', () => {
  test('a good mirror and one that accepts TCP and never answers: the file completes well before the 15 s probe timeout, and --json names the silent one as not answered', async () => {
    const good = await mirror();
    const silent = await silentServer();
    const o = out();
    const r = await runPortal(['fetch', good.url, silent, '--out', o, '--json'], { env });
    expect(r.code).toBe(0);
    expect(await sha256Of(o)).toBe(f.sha);
    // before: the start waited for the silent mirror's 15 s probe timeout
    expect(r.ms).toBeLessThan(10_000);
    expect(lastJson(r).sourcesNotAnswered).toEqual([
      { url: silent, why: 'had not answered the probe when the transfer ended' },
    ]);
  });

  test('late answers: one serving the same size joins the running transfer and serves chunks, one serving another size is excluded naming both sizes', async () => {
    // the first mirror serves its probe and one chunk, then answers 503 Retry-After: 30: the rest must come from
    // the late joiner
    const first = await mirror((k) =>
      k <= 1 ? { kind: 'ok' } : { kind: 'status', status: 503, retryAfter: '30' },
    );
    const late = await mirror((k) =>
      k === 0 ? { kind: 'late', ms: 2500, then: { kind: 'ok' } } : { kind: 'ok' },
    );
    const wrong = await mirror(
      (k) => (k === 0 ? { kind: 'late', ms: 2500, then: { kind: 'ok' } } : { kind: 'ok' }),
      randomBytes(SIZE - 5),
    );
    const o = out();
    const r = await runPortal(['fetch', first.url, late.url, wrong.url, '--out', o, ...checksum()], { env });
    expect(r.stderr).toContain(`portal: ${late.url} answered after the start and joins as a source`);
    expect(r.stderr).toContain(
      `portal: excluded ${wrong.url}: size ${SIZE - 5} differs from the ${SIZE} bytes the transfer started with`,
    );
    expect(r.code).toBe(0);
    expect(await sha256Of(o)).toBe(f.sha);
    expect(late.requests.filter((q) => q.range !== 'bytes=0-0').length).toBeGreaterThan(0);
    expect(wrong.requests.every((q) => q.range === 'bytes=0-0')).toBe(true);
  });
});
