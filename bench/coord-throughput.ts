import { createSilentLogger } from '../common/logger.js';
import { createEmbeddedHost, createMemoryStateStore } from '../runtime/index.js';
import { CoordinatorActor, actorProxy, type PeerTransport, type TaskOutcome } from '../actors/index.js';

/**
 * Resolves with `p`, or rejects with an Error naming `what` (and `progress()`, when given) once `ms`
 * passed: a benchmark step that waits on another process or on outcomes ends with the reason instead of hanging.
 */
export function withDeadline<T>(
  p: Promise<T>,
  ms: number,
  what: string,
  progress?: () => string,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new Error(`${what}: not within ${(ms / 1000).toFixed(0)} s${progress ? ` (${progress()})` : ''}`),
        ),
      ms,
    );
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/**
 * Runs `tasks` tiny audio tasks through a CoordinatorActor (learned policy, at most 3 attempts) over `transport`
 * with `peers` peers of 4 slots each; resolves with tasks/s from the first submit to the last outcome. Rejects
 * with an Error naming the first task that failed for good (its error and attempts), or with
 * one naming how many outcomes came when they did not all come within `timeoutMs`. It used to wait
 * forever in both cases: a failed outcome was thrown inside the coordinator's sink, where it is only logged.
 */
export async function coordinatorThroughput(
  transport: PeerTransport,
  peers: string[],
  tasks: number,
  timeoutMs: number,
): Promise<number> {
  let done = 0;
  let finished!: () => void;
  let failed!: (err: Error) => void;
  const all = new Promise<void>((resolve, reject) => {
    finished = resolve;
    failed = reject;
  });
  const host = createEmbeddedHost({
    store: createMemoryStateStore(),
    logger: createSilentLogger(),
    services: {
      coordinatorTransport: transport,
      coordinatorSink: (o: TaskOutcome) => {
        if (!o.ok)
          failed(
            new Error(
              `task ${o.taskId} failed after ${o.attempts} attempt(s): ${o.error ?? 'no error given'}`,
            ),
          );
        else if (++done === tasks) finished();
      },
    },
  });
  host.register(CoordinatorActor);
  await host.ready();
  try {
    const coord = actorProxy(host, 'CoordinatorActor', 'bench');
    await coord.invoke('configure', { policy: 'learned', maxAttempts: 3 });
    for (const id of peers)
      await coord.invoke('registerPeer', { id, maxConcurrent: 4, latencyHintMs: 1, taskTypes: ['audio'] });
    const t0 = performance.now();
    for (let i = 0; i < tasks; i += 50)
      await coord.invoke('submit', {
        tasks: Array.from({ length: Math.min(50, tasks - i) }, (_, k) => ({
          id: `t${i + k}`,
          type: 'audio',
          work: 0.2,
        })),
      });
    await withDeadline(all, timeoutMs, `${tasks} task outcomes`, () => `${done} arrived`);
    return tasks / ((performance.now() - t0) / 1000);
  } finally {
    await host.stop();
  }
}
