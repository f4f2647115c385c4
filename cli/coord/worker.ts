import os from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { ExecResult, PeerTaskInput, TaskExecutor } from './executors.js';

/** A finished attempt as a peer reports it: the executor's answer plus what the peer measured. */
export interface PeerAttemptResult extends ExecResult {
  /** ms from the task's start to its answer, not counting its wait in the peer's queue. */
  serviceMs: number;
  /** Resource pressure when it finished, 0..1 (the same as PeerTelemetry.pressure). */
  pressure: number;
}

/** What a peer reports about itself in its heartbeats. */
export interface PeerTelemetry {
  /** Tasks running plus queued. */
  load: number;
  running: number;
  queued: number;
  /** max(cpuPressure, memoryPressure, queue pressure = queued / maxInFlight), 0..1. */
  pressure: number;
  /** 1-minute load average over the cores, capped at 1. */
  cpuPressure: number;
  /** Share of the machine's memory in use, 0..1. */
  memoryPressure: number;
  /** p99 event-loop delay of this process since the last reading, ms (a peer too busy to answer). */
  loopDelayMs: number;
  completed: number;
  failed: number;
}

/** Runs tasks with an executor, `concurrency` at once, the rest queued in arrival order. */
export interface PeerWorker {
  /** Queues a task; resolves when it has run (never rejects: an executor error is a failed attempt). */
  submit(t: PeerTaskInput): Promise<PeerAttemptResult>;
  telemetry(): PeerTelemetry;
  /** Resolves once nothing is running or queued. */
  idle(): Promise<void>;
  close(): void;
}

/**
 * Creates a worker over `executor`. `maxInFlight` (what the peer tells the coordinator it may have
 * in flight) only scales the queue part of the pressure. Service time is measured here, from the
 * moment a task leaves the queue to the executor's answer.
 */
export function createPeerWorker(opts: {
  executor: TaskExecutor;
  concurrency: number;
  maxInFlight?: number;
}): PeerWorker {
  const { executor, concurrency } = opts;
  const maxInFlight = opts.maxInFlight ?? concurrency;
  const queue: Array<{ t: PeerTaskInput; backlog: number; done: (r: PeerAttemptResult) => void }> = [];
  let running = 0,
    completed = 0,
    failed = 0;
  let idleWaiters: Array<() => void> = [];
  const loop = monitorEventLoopDelay({ resolution: 20 });
  loop.enable();
  const cores = os.availableParallelism();

  /** CPU and memory pressure: the emulated machine's when the executor emulates one, else this machine's. */
  const resources = (): { cpu: number; memory: number } =>
    executor.resourcePressure?.() ?? {
      cpu: Math.min(1, os.loadavg()[0] / cores),
      memory: Math.min(1, Math.max(0, 1 - os.freemem() / os.totalmem())),
    };
  const telemetry = (): PeerTelemetry => {
    const { cpu: cpuPressure, memory: memoryPressure } = resources();
    const queuePressure = Math.min(1, queue.length / maxInFlight);
    const loopDelayMs = loop.percentile(99) / 1e6;
    loop.reset();
    return {
      load: running + queue.length,
      running,
      queued: queue.length,
      pressure: Math.max(cpuPressure, memoryPressure, queuePressure),
      cpuPressure,
      memoryPressure,
      loopDelayMs: Number.isFinite(loopDelayMs) ? loopDelayMs : 0,
      completed,
      failed,
    };
  };

  const pump = (): void => {
    while (running < concurrency && queue.length > 0) {
      const { t, backlog, done } = queue.shift()!;
      running++;
      const queuedBehind = queue.length;
      const t0 = performance.now();
      let run: Promise<ExecResult>;
      try {
        run = executor.run(t, { backlogAtArrival: backlog, queuedBehind });
      } catch (err) {
        run = Promise.reject(err instanceof Error ? err : new Error(String(err)));
      }
      run
        .catch((err: unknown): ExecResult => ({
          ok: false,
          error: err instanceof Error ? err.message : String(err),
        }))
        .then((r) => {
          running--;
          if (r.ok) completed++;
          else failed++;
          // the same pressure as the heartbeats': max(CPU, memory, tasks waiting / slots)
          const res = resources();
          done({
            ...r,
            serviceMs: performance.now() - t0,
            pressure: Math.max(res.cpu, res.memory, Math.min(1, queue.length / maxInFlight)),
          });
          if (running === 0 && queue.length === 0) idleWaiters.splice(0).forEach((w) => w());
          setImmediate(pump);
        })
        .catch(() => {});
    }
  };

  return {
    submit(t) {
      return new Promise<PeerAttemptResult>((done) => {
        queue.push({ t, backlog: running + queue.length, done });
        setImmediate(pump);
      });
    },
    telemetry,
    idle: () =>
      running === 0 && queue.length === 0 ? Promise.resolve() : new Promise<void>((r) => idleWaiters.push(r)),
    close() {
      loop.disable();
      idleWaiters = [];
    },
  };
}
