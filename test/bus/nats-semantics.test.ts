import { connect, type NatsConnection } from '@nats-io/transport-node';
import { chunkReport } from '../helpers/chunk-report.js';
import { createNatsBus, type NatsBus } from '../../bus/nats-bus.js';
import { createJetStreamPullClient } from '../../bus/index.js';
import { subjects, type DeadLetterEvent } from '../../bus/types.js';
import type { ChunkReport, DispatchBatch, DispatchItem, EdgeTelemetryEvent } from '../../common/index.js';
import { createSilentLogger } from '../../common/logger.js';
import { startNatsServer, type TestNatsServer } from '../../harness/index.js';

// On a real nats-server: message size against the server's max_payload, JetStream memory streams across
// a server restart, handlers slower than the ack wait.

const logger = createSilentLogger();
const MAX_PAYLOAD = 8192;

async function waitFor(fn: () => boolean | Promise<boolean>, ms = 20_000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const report = chunkReport;

const item = (chunk: number): DispatchItem => ({
  chunk,
  attempt: 1,
  edgeIndex: 0,
  edgeUrl: `http://edge-${chunk % 7}.example:8080/with/a/longer/path/to/make/items/bigger`,
  edgeKind: 'portal',
  cid: `bafkreig${'x'.repeat(52)}`,
  offset: chunk * 65536,
  length: 65536,
  timeoutMs: 5000,
});

let seq = 0;
const uniq = (p: string): string => `${p}${process.pid}x${++seq}`;
const buses: NatsBus[] = [];
const servers: TestNatsServer[] = [];
const conns: NatsConnection[] = [];

afterEach(async () => {
  await Promise.all(buses.splice(0).map((b) => b.close()));
  await Promise.all(conns.splice(0).map((c) => c.close()));
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});

async function server(config?: string): Promise<TestNatsServer> {
  const s = await startNatsServer(config ? { config } : {});
  servers.push(s);
  return s;
}

async function bus(
  s: TestNatsServer,
  opts: Partial<Parameters<typeof createNatsBus>[0]> = {},
): Promise<NatsBus> {
  const b = await createNatsBus({ servers: s.url, logger, name: uniq('c'), ackWaitMs: 2000, ...opts });
  buses.push(b);
  return b;
}

describe('message size', () => {
  test("a message over the server's max_payload fails at once with PORTAL_WIRE_TOO_LARGE naming size and limit", async () => {
    const s = await server(`max_payload: ${MAX_PAYLOAD}\n`);
    const b = await bus(s, { publishTimeoutMs: 60_000 });
    const t = uniq('big');
    // JetStream subject (a dispatch of one item that no split can make smaller): refused before any retry
    const t0 = Date.now();
    const huge: DispatchBatch = {
      transferId: t,
      output: `/tmp/${'o'.repeat(12_000)}`,
      fileSize: 65536,
      items: [item(0)],
    };
    const js = await b.publish(subjects.dispatch(t), huge).catch((e: unknown) => e);
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(js).toMatchObject({ code: 'PORTAL_WIRE_TOO_LARGE' });
    expect((js as Error).message).toMatch(/a message of 12\d\d\d bytes/);
    expect((js as Error).message).toContain(`max_payload (${MAX_PAYLOAD - 128} bytes`);
    // core subject (telemetry): typed too, not the client's untyped error
    const telemetry: EdgeTelemetryEvent = {
      edgeId: 'e1',
      sentAtMs: 1,
      bandwidth: Array.from({ length: 2000 }, (_, i) => ({ atMs: i, bytesPerSec: 1e6 + i })),
      rtt: [],
      url: 'http://e1',
    };
    const core = await b.publish(subjects.edgeTelemetry('e1'), telemetry).catch((e: unknown) => e);
    expect(core).toMatchObject({ code: 'PORTAL_WIRE_TOO_LARGE' });
    expect((core as Error).message).toContain(`max_payload (${MAX_PAYLOAD} bytes)`);
    // a message under the limit still goes through
    await b.publish(subjects.report(t), report(t, 2));
  });

  test('a dispatch batch over the limit is split into batches under it, and every item arrives once', async () => {
    const s = await server(`max_payload: ${MAX_PAYLOAD}\n`);
    const pub = await bus(s);
    const sub = await bus(s);
    const raw = await connect({ servers: s.url });
    conns.push(raw);
    const t = uniq('split');
    const sizes: number[] = [];
    raw.subscribe(subjects.dispatch(t), {
      callback: (_e, m) => {
        sizes.push(m.data.length);
      },
    });
    await raw.flush();
    const got: number[] = [];
    const batches: DispatchBatch[] = [];
    const sp = sub.subscribe<DispatchBatch>(subjects.dispatch(t), (batch) => {
      batches.push(batch);
      got.push(...batch.items.map((i) => i.chunk));
    });
    await sp.ready;
    const items = Array.from({ length: 400 }, (_, i) => item(i));
    await pub.publish(subjects.dispatch(t), {
      transferId: t,
      output: '/tmp/out',
      fileSize: 400 * 65536,
      items,
    });
    await waitFor(() => got.length >= 400, 20_000, 'all dispatch items');
    expect(got.sort((x, y) => x - y)).toEqual(items.map((i) => i.chunk));
    expect(batches.length).toBeGreaterThan(1);
    expect(batches.every((b) => b.output === '/tmp/out' && b.transferId === t)).toBe(true);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(MAX_PAYLOAD - 128);
    expect(pub.stats().splitPublishes).toBe(1);
  });
});

describe('JetStream memory storage', () => {
  test('after a nats-server restart the streams and consumers are recreated and delivery resumes', async () => {
    const s = await server();
    const memory = { storage: 'memory' as const };
    const sub = await bus(s, {
      streams: { transfers: memory, deadLetters: memory },
      publishTimeoutMs: 60_000,
    });
    const pub = await bus(s, {
      streams: { transfers: memory, deadLetters: memory },
      publishTimeoutMs: 60_000,
    });
    const t = uniq('mem');
    const got = new Set<number>();
    const sp = sub.subscribe<ChunkReport>(subjects.report(t), (r) => {
      got.add(r.chunk);
    });
    await sp.ready;
    for (let c = 0; c < 20; c++) await pub.publish(subjects.report(t), report(t, c));
    await waitFor(() => got.size === 20, 10_000, 'reports before the restart');

    await s.kill();
    await new Promise((r) => setTimeout(r, 500));
    // published while the server is away: resolves once the restarted server's recreated stream stored it
    const during = pub.publish(subjects.report(t), report(t, 100));
    await s.start();
    await during;
    for (let c = 101; c < 120; c++) await pub.publish(subjects.report(t), report(t, c));
    await waitFor(
      () => [100, ...Array.from({ length: 19 }, (_, i) => 101 + i)].every((c) => got.has(c)),
      45_000,
      `reports after the restart (have ${[...got].filter((c) => c >= 100).length} of 20)`,
    );
    expect(pub.stats().recoveries + sub.stats().recoveries).toBeGreaterThanOrEqual(1);
  }, 90_000);
});

describe('pull client (stream transport)', () => {
  test('after a nats-server restart the memory stream and pull consumer are recreated and pulling resumes', async () => {
    const s = await server(`max_payload: ${MAX_PAYLOAD}\n`);
    const client = await createJetStreamPullClient({
      servers: s.url,
      logger,
      stream: { name: 'PULL_MEM', subjects: ['pullmem.>'], storage: 'memory' },
    });
    try {
      const open = { paused: false, roomBeforePause: 1000, whenResumed: () => Promise.resolve() };
      const got: number[] = [];
      const c = await client.pull({ durable: 'mem', filterSubject: 'pullmem.a' }, open, async (m) => {
        got.push(m.data[0]);
        m.ack();
        return 1;
      });
      for (let i = 0; i < 5; i++) await client.publish('pullmem.a', new Uint8Array([i]));
      await waitFor(() => got.length === 5, 10_000, 'messages before the restart');
      await expect(client.publish('pullmem.a', new Uint8Array(MAX_PAYLOAD))).rejects.toMatchObject({
        code: 'PORTAL_WIRE_TOO_LARGE',
      });

      await s.kill();
      await new Promise((r) => setTimeout(r, 500));
      await s.start();
      for (let i = 5; i < 10; i++) {
        // a producer retries a publish that failed while the server was away; once one resolves it is stored
        await waitFor(
          () =>
            client.publish('pullmem.a', new Uint8Array([i])).then(
              () => true,
              () => false,
            ),
          20_000,
          `publish ${i} after the restart`,
        );
      }
      await waitFor(
        () => [5, 6, 7, 8, 9].every((i) => got.includes(i)),
        30_000,
        'messages after the restart',
      );
      await c.stop();
    } finally {
      await client.close();
    }
  }, 60_000);
});

describe('acknowledgement', () => {
  test('a message whose handler fails until max_deliver is dead-lettered with PORTAL_DELIVERY_EXHAUSTED, not dropped', async () => {
    const s = await server();
    const dead: DeadLetterEvent[] = [];
    const sub = await bus(s, { maxDeliver: 2, onDeadLetter: (d) => dead.push(d) });
    const pub = await bus(s);
    const watcher = await bus(s);
    const stored: DeadLetterEvent[] = [];
    const w = watcher.subscribe<DeadLetterEvent>(subjects.allDeadLetters, (d) => {
      stored.push(d);
    });
    await w.ready;
    const t = uniq('poison');
    let attempts = 0;
    const sp = sub.subscribe<ChunkReport>(subjects.report(t), (r) => {
      if (r.chunk === 7) {
        attempts++;
        throw new Error('cannot apply chunk 7');
      }
    });
    await sp.ready;
    await pub.publish(subjects.report(t), report(t, 7));
    await waitFor(() => dead.length === 1 && stored.length === 1, 20_000, 'the dead letter');
    expect(attempts).toBe(2);
    expect(dead[0]).toMatchObject({ subject: subjects.report(t), code: 'PORTAL_DELIVERY_EXHAUSTED' });
    expect(dead[0].reason).toContain('after 2 deliveries');
    expect(stored[0]).toMatchObject({ subject: subjects.report(t), code: 'PORTAL_DELIVERY_EXHAUSTED' });
  }, 30_000);

  test('a handler slower than the ack wait is not redelivered meanwhile, and does not hold back later messages', async () => {
    const s = await server();
    const pub = await bus(s, { ackWaitMs: 1000 });
    const sub = await bus(s, { ackWaitMs: 1000 });
    const t = uniq('slow');
    const deliveries = new Map<number, number>();
    const order: string[] = [];
    const sp = sub.subscribe<ChunkReport>(subjects.report(t), async (r) => {
      deliveries.set(r.chunk, (deliveries.get(r.chunk) ?? 0) + 1);
      order.push(`start:${r.chunk}`);
      if (r.chunk === 0) await new Promise((res) => setTimeout(res, 3500));
      order.push(`end:${r.chunk}`);
    });
    await sp.ready;
    await pub.publish(subjects.report(t), report(t, 0));
    await pub.publish(subjects.report(t), report(t, 1));
    await waitFor(() => order.includes('end:0'), 10_000, 'slow handler done');
    await new Promise((r) => setTimeout(r, 1500)); // past another ack wait: nothing comes again
    expect(deliveries.get(0)).toBe(1);
    expect(deliveries.get(1)).toBe(1);
    expect(order.indexOf('end:1')).toBeLessThan(order.indexOf('end:0'));
    expect(sub.stats().redelivered).toBe(0);
  }, 30_000);
});
