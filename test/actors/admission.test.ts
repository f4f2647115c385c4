import { TransferAdmission, defaultMaxRunning, defaultMaxQueued } from '../../actors/index.js';
import { isPortalError } from '../../common/errors.js';

const flush = () => new Promise((r) => setImmediate(r));

function admission(maxRunning: number, maxQueued: number, fail: Set<string> = new Set()) {
  const promoted: string[] = [];
  const a = new TransferAdmission({
    maxRunning,
    maxQueued,
    promote: async (id) => {
      promoted.push(id);
      if (fail.has(id)) throw new Error(`test: ${id} cannot start`);
    },
  });
  return { a, promoted };
}

test('admission: starts beyond the running slots queue, in order, and each freed slot goes to the oldest', async () => {
  const { a, promoted } = admission(2, 10);
  expect(['t1', 't2', 't3', 't4', 't5'].map((id) => a.acquire(id))).toEqual([
    'running',
    'running',
    'queued',
    'queued',
    'queued',
  ]);
  expect(a.acquire('t3')).toBe('queued'); // asking again keeps its place
  a.release('t2');
  await flush();
  expect(promoted).toEqual(['t3']);
  expect(a.stateOf('t3')).toBe('running');
  a.release('t4'); // cancelled while it waited: leaves the queue, frees no slot
  a.release('t1');
  await flush();
  expect(promoted).toEqual(['t3', 't5']);
  expect(a.stats()).toMatchObject({ running: 2, queued: 0, promoted: 2, rejected: 0 });
  a.release('nobody'); // holds nothing: nothing happens
  expect(a.stats().running).toBe(2);
});

test('admission: a full queue refuses the start with PORTAL_OVERLOADED and counts it; a resumed transfer always runs', () => {
  const { a } = admission(1, 1);
  a.acquire('a');
  a.acquire('b');
  let err: unknown;
  try {
    a.acquire('c');
  } catch (e) {
    err = e;
  }
  expect(isPortalError(err, 'PORTAL_OVERLOADED')).toBe(true);
  expect((err as Error).message).toMatch(/--max-running 1.*--max-queued 1/);
  expect(a.stats()).toMatchObject({ running: 1, queued: 1, rejected: 1 });
  expect(a.acquire('r', { resume: true })).toBe('running'); // admitted before a restart: above the bound
  expect(a.acquire('q', { wasQueued: true })).toBe('queued'); // queued before a restart: queued again
  expect(a.stats()).toMatchObject({ running: 2, queued: 2 });
});

test('admission: a promotion that fails frees its slot for the next queued transfer', async () => {
  const { a, promoted } = admission(1, 5, new Set(['bad']));
  a.acquire('a');
  a.acquire('bad');
  a.acquire('good');
  a.release('a');
  await flush();
  await flush();
  expect(promoted).toEqual(['bad', 'good']);
  expect(a.stateOf('bad')).toBeUndefined();
  expect(a.stateOf('good')).toBe('running');
});

test('admission: the default follows the cores and the memory', () => {
  expect(defaultMaxRunning(2, 8 * 2 ** 30)).toBe(16);
  expect(defaultMaxRunning(64, 8 * 2 ** 30)).toBe(256); // one per 32 MiB of 8 GiB
  expect(defaultMaxRunning(1, 1)).toBe(1);
  expect(defaultMaxQueued(16)).toBe(1600);
});
