import { PortalError, checkArg } from '../../common/errors.js';
import { splitSpatial, type ComplexityMap, type PlannedTile } from './spatial.js';
import {
  assignByDeadline,
  gameFrameSubsystems,
  type FunctionalPlan,
  type PredictMs,
  type Subsystem,
} from './functional.js';
import { assignPipeline, renderPipelineStages, type PipelinePlan, type Stage } from './pipeline.js';

/** The three decompositions (docs/architecture.md, "Learning"). */
export type SplitStrategy = 'spatial' | 'functional' | 'pipeline';

/** A task to split: its type picks the strategy; the strategy's input comes with it. */
export interface SplitTask {
  type: string;
  /** For spatial splits: the per-pixel complexity. */
  complexity?: ComplexityMap;
  /** For functional splits (default: the game-frame table). */
  subsystems?: readonly Subsystem[];
  /** For pipeline splits (default: geometry → lighting → post-process). */
  stages?: readonly Stage[];
}

/** The peers available and how long a task type takes on each (from the learned predictor). */
export interface SplitContext {
  peers: readonly string[];
  predictMs: PredictMs;
}

/** What a split produced, tagged by strategy. */
export type SplitPlan =
  | { strategy: 'spatial'; tiles: PlannedTile[] }
  | ({ strategy: 'functional' } & FunctionalPlan)
  | ({ strategy: 'pipeline' } & PipelinePlan);

/** The default choice: ray tracing and image rendering → spatial, game frames → functional, rendering pipelines → pipeline. */
export const defaultStrategies: Readonly<Record<string, SplitStrategy>> = Object.freeze({
  ray_tracing: 'spatial',
  render: 'spatial',
  mandelbrot: 'spatial',
  game_frame: 'functional',
  rendering: 'pipeline',
});

/**
 * Chooses a decomposition by task type and runs it against predicted times: spatial tiles balanced
 * by each peer's predicted ms per complexity unit, functional subsystems by deadline, pipeline
 * stages by affinity. Throws PORTAL_INVALID_ARGUMENT for a type it has no strategy for, or a spatial
 * task without a complexity map.
 */
export class HybridSplitter {
  private readonly strategies: Record<string, SplitStrategy>;

  constructor(strategies: Record<string, SplitStrategy> = {}) {
    this.strategies = { ...defaultStrategies, ...strategies };
  }

  /** The strategy used for `type`, or undefined. */
  strategyFor(type: string): SplitStrategy | undefined {
    return this.strategies[type];
  }

  split(task: SplitTask, ctx: SplitContext): SplitPlan {
    const strategy = this.strategies[task.type];
    if (!strategy)
      throw new PortalError(
        'PORTAL_INVALID_ARGUMENT',
        `task.type: no split strategy for "${task.type}" (known: ${Object.keys(this.strategies).join(', ')})`,
      );
    checkArg(ctx.peers.length > 0, 'ctx.peers', 'at least one peer');
    switch (strategy) {
      case 'spatial': {
        checkArg(
          task.complexity !== undefined,
          'task.complexity',
          `a complexity map for a spatial split of "${task.type}"`,
        );
        const peers = ctx.peers.map((id) => ({
          id,
          msPerUnit: Math.max(1e-12, ctx.predictMs(id, task.type, 1)),
        }));
        return { strategy, tiles: splitSpatial(task.complexity, peers) };
      }
      case 'functional':
        return {
          strategy,
          ...assignByDeadline(task.subsystems ?? gameFrameSubsystems, ctx.peers, ctx.predictMs),
        };
      case 'pipeline':
        return { strategy, ...assignPipeline(task.stages ?? renderPipelineStages, ctx.peers, ctx.predictMs) };
    }
  }
}
