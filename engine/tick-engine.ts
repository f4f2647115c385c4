import type { ChunkScheduler, TickResult } from '../scheduler/scheduler.js';

/**
 * Runs scheduler ticks on some backend. The CPU engine calls the reference kernels; a WebGPU engine
 * runs the same kernels as WGSL and must produce identical results. `runTick` may return a promise
 * (GPU readback is asynchronous): callers `await` it and must not mutate the scheduler meanwhile.
 */
export interface TickEngine {
  /** `"cpu"`, `"cpu:<n> threads"` or `"webgpu:<adapter>"`: the backend the next tick will use. */
  readonly backend: string;
  /**
   * True when the engine ranks on several threads over shared memory: schedulers it ticks should
   * be created with `sharedMemory: true` (they still work without, on one thread).
   */
  readonly sharedMemory?: boolean;
  /**
   * Readies the engine for a scheduler of `chunks` chunks before its tables are created (an engine that opens a
   * GPU only for large transfers opens it here) and says whether those tables go on shared memory. Engines
   * without it tick every size the same way: `sharedMemory` holds for all.
   */
  prepare?(chunks: number): Promise<{ sharedMemory: boolean }>;
  runTick(scheduler: ChunkScheduler, now: number): TickResult | Promise<TickResult>;
  stats(): TickEngineStats;
  close(): Promise<void>;
}

/** Counters a TickEngine keeps. */
export interface TickEngineStats {
  backend: string;
  ticks: number;
  lastTickMs: number;
  totalTickMs: number;
  /** Ticks the engine ran on the CPU although it is a GPU engine (device lost, GPU error). */
  fallbacks: number;
  /** Multi-threaded CPU engines: ticks whose rank phase ran on the worker threads. */
  parallelRanks?: number;
  /** Multi-threaded CPU engines: chunks the worker threads ranked (the calling thread's share not counted). */
  workerRanked?: number;
  /** GPU engines: ticks with at least one phase on the GPU and none fallen back to the CPU. */
  gpuTicks?: number;
  /** GPU engines: phases run on the GPU so far, by phase (rank, detect, failover, balance, dispatch). */
  gpuPhases?: Record<'rank' | 'detect' | 'failover' | 'balance' | 'dispatch', number>;
  /** GPU engines: devices lost so far, and devices re-acquired after a loss. */
  deviceLosses?: number;
  recoveries?: number;
  /** GPU engines: bytes uploaded (changed blocks only) and read back. */
  uploadedBytes?: number;
  readBytes?: number;
}

/** Counts one tick of `ms` in an engine's stats; returns the tick's result (so engines can `return recordTick(...)`). */
export function recordTick(st: TickEngineStats, r: TickResult, ms: number): TickResult {
  st.ticks++;
  st.lastTickMs = ms;
  st.totalTickMs += ms;
  return r;
}
