/**
 * A coord-demo peer: a worker process (forked by `portal coord-demo`) that executes tasks one at a
 * time in arrival order and reports each result over IPC. It runs the built-in kernels emulating
 * its profile (createKernelExecutor: the real computation, held for pace × multiplier × its CPU
 * time; failures under overload) in a PeerWorker, the same executor and worker `portal peer` runs
 * over NATS. At start it measures its own ms per work unit and reports them with `ready`; every
 * 500 ms it sends its telemetry (resource pressure), as a `portal peer` heartbeat does.
 */
import { calibrateKernels } from './kernels.js';
import { EMULATION_PACE, type PeerProfile } from './profiles.js';
import { createKernelExecutor, type KernelExecutor, type PeerTaskInput } from './executors.js';
import { createPeerWorker, type PeerWorker } from './worker.js';

interface TaskMsg {
  kind: 'task';
  seq: number;
  type: string;
  work: number;
  hour: number;
  payload?: unknown;
}
type InMsg =
  | {
      kind: 'init';
      profile: PeerProfile;
      seed: number;
      frame: { width: number; height: number };
      pace?: number;
    }
  | TaskMsg
  | { kind: 'reset'; seed: number };

let profile: PeerProfile | undefined;
let executor: KernelExecutor | undefined;
let worker: PeerWorker | undefined;
let telemetryTimer: NodeJS.Timeout | undefined;
/** Period of the telemetry messages, ms (the heartbeat period of the demo's NATS peers). */
const TELEMETRY_MS = 500;

function send(m: unknown): void {
  process.send?.(m);
}

process.on('message', (m: InMsg) => {
  if (m.kind === 'init') {
    profile = m.profile;
    executor = createKernelExecutor({ profile, pace: m.pace ?? EMULATION_PACE, seed: m.seed });
    worker = createPeerWorker({ executor, concurrency: 1, maxInFlight: profile.maxConcurrent });
    // telemetry as `portal peer` heartbeats carry it, at the demo's heartbeat period
    if (!telemetryTimer) {
      telemetryTimer = setInterval(() => {
        if (!worker) return;
        const t = worker.telemetry();
        send({ kind: 'telemetry', pressure: Math.max(t.cpuPressure, t.memoryPressure) });
      }, TELEMETRY_MS);
      telemetryTimer.unref();
    }
    send({ kind: 'ready', id: profile.id, rates: calibrateKernels(m.frame.width, m.frame.height) });
    return;
  }
  if (m.kind === 'reset') {
    executor?.reset(m.seed);
    send({ kind: 'ready', id: profile?.id });
    return;
  }
  const t: PeerTaskInput = {
    taskId: String(m.seq),
    attempt: m.seq,
    type: m.type,
    work: m.work,
    hour: m.hour,
    payload: m.payload,
  };
  void worker?.submit(t).then((r) =>
    send({
      kind: 'result',
      seq: m.seq,
      ok: r.ok,
      output: r.output,
      error: r.error,
      serviceMs: r.serviceMs,
      cpuMs: r.cpuMs,
      computeMs: r.computeMs,
      pressure: r.pressure,
    }),
  );
});
process.on('disconnect', () => process.exit(0));

export {};
