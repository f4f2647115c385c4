export { createDeviceManager } from './device.js';
export type {
  GpuDeviceManager,
  GpuDeviceStats,
  GpuDeviceState,
  GpuLimits,
  DeviceManagerOptions,
} from './device.js';
export { createBufferManager } from './buffers.js';
export type { BufferManager, BufferStats } from './buffers.js';
export { createProgramCache, loadWgsl } from './programs.js';
export type { ProgramCache } from './programs.js';
export { planPartitions } from './context.js';
export type { GpuContext, Partition } from './context.js';
export { kBestGpu, applyKBest, rankChunksGpu } from './kernels/k-best.js';
export { detectFailuresGpu, applyDetectedFailures } from './kernels/detect-failures.js';
export type { DetectedFailures } from './kernels/detect-failures.js';
export { failoverAssignGpu } from './kernels/failover-assign.js';
export { loadBalanceGpu } from './kernels/load-balance.js';
export { generateDispatchGpu } from './kernels/generate-dispatch.js';
export type { OrderedPhaseOptions } from './kernels/generate-dispatch.js';
export { orderedCompactGpu, orderedFits, orderedFlag, forEachOrdered } from './kernels/ordered-compact.js';
export type { OrderedWindow } from './kernels/ordered-compact.js';
export { dispatchChain } from './programs.js';
export type { ChainStep } from './programs.js';
