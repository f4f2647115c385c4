/**
 * Failover latency: time from an executor's failure report to the replacement dispatch of the same
 * chunk, end to end through the actor host and the bus — in-process bus and NATS (JetStream) in the
 * same run. Edges answer 30% of chunk requests with 503, so failures are frequent.
 * Run: `npm run build && node dist/bench/failover.js [--chunks 400]`.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { createEdgeServer, createManifest, encodeHaveBitmap, type EdgeServer } from '../transfer/index.js';
import { startEmbeddedNode } from '../node/index.js';
import { createSilentLogger } from '../common/logger.js';
import { subjects } from '../bus/index.js';
import type { ChunkReport, DispatchBatch } from '../common/index.js';
import { actorProxy, terminalStates, type TransferStatus } from '../actors/index.js';
import { startNatsServer } from '../harness/index.js';
import { arg, quantile } from './lib.js';

async function run(
  label: string,
  chunks: number,
): Promise<{ label: string; failures: number; p50: number; p99: number; max: number }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'portal-failover-'));
  const servers: EdgeServer[] = [];
  try {
    const source = path.join(dir, 'src.bin');
    await writeFile(source, crypto.randomBytes(chunks * 16384));
    const manifest = await createManifest(source, { chunkSize: 16384, name: 'out.bin' });
    for (let i = 0; i < 3; i++)
      servers.push(
        await createEdgeServer({
          source: { path: source, manifest },
          faults: { failRate: 0.3, seed: 11 + i },
          bandwidthBytesPerSec: 4_000_000,
        }),
      );
    const edges = servers.map((s, i) => ({
      id: `fo-${label}-${i}`,
      config: { url: s.url, kind: 'portal' as const, flags: 0, maxParallel: 4 },
      holds: encodeHaveBitmap('all', manifest.chunks.length),
    }));
    const output = path.join(dir, 'out.bin');
    const node = await startEmbeddedNode({ output, logger: createSilentLogger(), backend: 'cpu' });
    const failedAt = new Map<number, number>();
    const lat: number[] = [];
    try {
      node.executor.attach(manifest.id);
      node.bus.subscribe<ChunkReport>(subjects.report(manifest.id), (r) => {
        if (!r.ok && r.reason !== 'cancelled') failedAt.set(r.chunk, performance.now());
      });
      node.bus.subscribe<DispatchBatch>(subjects.dispatch(manifest.id), (b) => {
        const now = performance.now();
        for (const it of b.items) {
          const t = failedAt.get(it.chunk);
          if (t !== undefined) {
            lat.push(now - t);
            failedAt.delete(it.chunk);
          }
        }
      });
      const actor = actorProxy(node.host, 'SchedulerActor', manifest.id);
      await actor.invoke('start', { transferId: manifest.id, manifest, output, edges });
      let s: TransferStatus;
      while (!terminalStates.includes((s = await actor.invoke('status')).state))
        await new Promise((r) => setTimeout(r, 50));
      if (!s.verified) throw new Error(`${label}: transfer not verified`);
    } finally {
      await node.close();
    }
    return {
      label,
      failures: lat.length,
      p50: quantile(lat, 0.5),
      p99: quantile(lat, 0.99),
      max: Math.max(...lat),
    };
  } finally {
    await Promise.all(servers.map((s) => s.close()));
    await rm(dir, { recursive: true, force: true });
  }
}

const chunks = Number(arg('chunks', '400'));
console.log(
  `# failover latency — ${os.cpus()[0]?.model ?? 'cpu'} × ${os.cpus().length}, node ${process.version}, ${new Date().toISOString()}`,
);
console.log('| bus | failures measured | p50 ms | p99 ms | max ms |');
console.log('|---|---:|---:|---:|---:|');
const rows = [await run('in-process', chunks)];
const nats = await startNatsServer();
try {
  process.env.NATS_URL = nats.url;
  rows.push(await run('nats-jetstream', chunks));
} finally {
  delete process.env.NATS_URL;
  await nats.stop();
}
for (const r of rows)
  console.log(
    `| ${r.label} | ${r.failures} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.max.toFixed(2)} |`,
  );
