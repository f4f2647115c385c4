import type { RecordLayout } from './layout.js';

/** How a kernel runs on the GPU: a WGSL module with entry point `main` and bindings 0 (uniform params), 1 (input), 2 (output). */
export interface GpuKernelPlan {
  /** The whole WGSL module. */
  readonly wgsl: string;
  /** The uniform at binding 0 for a batch of `n` records (at least `n` in word 0 by convention). */
  params(n: number): Uint32Array;
  /** Invocations for a batch of `n` records (default `n`, workgroups of 64). */
  threads?(n: number): number;
  /** Initial contents of the raw output for `n` records (default zeros). */
  initOutput?(n: number): Uint8Array;
}

/**
 * A stream kernel: fixed input and output record layouts, a CPU reference and/or a GPU plan that
 * produce the same raw output bytes, and an optional host step applied to that raw output on both
 * paths. `cpu` and `gpu` throw or reject on failure; the processor turns that into a failed batch.
 */
export interface StreamKernel {
  readonly name: string;
  readonly input: RecordLayout;
  readonly output: RecordLayout;
  /** Raw output records the kernel writes for a batch of `n` input records. */
  rawOutputCount(n: number): number;
  /** Most records one batch may hold (e.g. an exactness bound of the kernel); undefined = no limit. */
  readonly maxBatch?: number;
  /** The CPU reference: raw output bytes of `n` records in `input`. Absent for WGSL-only kernels. */
  cpu?(input: Uint8Array, n: number): Uint8Array;
  /** The GPU plan; absent for CPU-only kernels. */
  readonly gpu?: GpuKernelPlan;
  /** Host step on the raw output (same on both paths), e.g. keep only touched aggregate slots. */
  finish?(raw: Uint8Array, n: number): Uint8Array;
}

/** One batch's run: the output records and what it cost. */
export interface KernelRun {
  output: Uint8Array;
  outputCount: number;
  backend: 'gpu' | 'cpu';
  /** Compute time (GPU: dispatch until the queue is done, uploads included; CPU: the reference). */
  kernelMs: number;
  /** Host↔device copy time (readback, staging); 0 on the CPU. */
  transferMs: number;
  /** Bytes moved to and from the device; 0 on the CPU. */
  transferBytes: number;
  /** Device bytes allocated for the batch (freed when it ends). */
  allocatedBytes: number;
}

/** Bytes one record takes on the device: its input plus its share of the raw output. */
export function deviceBytesPerRecord(k: StreamKernel, n = 1024): number {
  return k.input.recordBytes + Math.ceil((k.rawOutputCount(n) * k.output.recordBytes) / n);
}
