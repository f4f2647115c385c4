/**
 * A coord-demo peer: a worker process (forked by `portal coord-demo`) that executes tasks one at a
 * time in arrival order and reports each result over IPC. Its profile (speed per task type,
 * peak-hour and load slowdowns, failures under overload) decides how much real computation a
 * task costs it; the time is measured by the coordinator, not computed.
 */
import { renderTile, physics, audio, RENDER_UNIT_ITERS, type FrameView } from './kernels.js';
import { trueMultiplier, type PeerProfile, type DemoType } from './profiles.js';
import { createPrng } from '../../transfer/index.js';

interface TaskMsg { kind: 'task'; seq: number; arrivalBacklog: number; type: DemoType; work: number; hour: number; payload?: { view: FrameView; x: number; y: number; w: number; h: number } }
type InMsg = { kind: 'init'; profile: PeerProfile; seed: number } | TaskMsg | { kind: 'reset'; seed: number };

let profile: PeerProfile | undefined;
let rnd = createPrng(1);
const queue: TaskMsg[] = [];
let busy = false;

function send(m: unknown): void { process.send?.(m); }

/** Does `units` of `type` work; render tiles compute their pixels once and repeat rows for the rest. */
function work(t: TaskMsg, multiplier: number, fraction: number): { pixels?: string; checksum: number } {
  if (t.type === 'render' && t.payload) {
    const { view, x, y, w, h } = t.payload;
    const first = renderTile(view, x, y, w, h);
    let extra = (multiplier * fraction - 1) * h;
    let sum = first.iters;
    for (let row = 0; extra > 0; row = (row + 1) % h, extra--) sum += renderTile(view, x, y + row, w, 1).iters;
    return { pixels: fraction >= 1 ? Buffer.from(first.pixels).toString('base64') : undefined, checksum: sum };
  }
  const units = t.work * multiplier * fraction;
  return { checksum: t.type === 'physics' ? physics(units) : audio(units) };
}

function pump(): void {
  if (busy || queue.length === 0 || !profile) return;
  busy = true;
  const t = queue.shift()!;
  const queued = queue.length; // tasks waiting behind this one
  const overloaded = t.arrivalBacklog >= profile.overloadAt && rnd() < profile.failProb;
  const mult = trueMultiplier(profile, t.type, t.hour, queued);
  const t0 = performance.now();
  const out = work(t, mult, overloaded ? 0.5 : 1);
  const serviceMs = performance.now() - t0;
  const pressure = Math.min(1, queue.length / profile.maxConcurrent);
  if (overloaded) send({ kind: 'result', seq: t.seq, ok: false, error: `${profile.id} overloaded (${t.arrivalBacklog} tasks ahead)`, serviceMs, pressure });
  else send({ kind: 'result', seq: t.seq, ok: true, output: { pixels: out.pixels, checksum: out.checksum }, serviceMs, pressure });
  busy = false;
  setImmediate(pump);
}

process.on('message', (m: InMsg) => {
  if (m.kind === 'init') { profile = m.profile; rnd = createPrng(m.seed); send({ kind: 'ready', id: profile.id }); return; }
  if (m.kind === 'reset') { rnd = createPrng(m.seed); send({ kind: 'ready', id: profile?.id }); return; }
  const t = m as TaskMsg;
  t.arrivalBacklog = queue.length + (busy ? 1 : 0);
  queue.push(t);
  setImmediate(pump);
});
process.on('disconnect', () => process.exit(0));

export {};
