/**
 * Heartbeats of invented edges against a real `portal serve` on a real nats-server (trial finding N4): telemetry
 * without a URL under random edge ids took every tracked-edge slot (first come, kept for good), so an edge that
 * announced itself afterwards was dropped at the cap and never configured. Now a heartbeat of an edge nothing here
 * knows is dropped, counted and warned about (rate-limited), and its slot goes to the next new edge; announced edges
 * are known and keep theirs.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createCodecRegistry } from '../../bus/codec.js';
import { subjects } from '../../bus/types.js';
import type { EdgeTelemetryEvent } from '../../common/vocabulary.js';
import { encodeActorId } from '../../runtime/state-keys.js';
import { startNatsServer, type TestNatsServer } from '../../harness/index.js';
import { waitFor } from '../helpers/dapr.js';
import { startEmbeddedServe, stopEmbeddedServe, type EmbeddedServe } from '../helpers/portal-cli.js';

const CAP = 20;
const codecs = createCodecRegistry();

describe('portal serve under a flood of heartbeats from invented edges', () => {
  let server: TestNatsServer;
  let serve: EmbeddedServe | undefined;
  let nc: NatsConnection | undefined;

  beforeAll(async () => {
    server = await startNatsServer();
    serve = await startEmbeddedServe(
      ['--max-edges', String(CAP), '--dashboard-port', '0', '--log-level', 'warn'],
      { NATS_URL: server.url },
    );
    nc = await connect({ servers: server.url, name: 'heartbeat-flooder' });
  }, 60_000);
  afterAll(async () => {
    await nc?.close();
    await stopEmbeddedServe(serve);
    await server?.stop();
  });

  const telemetry = (edgeId: string, url?: string): void => {
    const t: EdgeTelemetryEvent = {
      edgeId,
      sentAtMs: Date.now(),
      online: true,
      bandwidth: [],
      rtt: [],
      url: url ?? '', // '': a heartbeat (proto/portal.proto)
    };
    nc!.publish(subjects.edgeTelemetry(edgeId), codecs.encode(subjects.edgeTelemetry(edgeId), t));
  };
  const metrics = async (): Promise<string> => (await fetch(new URL('metrics', serve!.dashboard))).text();
  const metric = (text: string, name: string): number =>
    Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
  const edgeUrl = async (id: string): Promise<{ status: number; url?: string }> => {
    const res = await fetch(`${serve!.base}/EdgeActor/${encodeActorId(id)}/method/snapshot`, {
      method: 'POST',
    });
    const body = (await res.json().catch(() => undefined)) as { url?: string } | undefined;
    return { status: res.status, url: body?.url };
  };

  test('heartbeats of 500 invented edges: dropped and counted (unknown, or at the cap), warned about a few times; an edge announced before keeps its slot and one announced after is tracked and configured', async () => {
    telemetry('real-before', 'http://127.0.0.1:9/before');
    await waitFor(
      async () => (await edgeUrl('real-before')).status === 200,
      10_000,
      () => 'real-before configured',
    );
    for (let i = 0; i < 500; i++) telemetry(`junk-${i}-${Math.random().toString(36).slice(2)}`);
    await nc!.flush();
    // the edge announces itself as edges do, every 200 ms (before the fix every one was dropped at the cap: the
    // junk held all the other slots for good)
    await waitFor(
      async () => {
        telemetry('real-after', 'http://127.0.0.1:9/after');
        await new Promise((r) => setTimeout(r, 200));
        return (await edgeUrl('real-after')).status === 200;
      },
      15_000,
      () => `real-after configured (serve: ${serve!.output().slice(-1500)})`,
    );
    expect((await edgeUrl('real-after')).url).toBe('http://127.0.0.1:9/after');
    // the edge announced before the flood still takes heartbeats: it was never evicted
    telemetry('real-before');
    await nc!.flush();
    const text = await metrics();
    // each junk heartbeat was judged unknown or, while every slot was still being judged, dropped at the cap
    expect(
      metric(text, 'portal_edge_events_unknown_total') + metric(text, 'portal_edge_events_dropped_total'),
    ).toBeGreaterThanOrEqual(500);
    expect(metric(text, 'portal_edge_events_unknown_total')).toBeGreaterThanOrEqual(CAP - 1);
    expect(metric(text, 'portal_edges_tracked')).toBeLessThanOrEqual(CAP);
    expect(metric(text, 'portal_edges_max')).toBe(CAP);
    expect(metric(text, 'portal_edges_evicted_total')).toBeGreaterThanOrEqual(1);
    const warns = serve!
      .output()
      .split('\n')
      .filter((l) => l.includes('heartbeat of an edge nothing here knows'));
    expect(warns.length).toBeGreaterThan(0);
    expect(warns.length).toBeLessThanOrEqual(10);
    // neither real edge's events were dropped at the cap
    expect(serve!.output()).not.toMatch(/"edgeId":"real-(before|after)"[^\n]*tracked-edge cap/);
  }, 90_000);
});
