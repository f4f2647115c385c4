import { jest } from '@jest/globals';
import { createDaprActorClient, type DaprActorClient } from '../../runtime/index.js';
import { errorFromResponse } from '../../runtime/dapr-client.js';
import { encodeActorId } from '../../runtime/state-keys.js';
import {
  daprInvoke,
  startDaprCluster,
  startPortalInstance,
  waitFor,
  type DaprCluster,
  type PortalInstance,
} from '../helpers/dapr.js';
import { startRedis, type TestRedis } from '../../harness/index.js';
import { AWKWARD_IDS } from '../runtime/fixtures.js';

// On the real Dapr path: redis-server, placement, one `portal serve --runtime dapr` with its daprd,
// idle actors deactivated after 2 s. Each test is a repro from a users' bug report against Dapr actors.
jest.setTimeout(180_000);

const DAY = 24 * 3600_000;
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

let redis: TestRedis;
let cluster: DaprCluster;
let a: PortalInstance;
let client: DaprActorClient;

interface Counts {
  reminderFires: Record<string, number>;
  timerFires: Record<string, number>;
  activations: number;
}

beforeAll(async () => {
  redis = await startRedis();
  cluster = await startDaprCluster({ redisPort: redis.port });
  a = await startPortalInstance(cluster, {
    name: 'sem',
    env: { PORTAL_TEST_ACTORS: '1' },
    serveArgs: ['--actor-idle-timeout', '2s', '--actor-scan-interval', '1s', '--drain-timeout', '2s'],
  });
  client = createDaprActorClient({ port: a.daprHttpPort });
  await waitFor(
    async () => (await daprInvoke(a.daprHttpPort, 'ProbeActor', 'warmup', 'noop')).status === 200,
    60_000,
    'actor placement ready',
  );
}, 180_000);

afterAll(async () => {
  client?.close();
  await cluster?.stop();
  await redis?.stop();
});

test('a reminder that unregisters itself in its callback runs once per due time on Dapr', async () => {
  const ids = Array.from({ length: 20 }, (_, i) => `self-unreg-${i}`);
  await Promise.all(
    ids.map((id) =>
      client.invoke('ProbeActor', id, 'remindCount', { name: 'once', dueMs: 500, unregister: true }),
    ),
  );
  await waitFor(
    async () => {
      const all = await Promise.all(ids.map((id) => client.invoke<Counts>('ProbeActor', id, 'counts')));
      return all.every((c) => (c.reminderFires.once ?? 0) >= 1);
    },
    30_000,
    'every reminder ran',
  );
  await pause(3000); // a second execution comes milliseconds after the first; wait well past it
  const all = await Promise.all(ids.map((id) => client.invoke<Counts>('ProbeActor', id, 'counts')));
  expect(all.map((c) => c.reminderFires.once)).toEqual(ids.map(() => 1));
});

test('a repeating reminder runs once per period on Dapr', async () => {
  await client.invoke('ProbeActor', 'repeat', 'remindCount', { name: 'every', dueMs: 200, periodMs: 1000 });
  await pause(3500);
  await client.invoke('ProbeActor', 'repeat', 'remindCount', { name: 'every', dueMs: 3_600_000 }); // park it
  const n = (await client.invoke<Counts>('ProbeActor', 'repeat', 'counts')).reminderFires.every;
  expect(n).toBeGreaterThanOrEqual(3);
  expect(n).toBeLessThanOrEqual(4);
});

test('a timer dies with its activation on Dapr: an idle-deactivated actor is not re-activated by it', async () => {
  await client.invoke('ProbeActor', 'timer-idle', 'timerCount', { name: 'late', dueMs: 6000 });
  // idle timeout 2 s: deactivated long before the timer is due at 6 s
  await pause(9000);
  const c = await client.invoke<Counts>('ProbeActor', 'timer-idle', 'counts');
  expect(c.timerFires).toEqual({});
  expect(c.activations).toBe(2); // the first call, and this one: none by the timer
});

