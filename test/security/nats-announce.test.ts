/**
 * Edge announcements on NATS against a real `portal serve` and a real nats-server: an announcement (an edge's
 * telemetry carrying a URL) configures an edge nobody uses, but never moves an edge id that a running transfer
 * fetches from to another URL — else anyone who may publish `portal.edge.<id>.telemetry` could redirect that
 * transfer's chunk fetches (trial finding N1).
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createCodecRegistry } from '../../bus/codec.js';
import { subjects } from '../../bus/types.js';
import type { EdgeHaveEvent, EdgeTelemetryEvent } from '../../common/vocabulary.js';
import { startNatsServer, type TestNatsServer } from '../../harness/index.js';
import { terminalStates, type TransferState } from '../../actors/index.js';
import { createMesh, type Mesh } from '../helpers/mesh.js';
import { startEmbeddedServe, type EmbeddedServe } from '../helpers/portal-cli.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function call(url: string, body?: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { httpStatus: res.status, ...(text ? (JSON.parse(text) as Record<string, unknown>) : {}) };
}

describe('portal serve: edge announcements on NATS', () => {
  let server: TestNatsServer;
  let nc: NatsConnection;
  let mesh: Mesh;
  /** Another file's edge: where a forged announcement would send the transfer. */
  let other: Mesh;
  let serve: EmbeddedServe;
  let root: string;

  beforeAll(async () => {
    server = await startNatsServer();
    nc = await connect({ servers: server.url, name: 'announcer' });
    // 96 chunks of 16 KiB at 256 KB/s an edge: a transfer runs for seconds
    mesh = await createMesh(96 * 16384, 16384, [
      { holds: 'all', bandwidthBytesPerSec: 256_000, maxParallel: 2 },
      { holds: 'all', bandwidthBytesPerSec: 256_000, maxParallel: 2 },
    ]);
    other = await createMesh(96 * 16384, 16384, [{ holds: 'all' }]);
    root = path.join(mesh.dir, 'root');
    await mkdir(root);
    serve = await startEmbeddedServe(
      ['--output-root', root, '--dashboard-port', '0', '--log-level', 'warn'],
      { NATS_URL: server.url },
    );
  }, 60_000);
  afterAll(async () => {
    serve?.child.kill('SIGKILL');
    await nc?.close();
    await mesh?.close();
    await other?.close();
    await server?.stop();
  });

  test('an announcement of another URL for an edge a running transfer uses is refused (warn naming the edge, counted in /metrics): the transfer keeps fetching from the original URL and completes verified', async () => {
    const edge = mesh.edges[0];
    const original = edge.config.url;
    const forged = other.servers[0].url;
    const tid = 'announce-t';
    const api = `${serve.base}/SchedulerActor/${tid}/method`;
    const started = await call(`${api}/start`, {
      transferId: tid,
      manifest: mesh.manifest,
      output: path.join(root, 'out.bin'),
      edges: [edge],
    });
    expect(started.httpStatus).toBe(200);
    // wait until it has fetched a few chunks from the original edge, then announce the edge id elsewhere
    for (let s = await call(`${api}/status`); (s.chunksDone as number) < 4; s = await call(`${api}/status`)) {
      expect(s.state).toBe('running');
      await sleep(50);
    }
    const codecs = createCodecRegistry();
    const subject = subjects.edgeTelemetry(edge.id);
    const announcement: EdgeTelemetryEvent = {
      edgeId: edge.id,
      sentAtMs: Date.now(),
      online: true,
      bandwidth: [{ atMs: Date.now(), bytesPerSec: 100_000_000 }],
      rtt: [],
      maxParallel: 8,
      url: forged,
      kind: 'portal',
    };
    nc.publish(subject, codecs.encode(subject, announcement));
    await nc.flush();
    // the announcement has been handled once the edge's URL moved or serve said it refused it
    const snapshotUrl = async () =>
      (await call(`${serve.base}/EdgeActor/${edge.id}/method/snapshot`)).url as string;
    const deadline = Date.now() + 10_000;
    let urlAfter = await snapshotUrl();
    while (urlAfter === original && !/announcement refused/.test(serve.output()) && Date.now() < deadline) {
      await sleep(50);
      urlAfter = await snapshotUrl();
    }
    const running = await call(`${api}/status`, { edges: true });
    let s = running;
    while (!terminalStates.includes(s.state as TransferState)) {
      await sleep(100);
      s = await call(`${api}/status`, { edges: true });
    }
    const metrics = await (await fetch(new URL('metrics', serve.dashboard))).text();
    const refusal = serve
      .output()
      .split('\n')
      .filter((l) => l.includes('announcement refused'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect({
      edgeUrl: urlAfter,
      statusUrl: (running.edges as Array<{ url: string }>)[0].url,
      state: s.state,
      verified: s.verified,
      forgedEdgeRequests: other.servers[0].stats().requests,
      chunksFromOriginal: (s.perEdgeChunks as number[])[0],
    }).toEqual({
      edgeUrl: original,
      statusUrl: original,
      state: 'done',
      verified: true,
      forgedEdgeRequests: 0,
      chunksFromOriginal: mesh.manifest.chunks.length,
    });
    expect(
      createHash('sha256')
        .update(await readFile(path.join(root, 'out.bin')))
        .digest('hex'),
    ).toBe(mesh.manifest.fileSha256);
    // refused with a warning that names the edge, both URLs and the transfer, and counted
    expect(refusal).toEqual([expect.objectContaining({ level: 40, edgeId: edge.id, url: forged })]);
    expect(refusal[0].reason).toContain(`in use by transfer "${tid}" as portal ${original}`);
    expect(metrics).toMatch(/^portal_edge_announcements_refused_total 1$/m);
    // once no transfer uses it, the same announcement moves the edge (an edge that moved announces its new URL)
    nc.publish(subject, codecs.encode(subject, { ...announcement, sentAtMs: Date.now() }));
    await nc.flush();
    const moved = Date.now() + 10_000;
    while ((await snapshotUrl()) !== forged && Date.now() < moved) await sleep(50);
    expect(await snapshotUrl()).toBe(forged);
  }, 60_000);

  test('an edge that joined a running transfer by announcing itself is not moved by a later announcement of another URL while that transfer runs', async () => {
    const joiner = mesh.edges[1];
    const forged = other.servers[0].url;
    const before = other.servers[0].stats().requests;
    const tid = mesh.manifest.id; // a have reaches the transfer whose id is its manifest's (serve's default)
    const api = `${serve.base}/SchedulerActor/${tid}/method`;
    const started = await call(`${api}/start`, {
      transferId: tid,
      manifest: mesh.manifest,
      output: path.join(root, 'out-join.bin'),
      edges: [mesh.edges[0]],
    });
    expect(started.httpStatus).toBe(200);
    const codecs = createCodecRegistry();
    const telemetry = subjects.edgeTelemetry(joiner.id);
    const announce = (url: string): void => {
      const t: EdgeTelemetryEvent = {
        edgeId: joiner.id,
        sentAtMs: Date.now(),
        online: true,
        bandwidth: [],
        rtt: [],
        maxParallel: 2,
        url,
        kind: 'portal',
      };
      nc.publish(telemetry, codecs.encode(telemetry, t));
    };
    announce(joiner.config.url);
    await nc.flush();
    await sleep(200);
    const have = subjects.edgeHave(joiner.id);
    const h: EdgeHaveEvent = {
      kind: 'full',
      edgeId: joiner.id,
      manifestId: mesh.manifest.id,
      chunkCount: mesh.manifest.chunks.length,
      seq: 1,
      sentAtMs: Date.now(),
      bitmap: new Uint8Array(Math.ceil(mesh.manifest.chunks.length / 8)).fill(0xff),
    };
    nc.publish(have, codecs.encode(have, h));
    await nc.flush();
    // it joined and fetches
    let s = await call(`${api}/status`);
    while ((s.perEdgeChunks as number[]).length < 2 || (s.perEdgeChunks as number[])[1] < 2) {
      expect(s.state).toBe('running');
      await sleep(50);
      s = await call(`${api}/status`);
    }
    announce(forged);
    await nc.flush();
    const refusedLines = () =>
      serve
        .output()
        .split('\n')
        .filter((l) => l.includes('announcement refused'));
    const seen = refusedLines().length;
    const snapshotUrl = async () =>
      (await call(`${serve.base}/EdgeActor/${joiner.id}/method/snapshot`)).url as string;
    const deadline = Date.now() + 10_000;
    let urlAfter = await snapshotUrl();
    while (urlAfter === joiner.config.url && refusedLines().length === seen && Date.now() < deadline) {
      await sleep(50);
      urlAfter = await snapshotUrl();
    }
    while (!terminalStates.includes(s.state as TransferState)) {
      await sleep(100);
      s = await call(`${api}/status`);
    }
    expect({
      edgeUrl: urlAfter,
      refused: refusedLines().length - seen,
      state: s.state,
      verified: s.verified,
      forgedEdgeRequests: other.servers[0].stats().requests - before,
    }).toEqual({
      edgeUrl: joiner.config.url,
      refused: 1,
      state: 'done',
      verified: true,
      forgedEdgeRequests: 0,
    });
    expect((s.perEdgeChunks as number[])[1]).toBeGreaterThan(1);
  }, 60_000);
});
