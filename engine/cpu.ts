import { recordTick, type TickEngine, type TickEngineStats } from './tick-engine.js';

/** The CPU reference engine: runs `ChunkScheduler.tick` on the calling thread (backend `"cpu"`). */
export function createCpuTickEngine(): TickEngine {
  const st: TickEngineStats = { backend: 'cpu', ticks: 0, lastTickMs: 0, totalTickMs: 0, fallbacks: 0 };
  return {
    backend: 'cpu',
    runTick(scheduler, now) {
      const r = scheduler.tick(now);
      return recordTick(st, r, r.phaseMs.total);
    },
    stats: () => ({ ...st }),
    async close() {},
  };
}
