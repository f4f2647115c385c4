import { jest } from '@jest/globals';
import { createDaprActorClient } from '../../runtime/index.js';
import {
  daprInvoke,
  startDaprCluster,
  startPortalInstance,
  waitFor,
  type DaprCluster,
  type PortalInstance,
} from '../helpers/dapr.js';
import { startRedis, type TestRedis } from '../../harness/index.js';

// daprd started with DAPR_API_TOKEN and APP_API_TOKEN; `portal serve` picks both up from its environment.
jest.setTimeout(120_000);

let redis: TestRedis;
let cluster: DaprCluster;
let inst: PortalInstance;
const apiToken = 'api-token-for-tests';
const appApiToken = 'app-token-for-tests';

beforeAll(async () => {
  redis = await startRedis();
  cluster = await startDaprCluster({ redisPort: redis.port });
  inst = await startPortalInstance(cluster, {
    name: 'tokens',
    env: { PORTAL_TEST_ACTORS: '1' },
    apiToken,
    appApiToken,
  });
}, 120_000);

afterAll(async () => {
  await cluster?.stop();
  await redis?.stop();
});

describe('Dapr API tokens', () => {
  test('the sidecar refuses callers without the Dapr API token', async () => {
    const r = await daprInvoke(inst.daprHttpPort, 'ProbeActor', 't', 'noop');
    expect(r.status).toBe(401);
    const c = createDaprActorClient({ port: inst.daprHttpPort });
    await expect(c.invoke('ProbeActor', 't', 'noop')).rejects.toMatchObject({
      code: 'PORTAL_CONFIG_INVALID',
    });
    c.close();
  });

  test('with the token, calls reach the actor (daprd -> app carries the app token)', async () => {
    const c = createDaprActorClient({ port: inst.daprHttpPort, apiToken });
    expect(await c.invoke('ProbeActor', 't', 'noop')).toBeNull();
    // state, reminders and timers: the host's own sidecar calls carry the API token too
    await c.invoke('ProbeActor', 't', 'remindMe', { name: 'r', dueMs: 200, data: 1 });
    expect(
      (await c.invoke<{ value: number }>('ProbeActor', 't', 'slowIncrement', { delayMs: 0 })).value,
    ).toBe(1);
    // the reminder fires: daprd calls the app with the app token, the turn saves through daprd with the API token
    await waitFor(
      async () => (await c.invoke('ProbeActor', 't', 'reminded')) !== null,
      30_000,
      'reminder fired',
    );
    expect(await c.invoke('ProbeActor', 't', 'reminded')).toMatchObject({ name: 'r', data: 1 });
    c.close();
  });

  test('the app refuses calls that do not carry the app token', async () => {
    const res = await fetch(`http://127.0.0.1:${inst.appPort}/actors/ProbeActor/t/method/noop`, {
      method: 'PUT',
    });
    expect(res.status).toBe(401);
    // the code the embedded API answers a wrong token with (it was PORTAL_CONFIG_INVALID, an exit-2 class)
    expect(await res.json()).toEqual({
      error: { code: 'PORTAL_UNAUTHORIZED', message: 'missing or wrong dapr-api-token (APP_API_TOKEN)' },
    });
    // the probes need no token, and answer Portal's report (the bus's state), not the SDK's bare 200
    for (const path of ['/healthz', '/readyz']) {
      const probe = await fetch(`http://127.0.0.1:${inst.appPort}${path}`);
      expect({ path, status: probe.status, body: await probe.json() }).toEqual({
        path,
        status: 200,
        body: { status: 'ok', bus: expect.objectContaining({ state: 'connected' }) },
      });
    }
  });
});
