import path from 'node:path';
import { chunkReport } from '../helpers/chunk-report.js';
import { readFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createNatsBus, type NatsBus } from '../../bus/nats-bus.js';
import { createEdgeEventBridge, type EdgeHaveState } from '../../bus/edge-events.js';
import { wire } from '../../bus/codec.js';
import { subjects, subjectTokenId, type Bus, type DeadLetterEvent } from '../../bus/types.js';
import type { ChunkReport, EdgeTelemetryEvent } from '../../common/index.js';
import { pb } from '../../proto/index.js';
import { createSilentLogger } from '../../common/logger.js';
import { createEmbeddedHost, createMemoryStateStore } from '../../runtime/index.js';
import { createCpuTickEngine } from '../../engine/index.js';
import { SchedulerActor, EdgeActor, GpuWorkerActor, terminalStates } from '../../actors/index.js';
import { createExecutor } from '../../transfer/index.js';
import { probeEdge } from '../../node/index.js';
import { startNatsServer, type TestNatsServer } from '../../harness/index.js';
import { createMesh, type Mesh } from '../helpers/mesh.js';
import { actorProxy } from '../../actors/api.js';

const logger = createSilentLogger();

async function waitFor(fn: () => boolean | Promise<boolean>, ms = 20_000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const report = chunkReport;

let server: TestNatsServer;
let raw: NatsConnection;
const buses: NatsBus[] = [];
let seq = 0;
const uniq = (p: string): string => `${p}${process.pid}x${++seq}`;
async function bus(opts: Partial<Parameters<typeof createNatsBus>[0]> = {}): Promise<NatsBus> {
  const b = await createNatsBus({ servers: server.url, logger, name: uniq('c'), ackWaitMs: 2000, ...opts });
  buses.push(b);
  return b;
}

beforeAll(async () => {
  server = await startNatsServer();
  raw = await connect({ servers: server.url });
});
afterEach(async () => {
  await Promise.all(buses.splice(0).map((b) => b.close()));
});
afterAll(async () => {
  await raw?.close();
  await server?.stop();
});

describe('nats bus', () => {
  test('nats bus: refuses to start without a reachable server, with a typed error', async () => {
    await expect(
      createNatsBus({ servers: 'nats://127.0.0.1:1', connectTimeoutMs: 500 }),
    ).rejects.toMatchObject({ code: 'PORTAL_BUS_UNAVAILABLE' });
    await expect(createNatsBus({ servers: '' })).rejects.toMatchObject({ code: 'PORTAL_CONFIG_INVALID' });
  });

  test('nats bus: core subjects carry protobuf both ways; other clients read the same bytes with the generated code', async () => {
    const a = await bus();
    const b = await bus();
    const got: EdgeTelemetryEvent[] = [];
    const sub = b.subscribe<EdgeTelemetryEvent>(subjects.allEdgeTelemetry, (t) => {
      got.push(t);
    });
    const rawSub = raw.subscribe('portal.edge.e7.telemetry', { max: 1 });
    await sub.ready;
    await raw.flush();
    const t: EdgeTelemetryEvent = {
      edgeId: 'e7',
      sentAtMs: 1,
      online: true,
      bandwidth: [{ atMs: 1, bytesPerSec: 1e6 }],
      rtt: [],
      url: 'http://127.0.0.1:1',
    };
    await a.publish(subjects.edgeTelemetry('e7'), t);
    await waitFor(() => got.length === 1);
    expect(got[0]).toEqual(t);
    for await (const m of rawSub) expect(pb.EdgeTelemetry.decode(m.data).edgeId).toBe('e7');
    await expect(a.publish('not.portal', {})).rejects.toMatchObject({ code: 'PORTAL_WIRE_UNKNOWN_SUBJECT' });
    await expect(a.publish(subjects.edgeTelemetry('e7'), { edgeId: '' })).rejects.toMatchObject({
      code: 'PORTAL_INVALID_ARGUMENT',
    });
  });

  test('nats bus: an id with ".", "*", ">", white space or "~" is one subject token (~base64url), both ways; a message naming another id is refused', async () => {
    const a = await bus();
    const b = await bus();
    const got: Array<[string, string]> = [];
    const sub = b.subscribe<EdgeTelemetryEvent>(subjects.allEdgeTelemetry, (t, subject) => {
      got.push([t.edgeId, subject]);
    });
    await sub.ready;
    const ids = ['edge.eu-1', 'a*b', 'a>b', 'sp ace', '~e7', 'é'];
    for (const edgeId of ids) {
      const subject = subjects.edgeTelemetry(edgeId);
      expect(subject.split('.')).toHaveLength(4);
      expect(subjectTokenId(subject.split('.')[2])).toBe(edgeId);
      await a.publish(subject, { edgeId, sentAtMs: 1, online: true, bandwidth: [], rtt: [] });
    }
    await waitFor(() => got.length === ids.length);
    expect(got).toEqual(
      ids.map((id) => [id, `portal.edge.~${Buffer.from(id).toString('base64url')}.telemetry`]),
    );
    expect(subjects.dispatch('release-1.2.3')).toBe('portal.transfer.~cmVsZWFzZS0xLjIuMw.dispatch');
    expect(subjects.edgeTelemetry('e-7_x')).toBe('portal.edge.e-7_x.telemetry');
    // the message's id is checked against the id the token encodes
    await expect(a.publish(subjects.edgeTelemetry('edge.eu-1'), { edgeId: 'edge' })).rejects.toMatchObject({
      code: 'PORTAL_INVALID_ARGUMENT',
      message: expect.stringMatching(/"edge\.eu-1"/),
    });
  });

  test('edge bridge: telemetry announces new edges; full and incremental have messages build the bitmap; gaps are reported', async () => {
    const b = await bus();
    const tele: Array<[string, boolean]> = [];
    const haves: EdgeHaveState[] = [];
    const gaps: number[] = [];
    const bridge = createEdgeEventBridge(b, {
      onTelemetry: (ev, { first }) => {
        tele.push([ev.edgeId, first]);
      },
      onHave: (s) => {
        haves.push({ ...s, bitmap: s.bitmap.slice() });
      },
      onHaveGap: (ev) => {
        gaps.push(ev.seq);
      },
    });
    await b.flush();
    await new Promise((r) => setTimeout(r, 50));
    const pub = (s: string, bytes: Uint8Array): void => raw.publish(s, bytes);
    pub(
      'portal.edge.n1.telemetry',
      wire.telemetry.encode(
        { edgeId: 'n1', sentAtMs: 0, bandwidth: [], rtt: [], url: 'http://127.0.0.1:9' },
        'portal.edge.n1.telemetry',
      ),
    );
    pub(
      'portal.edge.n1.telemetry',
      wire.telemetry.encode(
        { edgeId: 'n1', sentAtMs: 0, online: false, bandwidth: [], rtt: [], url: '' },
        'portal.edge.n1.telemetry',
      ),
    );
    const h = 'portal.edge.n1.have';
    pub(
      h,
      wire.have.encode(
        {
          kind: 'full',
          edgeId: 'n1',
          manifestId: 'm',
          chunkCount: 12,
          seq: 1,
          sentAtMs: 0,
          bitmap: new Uint8Array([0b00000101, 0]),
        },
        h,
      ),
    );
    pub(
      h,
      wire.have.encode(
        {
          kind: 'incremental',
          edgeId: 'n1',
          manifestId: 'm',
          chunkCount: 12,
          seq: 2,
          sentAtMs: 0,
          baseSeq: 1,
          added: [11],
          removed: [0],
        },
        h,
      ),
    );
    pub(
      h,
      wire.have.encode(
        {
          kind: 'incremental',
          edgeId: 'n1',
          manifestId: 'm',
          chunkCount: 12,
          seq: 9,
          sentAtMs: 0,
          baseSeq: 5,
          added: [3],
          removed: [],
        },
        h,
      ),
    );
    await waitFor(() => tele.length === 2 && haves.length === 2 && gaps.length === 1);
    expect(tele).toEqual([
      ['n1', true],
      ['n1', false],
    ]);
    expect(Array.from(haves[1].bitmap)).toEqual([0b00000100, 0b00001000]);
    expect(bridge.have('n1', 'm')?.seq).toBe(2);
    expect(gaps).toEqual([9]);
    bridge.close();
  });

  test('dead letter: malformed, truncated, oversized and unknown-version messages are rejected with a reason and counted; the rest still flows', async () => {
    const b = await bus();
    const dls: DeadLetterEvent[] = [];
    const watcher = await bus();
    const dlSub = watcher.subscribe<DeadLetterEvent>(subjects.allDeadLetters, (d) => {
      dls.push(d);
    });
    const got: EdgeTelemetryEvent[] = [];
    const sub = b.subscribe<EdgeTelemetryEvent>('portal.edge.d1.telemetry', (t) => {
      got.push(t);
    });
    await Promise.all([sub.ready, dlSub.ready]);
    const s = 'portal.edge.d1.telemetry';
    const good = wire.telemetry.encode({ edgeId: 'd1', sentAtMs: 0, bandwidth: [], rtt: [], url: '' }, s);
    raw.publish(s, new Uint8Array([0xff, 0xff, 0xff])); // malformed
    raw.publish(s, good.subarray(0, good.length - 1)); // truncated
    raw.publish(s, new Uint8Array(70 * 1024)); // oversized (limit 64 KiB)
    raw.publish(s, pb.EdgeTelemetry.encode({ version: 9, edgeId: 'd1' }).finish()); // unknown version
    raw.publish(s, good);
    await waitFor(() => dls.length === 4 && got.length === 1);
    expect(dls.map((d) => d.code).sort()).toEqual([
      'PORTAL_WIRE_MALFORMED',
      'PORTAL_WIRE_MALFORMED',
      'PORTAL_WIRE_TOO_LARGE',
      'PORTAL_WIRE_VERSION',
    ]);
    expect(dls.every((d) => d.subject === s && d.reason.length > 0 && d.rejectedBy === b.name)).toBe(true);
    expect(dls.find((d) => d.code === 'PORTAL_WIRE_TOO_LARGE')?.payloadSize).toBe(70 * 1024);
    expect(b.stats().deadLettered).toBe(4);
    expect(b.stats().deadLetteredByCode).toEqual({
      PORTAL_WIRE_MALFORMED: 2,
      PORTAL_WIRE_TOO_LARGE: 1,
      PORTAL_WIRE_VERSION: 1,
    });
  });

  test('dead letter: a bad message on a JetStream subject is dead-lettered once and never redelivered; later reports arrive', async () => {
    const t = uniq('t');
    const b = await bus();
    const got: ChunkReport[] = [];
    const sub = b.subscribe<ChunkReport>(subjects.report(t), (r) => {
      got.push(r);
    });
    await sub.ready;
    const js = (await import('@nats-io/jetstream')).jetstream(raw);
    await js.publish(subjects.report(t), new Uint8Array([8, 1, 0x12, 0x50]));
    const p = await bus();
    await p.publish(subjects.report(t), report(t, 1));
    await waitFor(() => got.length === 1 && b.stats().deadLettered === 1);
    await new Promise((r) => setTimeout(r, 2500)); // past ackWait: a nak'd or un-acked message would be back by now
    expect(b.stats().deadLettered).toBe(1);
    expect(got.map((r) => r.chunk)).toEqual([1]);
  });

  test('queue group: members of one group share a JetStream subject, each message to one member; a rejecting handler gets it again', async () => {
    const t = uniq('q');
    const m1 = await bus();
    const m2 = await bus();
    const seen1: number[] = [];
    const seen2: number[] = [];
    // Whichever member JetStream hands chunk 5 to first rejects it (both handlers share the flag), so the
    // rejection runs on every run, not only when the chunk happens to land on one particular member.
    let rejectedBy: string | undefined;
    const handler =
      (name: string, seen: number[]) =>
      (r: ChunkReport): void => {
        if (r.chunk === 5 && rejectedBy === undefined) {
          rejectedBy = name;
          throw new Error('transient');
        }
        seen.push(r.chunk);
      };
    const s1 = m1.subscribe<ChunkReport>(subjects.report(t), handler('m1', seen1), { queue: 'g' });
    const s2 = m2.subscribe<ChunkReport>(subjects.report(t), handler('m2', seen2), { queue: 'g' });
    await Promise.all([s1.ready, s2.ready]);
    const p = await bus();
    for (let c = 0; c < 40; c++) await p.publish(subjects.report(t), report(t, c));
    await waitFor(() => new Set([...seen1, ...seen2]).size === 40, 20_000, 'all 40 reports');
    await new Promise((r) => setTimeout(r, 300)); // a second delivery of an acked report would arrive by now
    expect(seen1.length).toBeGreaterThan(0);
    expect(seen2.length).toBeGreaterThan(0);
    // each report accepted exactly once, chunk 5 included: the rejected delivery came back and was accepted
    expect([...seen1, ...seen2].sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, c) => c));
    expect(rejectedBy).toBeDefined();
    const st = [m1.stats(), m2.stats()];
    expect(st[0].handlerErrors + st[1].handlerErrors).toBe(1);
    expect(st[0].redelivered + st[1].redelivered).toBe(1); // JetStream delivered chunk 5 a second time
    expect(st[0].delivered + st[1].delivered).toBe(41);
  });

  test('restart: kill nats-server mid-stream and start it again; clients reconnect and no report is lost', async () => {
    const t = uniq('r');
    const sub = await bus({ publishTimeoutMs: 60_000 });
    const pub = await bus({ publishTimeoutMs: 60_000 });
    const got = new Set<number>();
    let deliveries = 0;
    const s = sub.subscribe<ChunkReport>(subjects.report(t), (r) => {
      got.add(r.chunk);
      deliveries++;
    });
    await s.ready;
    const N = 300;
    let sent = 0;
    const publisher = (async () => {
      for (let c = 0; c < N; c++) {
        await pub.publish(subjects.report(t), report(t, c));
        sent++;
        if (c % 10 === 0) await new Promise((r) => setTimeout(r, 5));
      }
    })();
    await waitFor(() => sent >= 100, 20_000, '100 sent');
    await server.kill();
    await new Promise((r) => setTimeout(r, 700));
    await server.start();
    await publisher;
    await waitFor(() => got.size === N, 45_000, `all ${N} reports (have ${got.size})`);
    expect(pub.stats().reconnects + sub.stats().reconnects).toBeGreaterThanOrEqual(2);
    expect(deliveries).toBeGreaterThanOrEqual(N);
  }, 120_000);
});

