import { checkArg } from '../../common/errors.js';

/** One subsystem of a frame with its own deadline (functional decomposition). */
export interface Subsystem {
  name: string;
  taskType: string;
  deadlineMs: number;
  work: number;
}

/** The game-frame table: physics 16 ms, AI 32, rendering 16, ray tracing 100, audio 24. */
export const gameFrameSubsystems: readonly Subsystem[] = Object.freeze([
  { name: 'physics', taskType: 'physics', deadlineMs: 16, work: 1 },
  { name: 'ai', taskType: 'ai', deadlineMs: 32, work: 1 },
  { name: 'rendering', taskType: 'rendering', deadlineMs: 16, work: 1 },
  { name: 'ray_tracing', taskType: 'ray_tracing', deadlineMs: 100, work: 1 },
  { name: 'audio', taskType: 'audio', deadlineMs: 24, work: 1 },
]);

/** Predicted ms of `taskType` with `work` units on `peer`. */
export type PredictMs = (peer: string, taskType: string, work: number) => number;

/** Where and when a subsystem runs. */
export interface SubsystemAssignment {
  subsystem: string;
  peer: string;
  startMs: number;
  finishMs: number;
  deadlineMs: number;
  meetsDeadline: boolean;
}

/** The result of a functional split. */
export interface FunctionalPlan {
  assignments: SubsystemAssignment[];
  missed: number;
  latenessMs: number;
  makespanMs: number;
}

/** Exhaustive search is used while peers^subsystems stays under this. */
const EXHAUSTIVE_LIMIT = 200_000;

/**
 * Assigns subsystems to peers so that deadlines are met where possible: each peer runs its
 * subsystems earliest-deadline-first, back to back, from t = 0, against predicted times. For small
 * problems (the seed's 5 subsystems) every assignment is tried and the best by (deadlines missed,
 * total lateness, makespan) is taken; otherwise EDF list scheduling picks, per subsystem in deadline
 * order, the peer that finishes it earliest. Throws PORTAL_INVALID_ARGUMENT without peers.
 */
export function assignByDeadline(
  subsystems: readonly Subsystem[],
  peers: readonly string[],
  predict: PredictMs,
): FunctionalPlan {
  checkArg(peers.length > 0, 'peers', 'at least one peer');
  const subs = [...subsystems].sort(
    (a, b) => a.deadlineMs - b.deadlineMs || b.work - a.work || a.name.localeCompare(b.name),
  );
  const cost = subs.map((s) => peers.map((p) => predict(p, s.taskType, s.work)));
  const evaluate = (choice: number[]): FunctionalPlan => {
    const avail = new Array<number>(peers.length).fill(0);
    const assignments: SubsystemAssignment[] = [];
    let missed = 0,
      late = 0,
      makespan = 0;
    for (let i = 0; i < subs.length; i++) {
      const p = choice[i];
      const start = avail[p];
      const finish = start + cost[i][p];
      avail[p] = finish;
      const ok = finish <= subs[i].deadlineMs;
      if (!ok) {
        missed++;
        late += finish - subs[i].deadlineMs;
      }
      makespan = Math.max(makespan, finish);
      assignments.push({
        subsystem: subs[i].name,
        peer: peers[p],
        startMs: start,
        finishMs: finish,
        deadlineMs: subs[i].deadlineMs,
        meetsDeadline: ok,
      });
    }
    return { assignments, missed, latenessMs: late, makespanMs: makespan };
  };
  const better = (a: FunctionalPlan, b: FunctionalPlan): boolean =>
    a.missed !== b.missed
      ? a.missed < b.missed
      : Math.abs(a.latenessMs - b.latenessMs) > 1e-9
        ? a.latenessMs < b.latenessMs
        : a.makespanMs < b.makespanMs - 1e-9;

  if (Math.pow(peers.length, subs.length) <= EXHAUSTIVE_LIMIT) {
    const choice = new Array<number>(subs.length).fill(0);
    let best = evaluate(choice);
    for (;;) {
      let i = 0;
      while (i < subs.length && ++choice[i] === peers.length) {
        choice[i] = 0;
        i++;
      }
      if (i === subs.length) break;
      const plan = evaluate(choice);
      if (better(plan, best)) best = plan;
    }
    return best;
  }
  const avail = new Array<number>(peers.length).fill(0);
  const choice = subs.map((_, i) => {
    let bp = 0;
    for (let p = 1; p < peers.length; p++) if (avail[p] + cost[i][p] < avail[bp] + cost[i][bp]) bp = p;
    avail[bp] += cost[i][bp];
    return bp;
  });
  return evaluate(choice);
}
