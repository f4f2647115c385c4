/// <reference types="@webgpu/types" />
import { PortalError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import { createDeviceManager, type GpuDeviceManager, type GpuLimits } from '../gpu/index.js';
import type { KernelRun, StreamKernel } from './kernel.js';

// WebGPU flag values from the spec (the `webgpu` globals are not installed outside gpu/device.ts).
const USAGE = { MAP_READ: 0x1, COPY_SRC: 0x4, COPY_DST: 0x8, UNIFORM: 0x40, STORAGE: 0x80 } as const;
const MAP_READ = 0x1;
const WORKGROUP = 64;

/** Runs stream kernels on one WebGPU device (the process's shared Dawn instance, see gpu/device.ts). */
export interface StreamGpuRunner {
  /** Adapter description, e.g. `llvmpipe (LLVM 19…)`. */
  readonly description: string;
  readonly limits: GpuLimits;
  /** Device bytes in use by batches now (0 between batches: every batch frees its buffers). */
  readonly residentBytes: number;
  /**
   * Runs `kernel` over `n` records on the device. Rejects with PortalError
   * PORTAL_STREAM_ALLOCATION_FAILED when its buffers cannot be created and PORTAL_STREAM_KERNEL_FAILED
   * when compilation, validation or the device fails; buffers are destroyed in `finally` either way.
   */
  run(kernel: StreamKernel, input: Uint8Array, n: number): Promise<KernelRun>;
  /** Forgets compiled pipelines; closes the device manager only when this runner created it. */
  close(): Promise<void>;
}

let shared: Promise<GpuDeviceManager> | undefined;

/** The process-wide device manager stream runners share when none is passed in (created on first use). */
export function sharedDeviceManager(logger?: Logger): Promise<GpuDeviceManager> {
  shared ??= createDeviceManager({ logger });
  shared.catch(() => {
    shared = undefined;
  });
  return shared;
}

const align = (n: number, a: number): number => Math.max(a, Math.ceil(n / a) * a);

/** Creates a runner on `deviceManager` (e.g. the GPU worker's) or on the shared one; rejects with PortalError PORTAL_GPU_UNAVAILABLE without an adapter. */
export async function createStreamGpuRunner(
  opts: { deviceManager?: GpuDeviceManager; logger?: Logger } = {},
): Promise<StreamGpuRunner> {
  const mgr = opts.deviceManager ?? (await sharedDeviceManager(opts.logger));
  await mgr.acquire();
  const pipelines = new Map<string, { device: GPUDevice; p: Promise<GPUComputePipeline> }>();
  let resident = 0;

  async function pipeline(device: GPUDevice, k: StreamKernel): Promise<GPUComputePipeline> {
    const key = `${k.name}\u0000${k.gpu!.wgsl.length}`;
    const hit = pipelines.get(key);
    if (hit && hit.device === device) return hit.p;
    const p = (async () => {
      device.pushErrorScope('validation');
      const module = device.createShaderModule({ code: k.gpu!.wgsl, label: k.name });
      const info = await module.getCompilationInfo();
      const errors = info.messages.filter((m) => m.type === 'error');
      const pl = device.createComputePipeline({
        layout: 'auto',
        compute: { module, entryPoint: 'main' },
        label: k.name,
      });
      const err = await device.popErrorScope();
      if (errors.length > 0 || err) {
        throw new PortalError(
          'PORTAL_STREAM_KERNEL_FAILED',
          `kernel ${k.name} does not compile: ${errors.map((m) => `${m.lineNum}:${m.linePos} ${m.message}`).join('; ') || err?.message}`,
        );
      }
      return pl;
    })();
    pipelines.set(key, { device, p });
    p.catch(() => pipelines.delete(key));
    return p;
  }

  return {
    get description() {
      return mgr.description;
    },
    get limits() {
      return mgr.limits;
    },
    get residentBytes() {
      return resident;
    },
    async run(k, input, n) {
      const plan = k.gpu;
      if (!plan)
        throw new PortalError('PORTAL_STREAM_KERNEL_UNAVAILABLE', `kernel ${k.name} has no GPU plan`);
      let device: GPUDevice;
      try {
        device = await mgr.acquire();
      } catch (cause) {
        throw new PortalError('PORTAL_STREAM_KERNEL_FAILED', `kernel ${k.name}: no device`, { cause });
      }
      const pl = await pipeline(device, k);
      const threads = plan.threads?.(n) ?? n;
      const groups = Math.ceil(threads / WORKGROUP);
      if (groups > mgr.limits.maxComputeWorkgroupsPerDimension)
        throw new PortalError(
          'PORTAL_STREAM_ALLOCATION_FAILED',
          `kernel ${k.name}: ${n} records exceed one dispatch`,
        );
      const outBytes = k.rawOutputCount(n) * k.output.recordBytes;
      const params = plan.params(n);
      const inSize = align(input.byteLength, 4),
        outSize = align(outBytes, 4),
        uSize = align(params.byteLength, 16);
      const made: GPUBuffer[] = [];
      let allocated = 0;
      const t0 = performance.now();
      try {
        device.pushErrorScope('out-of-memory');
        device.pushErrorScope('validation');
        let bufs: GPUBuffer[];
        try {
          bufs = [
            device.createBuffer({
              size: uSize,
              usage: USAGE.UNIFORM | USAGE.COPY_DST,
              label: `${k.name}:params`,
            }),
            device.createBuffer({
              size: inSize,
              usage: USAGE.STORAGE | USAGE.COPY_DST,
              label: `${k.name}:in`,
            }),
            device.createBuffer({
              size: outSize,
              usage: USAGE.STORAGE | USAGE.COPY_SRC | USAGE.COPY_DST,
              label: `${k.name}:out`,
            }),
            device.createBuffer({
              size: outSize,
              usage: USAGE.MAP_READ | USAGE.COPY_DST,
              label: `${k.name}:staging`,
            }),
          ];
        } catch (cause) {
          await device.popErrorScope();
          await device.popErrorScope();
          throw new PortalError(
            'PORTAL_STREAM_ALLOCATION_FAILED',
            `kernel ${k.name}: cannot allocate ${inSize + outSize * 2} device bytes`,
            { cause },
          );
        }
        made.push(...bufs);
        const vErr = await device.popErrorScope();
        const oErr = await device.popErrorScope();
        if (vErr || oErr)
          throw new PortalError(
            'PORTAL_STREAM_ALLOCATION_FAILED',
            `kernel ${k.name}: cannot allocate ${inSize + outSize * 2} device bytes: ${(oErr ?? vErr)!.message}`,
          );
        allocated = uSize + inSize + outSize * 2;
        resident += allocated;
        const [ubuf, inBuf, outBuf, staging] = bufs;
        device.queue.writeBuffer(ubuf, 0, params.buffer, params.byteOffset, params.byteLength);
        if (input.byteLength % 4 === 0)
          device.queue.writeBuffer(inBuf, 0, input.buffer, input.byteOffset, input.byteLength);
        else {
          const tmp = new Uint8Array(inSize);
          tmp.set(input);
          device.queue.writeBuffer(inBuf, 0, tmp);
        }
        const init = plan.initOutput?.(n);
        if (init && init.byteLength > 0)
          device.queue.writeBuffer(outBuf, 0, init.buffer, init.byteOffset, align(init.byteLength, 4));
        device.pushErrorScope('validation');
        const bind = device.createBindGroup({
          layout: pl.getBindGroupLayout(0),
          entries: [
            { binding: 0, resource: { buffer: ubuf } },
            { binding: 1, resource: { buffer: inBuf } },
            { binding: 2, resource: { buffer: outBuf } },
          ],
          label: k.name,
        });
        const enc = device.createCommandEncoder({ label: k.name });
        const pass = enc.beginComputePass({ label: k.name });
        pass.setPipeline(pl);
        pass.setBindGroup(0, bind);
        if (groups > 0) pass.dispatchWorkgroups(groups);
        pass.end();
        device.queue.submit([enc.finish()]);
        const err = await device.popErrorScope();
        // A bind group that failed validation followed by mapAsync crashes Dawn: reject before mapping.
        if (err) throw new PortalError('PORTAL_STREAM_KERNEL_FAILED', `kernel ${k.name}: ${err.message}`);
        await device.queue.onSubmittedWorkDone();
        const t1 = performance.now();
        const enc2 = device.createCommandEncoder({ label: `${k.name}:readback` });
        enc2.copyBufferToBuffer(outBuf, 0, staging, 0, outSize);
        device.queue.submit([enc2.finish()]);
        try {
          await staging.mapAsync(MAP_READ);
        } catch (cause) {
          throw new PortalError(
            'PORTAL_STREAM_KERNEL_FAILED',
            `kernel ${k.name}: mapAsync failed (device lost?)`,
            { cause },
          );
        }
        const raw = new Uint8Array(staging.getMappedRange(0, outSize).slice(0, outBytes));
        staging.unmap();
        const t2 = performance.now();
        const output = k.finish ? k.finish(raw, n) : raw;
        return {
          output,
          outputCount: output.byteLength / k.output.recordBytes,
          backend: 'gpu',
          kernelMs: t1 - t0,
          transferMs: t2 - t1,
          transferBytes: input.byteLength + outBytes + (init?.byteLength ?? 0),
          allocatedBytes: allocated,
        };
      } finally {
        for (const b of made) b.destroy();
        resident -= allocated;
      }
    },
    async close() {
      pipelines.clear();
      if (!opts.deviceManager && shared) {
        /* the shared manager lives for the process (Dawn instance rule) */
      }
    },
  };
}
