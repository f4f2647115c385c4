import type { ChunkScheduler, TickResult } from '../scheduler/scheduler.js';

/**
 * Runs scheduler ticks on some backend. The CPU engine calls the reference kernels; a WebGPU engine
 * runs the same kernels as WGSL and must produce identical results.
 */
export interface TickEngine {
  /** `"cpu"` or `"webgpu:<adapter>"`. */
  readonly backend: string;
  runTick(scheduler: ChunkScheduler, now: number): TickResult;
  stats(): TickEngineStats;
  close(): Promise<void>;
}

/** Counters a TickEngine keeps. */
export interface TickEngineStats {
  backend: string;
  ticks: number;
  lastTickMs: number;
  totalTickMs: number;
  /** Times the engine fell back to the CPU (device lost, no adapter). */
  fallbacks: number;
}

/** The CPU reference engine. */
export function createCpuTickEngine(): TickEngine {
  const st: TickEngineStats = { backend: 'cpu', ticks: 0, lastTickMs: 0, totalTickMs: 0, fallbacks: 0 };
  return {
    backend: 'cpu',
    runTick(scheduler, now) {
      const r = scheduler.tick(now);
      st.ticks++;
      st.lastTickMs = r.phaseMs.total;
      st.totalTickMs += r.phaseMs.total;
      return r;
    },
    stats: () => ({ ...st }),
    async close() {},
  };
}
