/**
 * Start of a large transfer by reference, and whether it runs. A synthetic manifest of N chunks is served over
 * HTTP and SchedulerActor.start is called with `manifestUrl` on an embedded node (host, bus, executor, CPU tick
 * engine on one thread).
 *
 * `--format binary` (default): the binary chunk-hash manifest (docs/manifest-format.md), streamed by the server
 * from a 1 MiB pattern (the bench keeps no copy). Every chunk of the synthetic file is `--chunk-size` zero bytes,
 * so every CID is the sha-256 of one zero chunk, and a real edge (createEdgeServer over a one-chunk file of zeros)
 * serves any chunk by that CID: the transfer really fetches, verifies and writes chunks into a sparse output file
 * of N × chunk size. The run is cancelled after `--run-s` seconds (the whole file is not fetched; its sha-256 in
 * the manifest is made up).
 *
 * `--format json`: the JSON manifest with random CIDs and an edge on a closed port (nothing is fetched), as
 * before the binary format existed, for comparison.
 *
 * Measures the start call (fetch + parse of the manifest, the scheduler's tables, availability, the first journal
 * write), the growth of V8 heap + array buffers (typed arrays live there) and of RSS per chunk once it runs, the
 * scheduler's own accounting of its tables (ChunkScheduler.memoryBytes), and what the run did.
 *
 * Run: `npm run build && node --expose-gc dist/bench/manifest-ref.js [--chunks 10000000] [--format binary|json]
 * [--chunk-size 4096] [--run-s 20] [--persist-ms 5000]`.
 */
import http from 'node:http';
import os from 'node:os';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { actorProxy } from '../actors/api.js';
import { terminalStates } from '../actors/scheduler-actor.js';
import { createSilentLogger } from '../common/logger.js';
import { startEmbeddedNode } from '../node/embedded-node.js';
import { createEdgeServer } from '../transfer/edge-server.js';
import { createManifest, manifestId } from '../transfer/manifest.js';
import { BINARY_MANIFEST_MEDIA_TYPE, encodeBinaryManifestHeader } from '../transfer/manifest-binary.js';
import { CidTable } from '../transfer/cid-table.js';
import { arg, xorshift } from './lib.js';

const gc = (globalThis as { gc?: () => void }).gc;
const mib = (b: number): number => Math.round(b / 2 ** 20);

