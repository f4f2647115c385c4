import { jest } from '@jest/globals';
import { createHash } from 'node:crypto';
import http from 'node:http';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createDaprActorClient, daprDefaults, type DaprActorClient } from '../../runtime/index.js';
import { createEdgeServer, createManifest, type EdgeServer, type Manifest } from '../../transfer/index.js';
import type { TransferRequest, TransferStatus } from '../../actors/index.js';
import { startDaprCluster, startPortalInstance, waitFor, type DaprCluster, type PortalInstance } from '../helpers/dapr.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { makeTempDir, writeRandomFile } from '../transfer/fixtures.js';

// A real transfer scheduled by a SchedulerActor hosted through Dapr (placement + two `portal serve --runtime dapr`
// instances with their daprd + Redis), from two rate-limited loopback edges. The instance hosting the scheduler is
// killed (app and sidecar, SIGKILL) mid-transfer: the actors reactivate on the other instance, which resumes from
// the journal in the actor state store and finishes with a verified sha256, without fetching journaled chunks again.
jest.setTimeout(240_000);

/** Counts chunk requests per chunk index in front of an edge (a logging pass-through proxy). */
interface CountingProxy { url: string; log: Array<{ chunk: number; at: number }>; close(): Promise<void> }

function countingProxy(target: EdgeServer, manifest: Manifest): Promise<CountingProxy> {
  const index = new Map(manifest.chunks.map((cid, i) => [cid, i]));
  const log: CountingProxy['log'] = [];
  const agent = new http.Agent({ keepAlive: true });
  const server = http.createServer((req, res) => {
    const m = /^\/v1\/chunks\/([^/?]+)/.exec(req.url ?? '');
    if (m && index.has(m[1])) log.push({ chunk: index.get(m[1])!, at: Date.now() });
    const up = http.request({ host: '127.0.0.1', port: target.port, path: req.url, method: req.method, headers: req.headers, agent }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    up.on('error', () => { if (!res.headersSent) res.writeHead(502); res.end(); });
    req.pipe(up);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    log,
    close: () => new Promise((r) => { agent.destroy(); server.closeAllConnections(); server.close(() => r()); }),
  })));
}

function bitsOf(base64: string): Set<number> {
  const out = new Set<number>();
  const b = Buffer.from(base64, 'base64');
  for (let i = 0; i < b.length * 8; i++) if ((b[i >>> 3] >>> (i & 7)) & 1) out.add(i);
  return out;
}

async function activeSchedulers(daprHttpPort: number): Promise<number> {
  try {
    const res = await fetch(`http://127.0.0.1:${daprHttpPort}/v1.0/metadata`);
    const meta = (await res.json()) as { actors?: Array<{ type: string; count: number }> };
    return meta.actors?.find((x) => x.type === 'SchedulerActor')?.count ?? 0;
  } catch {
    return 0;
  }
}

let tmp: { dir: string; cleanup: () => Promise<void> };
let redis: TestRedis;
let cluster: DaprCluster;
let instances: PortalInstance[];
const edges: EdgeServer[] = [];
const proxies: CountingProxy[] = [];
const clients: DaprActorClient[] = [];

beforeAll(async () => {
  tmp = await makeTempDir('dapr-transfer');
  redis = await startRedis();
  cluster = await startDaprCluster({ redisPort: redis.port });
  instances = await Promise.all([startPortalInstance(cluster, { name: 'a' }), startPortalInstance(cluster, { name: 'b' })]);
}, 180_000);

afterAll(async () => {
  for (const c of clients) c.close();
  await Promise.all(proxies.map((p) => p.close()));
  await Promise.all(edges.map((e) => e.close()));
  await cluster?.stop();
  await redis?.stop();
  await tmp?.cleanup();
});

