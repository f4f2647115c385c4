import os from 'node:os';
import { PortalError } from '../common/errors.js';
import { createCpuTickEngine } from './cpu.js';
import type { TickEngine } from './tick-engine.js';
import { createParallelCpuTickEngine } from './threaded/engine.js';
import { createWebGpuTickEngine, type WebGpuTickEngineOptions } from './webgpu.js';

/** Options of createTickEngine. */
export interface TickEngineChoice extends WebGpuTickEngineOptions {
  /** `webgpu` and `auto` try WebGPU first and fall back to the CPU with a logged reason; `cpu` never tries. */
  prefer?: 'webgpu' | 'cpu' | 'auto';
  /**
   * Fail instead of falling back when no adapter exists (default false; the CLI sets it from
   * `--backend webgpu` or PORTAL_REQUIRE_GPU=1, see cli/env.ts).
   */
  requireGpu?: boolean;
  /**
   * Threads that rank on the CPU backend, an integer in [1, 256] (default: the machine's available
   * parallelism, at most 8; the CLI passes PORTAL_CPU_THREADS). Above 1 the CPU engine ranks
   * transfers of 100 000+ chunks on that many threads over shared memory, bit-identical to one thread.
   */
  cpuThreads?: number;
}

/**
 * The CPU engine `opts` ask for: the threaded one when more than one thread is wanted. Throws
 * PortalError PORTAL_CONFIG_INVALID when `cpuThreads` is not an integer in [1, 256].
 */
function cpuEngine(opts: TickEngineChoice): TickEngine {
  const threads = opts.cpuThreads ?? Math.min(8, os.availableParallelism());
  if (!Number.isInteger(threads) || threads < 1 || threads > 256)
    throw new PortalError(
      'PORTAL_CONFIG_INVALID',
      `cpuThreads (PORTAL_CPU_THREADS): expected an integer in [1, 256], got ${threads}`,
    );
  if (threads === 1) return createCpuTickEngine();
  return createParallelCpuTickEngine({
    threads,
    onPoolError: (err) =>
      opts.logger?.warn({ err }, 'tick engine: rank workers could not start; ranking on one thread'),
  });
}

/** True for adapters that emulate a GPU on the CPU (Mesa llvmpipe/lavapipe, SwiftShader). */
export function isSoftwareAdapter(description: string): boolean {
  return /llvmpipe|lavapipe|swiftshader|softpipe/i.test(description);
}

/**
 * The engine to run ticks with. `auto`: the WebGPU engine on a hardware adapter, else the CPU
 * reference (the reason is logged). `webgpu`: WebGPU on any adapter, software ones included.
 * Rejects with PortalError PORTAL_GPU_UNAVAILABLE only when `requireGpu` is set and no adapter
 * exists, and with PortalError PORTAL_CONFIG_INVALID when the CPU engine is chosen and `cpuThreads`
 * is out of range.
 */
export async function createTickEngine(opts: TickEngineChoice = {}): Promise<TickEngine> {
  const prefer = opts.prefer ?? 'auto';
  const require = opts.requireGpu ?? false;
  if (prefer === 'cpu') {
    const cpu = cpuEngine(opts);
    opts.logger?.info({ backend: cpu.backend }, 'tick engine: CPU reference (requested)');
    return cpu;
  }
  try {
    const e = await createWebGpuTickEngine(opts);
    if (prefer === 'auto' && isSoftwareAdapter(e.backend)) {
      // A CPU rasterizer (lavapipe/llvmpipe, SwiftShader) runs the WGSL correctly but slower than
      // the CPU reference: 'auto' keeps the CPU; `--backend webgpu` forces it (CI does, to test the kernels).
      await e.close();
      const cpu = cpuEngine(opts);
      opts.logger?.info(
        { backend: cpu.backend, adapter: e.backend },
        'tick engine: only a software WebGPU adapter; using the CPU reference (--backend webgpu to force it)',
      );
      return cpu;
    }
    opts.logger?.info({ backend: e.backend }, 'tick engine: WebGPU');
    return e;
  } catch (err) {
    if (require) throw err;
    const cpu = cpuEngine(opts);
    opts.logger?.warn(
      { err, backend: cpu.backend, prefer },
      'tick engine: no WebGPU adapter; using the CPU reference',
    );
    return cpu;
  }
}
