import http from 'node:http';
import { readFile } from 'node:fs/promises';
import { jest } from '@jest/globals';
import { createDaprActorClient, type DaprActorClient } from '../../runtime/index.js';
import {
  daprInvoke,
  startDaprCluster,
  startPortalInstance,
  waitFor,
  type DaprCluster,
  type PortalInstance,
} from '../helpers/dapr.js';
import { startRedis, type TestRedis } from '../../harness/index.js';

// Real processes on loopback: redis-server, placement, two `portal serve --runtime dapr` instances with their daprd.
// The instances run without the host's in-process turn queue, so one turn at a time is Dapr's actor lock alone.
jest.setTimeout(180_000);

let redis: TestRedis;
let cluster: DaprCluster;
let a: PortalInstance;
let b: PortalInstance;
let clientA: DaprActorClient;
let clientB: DaprActorClient;

beforeAll(async () => {
  redis = await startRedis();
  cluster = await startDaprCluster({ redisPort: redis.port });
  const env = { PORTAL_TEST_ACTORS: '1' };
  [a, b] = await Promise.all([
    startPortalInstance(cluster, {
      name: 'a',
      env,
      serveArgs: ['--no-local-turns', '--dashboard-port', '0'],
    }),
    startPortalInstance(cluster, {
      name: 'b',
      env,
      serveArgs: ['--no-local-turns', '--dashboard-port', '0'],
    }),
  ]);
  clientA = createDaprActorClient({ port: a.daprHttpPort });
  clientB = createDaprActorClient({ port: b.daprHttpPort });
  // Both hosts must be in the placement table before calls spread over them.
  await waitFor(
    async () => (await daprInvoke(a.daprHttpPort, 'ProbeActor', 'warmup', 'noop')).status === 200,
    60_000,
    'actor placement ready',
  );
}, 180_000);

afterAll(async () => {
  clientA?.close();
  clientB?.close();
  await cluster?.stop();
  await redis?.stop();
});

