/**
 * The NATS bus's bound on JetStream publishes waiting for the server (maxPendingPublishes / maxPendingPublishBytes),
 * against a real nats-server that is killed: publishes used to pile up for the 60 s publish timeout, each holding
 * its payload, however many came. Past the bound they are dropped at once (PORTAL_BUS_UNAVAILABLE), counted, with one
 * warning for the outage; those that waited are stored once the server is back.
 */
import { Writable } from 'node:stream';
import { createNatsBus, type NatsBus } from '../../bus/nats-bus.js';
import { subjects } from '../../bus/types.js';
import { chunkReport } from '../helpers/chunk-report.js';
import { createLogger } from '../../common/logger.js';
import { isPortalError } from '../../common/errors.js';
import { startNatsServer, type TestNatsServer } from '../../harness/index.js';

const report = (chunk: number) => chunkReport('bound-t', chunk);

let server: TestNatsServer;
let bus: NatsBus | undefined;
let lines: Record<string, unknown>[];
beforeEach(async () => {
  server = await startNatsServer();
  lines = [];
});
afterEach(async () => {
  await bus?.close();
  bus = undefined;
  await server.stop();
});

const open = (o: { maxPendingPublishes?: number; maxPendingPublishBytes?: number }) =>
  createNatsBus({
    servers: server.url,
    name: 'bound',
    logger: createLogger({
      level: 'info',
      destination: new Writable({
        write(chunk: Buffer, _enc, done) {
          for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l));
          done();
        },
      }),
    }),
    ...o,
  });

async function waitFor(what: string, ok: () => boolean): Promise<void> {
  for (let i = 0; !ok(); i++) {
    if (i > 600) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const said = (text: string) => lines.filter((l) => String(l.msg).includes(text));

test('with nats-server down, publishes beyond the count bound are dropped at once and counted, one warning; the rest are stored once it is back', async () => {
  bus = await open({ maxPendingPublishes: 4 });
  await bus.publish(subjects.report('bound-t'), report(0)); // stored: the server is up
  await server.kill();
  await waitFor('the bus sees the outage', () => bus!.health().state === 'reconnecting');
  const results = Array.from({ length: 10 }, (_, i) =>
    bus!.publish(subjects.report('bound-t'), report(i + 1)).then(
      () => 'stored',
      (err: unknown) => (isPortalError(err, 'PORTAL_BUS_UNAVAILABLE') ? 'dropped' : String(err)),
    ),
  );
  await waitFor('6 drops', () => bus!.stats().publishesDropped === 6);
  const s = bus.stats();
  expect({ pending: s.publishesPending, dropped: s.publishesDropped }).toEqual({ pending: 4, dropped: 6 });
  expect(s.publishBytesDropped).toBe(6 * (s.publishBytesPending / 4)); // each report is the same size
  expect(said('reached their bound')).toHaveLength(1);
  expect(said('reached their bound')[0]).toMatchObject({ level: 40, maxPendingPublishes: 4, pending: 4 });

  await server.start();
  expect(await Promise.all(results)).toEqual([...Array(4).fill('stored'), ...Array(6).fill('dropped')]);
  expect(bus.stats()).toMatchObject({ publishesPending: 0, publishBytesPending: 0, publishesDropped: 6 });
  await bus.publish(subjects.report('bound-t'), report(99));
  expect(said('fit under their bound again')).toEqual([expect.objectContaining({ level: 30, dropped: 6 })]);
  expect(said('reached their bound')).toHaveLength(1);
}, 60_000);

test('the byte bound: publishes whose payloads would pass it are dropped, and bad bounds are refused', async () => {
  await expect(open({ maxPendingPublishes: 0 })).rejects.toMatchObject({
    code: 'PORTAL_CONFIG_INVALID',
    message: expect.stringContaining('opts.maxPendingPublishes: expected an integer ≥ 1, got 0'),
  });
  bus = await open({ maxPendingPublishBytes: 100 });
  await server.kill();
  await waitFor('the bus sees the outage', () => bus!.health().state === 'reconnecting');
  const results = Array.from({ length: 5 }, (_, i) =>
    bus!.publish(subjects.report('bound-t'), report(i)).then(
      () => 'stored',
      (err: unknown) => (isPortalError(err, 'PORTAL_BUS_UNAVAILABLE') ? 'dropped' : String(err)),
    ),
  );
  await waitFor('drops', () => bus!.stats().publishesDropped > 0);
  const s = bus.stats();
  const size = s.publishBytesPending / s.publishesPending;
  expect(s.publishesPending).toBe(Math.floor(100 / size));
  expect(s.publishesDropped).toBe(5 - s.publishesPending);
  await server.start();
  expect((await Promise.all(results)).filter((r) => r === 'stored')).toHaveLength(s.publishesPending);
}, 60_000);