test('every string is its own actor on Dapr, and sees its own id', async () => {
  for (const id of AWKWARD_IDS) {
    expect(await client.invoke('ProbeActor', id, 'whoAmI')).toBe(id);
    await client.invoke('ProbeActor', id, 'put', { key: 'mine', value: id });
  }
  for (const id of AWKWARD_IDS) expect(await client.invoke('ProbeActor', id, 'read', 'mine')).toBe(id);
  // `x|` cannot read what `x` wrote as `|secret`, state keys with URL characters are their own keys
  await client.invoke('ProbeActor', 'x', 'put', { key: '|secret', value: 'for x only' });
  expect(await client.invoke('ProbeActor', 'x|', 'read', 'secret')).toBeNull();
  await client.invoke('ProbeActor', 'x', 'put', { key: 'a/b?c#d%41', value: 1 });
  expect(await client.invoke('ProbeActor', 'x', 'read', 'a')).toBeNull();
  expect(await client.invoke('ProbeActor', 'x', 'read', 'a/b?c#d%41')).toBe(1);
  // Redis holds one key per actor, under the wire form of its id
  const keys = (await redis.cli('KEYS', 'portal||ProbeActor||*||mine')).split('\n').filter(Boolean);
  expect(new Set(keys)).toEqual(
    new Set(AWKWARD_IDS.map((id) => `portal||ProbeActor||${encodeActorId(id)}||mine`)),
  );
});

test('reminders of ids with | / % and newlines reach their own actor on Dapr', async () => {
  const ids = ['x|', 'a/b', '%41', '..', 'new\nline'];
  for (const id of ids) await client.invoke('ProbeActor', id, 'remindCount', { name: 'r', dueMs: 300 });
  await waitFor(
    async () => {
      for (const id of ids)
        if ((await client.invoke<Counts>('ProbeActor', id, 'counts')).reminderFires.r !== 1) return false;
      return true;
    },
    30_000,
    'reminders of awkward ids ran',
  );
  expect((await client.invoke<Counts>('ProbeActor', 'A', 'counts')).reminderFires).toEqual({});
});

test('a reminder unregistered leaves no duplicate guard in the store (trial 4: __reminderFires stayed after forget)', async () => {
  const id = 'guard-gone';
  await client.invoke('ProbeActor', id, 'remindCount', { name: 'once', dueMs: 300, unregister: true });
  await waitFor(
    async () => (await client.invoke<Counts>('ProbeActor', id, 'counts')).reminderFires.once === 1,
    30_000,
    'the reminder ran',
  );
  // before: portal||ProbeActor||guard-gone||__reminderFires stayed for good (one key per actor that had a reminder)
  expect((await redis.cli('KEYS', `portal||ProbeActor||${id}||__*`)).trim()).toBe('');
  // a periodic one keeps its guard while it is registered
  await client.invoke('ProbeActor', 'guard-kept', 'remindCount', {
    name: 'every',
    dueMs: 200,
    periodMs: 60_000,
  });
  await waitFor(
    async () => (await client.invoke<Counts>('ProbeActor', 'guard-kept', 'counts')).reminderFires.every === 1,
    30_000,
    'the periodic reminder ran',
  );
  expect((await redis.cli('KEYS', 'portal||ProbeActor||guard-kept||__*')).trim()).toBe(
    'portal||ProbeActor||guard-kept||__reminderFires',
  );
});

