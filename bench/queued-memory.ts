/**
 * Memory a queued transfer keeps on the host: `--transfers` SchedulerActor.start calls with an inline manifest of
 * `--chunks` chunks on an embedded host (the file state store `portal serve --state-dir` uses, group commit on)
 * whose admission control has its one running slot taken, so every start is answered `queued`. Heap is V8's used
 * heap plus array buffers after a forced GC, before and after the starts; bytes per queued transfer = growth / N.
 * Run: `npm run build && node --expose-gc dist/bench/queued-memory.js [--transfers 500] [--chunks 4096]`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { createEmbeddedHost, createFileStateStore } from '../runtime/index.js';
import { SchedulerActor, TransferAdmission } from '../actors/index.js';
import { manifestId, type Manifest } from '../transfer/manifest.js';
import { arg, heapAfterGc } from './lib.js';

if (!(globalThis as { gc?: unknown }).gc) throw new Error('run with node --expose-gc');
const heap = heapAfterGc;

async function main(): Promise<void> {
  const n = Number(arg('transfers', '500'));
  const chunks = Number(arg('chunks', '4096'));
  const chunkSize = 256 * 1024;
  const dir = mkdtempSync(join(os.tmpdir(), 'portal-bench-queued-'));
  const store = createFileStateStore(dir, { groupCommit: true });
  const admission = new TransferAdmission({ maxRunning: 1, maxQueued: n, promote: async () => undefined });
  admission.acquire('occupies-the-running-slot');
  const host = createEmbeddedHost({ store, services: { admission } });
  host.register(SchedulerActor);
  await host.ready();
  const manifestOf = (i: number): Manifest => {
    const fileSha256 = createHash('sha256').update(`f${i}`).digest('hex');
    return {
      version: 1,
      id: manifestId(fileSha256, chunkSize),
      name: `file-${i}.bin`,
      fileSize: chunks * chunkSize,
      chunkSize,
      fileSha256,
      chunks: Array.from({ length: chunks }, (_, c) =>
        createHash('sha256').update(`${i}/${c}`).digest('hex'),
      ),
    };
  };
  const before = await heap();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const id = `q-${i}`;
    const s = (await host.proxy('SchedulerActor', id).invoke('start', {
      transferId: id,
      manifest: manifestOf(i),
      output: join(dir, `${id}.bin`),
      edges: [
        {
          id: 'm0',
          config: { url: 'http://127.0.0.1:9/f', kind: 'mirror', flags: 0, maxParallel: 4 },
          holds: 'all',
        },
      ],
    })) as { state: string; total: number };
    if (s.state !== 'queued' || s.total !== chunks) throw new Error(`start ${id}: ${JSON.stringify(s)}`);
  }
  const seconds = (performance.now() - t0) / 1000;
  const after = await heap();
  const perTransfer = (after - before) / n;
  const row = {
    transfers: n,
    chunks,
    bytesPerQueuedTransfer: Math.round(perTransfer),
    bytesPerChunk: perTransfer / chunks,
    seconds,
  };
  process.stdout.write(
    `| queued transfers | chunks each | heap per queued transfer | per chunk | starts took |\n|---:|---:|---:|---:|---:|\n| ${n} | ${chunks} | ${(perTransfer / 1024).toFixed(1)} KiB | ${row.bytesPerChunk.toFixed(1)} B | ${seconds.toFixed(1)} s |\n${JSON.stringify(row)}\n`,
  );
  await host.stop();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:queued-memory: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(1);
});
