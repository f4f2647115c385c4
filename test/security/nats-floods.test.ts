/**
 * NATS floods against a real `portal serve`: invented edge ids past the cap are dropped
 * and counted in /metrics instead of each costing memory and an actor, and a flood of garbage
 * messages writes a bounded number of dead-letter log lines instead of one per message.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createCodecRegistry } from '../../bus/codec.js';
import { subjects } from '../../bus/types.js';
import type { EdgeTelemetryEvent } from '../../common/vocabulary.js';
import { freePort } from '../../common/net.js';
import { startNatsServer, type TestNatsServer } from '../../harness/index.js';
import { PORTAL_MAIN } from '../helpers/portal-cli.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls the dashboard's /metrics until `pattern` matches (or 20 s pass); returns the text. */
async function metricsUntil(url: string, pattern: RegExp): Promise<string> {
  let text = '';
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    text = await (await fetch(new URL('metrics', url))).text();
    if (pattern.test(text)) break;
    await sleep(200);
  }
  return text;
}

describe('portal serve under NATS floods', () => {
  let server: TestNatsServer;
  let serve: ChildProcess | undefined;
  let nc: NatsConnection | undefined;
  let stderr = '';
  let dashboard = '';

  beforeAll(async () => {
    server = await startNatsServer();
    serve = spawn(
      process.execPath,
      [
        PORTAL_MAIN,
        'serve',
        '--runtime',
        'embedded',
        '--app-port',
        String(await freePort()),
        '--dashboard-port',
        '0',
        '--max-edges',
        '50',
        '--backend',
        'cpu',
        '--json',
        '--log-level',
        'warn',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NATS_URL: server.url } },
    );
    serve.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    dashboard = await new Promise<string>((resolve, reject) => {
      createInterface({ input: serve!.stdout! }).on('line', (l) =>
        resolve((JSON.parse(l) as { dashboard: string }).dashboard),
      );
      serve!.once('exit', (c) => reject(new Error(`serve exited ${c}: ${stderr}`)));
    });
    nc = await connect({ servers: server.url, name: 'flooder' });
  }, 60_000);

  afterAll(async () => {
    await nc?.close();
    serve?.kill('SIGKILL');
    await server?.stop();
  });

  test('telemetry from 1000 invented edges: 50 are tracked (the cap), the rest dropped and counted in /metrics', async () => {
    const codecs = createCodecRegistry();
    for (let i = 0; i < 1000; i++) {
      const id = `flood-${i}`;
      const t: EdgeTelemetryEvent = {
        edgeId: id,
        sentAtMs: Date.now(),
        online: true,
        bandwidth: [],
        rtt: [],
        url: `http://127.0.0.1:1/${id}`,
      };
      nc!.publish(subjects.edgeTelemetry(id), codecs.encode(subjects.edgeTelemetry(id), t));
    }
    await nc!.flush();
    const text = await metricsUntil(dashboard, /^portal_edge_events_dropped_total 950$/m);
    expect(text).toMatch(/^portal_edges_tracked 50$/m);
    expect(text).toMatch(/^portal_edge_events_dropped_total 950$/m);
    expect(text).toMatch(/^portal_edges_max 50$/m);
    // the drop is logged, rate-limited: a handful of lines, not 950
    const dropLines = stderr.split('\n').filter((l) => l.includes('tracked-edge cap')).length;
    expect(dropLines).toBeGreaterThan(0);
    expect(dropLines).toBeLessThanOrEqual(10);
  }, 60_000);

  test('5000 garbage messages are all dead-lettered but logged at most 10 times per 10 s', async () => {
    const dead: number[] = [];
    const sub = nc!.subscribe('portal.deadletter.>', {
      callback: () => {
        dead.push(1);
      },
    });
    await nc!.flush();
    const before = stderr.split('\n').filter((l) => l.includes('dead-letter subject')).length;
    const junk = Buffer.from('not a protobuf message at all \u0000\u00ff');
    for (let i = 0; i < 5000; i++) nc!.publish('portal.edge.junk.telemetry', junk);
    await nc!.flush();
    const deadline = Date.now() + 20_000;
    while (dead.length < 5000 && Date.now() < deadline) await sleep(100);
    sub.unsubscribe();
    expect(dead.length).toBe(5000);
    const lines = stderr.split('\n').filter((l) => l.includes('dead-letter subject')).length - before;
    expect(lines).toBeGreaterThan(0);
    expect(lines).toBeLessThanOrEqual(20);
    expect(serve!.exitCode).toBeNull();
  }, 60_000);
});