describe('Dapr transfer', () => {
  test('a transfer survives the crash of the instance hosting its scheduler and does not refetch journaled chunks', async () => {
    const size = 6 * 1024 * 1024;
    const src = await writeRandomFile(tmp.dir, 'source.bin', size, 42);
    const manifest = await createManifest(src.path, { chunkSize: 128 * 1024 });
    const chunks = manifest.chunks.length;
    for (let i = 0; i < 2; i++) {
      const e = await createEdgeServer({ id: `edge-${i}`, source: { path: src.path, manifest }, bandwidthBytesPerSec: 300 * 1024 });
      edges.push(e);
      proxies.push(await countingProxy(e, manifest));
    }
    const output = join(tmp.dir, 'out.bin');
    const transferId = 'dapr-xfer-1';
    const request: TransferRequest = {
      transferId, manifest, output, tickMs: 50,
      edges: proxies.map((p, i) => ({ id: `dapr-edge-${i}`, config: { url: p.url, kind: 'portal' as const, flags: 0, maxParallel: 4 }, holds: 'all' as const })),
    };
    for (const inst of instances) clients.push(createDaprActorClient({ port: inst.daprHttpPort, timeoutMs: 30_000 }));

    // Start through a's sidecar: placement decides which instance hosts the scheduler.
    const started = await clients[0].invoke<TransferStatus>('SchedulerActor', transferId, 'start', request);
    expect(started.state).toBe('running');
    let status = started;
    await waitFor(async () => {
      status = await clients[0].invoke<TransferStatus>('SchedulerActor', transferId, 'status');
      return status.complete >= Math.ceil(chunks * 0.35);
    }, 60_000, 'a third of the chunks');
    expect(status.state).toBe('running');

    const counts = await Promise.all(instances.map((i) => activeSchedulers(i.daprHttpPort)));
    const victimIndex = counts.indexOf(1);
    expect(victimIndex).toBeGreaterThanOrEqual(0);
    const victim = instances[victimIndex];
    const survivor = instances[1 - victimIndex];
    const survivorClient = clients[1 - victimIndex];

    await victim.kill();
    const killedAt = Date.now();
    // The journal as the state store holds it at the crash (Dapr's key layout: <appId>||<type>||<id>||<key>).
    const journal = JSON.parse(await redis.cli('HGET', `${daprDefaults.appId}||SchedulerActor||${transferId}||journal`, 'data')) as { bitmap: string; state: string };
    const journaled = bitsOf(journal.bitmap);
    expect(journal.state).toBe('running');
    expect(journaled.size).toBeGreaterThan(0);
    expect(journaled.size).toBeLessThan(chunks);

    // Through the survivor's sidecar: the first calls may fail while placement moves the actors.
    await waitFor(async () => {
      try {
        status = await survivorClient.invoke<TransferStatus>('SchedulerActor', transferId, 'status');
      } catch {
        return false;
      }
      return status.state === 'done' || status.state === 'failed';
    }, 120_000, 'transfer finished on the survivor');
    expect(status.state).toBe('done');
    expect(status.verified).toBe(true);
    const sha = createHash('sha256').update(await readFile(output)).digest('hex');
    expect(sha).toBe(manifest.fileSha256);
    expect(await activeSchedulers(survivor.daprHttpPort)).toBe(1);

    // Resumed from the journal: every journaled chunk verified in place, and none of them fetched again.
    // (resumedChunks also counts chunks written before the kill but not journaled yet: recoveredChunks)
    expect(status.resumedChunks - status.recoveredChunks).toBe(journaled.size);
    const after = proxies.flatMap((p) => p.log).filter((r) => r.at > killedAt);
    const refetchedJournaled = after.filter((r) => journaled.has(r.chunk));
    expect(refetchedJournaled).toEqual([]);
    const all = proxies.flatMap((p) => p.log);
    // eslint-disable-next-line no-console
    console.log(JSON.stringify({ chunks, journaledAtKill: journaled.size, resumedChunks: status.resumedChunks, requestsBeforeKill: all.length - after.length, requestsAfterKill: after.length, distinctAfterKill: new Set(after.map((r) => r.chunk)).size }));
  });
});