/** A server that answers every GET with `parts()` streamed (backpressure respected). */
async function serve(
  type: string,
  length: number,
  parts: () => Iterable<Uint8Array>,
): Promise<{ url: string; close: () => void }> {
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': type, 'content-length': length });
    const it = parts()[Symbol.iterator]();
    const pump = (): void => {
      for (let r = it.next(); !r.done; r = it.next())
        if (!res.write(r.value)) return void res.once('drain', pump);
      res.end();
    };
    pump();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}/m`,
    close: () => {
      server.closeAllConnections();
      server.close();
    },
  };
}

async function main(): Promise<void> {
  const n = Number(arg('chunks', '1000000'));
  const format = arg('format', 'binary');
  const runS = Number(arg('run-s', '20'));
  const persistMs = Number(arg('persist-ms', '5000'));
  const chunkSize = Number(arg('chunk-size', format === 'binary' ? '4096' : '262144'));
  const dir = mkdtempSync(join(os.tmpdir(), 'portal-bench-ref-'));
  const edgeConfig = { kind: 'portal' as const, flags: 0, maxParallel: 8 };
  let manifestBytes: number;
  let server: { url: string; close: () => void };
  let edgeUrl = 'http://127.0.0.1:9';
  let closeEdge = async (): Promise<void> => undefined;

  if (format === 'binary') {
    // one chunk of zeros, served by a real edge; the big file is n of them
    const zeroPath = join(dir, 'zero.bin');
    writeFileSync(zeroPath, Buffer.alloc(chunkSize));
    const edge = await createEdgeServer({
      source: { path: zeroPath, manifest: await createManifest(zeroPath, { chunkSize }) },
    });
    edgeUrl = edge.url;
    closeEdge = () => edge.close();
    const zeroCid = createHash('sha256').update(Buffer.alloc(chunkSize)).digest();
    const fileSha256 = 'ab'.repeat(32);
    const header = encodeBinaryManifestHeader({
      version: 1,
      id: manifestId(fileSha256, chunkSize),
      name: 'zeros.bin',
      fileSize: n * chunkSize,
      chunkSize,
      fileSha256,
      cids: new CidTable(new Uint8Array(0)),
    });
    // the header says 0 chunks of the table above; fix the count to n
    header.writeBigUInt64BE(BigInt(n), 24);
    const PER = 32_768;
    const slice = Buffer.alloc(PER * 32);
    for (let i = 0; i < PER; i++) zeroCid.copy(slice, i * 32);
    manifestBytes = header.length + n * 32;
    server = await serve(BINARY_MANIFEST_MEDIA_TYPE, manifestBytes, function* () {
      yield header;
      for (let c = 0; c < n; c += PER) yield slice.subarray(0, Math.min(PER, n - c) * 32);
    });
  } else {
    const fileSha256 = 'ab'.repeat(32);
    const next = xorshift(16);
    const hex = (): string => {
      let s = '';
      for (let i = 0; i < 8; i++) s += next().toString(16).padStart(8, '0');
      return s;
    };
    const parts: string[] = [];
    for (let c = 0; c < n; c++) parts.push(`"${hex()}"`);
    const body = Buffer.from(
      `{"version":1,"id":"${manifestId(fileSha256, chunkSize)}","name":"synthetic.bin","fileSize":${n * chunkSize},"chunkSize":${chunkSize},"fileSha256":"${fileSha256}","chunks":[${parts.join(',')}]}`,
    );
    parts.length = 0;
    manifestBytes = body.length;
    server = await serve('application/json', body.length, () => [body]);
  }

  const output = join(dir, 'out.bin');
  const node = await startEmbeddedNode({
    output,
    logger: createSilentLogger(),
    backend: 'cpu',
    cpuThreads: 1,
  });
  const transferId = 'bench-ref';
  node.executor.attach(transferId);
  const actor = actorProxy(node.host, 'SchedulerActor', transferId);
  gc?.();
  const before = process.memoryUsage();
  const load = os.loadavg()[0];
  const t0 = performance.now();
  const s = await actor.invoke('start', {
    transferId,
    manifestUrl: server.url,
    output,
    tickMs: 50,
    persistMs,
    stallTimeoutMs: 600_000,
    edges: [{ id: 'zero-edge', config: { url: edgeUrl, ...edgeConfig }, holds: 'all' }],
  });
  const startMs = performance.now() - t0;
  server.close();
  gc?.();
  const after = process.memoryUsage();
  await new Promise((r) => setTimeout(r, runS * 1000));
  const ran = await actor.invoke('status');
  const peak = process.memoryUsage();
  if (!terminalStates.includes(ran.state)) await actor.invoke('cancel');
  await actor.invoke('forget');
  await node.close();
  await closeEdge();
  rmSync(dir, { recursive: true, force: true });
  const grown = after.heapUsed + after.arrayBuffers - before.heapUsed - before.arrayBuffers;
  const row = {
    format,
    chunks: n,
    chunkSize,
    manifestMiB: mib(manifestBytes),
    startMs: Math.round(startMs),
    startState: s.state,
    heapBytesPerChunk: Number((grown / n).toFixed(1)),
    rssBytesPerChunk: Number(((after.rss - before.rss) / n).toFixed(1)),
    rssMiBAfterStart: mib(after.rss),
    rssMiBAfterRun: mib(peak.rss),
    runS,
    state: ran.state,
    error: ran.error,
    complete: ran.complete,
    bytesDone: ran.bytesDone,
    ticks: ran.ticks,
    tickMsP50: Number(ran.tickMsP50.toFixed(2)),
    tickMsP99: Number(ran.tickMsP99.toFixed(2)),
    fullReranks: ran.counters.fullReranks,
    load1AtStart: Number(load.toFixed(2)),
    cores: os.cpus().length,
    node: process.version,
  };
  process.stdout.write(`${JSON.stringify(row)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
