import { PortalError, isPortalError } from '../../common/errors.js';
import { createDeviceManager, type GpuDeviceManager } from '../../gpu/index.js';
import {
  defineUserKernel,
  runCpu,
  wordsOf,
  type KernelExecutor,
  type KernelRun,
  type StreamKernel,
  type StreamSink,
} from '../../stream/index.js';
import { ensureXdgRuntimeDir } from '../../cli/env.js';

/** A kernel over (id, v) records: out = (id, v * 3 + 1, v ^ id, float(v) * 2) — integer and exactly-rounded f32 math. */
export const seqKernel: StreamKernel = defineUserKernel({
  name: 'seq',
  input: {
    name: 'SeqIn',
    fields: [
      { name: 'id', type: 'u32' },
      { name: 'v', type: 'u32' },
    ],
  },
  output: {
    name: 'SeqOut',
    fields: [
      { name: 'id', type: 'u32' },
      { name: 'w', type: 'u32' },
      { name: 'x', type: 'u32' },
      { name: 'f', type: 'f32' },
    ],
  },
  wgsl: 'fn process(r: SeqIn) -> SeqOut { return SeqOut(r.id, r.v * 3u + 1u, r.v ^ r.id, f32(r.v & 0xffffu) * 2.0); }',
  cpu: (inp, out, n) => {
    const f = new Float32Array(out.buffer, out.byteOffset, out.length);
    for (let i = 0; i < n; i++) {
      const id = inp[i * 2],
        v = inp[i * 2 + 1];
      out[i * 4] = id;
      out[i * 4 + 1] = (Math.imul(v, 3) + 1) >>> 0;
      out[i * 4 + 2] = (v ^ id) >>> 0;
      f[i * 4 + 3] = Math.fround((v & 0xffff) * 2);
    }
  },
});

/** `n` SeqIn records with ids from `first`. */
export function seqRecords(first: number, n: number): Uint8Array {
  const w = new Uint32Array(n * 2);
  for (let i = 0; i < n; i++) {
    w[i * 2] = first + i;
    w[i * 2 + 1] = (first + i) * 7 + 3;
  }
  return new Uint8Array(w.buffer);
}

/** The ids in SeqOut or SeqIn bytes (`words` per record). */
export function idsOf(bytes: Uint8Array, words: number): number[] {
  const w = wordsOf(bytes);
  const out: number[] = [];
  for (let i = 0; i < w.length; i += words) out.push(w[i]);
  return out;
}

/** A CPU executor with hooks: `fail(batchIndex)` decides a failure, `delayMs` slows each batch. */
export function fakeExecutor(
  kernel: StreamKernel,
  o: {
    fail?: (i: number) => PortalError | undefined;
    delayMs?: number;
    backend?: 'gpu' | 'cpu';
    kernelMs?: number;
    transferMs?: number;
    maxBufferSize?: number;
  } = {},
): KernelExecutor & { runs: number[] } {
  let i = 0;
  const runs: number[] = [];
  return {
    kernel,
    backend: o.backend ?? 'cpu',
    deviceType: o.backend === 'gpu' ? 'GPU' : 'CPU',
    deviceName: 'fake',
    residentBytes: 0,
    runs,
    limits:
      o.backend === 'gpu'
        ? {
            maxBufferSize: o.maxBufferSize ?? 1 << 30,
            maxStorageBufferBindingSize: 1 << 30,
            maxComputeWorkgroupsPerDimension: 65535,
            maxStorageBuffersPerShaderStage: 8,
          }
        : undefined,
    async run(input: Uint8Array, n: number): Promise<KernelRun> {
      const idx = i++;
      runs.push(n);
      if (o.delayMs) await new Promise((r) => setTimeout(r, o.delayMs));
      const e = o.fail?.(idx);
      if (e) throw e;
      const r = runCpu(kernel, input, n);
      if (o.kernelMs !== undefined) {
        r.kernelMs = o.kernelMs;
        r.transferMs = o.transferMs ?? 0;
        r.transferBytes = n * kernel.input.recordBytes;
        r.allocatedBytes = 1000;
      }
      return r;
    },
    close: async () => undefined,
  };
}

/** A sink that keeps what it got. */
export function collectSink(): StreamSink & {
  outputs: Uint8Array[];
  failures: Array<{ bytes: Uint8Array; error: PortalError }>;
  outCount: number;
} {
  const s = {
    outputs: [] as Uint8Array[],
    failures: [] as Array<{ bytes: Uint8Array; error: PortalError }>,
    outCount: 0,
    async output(bytes: Uint8Array, count: number) {
      s.outputs.push(bytes);
      s.outCount += count;
    },
    async failed(bytes: Uint8Array, _count: number, error: PortalError) {
      s.failures.push({ bytes, error });
    },
  };
  return s;
}

export async function waitFor(
  fn: () => boolean | Promise<boolean>,
  ms = 20_000,
  what = 'condition',
): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The device manager, or undefined (skip) — except under CI=true / PORTAL_REQUIRE_GPU=1, where no adapter fails loudly. */
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
    console.warn(
      `stream GPU tests skipped: ${(err as Error).message} (set PORTAL_REQUIRE_GPU=1 to fail instead)`,
    );
    return undefined;
  }
}
