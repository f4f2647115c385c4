export { createCpuTickEngine } from './tick-engine.js';
export type { TickEngine, TickEngineStats } from './tick-engine.js';
