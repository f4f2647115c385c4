import { isPortalError } from '../../common/errors.js';
import { createChunkTable, createEdgeTable, type ChunkTable, type EdgeTable } from '../../scheduler/index.js';
import {
  createBufferManager,
  createDeviceManager,
  createProgramCache,
  type GpuContext,
  type GpuDeviceManager,
} from '../../gpu/index.js';
import { ensureXdgRuntimeDir } from '../../cli/env.js';

/** Deterministic xorshift32 in [0, 2^32). */
export function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

/**
 * The GPU for a test file, or undefined when no adapter exists. With CI=true or
 * PORTAL_REQUIRE_GPU=1 a missing adapter throws, so the suite fails loudly instead of skipping.
 */
export async function gpuOrSkip(): Promise<GpuDeviceManager | undefined> {
  ensureXdgRuntimeDir();
  try {
    return await createDeviceManager();
  } catch (err) {
    if (
      process.env.CI === 'true' ||
      process.env.PORTAL_REQUIRE_GPU === '1' ||
      !isPortalError(err, 'PORTAL_GPU_UNAVAILABLE')
    )
      throw err;

    console.warn(`GPU tests skipped: ${(err as Error).message} (set PORTAL_REQUIRE_GPU=1 to fail instead)`);
    return undefined;
  }
}

/** A kernel context on `mgr`'s device. */
export async function contextOf(mgr: GpuDeviceManager, maxPartitionChunks?: number): Promise<GpuContext> {
  const device = await mgr.acquire();
  return {
    device,
    buffers: createBufferManager(device),
    programs: createProgramCache(device),
    limits: mgr.limits,
    maxPartitionChunks,
  };
}

/** Options of randomTables. */
export interface TableSpec {
  n: number;
  edges: number;
  k?: number;
  seed: number;
  /** Replicas per chunk (random edges). */
  replicas?: number;
  /** Fraction (0..1) of chunks with no candidate at all. */
  emptyRows?: number;
  /** Every usable edge gets the same attributes (all costs tie; ranks by id). */
  ties?: boolean;
  /** Fraction of edges unavailable. */
  offline?: number;
}

/** Random but reproducible chunk and edge tables: mixed statuses, assignments, deadlines. */
export function randomTables(spec: TableSpec): { t: ChunkTable; edges: EdgeTable } {
  const r = rng(spec.seed);
  const k = spec.k ?? 3;
  const t = createChunkTable(spec.n, spec.edges, k);
  const edges = createEdgeTable(spec.edges);
  for (let e = 0; e < spec.edges; e++) {
    edges.available[e] = (r() % 1000) / 1000 < (spec.offline ?? 0.1) ? 0 : 1;
    edges.bandwidth[e] = spec.ties ? 50e6 : (1 + (r() % 100)) * 1e6;
    edges.rtt[e] = spec.ties ? 10 : r() % 50;
    edges.health[e] = spec.ties ? 1 : 0.5 + (r() % 50) / 100;
    edges.maxParallel[e] = 1 + (r() % 8);
    edges.queueDepth[e] = r() % (edges.maxParallel[e] + 1);
    edges.flags[e] = spec.ties ? 0 : r() % 5 === 0 ? 1 : 0;
    edges.timeoutMs[e] = 1000 + (r() % 5000);
  }
  const reps = spec.replicas ?? Math.min(spec.edges, 10);
  for (let c = 0; c < spec.n; c++) {
    if ((r() % 1000) / 1000 < (spec.emptyRows ?? 0.02)) continue;
    for (let q = 0; q < reps; q++) {
      const e = r() % spec.edges;
      t.candidates[c * t.words + (e >>> 5)] |= 1 << (e & 31);
    }
    const s = r() % 10;
    t.status[c] = s < 5 ? 0 : s < 8 ? 1 : s < 9 ? 2 : 3;
    t.assigned[c] = r() % 7 === 0 ? 0xffff : r() % spec.edges;
    for (let q = 0; q < k; q++) t.backups[c * k + q] = r() % 5 === 0 ? 0xffff : r() % spec.edges;
    t.retries[c] = r() % 4;
    t.deadline[c] = 1000 + (r() % 2000);
    t.priority[c] = r() % 3;
  }
  return { t, edges };
}

/** A deep copy of the tables (the CPU reference and the GPU each mutate their own). */
export function cloneTables(t: ChunkTable, edges: EdgeTable): { t: ChunkTable; edges: EdgeTable } {
  const ct: ChunkTable = {
    ...t,
    status: t.status.slice(),
    assigned: t.assigned.slice(),
    backups: t.backups.slice(),
    retries: t.retries.slice(),
    priority: t.priority.slice(),
    attempt: t.attempt.slice(),
    dispatchedAt: t.dispatchedAt.slice(),
    deadline: t.deadline.slice(),
    candidates: t.candidates.slice(),
  };
  const ce: EdgeTable = {
    ...edges,
    bandwidth: edges.bandwidth.slice(),
    rtt: edges.rtt.slice(),
    health: edges.health.slice(),
    queueDepth: edges.queueDepth.slice(),
    maxParallel: edges.maxParallel.slice(),
    available: edges.available.slice(),
    flags: edges.flags.slice(),
    timeoutMs: edges.timeoutMs.slice(),
  };
  return { t: ct, edges: ce };
}

/** The chunk table as plain arrays, for toEqual. */
export function snapshot(t: ChunkTable, edges?: EdgeTable): Record<string, number[]> {
  const s: Record<string, number[]> = {
    status: Array.from(t.status),
    assigned: Array.from(t.assigned),
    backups: Array.from(t.backups),
    retries: Array.from(t.retries),
    attempt: Array.from(t.attempt),
    dispatchedAt: Array.from(t.dispatchedAt),
    deadline: Array.from(t.deadline),
    candidates: Array.from(t.candidates),
  };
  if (edges) s.queueDepth = Array.from(edges.queueDepth);
  return s;
}
