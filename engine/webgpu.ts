/// <reference types="@webgpu/types" />
import { PortalError, isPortalError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import {
  runTickPhase,
  type ChunkScheduler,
  type TickPhase,
  type TickPhaseResult,
  type TickResult,
} from '../scheduler/scheduler.js';
import { createBufferManager, type BufferManager } from '../gpu/buffers.js';
import type { GpuContext } from '../gpu/context.js';
import { createDeviceManager, type GpuDeviceManager } from '../gpu/device.js';
import { applyDetectedFailures, detectFailuresGpu } from '../gpu/kernels/detect-failures.js';
import { failoverAssignGpu } from '../gpu/kernels/failover-assign.js';
import { generateDispatchGpu } from '../gpu/kernels/generate-dispatch.js';
import { rankChunksGpu } from '../gpu/kernels/k-best.js';
import { loadBalanceGpu } from '../gpu/kernels/load-balance.js';
import { createProgramCache } from '../gpu/programs.js';
import { createCpuTickEngine } from './cpu.js';
import { recordTick, type TickEngine, type TickEngineStats } from './tick-engine.js';

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
  /** Phases to run on the GPU (default: all); the others run the CPU reference. */
  phases?: Partial<Record<TickPhaseKind, boolean>>;
  /** First GPU window of load_balance / generate_dispatch (tests use tiny windows to cross window borders). */
  orderedWindow?: number;
}

/** The phases of a tick, as `TickPhase.kind`. */
export type TickPhaseKind = TickPhase['kind'];

const PHASES: readonly TickPhaseKind[] = ['rank', 'detect', 'failover', 'balance', 'dispatch'];

/**
 * A TickEngine that runs every phase of a tick on a WebGPU device, driving
 * `ChunkScheduler.tickPhases` (the same sequence `tick()` runs on the CPU):
 * - rank: the k-best.wgsl kernel (fused cost + K-best) over all chunks or the dirty list, with the
 *   table's buffers resident and only changed blocks uploaded (incremental ticks with fewer than
 *   `minGpuChunks` dirty chunks rank on the CPU: GPU latency would dominate);
 * - detect_failures: detect-failures.wgsl over every chunk (atomic compaction, sorted on the host);
 * - failover_assign: failover-assign.wgsl, one invocation per failed chunk;
 * - load_balance and generate_dispatch: ordered compaction on the GPU (prefix-sum scan, the first
 *   window of candidates in scheduling order read back) and the order-dependent greedy on the host
 *   over that window only (see generateDispatchGpu).
 * Every phase is exact: the tables, dispatches, cancels and counters equal the CPU reference's.
 * A phase whose GPU work fails (device loss, validation) leaves the tables untouched and runs on
 * the CPU reference instead, as does the rest of that tick; the loss is logged and counted
 * (`stats().fallbacks`, `deviceLosses`) and the device is re-acquired on a later tick. Rejects
 * with PortalError PORTAL_GPU_UNAVAILABLE when no adapter exists.
 */
