/// <reference types="@webgpu/types" />
import type { Logger } from '../common/logger.js';
import type { ChunkScheduler, TickResult } from '../scheduler/scheduler.js';
import { rankEdges, type EdgeRanking } from '../scheduler/kernels/cost.js';
import { rankChunks } from '../scheduler/kernels/k-best.js';
import { createBufferManager, type BufferManager } from './buffers.js';
import type { GpuContext } from './context.js';
import { createDeviceManager, type GpuDeviceManager } from './device.js';
import { GpuError, isGpuError } from './errors.js';
import { applyKBest, kBestGpu } from './kernels/k-best.js';
import { createProgramCache } from './programs.js';
import { createCpuTickEngine, type TickEngine, type TickEngineStats } from './tick-engine.js';

/** Options of createWebGpuTickEngine. */
export interface WebGpuTickEngineOptions {
  logger?: Logger;
  /** An existing device manager to share (else one is created and closed with the engine). */
  deviceManager?: GpuDeviceManager;
  dawnFlags?: string[];
  /** Incremental ticks with fewer dirty chunks than this rank on the CPU (GPU latency would dominate). Default 4096. */
  minGpuChunks?: number;
  /** Caps chunks per partition (tests use small values to cross partition borders). */
  maxPartitionChunks?: number;
  /** After a device loss, re-acquire at most this often (ms of wall time). Default 1000. */
  recoverIntervalMs?: number;
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
 * A TickEngine whose rank phase (fused cost + K-best, the O(chunks × candidate bits) part of a
 * tick) runs as the k-best.wgsl kernel on a WebGPU device, with the table's buffers resident and
 * only changed blocks uploaded. The other phases run the CPU reference inside `ChunkScheduler.tick`
 * (their GPU kernels in gpu/kernels/ are exact but need an asynchronous tick to be chained in).
 * On a device loss or any GPU error the tick runs on the CPU instead, the loss is logged and
 * counted (`stats().fallbacks`, `deviceLosses`), and the device is re-acquired on a later tick.
 * Rejects with GpuError PORTAL_GPU_UNAVAILABLE when no adapter exists.
 */
export async function createWebGpuTickEngine(opts: WebGpuTickEngineOptions = {}): Promise<TickEngine> {
  const log = opts.logger;
  const mgr = opts.deviceManager ?? await createDeviceManager({ logger: log, dawnFlags: opts.dawnFlags });
  const ownsManager = opts.deviceManager === undefined;
  const minGpuChunks = opts.minGpuChunks ?? 4096;
  const recoverIntervalMs = opts.recoverIntervalMs ?? 1000;
  const cpu = createCpuTickEngine();
  let ctx: GpuContext | undefined;
  let buffers: BufferManager | undefined;
  let lastRecoverTry = 0;
  let closed = false;
  const st: TickEngineStats = { backend: '', ticks: 0, lastTickMs: 0, totalTickMs: 0, fallbacks: 0, gpuTicks: 0, deviceLosses: 0, recoveries: 0, uploadedBytes: 0, readBytes: 0 };
  let carried = { uploadedBytes: 0, readBytes: 0 };

  function drop(): void {
    if (buffers) {
      const b = buffers.stats();
      carried = { uploadedBytes: carried.uploadedBytes + b.uploadedBytes, readBytes: carried.readBytes + b.readBytes };
      buffers.dispose();
    }
    buffers = undefined;
    ctx = undefined;
  }

  async function context(): Promise<GpuContext | undefined> {
    if (ctx && mgr.state === 'ready') return ctx;
    if (ctx) drop();
    const nowWall = Date.now();
    if (mgr.state !== 'ready' && nowWall - lastRecoverTry < recoverIntervalMs) return undefined;
    lastRecoverTry = nowWall;
    try {
      const device = await mgr.acquire();
      buffers = createBufferManager(device);
      ctx = { device, buffers, programs: createProgramCache(device), limits: mgr.limits, maxPartitionChunks: opts.maxPartitionChunks };
      return ctx;
    } catch (err) {
      log?.warn({ err }, 'gpu: no device; this tick runs on the CPU reference');
      return undefined;
    }
  }

  mgr.onLost(() => drop());

  const backend = (): string => (mgr.state === 'ready' ? `webgpu:${mgr.description}` : 'cpu');

  function account(r: TickResult, ms: number): TickResult {
    st.ticks++;
    st.lastTickMs = ms;
    st.totalTickMs += ms;
    return r;
  }

  async function runTick(s: ChunkScheduler, now: number): Promise<TickResult> {
    if (closed) throw new GpuError('PORTAL_GPU_UNAVAILABLE', 'the tick engine is closed');
    const t0 = performance.now();
    const work = s.rankWork();
    if (!work.full && work.count < minGpuChunks) return account(s.tick(now), performance.now() - t0);
    const c = await context();
    if (!c) { st.fallbacks++; return account(cpu.runTick(s, now) as TickResult, performance.now() - t0); }
    const ranking = rankEdges(s.edges, s.chunkBytes, s.config);
    const list = work.chunks ? work.chunks.slice(0, work.count) : undefined;
    let best: Uint16Array;
    try {
      best = await kBestGpu(c, s.chunks, ranking, list, work.count);
    } catch (err) {
      st.fallbacks++;
      if (mgr.state !== 'ready' || isGpuError(err, 'PORTAL_GPU_DEVICE_LOST')) {
        log?.warn({ err, adapter: mgr.description }, 'gpu: device lost during a tick; it runs on the CPU reference');
      } else {
        log?.error({ err, adapter: mgr.description }, 'gpu: kernel failed; this tick runs on the CPU reference');
        drop();
      }
      return account(s.tick(now), performance.now() - t0);
    }
    let usedGpu = true;
    const r = s.tick(now, {
      rank: (t, rk, chunks, count) => {
        // the scheduler must not have changed while the kernel ran; if it did, stay exact on the CPU
        if (count !== work.count || !sameRanking(rk, ranking) || !sameList(chunks, list, count)) {
          usedGpu = false;
          log?.warn('gpu: scheduler changed during the GPU rank phase; re-ranked on the CPU');
          return chunks ? rankChunks(t, rk, chunks, count) : rankChunks(t, rk);
        }
        return applyKBest(t, best, chunks, count);
      },
    });
    if (usedGpu) st.gpuTicks!++;
    else st.fallbacks++;
    return account(r, performance.now() - t0);
  }

  return {
    get backend() { return backend(); },
    runTick,
    stats() {
      const d = mgr.stats();
      const b = buffers?.stats();
      return {
        ...st,
        backend: backend(),
        deviceLosses: d.deviceLosses,
        recoveries: d.recoveries,
        uploadedBytes: carried.uploadedBytes + (b?.uploadedBytes ?? 0),
        readBytes: carried.readBytes + (b?.readBytes ?? 0),
      };
    },
    async close() {
      if (closed) return;
      closed = true;
      drop();
      if (ownsManager) await mgr.close();
    },
  };
}

/** Options of createTickEngine. */
export interface TickEngineChoice extends WebGpuTickEngineOptions {
  /** `webgpu` and `auto` try WebGPU first and fall back to the CPU with a logged reason; `cpu` never tries. */
  prefer?: 'webgpu' | 'cpu' | 'auto';
  /** Fail instead of falling back when no adapter exists (default: env PORTAL_REQUIRE_GPU=1). */
  requireGpu?: boolean;
}

/**
 * The engine to run ticks with: the WebGPU engine when an adapter exists, else the CPU reference
 * (the reason is logged at warn). Rejects with GpuError PORTAL_GPU_UNAVAILABLE only when
 * `requireGpu` (or PORTAL_REQUIRE_GPU=1) and no adapter exists.
 */
export async function createTickEngine(opts: TickEngineChoice = {}): Promise<TickEngine> {
  const prefer = opts.prefer ?? 'auto';
  const require = opts.requireGpu ?? process.env.PORTAL_REQUIRE_GPU === '1';
  if (prefer === 'cpu') {
    opts.logger?.info({ backend: 'cpu' }, 'tick engine: CPU reference (requested)');
    return createCpuTickEngine();
  }
  try {
    const e = await createWebGpuTickEngine(opts);
    opts.logger?.info({ backend: e.backend }, 'tick engine: WebGPU');
    return e;
  } catch (err) {
    if (require) throw err;
    opts.logger?.warn({ err, backend: 'cpu', prefer }, 'tick engine: no WebGPU adapter; using the CPU reference');
    return createCpuTickEngine();
  }
}