test('daprd refusals map to what they are, not PORTAL_HOST_STOPPED', async () => {
  await expect(client.invoke('ProbeActor', 'err', 'noSuchMethod')).rejects.toMatchObject({
    code: 'PORTAL_UNKNOWN_ACTOR_METHOD',
  });
  await expect(client.invoke('NoSuchType', 'err', 'noop')).rejects.toMatchObject({
    code: 'PORTAL_UNKNOWN_ACTOR_TYPE',
  });
  // what a client that does not use the wire form sends, mapped from daprd's real answers
  const raw = async (path: string, body?: string): Promise<string | undefined> => {
    const res = await fetch(`http://127.0.0.1:${a.daprHttpPort}/v1.0/actors/${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    });
    const text = await res.text();
    if (res.status < 300) return undefined;
    return (errorFromResponse(path, res.status, text) as { code?: string }).code;
  };
  expect(await raw('ProbeActor/a%2Fb/method/noop')).toBe('PORTAL_UNKNOWN_ACTOR_METHOD'); // daprd: "actor method not found"
  expect(await raw('ProbeActor/a%3Fb/method/noop')).toBe('PORTAL_UNKNOWN_ACTOR_METHOD');
  expect(await raw('ProbeActor/a%0Ab/method/noop')).toBe('PORTAL_INVALID_ARGUMENT'); // "invalid control character in URL"
  expect(await raw('ProbeActor/a%7Cb/method/noop')).toBe('PORTAL_INVALID_ARGUMENT'); // `a|b` is not a wire form
  // daprd decodes `%2541` once to `%41`, which is no wire form: refused as the embedded API refuses it, not actor `A`
  expect(await raw('ProbeActor/%2541/method/whoAmI')).toBe('PORTAL_INVALID_ARGUMENT');
  expect(await raw('ProbeActor/%2554-9/method/whoAmI')).toBe('PORTAL_INVALID_ARGUMENT');
  expect(await client.invoke('ProbeActor', '%41', 'whoAmI')).toBe('%41'); // sent as its wire form, ~JTQx
  expect(await raw('ProbeActor/err/method/read', '{not json')).toBe('PORTAL_INVALID_ARGUMENT');
  expect(await raw('ProbeActor/err/method/read', '"a string"')).toBeUndefined(); // any JSON value is an argument
  const unreachable = createDaprActorClient({ port: 1 });
  await expect(unreachable.invoke('ProbeActor', 'x', 'noop')).rejects.toMatchObject({
    code: 'PORTAL_HOST_UNAVAILABLE',
  });
  unreachable.close();
});

test('a call A -> B -> A is refused with PORTAL_INVALID_ARGUMENT on Dapr instead of deadlocking', async () => {
  expect(await client.invoke('ProbeActor', 'chain-a', 'callVia', 'chain-b')).toBe('PORTAL_INVALID_ARGUMENT');
});

test('30-day reminders and timers do not fire at once on Dapr; call timeouts above 2^31-1 ms are refused', async () => {
  await client.invoke('ProbeActor', 'month', 'remindCount', { name: 'due', dueMs: 30 * DAY });
  await client.invoke('ProbeActor', 'month', 'remindCount', {
    name: 'monthly',
    dueMs: 1,
    periodMs: 30 * DAY,
  });
  await client.invoke('ProbeActor', 'month', 'timerCount', {
    name: 't',
    dueMs: 30 * DAY,
    periodMs: 30 * DAY,
  });
  await pause(3000);
  const c = await client.invoke<Counts>('ProbeActor', 'month', 'counts');
  expect(c.reminderFires).toEqual({ monthly: 1 });
  expect(c.timerFires).toEqual({});
  expect(() => createDaprActorClient({ port: a.daprHttpPort, timeoutMs: 30 * DAY })).toThrow(
    expect.objectContaining({ code: 'PORTAL_INVALID_ARGUMENT' }),
  );
});

test('reminders of ids with | / % and newlines survive a crash of the instance and its sidecar', async () => {
  const ids = ['x|', 'a/b', '%41', 'new\nline', 'x||y'];
  for (const id of ids)
    await client.invoke('ProbeActor', `crash-${id}`, 'remindCount', { name: 'later', dueMs: 8000 });
  await a.kill(); // SIGKILL of the app and its daprd
  client.close();
  a = await startPortalInstance(cluster, {
    name: 'sem2',
    env: { PORTAL_TEST_ACTORS: '1' },
    serveArgs: ['--actor-idle-timeout', '2s', '--actor-scan-interval', '1s', '--drain-timeout', '2s'],
  });
  client = createDaprActorClient({ port: a.daprHttpPort });
  await waitFor(
    async () => {
      for (const id of ids) {
        const c = await client.invoke<Counts>('ProbeActor', `crash-${id}`, 'counts').catch(() => undefined);
        if (c?.reminderFires.later !== 1) return false;
      }
      return true;
    },
    60_000,
    'reminders of awkward ids after the crash',
  );
  expect((await client.invoke<Counts>('ProbeActor', 'crash-A', 'counts')).reminderFires).toEqual({});
});

test('SIGTERM with a turn that never ends: the Dapr instance exits within its drain timeout', async () => {
  const hanging = client.invoke('ProbeActor', 'hang', 'hang', 600_000).catch((err: unknown) => err);
  await pause(500);
  const t0 = Date.now();
  a.app.child.kill('SIGTERM');
  await waitFor(() => a.app.child.exitCode !== null, 15_000, 'app exit');
  const took = Date.now() - t0;
  expect(took).toBeLessThan(2000 + 3000); // drain 2 s, plus the shutdown of everything else
  expect(a.app.child.exitCode).toBe(0);
  await hanging;
});
