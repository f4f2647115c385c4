/// <reference types="@webgpu/types" />
import { PortalError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';

/** The limits this layer sizes its partitions by. */
export interface GpuLimits {
  maxStorageBufferBindingSize: number;
  maxBufferSize: number;
  maxComputeWorkgroupsPerDimension: number;
  maxStorageBuffersPerShaderStage: number;
}

/** Counters the device manager keeps (exported as metrics by the engine). */
export interface GpuDeviceStats {
  acquisitions: number;
  deviceLosses: number;
  recoveries: number;
  lastLossReason: string | undefined;
}

/** Lifecycle of the device: `ready` (usable), `lost` (will be re-acquired on demand), `closed`. */
export type GpuDeviceState = 'ready' | 'lost' | 'closed';

/**
 * Owns the Dawn instance, the adapter and the device. Keeps a strong reference to all three for as
 * long as it lives: Dawn's instance must outlive every device and pending callback (see
 * `retainInstance`). `acquire()` returns the ready device or re-acquires one after a loss.
 */
export interface GpuDeviceManager {
  readonly state: GpuDeviceState;
  /** Adapter description, e.g. `llvmpipe (LLVM 15.0.6, 256 bits)` or `NVIDIA H100 80GB HBM3`. */
  readonly description: string;
  readonly limits: GpuLimits;
  stats(): GpuDeviceStats;
  /** The ready device; re-acquires one after a loss. Throws PortalError PORTAL_GPU_UNAVAILABLE. */
  acquire(): Promise<GPUDevice>;
  /** Registers `fn` to run (once per loss) when the device is lost. */
  onLost(fn: (reason: string) => void): void;
  /** Destroys the device; the manager is unusable afterwards. */
  close(): Promise<void>;
}

/** Options of createDeviceManager. */
export interface DeviceManagerOptions {
  logger?: Logger;
  /** Extra Dawn toggles for `create()`, e.g. `['enable-dawn-features=…']`. */
  dawnFlags?: string[];
  powerPreference?: GPUPowerPreference;
}

interface WebGpuModule {
  create(options: string[]): GPU;
  globals: object;
}

// Root cause of the Dawn-on-lavapipe crashes (docs/architecture.md, "Known platform facts"): the `GPU` object returned by
// `create()` owns the dawn::native::Instance, and nothing in dawn.node keeps it alive from the
// adapter or the device. Once the caller dropped its reference, a garbage collection (more likely
// the more JavaScript allocated while a kernel ran, hence "random data from 10k chunks up") freed
// the instance while the device and pending mapAsync/onSubmittedWorkDone callbacks still used it;
// the next ProcessEvents() then locked a mutex in freed memory (CallbackTaskManager::Flush). Forcing
// gc() after requestDevice() reproduces it every time, with any kernel. The fix: one instance per
// process, held by this module for the life of the process.
let retainedInstance: GPU | undefined;
let retainedModule: WebGpuModule | undefined;

/**
 * Loads `webgpu` and returns the process-wide Dawn instance (created once, never released).
 * Entry points set XDG_RUNTIME_DIR beforehand (cli/env.ts ensureXdgRuntimeDir) to quiet Mesa's warnings.
 */
export async function retainInstance(dawnFlags: string[] = []): Promise<GPU> {
  if (retainedInstance) return retainedInstance;
  try {
    retainedModule = await import('webgpu');
  } catch (cause) {
    throw new PortalError('PORTAL_GPU_UNAVAILABLE', 'the webgpu package (Dawn) cannot be loaded', { cause });
  }
  retainedInstance = retainedModule.create(dawnFlags);
  return retainedInstance;
}

function describe(a: GPUAdapter): string {
  const i = a.info;
  return (
    [i.description, i.device, i.vendor, i.architecture].find((s) => typeof s === 'string' && s.length > 0) ??
    'unknown adapter'
  );
}

/** Creates a device manager with a ready device. Throws PortalError PORTAL_GPU_UNAVAILABLE when no adapter exists. */
export async function createDeviceManager(opts: DeviceManagerOptions = {}): Promise<GpuDeviceManager> {
  const log = opts.logger;
  const gpu = await retainInstance(opts.dawnFlags);
  // Never read: held only as the strong reference described above.
  // eslint-disable-next-line @typescript-eslint/no-unused-vars
  let adapter: GPUAdapter | undefined;
  let device: GPUDevice | undefined;
  let state: GpuDeviceState = 'lost';
  let description = '';
  let limits: GpuLimits = {
    maxStorageBufferBindingSize: 0,
    maxBufferSize: 0,
    maxComputeWorkgroupsPerDimension: 0,
    maxStorageBuffersPerShaderStage: 0,
  };
  const st: GpuDeviceStats = { acquisitions: 0, deviceLosses: 0, recoveries: 0, lastLossReason: undefined };
  const lostListeners: Array<(reason: string) => void> = [];
  let acquiring: Promise<GPUDevice> | undefined;

  async function open(): Promise<GPUDevice> {
    let a: GPUAdapter | null;
    try {
      a = await gpu.requestAdapter({ powerPreference: opts.powerPreference ?? 'high-performance' });
    } catch (cause) {
      throw new PortalError('PORTAL_GPU_UNAVAILABLE', 'requestAdapter() failed', { cause });
    }
    if (!a)
      throw new PortalError(
        'PORTAL_GPU_UNAVAILABLE',
        'no WebGPU adapter (is a Vulkan driver such as Mesa lavapipe installed?)',
      );
    const al = a.limits;
    const requiredLimits: Record<string, number> = {
      maxStorageBufferBindingSize: al.maxStorageBufferBindingSize,
      maxBufferSize: al.maxBufferSize,
      maxStorageBuffersPerShaderStage: Math.min(al.maxStorageBuffersPerShaderStage, 10),
    };
    let d: GPUDevice;
    try {
      d = await a.requestDevice({ requiredLimits });
    } catch (cause) {
      throw new PortalError('PORTAL_GPU_UNAVAILABLE', `the adapter "${describe(a)}" refused a device`, {
        cause,
      });
    }
    adapter = a;
    device = d;
    description = describe(a);
    limits = {
      maxStorageBufferBindingSize: d.limits.maxStorageBufferBindingSize,
      maxBufferSize: d.limits.maxBufferSize,
      maxComputeWorkgroupsPerDimension: d.limits.maxComputeWorkgroupsPerDimension,
      maxStorageBuffersPerShaderStage: d.limits.maxStorageBuffersPerShaderStage,
    };
    d.addEventListener('uncapturederror', (ev) => {
      log?.error({ err: ev.error.message }, 'gpu: uncaptured WebGPU error');
    });
    void d.lost.then((info) => {
      if (device !== d) return;
      device = undefined;
      if (state === 'closed') return;
      state = 'lost';
      st.deviceLosses++;
      st.lastLossReason = `${info.reason}: ${info.message}`;
      log?.warn(
        { reason: info.reason, message: info.message, adapter: description },
        'gpu: device lost; falling back to the CPU reference until a device returns',
      );
      for (const fn of lostListeners) fn(st.lastLossReason);
    });
    st.acquisitions++;
    if (st.acquisitions > 1) {
      st.recoveries++;
      log?.info({ adapter: description }, 'gpu: device recovered');
    }
    state = 'ready';
    return d;
  }

  await open();

  return {
    get state() {
      return state;
    },
    get description() {
      return description;
    },
    get limits() {
      return limits;
    },
    stats: () => ({ ...st }),
    async acquire() {
      if (state === 'closed') throw new PortalError('PORTAL_GPU_UNAVAILABLE', 'the device manager is closed');
      if (state === 'ready' && device) return device;
      acquiring ??= open().finally(() => {
        acquiring = undefined;
      });
      return acquiring;
    },
    onLost(fn) {
      lostListeners.push(fn);
    },
    async close() {
      if (state === 'closed') return;
      state = 'closed';
      const d = device;
      device = undefined;
      adapter = undefined; // held until here on purpose: the device's adapter must not be collected early
      d?.destroy();
    },
  };
}