export async function createWebGpuTickEngine(opts: WebGpuTickEngineOptions = {}): Promise<TickEngine> {
  const log = opts.logger;
  const mgr = opts.deviceManager ?? (await createDeviceManager({ logger: log, dawnFlags: opts.dawnFlags }));
  const ownsManager = opts.deviceManager === undefined;
  const minGpuChunks = opts.minGpuChunks ?? 4096;
  const recoverIntervalMs = opts.recoverIntervalMs ?? 1000;
  const cpu = createCpuTickEngine();
  let ctx: GpuContext | undefined;
  let buffers: BufferManager | undefined;
  let lastRecoverTry = 0;
  let closed = false;
  const st: TickEngineStats = {
    backend: '',
    ticks: 0,
    lastTickMs: 0,
    totalTickMs: 0,
    fallbacks: 0,
    gpuTicks: 0,
    deviceLosses: 0,
    recoveries: 0,
    uploadedBytes: 0,
    readBytes: 0,
    gpuPhases: { rank: 0, detect: 0, failover: 0, balance: 0, dispatch: 0 },
  };
  const onGpu = new Set(PHASES.filter((p) => opts.phases?.[p] !== false));
  let carried = { uploadedBytes: 0, readBytes: 0 };

  function drop(): void {
    if (buffers) {
      const b = buffers.stats();
      carried = {
        uploadedBytes: carried.uploadedBytes + b.uploadedBytes,
        readBytes: carried.readBytes + b.readBytes,
      };
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
      ctx = {
        device,
        buffers,
        programs: createProgramCache(device),
        limits: mgr.limits,
        maxPartitionChunks: opts.maxPartitionChunks,
      };
      return ctx;
    } catch (err) {
      log?.warn({ err }, 'gpu: no device; this tick runs on the CPU reference');
      return undefined;
    }
  }

  mgr.onLost(() => drop());

  const backend = (): string => (mgr.state === 'ready' ? `webgpu:${mgr.description}` : 'cpu');

  const account = (r: TickResult, ms: number): TickResult => recordTick(st, r, ms);

  /** One phase on the GPU, with the CPU reference's effect and result. */
  async function gpuPhase(c: GpuContext, p: TickPhase): Promise<TickPhaseResult> {
    switch (p.kind) {
      case 'rank':
        return rankChunksGpu(c, p.t, p.ranking, p.chunks, p.count);
      case 'detect': {
        const d = await detectFailuresGpu(c, p.t, p.edges, p.now);
        applyDetectedFailures(p.t, d);
        p.outIds.set(d.ids);
        p.outCauses.set(d.causes);
        return d.ids.length;
      }
      case 'failover':
        return failoverAssignGpu(c, p.t, p.edges, p.ranking, p.failed, p.count, p.maxAttempts, p.outcome);
      case 'balance':
        return loadBalanceGpu(c, p.t, p.edges, p.ranking, p.scan, p.over, p.under, {
          window: opts.orderedWindow,
        });
      case 'dispatch':
        return generateDispatchGpu(c, p.t, p.edges, p.ranking, p.scan, p.now, p.limit, p.nextAttempt, p.out, {
          window: opts.orderedWindow,
        });
    }
  }

  function wantsGpu(p: TickPhase): boolean {
    if (!onGpu.has(p.kind)) return false;
    if (p.kind === 'rank') return p.chunks === undefined || p.count >= minGpuChunks;
    if (p.kind === 'failover') return p.count > 0;
    return true;
  }

  async function runTick(s: ChunkScheduler, now: number): Promise<TickResult> {
    if (closed) throw new PortalError('PORTAL_GPU_UNAVAILABLE', 'the tick engine is closed');
    const t0 = performance.now();
    const c = await context();
    if (!c) {
      st.fallbacks++;
      return account(cpu.runTick(s, now) as TickResult, performance.now() - t0);
    }
    const g = s.tickPhases(now);
    let step = g.next();
    let failed = false;
    let gpuPhases = 0;
    while (!step.done) {
      const p = step.value;
      let res: TickPhaseResult;
      if (!failed && wantsGpu(p)) {
        try {
          res = await gpuPhase(c, p);
          st.gpuPhases![p.kind]++;
          gpuPhases++;
        } catch (err) {
          // GPU phases mutate the tables only after all their GPU work succeeded: the reference is exact here
          failed = true;
          if (mgr.state !== 'ready' || isPortalError(err, 'PORTAL_GPU_DEVICE_LOST')) {
            log?.warn(
              { err, adapter: mgr.description, phase: p.kind },
              'gpu: device lost during a tick; the rest of it runs on the CPU reference',
            );
          } else {
            log?.error(
              { err, adapter: mgr.description, phase: p.kind },
              'gpu: kernel failed; the rest of this tick runs on the CPU reference',
            );
            drop();
          }
          res = runTickPhase(p);
        }
      } else {
        res = runTickPhase(p);
      }
      step = g.next(res);
    }
    if (failed) st.fallbacks++;
    else if (gpuPhases > 0) st.gpuTicks!++;
    return account(step.value, performance.now() - t0);
  }

  return {
    get backend() {
      return backend();
    },
    runTick,
    stats() {
      const d = mgr.stats();
      const b = buffers?.stats();
      return {
        ...st,
        gpuPhases: { ...st.gpuPhases! },
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
