import { PortalError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import type { GpuDeviceManager, GpuLimits } from '../gpu/index.js';
import { createStreamGpuRunner, type StreamGpuRunner } from './gpu-runner.js';
import type { KernelRun, StreamKernel } from './kernel.js';

/** Where a stream kernel runs: the GPU (WGSL) or its CPU reference. */
export interface KernelExecutor {
  readonly kernel: StreamKernel;
  readonly backend: 'gpu' | 'cpu';
  /** Seed DeviceType: `GPU` or `CPU`. */
  readonly deviceType: string;
  /** Adapter description, or `cpu-reference`. */
  readonly deviceName: string;
  readonly limits?: GpuLimits;
  /** Device bytes batches hold now. */
  readonly residentBytes: number;
  /** Runs one batch; rejects with PortalError (KERNEL_FAILED, ALLOCATION_FAILED, KERNEL_UNAVAILABLE). */
  run(input: Uint8Array, n: number): Promise<KernelRun>;
  close(): Promise<void>;
}

/** Options of createKernelExecutor. */
export interface KernelExecutorOptions {
  kernel: StreamKernel;
  /** `auto` (default): the GPU when an adapter exists, else the CPU reference; `gpu` fails without one; `cpu` never tries. */
  prefer?: 'auto' | 'gpu' | 'cpu';
  /** Fail instead of falling back when no adapter exists (default false; the CLI sets it from CI=true or PORTAL_REQUIRE_GPU=1). */
  requireGpu?: boolean;
  /** The device to run on (e.g. the GPU worker's); default: the process-wide shared one. */
  deviceManager?: GpuDeviceManager;
  /** An existing runner to share. */
  runner?: StreamGpuRunner;
  logger?: Logger;
}

/** Runs a kernel's CPU reference as a KernelRun. */
export function runCpu(k: StreamKernel, input: Uint8Array, n: number): KernelRun {
  if (!k.cpu)
    throw new PortalError(
      'PORTAL_STREAM_KERNEL_UNAVAILABLE',
      `kernel ${k.name} has no CPU reference and no GPU is in use`,
    );
  const t0 = performance.now();
  let output: Uint8Array;
  try {
    const raw = k.cpu(input, n);
    output = k.finish ? k.finish(raw, n) : raw;
  } catch (cause) {
    throw new PortalError(
      'PORTAL_STREAM_KERNEL_FAILED',
      `kernel ${k.name} (CPU reference) failed: ${(cause as Error)?.message ?? String(cause)}`,
      { cause },
    );
  }
  return {
    output,
    outputCount: output.byteLength / k.output.recordBytes,
    backend: 'cpu',
    kernelMs: performance.now() - t0,
    transferMs: 0,
    transferBytes: 0,
    allocatedBytes: 0,
  };
}

/**
 * Chooses where `kernel` runs and returns its executor. Rejects with PortalError PORTAL_GPU_UNAVAILABLE
 * when the GPU is required (prefer `gpu`, or requireGpu) and no adapter exists, and with PortalError
 * PORTAL_STREAM_KERNEL_UNAVAILABLE when the kernel can run nowhere (WGSL-only without an adapter).
 */
export async function createKernelExecutor(opts: KernelExecutorOptions): Promise<KernelExecutor> {
  const k = opts.kernel;
  const prefer = opts.prefer ?? 'auto';
  const require = opts.requireGpu ?? false;
  let runner: StreamGpuRunner | undefined = opts.runner;
  if (!runner && prefer !== 'cpu' && k.gpu) {
    try {
      runner = await createStreamGpuRunner({ deviceManager: opts.deviceManager, logger: opts.logger });
    } catch (err) {
      if (prefer === 'gpu' || require || !k.cpu) throw err;
      opts.logger?.warn(
        { err, kernel: k.name },
        'stream: no WebGPU adapter; the kernel runs on its CPU reference',
      );
    }
  }
  if (prefer === 'cpu' || !k.gpu) runner = undefined;
  if (!runner && !k.cpu)
    throw new PortalError(
      'PORTAL_STREAM_KERNEL_UNAVAILABLE',
      `kernel ${k.name} has neither a usable GPU nor a CPU reference`,
    );
  const gpu = runner;
  if (gpu) {
    return {
      kernel: k,
      backend: 'gpu',
      deviceType: 'GPU',
      deviceName: gpu.description,
      limits: gpu.limits,
      get residentBytes() {
        return gpu.residentBytes;
      },
      run: (input, n) => gpu.run(k, input, n),
      close: () => (opts.runner ? Promise.resolve() : gpu.close()),
    };
  }
  return {
    kernel: k,
    backend: 'cpu',
    deviceType: 'CPU',
    deviceName: 'cpu-reference',
    residentBytes: 0,
    run: async (input, n) => runCpu(k, input, n),
    close: async () => undefined,
  };
}
