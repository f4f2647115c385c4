/**
 * WebGPU flag values (from the spec), so that no module but the device manager needs the `webgpu`
 * package's globals installed on `globalThis`.
 */
export const BufferUsage = {
  MAP_READ: 0x1,
  MAP_WRITE: 0x2,
  COPY_SRC: 0x4,
  COPY_DST: 0x8,
  INDEX: 0x10,
  VERTEX: 0x20,
  UNIFORM: 0x40,
  STORAGE: 0x80,
} as const;
/** GPUMapMode values. */
export const MapMode = { READ: 0x1, WRITE: 0x2 } as const;
/** Threads per workgroup of every 1-D kernel here (the WGSL files use the same constant). */
export const WORKGROUP = 64;
/** Rank of an unusable edge (mirrors scheduler INF_RANK). */
export const INF_RANK_U32 = 0x7fffffff;
