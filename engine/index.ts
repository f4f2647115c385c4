/**
 * The engine layer: what runs a scheduler tick. `TickEngine` is the contract; the CPU reference,
 * threaded CPU and WebGPU engines implement it over the pure `scheduler/` core (and the `gpu/`
 * device and kernels), and `createTickEngine` chooses among them from options (never from the
 * environment: entry points read it, see cli/env.ts).
 */
export type { TickEngine, TickEngineStats } from './tick-engine.js';
export { createCpuTickEngine } from './cpu.js';
export { createParallelCpuTickEngine } from './threaded/engine.js';
export type { ParallelCpuTickEngineOptions } from './threaded/engine.js';
export { createParallelRank, isRankShared, defaultWorkerUrl } from './threaded/pool.js';
export type { ParallelRank, ParallelRankOptions } from './threaded/pool.js';
export { createWebGpuTickEngine } from './webgpu.js';
export type { WebGpuTickEngineOptions, TickPhaseKind } from './webgpu.js';
export { createTickEngine, isSoftwareAdapter } from './select.js';
export { createLazyTickEngine, type LazyTickEngineOptions } from './lazy.js';
export type { TickEngineChoice } from './select.js';