describe('idempotence over NATS', () => {
  let mesh: Mesh | undefined;
  afterEach(async () => {
    await mesh?.close();
    mesh = undefined;
  });

  test('idempotence: a transfer whose every report is published twice completes once, with nothing counted twice', async () => {
    const chunks = 24;
    mesh = await createMesh(chunks * 16384 - 7, 16384, [{ holds: 'all' }, { holds: 'all' }]);
    const b = await bus();
    const transferId = mesh.manifest.id;
    let duplicated = 0;
    const twice: Bus = {
      async publish(s, m) {
        await b.publish(s, m);
        if (s.endsWith('.report')) {
          duplicated++;
          await b.publish(s, m);
        }
      },
      subscribe: (s, h, o) => b.subscribe(s, h, o),
      close: async () => undefined,
    };
    const delivered: ChunkReport[] = [];
    const watch = b.subscribe<ChunkReport>(subjects.report(transferId), (r) => {
      delivered.push(r);
    });
    await watch.ready;
    const engine = createCpuTickEngine();
    const store = createMemoryStateStore();
    const host = createEmbeddedHost({
      store,
      logger,
      services: { bus: b, tickEngine: engine, probeEdge },
      callTimeoutMs: 60_000,
    });
    host.register(SchedulerActor);
    host.register(EdgeActor);
    host.register(GpuWorkerActor);
    await host.ready();
    const executor = createExecutor({ bus: twice, id: 'dup', logger });
    try {
      executor.attach(transferId);
      const output = path.join(mesh.dir, 'out.bin');
      const actor = actorProxy(host, 'SchedulerActor', transferId);
      let status = await actor.invoke('start', {
        transferId,
        manifest: mesh.manifest,
        output,
        edges: mesh.edges,
        tickMs: 20,
      });
      const end = Date.now() + 60_000;
      while (!terminalStates.includes(status.state) && Date.now() < end) {
        await new Promise((r) => setTimeout(r, 50));
        status = await actor.invoke('status');
      }
      expect(status.state).toBe('done');
      expect(status.verified).toBe(true);
      expect(status.complete).toBe(chunks);
      expect(status.bytesDone).toBe(mesh.manifest.fileSize);
      expect(status.perEdgeChunks.reduce((a, x) => a + x, 0)).toBe(chunks);
      expect(
        createHash('sha256')
          .update(await readFile(output))
          .digest('hex'),
      ).toBe(mesh.manifest.fileSha256);
      await waitFor(() => delivered.length >= 2 * duplicated);
      expect(duplicated).toBeGreaterThanOrEqual(chunks);
    } finally {
      await executor.close();
      await host.stop();
      await store.close();
      await engine.close();
    }
  }, 90_000);
});