describe('Dapr host', () => {
  test('a method called through either sidecar runs on one instance and returns its JSON result', async () => {
    const viaA = await clientA.invoke<{ value: number; pid: number }>('ProbeActor', 'p1', 'slowIncrement', {
      delayMs: 1,
    });
    const viaB = await clientB.invoke<{ value: number; pid: number }>('ProbeActor', 'p1', 'slowIncrement', {
      delayMs: 1,
    });
    expect(viaA.value).toBe(1);
    expect(viaB.value).toBe(2);
    expect(viaB.pid).toBe(viaA.pid); // one activation, wherever placement put it
    expect(await clientA.invoke('ProbeActor', 'p1', 'noop')).toBeNull();
  });

  test('actors spread over both instances', async () => {
    const pids = new Set<number>();
    for (let i = 0; i < 24; i++)
      pids.add((await clientA.invoke<{ pid: number }>('ProbeActor', `spread-${i}`, 'info')).pid);
    expect(pids).toEqual(new Set([a.app.child.pid, b.app.child.pid]));
  });

  test('concurrent calls to one actor through both sidecars run one turn at a time (no lost updates)', async () => {
    const n = 30;
    const calls = Array.from({ length: n }, (_, i) =>
      (i % 2 ? clientA : clientB).invoke<{ value: number }>('ProbeActor', 'turns', 'slowIncrement', {
        delayMs: 15,
      }),
    );
    const values = (await Promise.all(calls)).map((r) => r.value).sort((x, y) => x - y);
    expect(values).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    const info = await clientB.invoke<{ value: number; maxOverlap: number }>('ProbeActor', 'turns', 'info');
    expect(info.value).toBe(n);
    expect(info.maxOverlap).toBe(1);
  });

  test('an unknown or internal method is refused before activation and the app keeps serving', async () => {
    for (const m of [
      'nope',
      'getDaprClient',
      'onDeactivateInternal',
      'receiveReminder',
      'constructor',
      '_private',
    ]) {
      const r = await daprInvoke(a.daprHttpPort, 'ProbeActor', 'unknown', m);
      expect(r.status).toBeGreaterThanOrEqual(400);
      expect(JSON.stringify(r.body)).toContain('PORTAL_UNKNOWN_ACTOR_METHOD');
    }
    await expect(clientA.invoke('ProbeActor', 'unknown', 'nope')).rejects.toMatchObject({
      code: 'PORTAL_UNKNOWN_ACTOR_METHOD',
    });
    expect(await clientA.invoke('ProbeActor', 'unknown', 'noop')).toBeNull();
    expect(a.app.child.exitCode).toBeNull();
    expect(b.app.child.exitCode).toBeNull();
  });

  test("the app port refuses a web page's requests (DNS rebinding, cross-site PUT) and names a malformed %-escape with 400; daprd's calls pass", async () => {
    const call = (path: string, headers: Record<string, string>): Promise<{ status: number; body: string }> =>
      new Promise((done, fail) => {
        const req = http.request(
          { host: '127.0.0.1', port: a.appPort, method: 'PUT', path, headers },
          (res) => {
            let body = '';
            res.on('data', (d: Buffer) => (body += d.toString()));
            res.on('end', () => done({ status: res.statusCode ?? 0, body }));
          },
        );
        req.on('error', fail);
        req.end('null');
      });
    for (const headers of <Array<Record<string, string>>>[
      { host: `evil.example:${a.appPort}` },
      { origin: 'http://evil.example', 'content-type': 'text/plain' },
    ]) {
      const r = await call('/actors/ProbeActor/web1/method/noop', headers);
      expect({ headers, status: r.status, code: JSON.parse(r.body).error?.code }).toEqual({
        headers,
        status: 403,
        code: 'PORTAL_CROSS_SITE_REFUSED',
      });
    }
    const bad = await call('/actors/ProbeActor/%E0%A4%A/method/noop', {});
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.body).error).toEqual({
      code: 'PORTAL_INVALID_ARGUMENT',
      message: "path: malformed %-escape: Failed to decode param '%E0%A4%A'",
    });
    // daprd calls the app as 127.0.0.1:<app port>, without an Origin
    expect(await clientA.invoke('ProbeActor', 'web1', 'noop')).toBeNull();
  });

  test('a turn that throws rejects the caller with its error and rolls its state back', async () => {
    await clientA.invoke('ProbeActor', 'rollback', 'slowIncrement', { delayMs: 0 });
    await expect(clientA.invoke('ProbeActor', 'rollback', 'failAfterSet')).rejects.toMatchObject({
      message: expect.stringContaining('probe failure'),
    });
    expect((await clientB.invoke<{ value: number }>('ProbeActor', 'rollback', 'info')).value).toBe(1);
  });

  test('a call from a turn into the same actor is refused instead of deadlocking', async () => {
    expect(await clientA.invoke('ProbeActor', 'self', 'callSelf')).toBe('PORTAL_INVALID_ARGUMENT');
  });

  test('a durable reminder reaches receiveReminder with its name and data', async () => {
    await clientA.invoke('ProbeActor', 'remind', 'remindMe', { name: 'wake-up', dueMs: 500, data: { n: 7 } });
    await waitFor(
      async () => (await clientB.invoke('ProbeActor', 'remind', 'reminded')) !== null,
      30_000,
      'reminder fired',
    );
    expect(await clientB.invoke('ProbeActor', 'remind', 'reminded')).toMatchObject({
      name: 'wake-up',
      data: { n: 7 },
    });
  });

  test('calls on ids nobody created write nothing to Redis and keep no instance in either app', async () => {
    /** /metrics of an instance's app (its dashboard URL is in its ready line). */
    const metrics = async (i: PortalInstance): Promise<string> => {
      const ready = (await readFile(i.app.log, 'utf8'))
        .split('\n')
        .find((l) => l.includes('"type":"ready"'))!;
      const url = (JSON.parse(ready) as { dashboard: string }).dashboard;
      const text = await (await fetch(new URL('metrics', url))).text();
      expect(text).toContain('# TYPE portal_actor_instances gauge');
      return text;
    };
    const count = (text: string, re: RegExp): number => Number(re.exec(text)?.[1] ?? 0);
    const activations = /^portal_actor_activations_total\{[^}]*\} (\d+)$/m;
    const instancesOf = (type: string) =>
      new RegExp(`^portal_actor_instances\\{[^}]*type="${type}"[^}]*\\} (\\d+)$`, 'm');
    const before = await Promise.all([a, b].map(metrics));
    for (let i = 0; i < 150; i++) {
      const c = i % 2 ? clientA : clientB;
      await expect(c.invoke('SchedulerActor', `ghost-${i}`, 'status')).rejects.toMatchObject({
        code: 'PORTAL_UNKNOWN_TRANSFER',
      });
      await expect(c.invoke('EdgeActor', `ghost-edge-${i}`, 'snapshot')).rejects.toMatchObject({
        code: 'PORTAL_UNKNOWN_EDGE',
      });
    }
    const after = await Promise.all([a, b].map(metrics));
    const activated = after.reduce((n, t, i) => n + count(t, activations) - count(before[i], activations), 0);
    expect(activated).toBeGreaterThanOrEqual(300); // each call activated an instance…
    for (const t of after) {
      expect(count(t, instancesOf('SchedulerActor'))).toBe(0); // …released when it ended
      expect(count(t, instancesOf('EdgeActor'))).toBe(0);
    }
    expect((await redis.cli('KEYS', 'portal||*Actor||ghost*')).trim()).toBe('');
  });

  test('actor state is kept in Redis under the Dapr actor key layout', async () => {
    // its own actor: the value comes from this test's three increments, through both sidecars
    const key = 'portal||ProbeActor||in-redis||counter';
    expect((await redis.cli('HGET', key, 'data')).trim()).toBe(''); // nothing there before
    for (const c of [clientA, clientB, clientA])
      await c.invoke('ProbeActor', 'in-redis', 'slowIncrement', { delayMs: 0 });
    expect(JSON.parse(await redis.cli('HGET', key, 'data'))).toEqual({ n: 3 });
  });
});
