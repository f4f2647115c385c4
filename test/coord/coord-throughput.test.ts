import { coordinatorThroughput } from '../../bench/coord-throughput.js';
import type { PeerTransport } from '../../actors/index.js';

// bench:coord-service ran its coordinator over these transports and waited for every outcome with no end: a
// task that failed for good (its outcome thrown inside the coordinator's sink, where it is only logged) or an
// answer that never came hung the bench. These show both end, naming why.

const peers = ['p0', 'p1'];

test('coord bench: a task that fails for good ends the run naming the task, its attempts and its error', async () => {
  const transport: PeerTransport = {
    execute: async (_peer, d) =>
      d.taskId === 't3'
        ? { ok: false, error: 'kernel crashed', serviceMs: 0.1, pressure: 0 }
        : { ok: true, output: null, serviceMs: 0.1, pressure: 0 },
  };
  await expect(coordinatorThroughput(transport, peers, 10, 20_000)).rejects.toThrow(
    'task t3 failed after 3 attempt(s): kernel crashed',
  );
}, 30_000);

test('coord bench: outcomes that do not all come end the run after the step timeout, naming how many came', async () => {
  const transport: PeerTransport = {
    execute: (_peer, d) =>
      d.taskId === 't7'
        ? new Promise(() => undefined) // a peer that never answers
        : Promise.resolve({ ok: true, output: null, serviceMs: 0.1, pressure: 0 }),
  };
  await expect(coordinatorThroughput(transport, peers, 10, 1000)).rejects.toThrow(
    '10 task outcomes: not within 1 s (9 arrived)',
  );
}, 30_000);

test('coord bench: every task answered gives tasks per second', async () => {
  const transport: PeerTransport = {
    execute: async () => ({ ok: true, output: null, serviceMs: 0.1, pressure: 0 }),
  };
  expect(await coordinatorThroughput(transport, peers, 100, 20_000)).toBeGreaterThan(0);
}, 30_000);
