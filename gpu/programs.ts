/// <reference types="@webgpu/types" />
import { PortalError } from '../common/errors.js';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { BufferUsage, WORKGROUP } from './constants.js';

const sources = new Map<string, string>();

/**
 * The text of `gpu/kernels/<file>`. Looks beside this module first, then in the source tree (the
 * TypeScript build does not copy .wgsl files into dist/). Throws when the file is missing.
 */
export function loadWgsl(file: string): string {
  const hit = sources.get(file);
  if (hit !== undefined) return hit;
  const tries = [
    new URL(`./kernels/${file}`, import.meta.url),
    new URL(`../../gpu/kernels/${file}`, import.meta.url),
  ];
  for (const u of tries) {
    try {
      const text = readFileSync(fileURLToPath(u), 'utf8');
      sources.set(file, text);
      return text;
    } catch {
      /* try the next location */
    }
  }
  throw new PortalError(
    'PORTAL_GPU_VALIDATION',
    `WGSL source ${file} not found (looked in ${tries.map((u) => fileURLToPath(u)).join(', ')})`,
  );
}

/**
 * Compiled compute pipelines of one device, keyed by kernel name (a setup-time fact only).
 * Each kernel is `common.wgsl` + its own file, entry point `main`, layout `auto`.
 */
export interface ProgramCache {
  /** The pipeline of `name` built from common.wgsl + `files` (default `[name]`) + `name`.wgsl. */
  pipeline(name: string, fragments?: string[]): Promise<GPUComputePipeline>;
}

/** Creates a pipeline cache for `device`; compilation errors reject with PortalError PORTAL_GPU_VALIDATION. */
export function createProgramCache(device: GPUDevice): ProgramCache {
  const cache = new Map<string, Promise<GPUComputePipeline>>();
  async function build(name: string, fragments: string[]): Promise<GPUComputePipeline> {
    const code = ['common.wgsl', ...fragments, `${name}.wgsl`].map(loadWgsl).join('\n');
    device.pushErrorScope('validation');
    const module = device.createShaderModule({ code, label: name });
    const info = await module.getCompilationInfo();
    const errors = info.messages.filter((m) => m.type === 'error');
    const pipeline = device.createComputePipeline({
      layout: 'auto',
      compute: { module, entryPoint: 'main' },
      label: name,
    });
    const err = await device.popErrorScope();
    if (errors.length > 0 || err) {
      throw new PortalError(
        'PORTAL_GPU_VALIDATION',
        `kernel ${name}: ${errors.map((m) => `${m.lineNum}:${m.linePos} ${m.message}`).join('; ') || err?.message}`,
      );
    }
    return pipeline;
  }
  return {
    pipeline(name, fragments = []) {
      let p = cache.get(name);
      if (!p) {
        p = build(name, fragments);
        cache.set(name, p);
        p.catch(() => cache.delete(name));
      }
      return p;
    },
  };
}

/**
 * Encodes and submits one dispatch of `pipeline` over `threads` invocations (1-D, WORKGROUP per
 * group) with `params` as the uniform at binding 0 and `buffers` at bindings 1…; validation errors
 * reject with PortalError before anything is mapped (a failed bind group followed by mapAsync is what
 * crashed Dawn). One dispatch per submit.
 */
export async function dispatch(
  device: GPUDevice,
  pipeline: GPUComputePipeline,
  params: Uint32Array,
  buffers: GPUBuffer[],
  threads: number,
  label: string,
): Promise<void> {
  if (threads === 0) return;
  const groups = Math.ceil(threads / WORKGROUP);
  if (groups > device.limits.maxComputeWorkgroupsPerDimension) {
    throw new PortalError(
      'PORTAL_GPU_TOO_LARGE',
      `${label}: ${threads} threads exceed one dispatch; partition first`,
    );
  }
  const ubuf = device.createBuffer({
    size: Math.max(16, (params.byteLength + 15) & ~15),
    usage: BufferUsage.UNIFORM | BufferUsage.COPY_DST,
    label: `${label}:params`,
  });
  try {
    device.queue.writeBuffer(ubuf, 0, params.buffer, params.byteOffset, params.byteLength);
    device.pushErrorScope('validation');
    const bind = device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: [
        { binding: 0, resource: { buffer: ubuf } },
        ...buffers.map((buffer, i) => ({ binding: i + 1, resource: { buffer } })),
      ],
      label,
    });
    const enc = device.createCommandEncoder({ label });
    const pass = enc.beginComputePass({ label });
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bind);
    pass.dispatchWorkgroups(groups);
    pass.end();
    device.queue.submit([enc.finish()]);
    const err = await device.popErrorScope();
    if (err) throw new PortalError('PORTAL_GPU_VALIDATION', `${label}: ${err.message}`);
  } finally {
    ubuf.destroy();
  }
}

/** One compute pass of a `dispatchChain`: `buffers` at bindings 1… of `pipeline`, `groups` workgroups. */
export interface ChainStep {
  pipeline: GPUComputePipeline;
  buffers: GPUBuffer[];
  groups: number;
  label: string;
}

/**
 * Encodes several compute passes that share one uniform (`params` at binding 0) into a single
 * command buffer and submits it once (passes run in order; storage writes of one pass are visible
 * to the next). Validation errors reject with PortalError before the caller maps anything.
 */
export async function dispatchChain(
  device: GPUDevice,
  params: Uint32Array,
  steps: ChainStep[],
  label: string,
): Promise<void> {
  for (const s of steps) {
    if (s.groups > device.limits.maxComputeWorkgroupsPerDimension)
      throw new PortalError('PORTAL_GPU_TOO_LARGE', `${s.label}: ${s.groups} workgroups exceed one dispatch`);
  }
  const ubuf = device.createBuffer({
    size: Math.max(16, (params.byteLength + 15) & ~15),
    usage: BufferUsage.UNIFORM | BufferUsage.COPY_DST,
    label: `${label}:params`,
  });
  try {
    device.queue.writeBuffer(ubuf, 0, params.buffer, params.byteOffset, params.byteLength);
    device.pushErrorScope('validation');
    const enc = device.createCommandEncoder({ label });
    for (const s of steps) {
      if (s.groups === 0) continue;
      const bind = device.createBindGroup({
        layout: s.pipeline.getBindGroupLayout(0),
        entries: [
          { binding: 0, resource: { buffer: ubuf } },
          ...s.buffers.map((buffer, i) => ({ binding: i + 1, resource: { buffer } })),
        ],
        label: s.label,
      });
      const pass = enc.beginComputePass({ label: s.label });
      pass.setPipeline(s.pipeline);
      pass.setBindGroup(0, bind);
      pass.dispatchWorkgroups(s.groups);
      pass.end();
    }
    device.queue.submit([enc.finish()]);
    const err = await device.popErrorScope();
    if (err) throw new PortalError('PORTAL_GPU_VALIDATION', `${label}: ${err.message}`);
  } finally {
    ubuf.destroy();
  }
}
