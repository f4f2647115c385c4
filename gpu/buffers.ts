/// <reference types="@webgpu/types" />
import { PortalError } from '../common/errors.js';
import { BufferUsage, MapMode } from './constants.js';

/** Bytes moved by a BufferManager. */
export interface BufferStats {
  uploadedBytes: number;
  readBytes: number;
  residentBytes: number;
  skippedBytes: number;
}

/**
 * Keeps named storage buffers resident on one device across ticks. `sync()` uploads only the
 * 64 KiB blocks of a host array that changed since the last sync (compared with a host shadow copy
 * by native memcmp), so a table that every path may mutate — reports, exclusions, ticks — stays
 * coherent without anyone having to track dirty ranges. `readback()` copies into a staging buffer
 * that is destroyed in `finally`.
 */
export interface BufferManager {
  /** The resident buffer `name` mirroring `data` (storage, copy-dst), with changed blocks uploaded. */
  sync(name: string, data: ArrayBufferView): GPUBuffer;
  /** The resident buffer `name` (at least `bytes`), written in full with `data` when given. */
  scratch(name: string, bytes: number, usage?: number, data?: ArrayBufferView): GPUBuffer;
  /** Copies `bytes` of `src` from `offset` to the host. Rejects with PortalError on device loss. */
  readback(src: GPUBuffer, offset: number, bytes: number): Promise<ArrayBuffer>;
  stats(): BufferStats;
  /** Destroys every buffer (device loss, close). */
  dispose(): void;
}

const BLOCK = 64 * 1024;
const align4 = (n: number): number => Math.max(4, (n + 3) & ~3);

interface Resident {
  buf: GPUBuffer;
  bytes: number;
  shadow?: Uint8Array;
}

function bytesOf(v: ArrayBufferView): Uint8Array {
  return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

/** Creates a buffer manager for `device`. */
export function createBufferManager(device: GPUDevice): BufferManager {
  const res = new Map<string, Resident>();
  const st: BufferStats = { uploadedBytes: 0, readBytes: 0, residentBytes: 0, skippedBytes: 0 };

  function alloc(name: string, bytes: number, usage: number): Resident {
    const old = res.get(name);
    if (old && old.bytes >= bytes && old.buf.usage === usage) return old;
    if (old) {
      old.buf.destroy();
      st.residentBytes -= old.bytes;
      res.delete(name);
    }
    let buf: GPUBuffer;
    try {
      buf = device.createBuffer({ size: align4(bytes), usage, label: name });
    } catch (cause) {
      throw new PortalError('PORTAL_GPU_TOO_LARGE', `cannot allocate GPU buffer ${name} of ${bytes} bytes`, {
        cause,
      });
    }
    const r: Resident = { buf, bytes: align4(bytes) };
    res.set(name, r);
    st.residentBytes += r.bytes;
    return r;
  }

  function write(buf: GPUBuffer, src: Uint8Array, from: number, to: number): void {
    const len = to - from;
    if (len % 4 === 0) device.queue.writeBuffer(buf, from, src.buffer, src.byteOffset + from, len);
    else {
      const tmp = new Uint8Array(align4(len));
      tmp.set(src.subarray(from, to));
      device.queue.writeBuffer(buf, from, tmp);
    }
    st.uploadedBytes += len;
  }

  return {
    sync(name, data) {
      const src = bytesOf(data);
      const n = src.byteLength;
      const existing = res.get(name);
      const fresh =
        !existing || existing.bytes < align4(n) || !existing.shadow || existing.shadow.byteLength !== n;
      const r = alloc(name, n, BufferUsage.STORAGE | BufferUsage.COPY_DST | BufferUsage.COPY_SRC);
      if (fresh || !r.shadow) {
        if (n > 0) write(r.buf, src, 0, n);
        r.shadow = new Uint8Array(src);
        return r.buf;
      }
      const shadow = r.shadow;
      const a = Buffer.from(src.buffer, src.byteOffset, n);
      const b = Buffer.from(shadow.buffer, shadow.byteOffset, n);
      let runStart = -1;
      for (let off = 0; off < n; off += BLOCK) {
        const end = Math.min(n, off + BLOCK);
        const changed = a.compare(b, off, end, off, end) !== 0;
        if (changed && runStart < 0) runStart = off;
        if (!changed) {
          st.skippedBytes += end - off;
          if (runStart >= 0) {
            write(r.buf, src, runStart, off);
            shadow.set(src.subarray(runStart, off), runStart);
            runStart = -1;
          }
        }
      }
      if (runStart >= 0) {
        write(r.buf, src, runStart, n);
        shadow.set(src.subarray(runStart, n), runStart);
      }
      return r.buf;
    },
    scratch(name, bytes, usage = BufferUsage.STORAGE | BufferUsage.COPY_DST | BufferUsage.COPY_SRC, data) {
      const r = alloc(name, bytes, usage);
      if (data && data.byteLength > 0) write(r.buf, bytesOf(data), 0, data.byteLength);
      return r.buf;
    },
    async readback(src, offset, bytes) {
      const size = align4(bytes);
      const staging = device.createBuffer({
        size,
        usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST,
        label: 'staging',
      });
      try {
        const enc = device.createCommandEncoder();
        enc.copyBufferToBuffer(src, offset, staging, 0, size);
        device.queue.submit([enc.finish()]);
        try {
          await staging.mapAsync(MapMode.READ);
        } catch (cause) {
          throw new PortalError('PORTAL_GPU_DEVICE_LOST', 'mapAsync failed (device lost?)', { cause });
        }
        const out = staging.getMappedRange(0, size).slice(0, bytes);
        staging.unmap();
        st.readBytes += bytes;
        return out;
      } finally {
        staging.destroy();
      }
    },
    stats: () => ({ ...st }),
    dispose() {
      for (const r of res.values()) r.buf.destroy();
      res.clear();
      st.residentBytes = 0;
    },
  };
}
