/**
 * A coord-demo peer: a worker process (forked by `portal coord-demo`) that executes tasks one at a
 * time in arrival order and reports each result over IPC. It does each task's real computation
 * (the tile's pixels, the physics or audio units); its profile (speed per task type, peak-hour
 * and load slowdowns, failures under overload) decides how long that keeps it busy (see pump).
 * At start it measures its own ms per work unit and reports them with `ready`.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { renderTile, physics, audio, calibrateKernels, type FrameView } from './kernels.js';
import { trueMultiplier, EMULATION_PACE, type PeerProfile, type DemoType } from './profiles.js';
import { createPrng } from '../../transfer/index.js';

interface TaskMsg {
  kind: 'task';
  seq: number;
  arrivalBacklog: number;
  type: DemoType;
  work: number;
  hour: number;
  payload?: { view: FrameView; x: number; y: number; w: number; h: number };
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
let pace = EMULATION_PACE;
let rnd = createPrng(1);
const queue: TaskMsg[] = [];
let busy = false;

function send(m: unknown): void {
  process.send?.(m);
}

/** Does the task's real computation at the fastest peer's size: a render tile's pixels, or `work × fraction` units of physics/audio. */
function compute(t: TaskMsg, fraction: number): { pixels?: string; checksum: number } {
  if (t.type === 'render' && t.payload) {
    const { view, x, y, w, h } = t.payload;
    const rows = Math.max(1, Math.round(h * fraction));
    const out = renderTile(view, x, y, w, rows);
    return {
      pixels: fraction >= 1 ? Buffer.from(out.pixels).toString('base64') : undefined,
      checksum: out.iters,
    };
  }
  const units = t.work * fraction;
  return { checksum: t.type === 'physics' ? physics(units) : audio(units) };
}

/**
 * Runs the head of the queue. A peer emulates a machine of its own speed: it does the task's real
 * computation, measures the CPU time that took, and holds the answer until EMULATION_PACE ×
 * multiplier × that CPU time has passed since it started, the way a throttled CPU would be busy
 * that long. Measuring CPU time rather than wall time keeps the emulated speed independent of
 * how many of the four peers happen to share this machine's cores at that moment (up to
 * EMULATION_PACE × multiplier of them per core), while a peer's time still follows the real cost
 * of the task it ran (tile complexity, work units) and the machine's own noise.
 */
async function pump(): Promise<void> {
  if (busy || queue.length === 0 || !profile) return;
  busy = true;
  const t = queue.shift()!;
  const queued = queue.length; // tasks waiting behind this one
  // draws from the generator only where a failure is possible, so a profile without random
  // failures sees the same sequence as before they existed
  const overloaded =
    (t.arrivalBacklog >= profile.overloadAt && rnd() < profile.failProb) ||
    ((profile.baseFailProb ?? 0) > 0 && rnd() < profile.baseFailProb!);
  const mult = trueMultiplier(profile, t.type, t.hour, queued);
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const out = compute(t, overloaded ? 0.5 : 1); // an overloaded attempt dies halfway
  const c = process.cpuUsage(c0);
  const computeMs = performance.now() - t0;
  const cpuMs = (c.user + c.system) / 1000;
  const left = t0 + pace * mult * cpuMs - performance.now();
  if (left > 0) await sleep(left);
  const serviceMs = performance.now() - t0;
  const pressure = Math.min(1, queue.length / profile.maxConcurrent);
  if (overloaded)
    send({
      kind: 'result',
      seq: t.seq,
      ok: false,
      error: `${profile.id} failed (${t.arrivalBacklog} tasks ahead)`,
      serviceMs,
      cpuMs,
      computeMs,
      pressure,
    });
  else
    send({
      kind: 'result',
      seq: t.seq,
      ok: true,
      output: { pixels: out.pixels, checksum: out.checksum },
      serviceMs,
      cpuMs,
      computeMs,
      pressure,
    });
  busy = false;
  setImmediate(() => void pump());
}

process.on('message', (m: InMsg) => {
  if (m.kind === 'init') {
    profile = m.profile;
    pace = m.pace ?? EMULATION_PACE;
    rnd = createPrng(m.seed);
    send({ kind: 'ready', id: profile.id, rates: calibrateKernels(m.frame.width, m.frame.height) });
    return;
  }
  if (m.kind === 'reset') {
    rnd = createPrng(m.seed);
    send({ kind: 'ready', id: profile?.id });
    return;
  }
  const t = m;
  t.arrivalBacklog = queue.length + (busy ? 1 : 0);
  queue.push(t);
  setImmediate(() => void pump());
});
process.on('disconnect', () => process.exit(0));

export {};
