import { createSilentLogger } from '../../common/logger.js';
import { createJetStreamPullClient, type PausablePullClient, type PulledMessage } from '../../bus/index.js';
import { startNatsServer, type TestNatsServer } from '../../harness/index.js';

const logger = createSilentLogger();
let server: TestNatsServer;
let client: PausablePullClient;

beforeAll(async () => {
  server = await startNatsServer();
  client = await createJetStreamPullClient({
    servers: server.url,
    logger,
    stream: { name: 'PULL_TEST', subjects: ['pulltest.>'], storage: 'memory' },
  });
});
afterAll(async () => {
  await client?.close();
  await server?.stop();
});

/** A gate the test opens and closes by hand. */
function manualGate(room = 1000) {
  let paused = true;
  let wake: () => void = () => undefined;
  let resumed = new Promise<void>((r) => (wake = r));
  return {
    get paused() {
      return paused;
    },
    roomBeforePause: room,
    whenResumed: () => resumed,
    open() {
      paused = false;
      wake();
    },
    close() {
      paused = true;
      resumed = new Promise<void>((r) => (wake = r));
    },
  };
}

async function waitFor(fn: () => boolean | Promise<boolean>, ms = 10_000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const bytes = (i: number): Uint8Array => new Uint8Array([i, i + 1, i + 2]);

test('a pull consumer takes nothing while its gate is paused, then delivers and acks every stored message once it opens', async () => {
  for (let i = 0; i < 20; i++) await client.publish('pulltest.a', bytes(i));
  const gate = manualGate();
  const got: number[] = [];
  const c = await client.pull({ durable: 'gated', filterSubject: 'pulltest.a' }, gate, async (m) => {
    got.push(m.data[0]);
    m.ack();
    return 1;
  });
  await new Promise((r) => setTimeout(r, 600));
  expect(c.stats().pulls).toBe(0);
  expect(c.stats().messages).toBe(0);
  expect(c.stats().pausedWaits).toBeGreaterThanOrEqual(1);
  expect(await client.consumerInfo('gated')).toEqual({ pending: 20, ackPending: 0 });

  gate.open();
  await waitFor(() => got.length === 20, 10_000, '20 messages');
  await waitFor(async () => (await client.consumerInfo('gated')).ackPending === 0, 10_000, 'all acked');
  await c.stop();
  expect(got).toEqual(Array.from({ length: 20 }, (_, i) => i));
  expect(c.stats()).toMatchObject({ messages: 20, acked: 20, naked: 0, pullsWhilePaused: 0 });
  expect(await client.consumerInfo('gated')).toEqual({ pending: 0, ackPending: 0 });
});

test('a message whose handler rejects is nak-ed and delivered again; a terminated one never comes back', async () => {
  await client.publish('pulltest.b', bytes(1));
  await client.publish('pulltest.b', bytes(2));
  const gate = manualGate();
  gate.open();
  const deliveries: Array<{ first: number; count: number }> = [];
  const c = await client.pull(
    { durable: 'retry', filterSubject: 'pulltest.b' },
    gate,
    async (m: PulledMessage) => {
      deliveries.push({ first: m.data[0], count: m.deliveryCount });
      if (m.data[0] === 2) {
        m.term();
        return 1;
      }
      if (m.deliveryCount === 1) throw new Error('not now');
      m.ack();
      return 1;
    },
  );
  await waitFor(() => deliveries.some((d) => d.first === 1 && d.count === 2), 30_000, 'the redelivery');
  await new Promise((r) => setTimeout(r, 1500));
  await c.stop();
  expect(deliveries.filter((d) => d.first === 2)).toEqual([{ first: 2, count: 1 }]);
  expect(deliveries.filter((d) => d.first === 1)).toEqual([
    { first: 1, count: 1 },
    { first: 1, count: 2 },
  ]);
  expect(c.stats()).toMatchObject({ naked: 1, acked: 1, terminated: 1, redelivered: 1 });
  expect(await client.consumerInfo('retry')).toEqual({ pending: 0, ackPending: 0 });
});

test('pulls are sized to the room the gate has left: 9 messages of 1 unit with room for 3 take at least 3 pulls', async () => {
  for (let i = 0; i < 9; i++) await client.publish('pulltest.c', bytes(i));
  const gate = manualGate(3);
  gate.open();
  const acked: number[] = [];
  const c = await client.pull(
    { durable: 'sized', filterSubject: 'pulltest.c', maxMessagesPerPull: 64 },
    gate,
    async (m) => {
      acked.push(m.data[0]);
      m.ack();
      return 1;
    },
  );
  await waitFor(() => acked.length === 9, 10_000, '9 messages');
  await c.stop();
  expect(acked).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
  // unsized, one pull of up to 64 would take all 9 at once
  expect(c.stats().pulls).toBeGreaterThanOrEqual(3);
  expect(c.stats().messages).toBe(9);
});
