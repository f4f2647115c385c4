/**
 * Start of a large transfer by reference: a synthetic manifest of N chunks (random CIDs; no file behind it) is
 * served over HTTP, and SchedulerActor.start is called on an embedded host with `manifestUrl` and one edge that
 * holds every chunk. Measures the start call (fetch + parse + validation of the manifest, the ChunkScheduler's
 * tables, availability, the first journal write) and the process's heap and RSS growth per chunk once it runs;
 * then forgets the transfer. The edge is a closed port, so nothing is fetched: this is the cost of *holding* a
 * transfer of N chunks, not of moving it.
 *
 * Run: `npm run build && node --expose-gc dist/bench/manifest-ref.js [--chunks 1000000]`.
 */
import http from 'node:http';
import os from 'node:os';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { createEmbeddedHost, createMemoryStateStore } from '../runtime/index.js';
import { EdgeActor, SchedulerActor, type PortalServices } from '../actors/index.js';
import { actorProxy } from '../actors/api.js';
import { createMemoryBus } from '../bus/index.js';
import { createCpuTickEngine } from '../engine/index.js';
import { manifestId } from '../transfer/manifest.js';
import { arg, xorshift } from './lib.js';

const gc = (globalThis as { gc?: () => void }).gc;
const mib = (b: number): string => (b / 2 ** 20).toFixed(0);

async function main(): Promise<void> {
  const n = Number(arg('chunks', '1000000'));
  const chunkSize = 262_144;
  const fileSha256 = 'ab'.repeat(32);
  const next = xorshift(16);
  // the manifest JSON, written piece by piece (one 64-hex CID per chunk, as `portal manifest` writes)
  const hex = (): string => {
    let s = '';
    for (let i = 0; i < 8; i++) s += next().toString(16).padStart(8, '0');
    return s;
  };
  const parts: string[] = [];
  for (let c = 0; c < n; c++) parts.push(`"${hex()}"`);
  const json = `{"version":1,"id":"${manifestId(fileSha256, chunkSize)}","name":"synthetic.bin","fileSize":${n * chunkSize},"chunkSize":${chunkSize},"fileSha256":"${fileSha256}","chunks":[${parts.join(',')}]}`;
  parts.length = 0;
  const body = Buffer.from(json);
  const server = http.createServer((_req, res) =>
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length }).end(body),
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/m.json`;

  const engine = createCpuTickEngine();
  const services: PortalServices = { bus: createMemoryBus(), tickEngine: engine };
  const host = createEmbeddedHost({ store: createMemoryStateStore(), services });
  host.register(SchedulerActor);
  host.register(EdgeActor);
  const dir = mkdtempSync(join(os.tmpdir(), 'portal-bench-ref-'));
  const actor = actorProxy(host, 'SchedulerActor', 'bench-ref');
  gc?.();
  const before = process.memoryUsage();
  const t0 = performance.now();
  const s = await actor.invoke('start', {
    transferId: 'bench-ref',
    manifestUrl: url,
    output: join(dir, 'out.bin'),
    tickMs: 1000,
    edges: [
      {
        id: 'closed',
        config: { url: 'http://127.0.0.1:9', kind: 'portal', flags: 0, maxParallel: 1 },
        holds: 'all',
      },
    ],
  });
  const startMs = performance.now() - t0;
  gc?.();
  const after = process.memoryUsage();
  const heapPerChunk = (after.heapUsed + after.arrayBuffers - before.heapUsed - before.arrayBuffers) / n;
  const rssPerChunk = (after.rss - before.rss) / n;
  await actor.invoke('forget');
  await host.stop();
  await engine.close();
  server.close();
  rmSync(dir, { recursive: true, force: true });
  const row = {
    chunks: n,
    manifestJsonMiB: Number(mib(body.length)),
    state: s.state,
    total: s.total,
    startMs: Math.round(startMs),
    heapBytesPerChunk: Math.round(heapPerChunk),
    rssBytesPerChunk: Math.round(rssPerChunk),
    rssMiB: Number(mib(after.rss)),
    cores: os.cpus().length,
    node: process.version,
  };
  process.stdout.write(`${JSON.stringify(row)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
