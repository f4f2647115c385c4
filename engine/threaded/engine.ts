import { recordTick, type TickEngine, type TickEngineStats } from '../tick-engine.js';
import type { ChunkScheduler, TickResult } from '../../scheduler/scheduler.js';
import { rankEdges, type EdgeRanking } from '../../scheduler/kernels/cost.js';
import { rankChunks } from '../../scheduler/kernels/k-best.js';
import os from 'node:os';
import { PortalError, checkArg } from '../../common/errors.js';
import { createParallelRank, isRankShared, type ParallelRank, type ParallelRankOptions } from './pool.js';

/** Options of createParallelCpuTickEngine. */
export interface ParallelCpuTickEngineOptions extends ParallelRankOptions {
  /** Rank work (chunks) below this runs on the calling thread alone. Default 100 000. */
  minParallelChunks?: number;
  /** Called once when the worker pool cannot start (the engine then ranks on the calling thread). */
  onPoolError?: (err: unknown) => void;
}

function sameRanking(a: EdgeRanking, b: EdgeRanking): boolean {
  if (a.usable !== b.usable || a.rank.length !== b.rank.length) return false;
  for (let i = 0; i < a.rank.length; i++) if (a.rank[i] !== b.rank[i]) return false;
  return true;
}

function sameList(a: Uint32Array | undefined, b: Uint32Array | undefined, count: number): boolean {
  if (!a || !b) return a === b;
  for (let i = 0; i < count; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * A CPU TickEngine whose rank phase runs on `threads` threads (the caller's and threads − 1
 * workers over SharedArrayBuffer) when the tick ranks at least `minParallelChunks` chunks, and as
 * the plain reference tick otherwise. Results are identical to the reference engine. Only a
 * scheduler created with `sharedMemory: true` (the engine's `sharedMemory` says so) is ranked by
 * the workers; others rank on the calling thread. The workers start at the first tick that needs
 * them; if they cannot (the worker script is not built), every tick runs on the calling thread.
 * Callers must `await` runTick and not mutate the scheduler meanwhile; a worker failure re-ranks
 * that tick on the calling thread (counted in `stats().fallbacks`).
 */
export function createParallelCpuTickEngine(opts: ParallelCpuTickEngineOptions = {}): TickEngine {
  const threads = opts.threads ?? os.availableParallelism();
  checkArg(Number.isInteger(threads) && threads >= 1 && threads <= 256, 'threads', 'an integer in [1, 256]');
  let pool: ParallelRank | undefined;
  let poolError: unknown;
  const minParallel = opts.minParallelChunks ?? 100_000;
  const backend = `cpu:${threads} threads`;
  const st: TickEngineStats = {
    backend,
    ticks: 0,
    lastTickMs: 0,
    totalTickMs: 0,
    fallbacks: 0,
    parallelRanks: 0,
  };
  let closed = false;

  const account = (r: TickResult, ms: number): TickResult => recordTick(st, r, ms);

  async function runTick(s: ChunkScheduler, now: number): Promise<TickResult> {
    if (closed) throw new PortalError('PORTAL_HOST_STOPPED', 'the tick engine is closed');
    const t0 = performance.now();
    const work = s.rankWork();
    if (threads <= 1 || work.count < minParallel || poolError !== undefined || !isRankShared(s.chunks))
      return account(s.tick(now), performance.now() - t0);
    if (!pool) {
      try {
        pool = createParallelRank({ ...opts, threads });
      } catch (err) {
        poolError = err;
        opts.onPoolError?.(err);
        return account(s.tick(now), performance.now() - t0);
      }
    }
    const ranking = rankEdges(s.edges, s.chunkBytes, s.config);
    const list = work.chunks ? work.chunks.slice(0, work.count) : undefined;
    let ranked: number;
    try {
      ranked = await pool.rank(s.chunks, ranking, list, work.count);
    } catch {
      st.fallbacks++;
      return account(s.tick(now), performance.now() - t0);
    }
    const r = s.tick(now, {
      rank: (t, rk, chunks, count) => {
        // the scheduler must not have changed while the workers ran; if it did, stay exact here
        if (
          t !== s.chunks ||
          count !== work.count ||
          !sameRanking(rk, ranking) ||
          !sameList(chunks, list, count)
        ) {
          st.fallbacks++;
          return chunks ? rankChunks(t, rk, chunks, count) : rankChunks(t, rk);
        }
        st.parallelRanks!++;
        return ranked;
      },
    });
    // phaseMs covers the tick alone; the engine's own time includes the parallel rank
    return account(r, performance.now() - t0);
  }

  return {
    backend,
    sharedMemory: threads > 1,
    runTick,
    stats: () => ({ ...st, workerRanked: pool?.workerRanked ?? 0 }),
    async close() {
      if (closed) return;
      closed = true;
      await pool?.close();
    },
  };
}
