import { PortalError } from '../../common/errors.js';
import { defineLayout, type LayoutSpec, type RecordLayout } from '../layout.js';
import type { StreamKernel } from '../kernel.js';

/** A user kernel: WGSL defining `fn process(r: <Input>) -> <Output>`, its record layouts, optionally a CPU reference. */
export interface UserKernelSpec {
  name: string;
  input: LayoutSpec;
  output: LayoutSpec;
  /** WGSL that defines `fn process(r: <input.name>) -> <output.name>` (and any helpers it needs). */
  wgsl: string;
  /**
   * CPU reference over whole batches: read `n` records from `input`, write `n` to `output` (both
   * 32-bit views; reinterpret with Int32Array/Float32Array for i32/f32 fields, Math.fround for f32 math).
   */
  cpu?: (input: Uint32Array, output: Uint32Array, n: number) => void;
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/**
 * Wraps a user WGSL function into a stream kernel: the layouts become WGSL structs, one invocation
 * maps record i to output record i. Throws PORTAL_STREAM_BAD_LAYOUT for bad layouts or names; WGSL
 * errors surface when the first batch compiles (PORTAL_STREAM_KERNEL_FAILED for that batch).
 */
export function defineUserKernel(spec: UserKernelSpec): StreamKernel {
  if (!spec || typeof spec.name !== 'string' || !IDENT.test(spec.name))
    throw new PortalError(
      'PORTAL_STREAM_BAD_LAYOUT',
      `kernel.name: expected an identifier, got ${JSON.stringify(spec?.name)}`,
    );
  if (typeof spec.wgsl !== 'string' || !/\bfn\s+process\s*\(/.test(spec.wgsl))
    throw new PortalError(
      'PORTAL_STREAM_BAD_LAYOUT',
      `kernel ${spec.name}: wgsl must define fn process(r: ${spec.input?.name}) -> ${spec.output?.name}`,
    );
  const input: RecordLayout = defineLayout(spec.input);
  const output: RecordLayout = defineLayout(spec.output);
  if (input.name === output.name)
    throw new PortalError(
      'PORTAL_STREAM_BAD_LAYOUT',
      `kernel ${spec.name}: input and output layouts need different names`,
    );
  const wgsl = [
    input.wgslStruct(),
    output.wgslStruct(),
    'struct StreamParams { count: u32, pad0: u32, pad1: u32, pad2: u32 }',
    '@group(0) @binding(0) var<uniform> stream_params: StreamParams;',
    `@group(0) @binding(1) var<storage, read> stream_in: array<${input.name}>;`,
    `@group(0) @binding(2) var<storage, read_write> stream_out: array<${output.name}>;`,
    spec.wgsl,
    '@compute @workgroup_size(64)',
    'fn main(@builtin(global_invocation_id) gid: vec3<u32>) {',
    '  let i = gid.x;',
    '  if (i >= stream_params.count) { return; }',
    '  stream_out[i] = process(stream_in[i]);',
    '}',
  ].join('\n');
  const cpu = spec.cpu;
  return {
    name: `user:${spec.name}`,
    input,
    output,
    rawOutputCount: (n) => n,
    ...(cpu
      ? {
          cpu: (bytes: Uint8Array, n: number) => {
            const inWords =
              bytes.byteOffset % 4 === 0
                ? new Uint32Array(bytes.buffer, bytes.byteOffset, n * input.words)
                : new Uint32Array(new Uint8Array(bytes).buffer);
            const out = new Uint32Array(n * output.words);
            cpu(inWords, out, n);
            return new Uint8Array(out.buffer);
          },
        }
      : {}),
    gpu: { wgsl, params: (n) => Uint32Array.of(n, 0, 0, 0) },
  };
}
