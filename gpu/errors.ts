/** Codes of the failures the GPU layer raises (narrow on `err.code`). */
export type GpuErrorCode =
  /** No WebGPU adapter (no Vulkan driver, Dawn missing, or the adapter refused a device). */
  | 'PORTAL_GPU_UNAVAILABLE'
  /** The device was lost (driver reset, `destroy()`, out of memory) before or during the work. */
  | 'PORTAL_GPU_DEVICE_LOST'
  /** Dawn rejected a shader, pipeline, bind group or command (a bug in this layer, not in the data). */
  | 'PORTAL_GPU_VALIDATION'
  /** A transfer does not fit the device even after partitioning. */
  | 'PORTAL_GPU_TOO_LARGE';

/** A failure of the GPU layer, with a literal `code` and the underlying `cause`. */
export class GpuError extends Error {
  readonly code: GpuErrorCode;
  constructor(code: GpuErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'GpuError';
    this.code = code;
  }
}

/** True when `err` is a GpuError, optionally with the given code. */
export function isGpuError(err: unknown, code?: GpuErrorCode): err is GpuError {
  return err instanceof GpuError && (code === undefined || err.code === code);
}
