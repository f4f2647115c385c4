import { checkArg } from '../../common/errors.js';
import type { PredictMs } from './functional.js';

/** One stage of a sequential pipeline; `taskType` is what peers have affinity for. */
export interface Stage {
  name: string;
  taskType: string;
  work: number;
}

/** The rendering pipeline: geometry → lighting → post-process. */
export const renderPipelineStages: readonly Stage[] = Object.freeze([
  { name: 'geometry', taskType: 'geometry', work: 1 },
  { name: 'lighting', taskType: 'lighting', work: 1 },
  { name: 'post_process', taskType: 'post_process', work: 1 },
]);

/** Which peer runs a stage and how long it is predicted to take there. */
export interface StageAssignment {
  stage: string;
  peer: string;
  predictedMs: number;
}

/** The result of a pipeline split: the bottleneck bounds throughput, the total bounds latency. */
export interface PipelinePlan {
  assignments: StageAssignment[];
  bottleneckMs: number;
  latencyMs: number;
}

const EXHAUSTIVE_LIMIT = 200_000;

/**
 * Assigns pipeline stages to peers by stage affinity (predicted time of the stage's task type on
 * the peer): minimizes the pipeline's bottleneck (the busiest peer's summed stage time), then its
 * latency (sum of stage times). Exhaustive for small problems, greedy (longest stage first onto
 * the peer that keeps the bottleneck lowest) otherwise. Throws PORTAL_INVALID_ARGUMENT without peers.
 */
export function assignPipeline(
  stages: readonly Stage[],
  peers: readonly string[],
  predict: PredictMs,
): PipelinePlan {
  checkArg(peers.length > 0, 'peers', 'at least one peer');
  const cost = stages.map((s) => peers.map((p) => predict(p, s.taskType, s.work)));
  const evaluate = (choice: number[]): PipelinePlan => {
    const busy = new Array<number>(peers.length).fill(0);
    let latency = 0;
    const assignments = stages.map((s, i) => {
      busy[choice[i]] += cost[i][choice[i]];
      latency += cost[i][choice[i]];
      return { stage: s.name, peer: peers[choice[i]], predictedMs: cost[i][choice[i]] };
    });
    return { assignments, bottleneckMs: Math.max(0, ...busy), latencyMs: latency };
  };
  const better = (a: PipelinePlan, b: PipelinePlan): boolean =>
    Math.abs(a.bottleneckMs - b.bottleneckMs) > 1e-9
      ? a.bottleneckMs < b.bottleneckMs
      : a.latencyMs < b.latencyMs - 1e-9;
  if (stages.length === 0) return { assignments: [], bottleneckMs: 0, latencyMs: 0 };
  if (Math.pow(peers.length, stages.length) <= EXHAUSTIVE_LIMIT) {
    const choice = new Array<number>(stages.length).fill(0);
    let best = evaluate(choice);
    for (;;) {
      let i = 0;
      while (i < stages.length && ++choice[i] === peers.length) {
        choice[i] = 0;
        i++;
      }
      if (i === stages.length) break;
      const plan = evaluate(choice);
      if (better(plan, best)) best = plan;
    }
    return best;
  }
  const order = stages.map((_, i) => i).sort((a, b) => Math.min(...cost[b]) - Math.min(...cost[a]));
  const busy = new Array<number>(peers.length).fill(0);
  const choice = new Array<number>(stages.length).fill(0);
  for (const i of order) {
    let bp = 0;
    for (let p = 1; p < peers.length; p++)
      if (Math.max(busy[p] + cost[i][p]) < busy[bp] + cost[i][bp]) bp = p;
    busy[bp] += cost[i][bp];
    choice[i] = bp;
  }
  return evaluate(choice);
}
