import { PortalError, checkArg } from '../common/errors.js';
import { ChunkStatus, NO_EDGE, MAX_EDGES } from './types.js';

/**
 * Per-chunk state of one transfer, struct-of-arrays. The same buffers feed the CPU reference
 * kernels and the GPU upload, so both see identical inputs.
 *
 * `candidates` is the availability bitset (`words` u32 per chunk, bit e = edge e holds the chunk)
 * with edges excluded for that chunk (retry limit, corrupt data) cleared.
 */
export interface ChunkTable {
  readonly n: number;
  readonly k: number;
  readonly edges: number;
  /** u32 words of bitset per chunk: ceil(edges / 32). */
  readonly words: number;
  readonly status: Uint8Array;
  /** Edge the chunk is assigned to (pending: planned; in flight: being fetched from); NO_EDGE if none. */
  readonly assigned: Uint16Array;
  /** K best edges per chunk, best first, NO_EDGE padded. */
  readonly backups: Uint16Array;
  readonly retries: Uint8Array;
  readonly priority: Float32Array;
  /** Dispatch counter of the current (primary) attempt; reports carry it back. */
  readonly attempt: Uint32Array;
  /** Milliseconds since the transfer's epoch. */
  readonly dispatchedAt: Uint32Array;
  readonly deadline: Uint32Array;
  readonly candidates: Uint32Array;
}

/** Per-edge state, struct-of-arrays. `queueDepth` counts this transfer's chunks in flight on the edge. */
export interface EdgeTable {
  readonly e: number;
  /** Estimated bandwidth, bytes/s. */
  readonly bandwidth: Float64Array;
  /** Smoothed RTT, ms. */
  readonly rtt: Float64Array;
  /** 0..1 */
  readonly health: Float64Array;
  readonly queueDepth: Uint32Array;
  readonly maxParallel: Uint32Array;
  readonly available: Uint8Array;
  readonly flags: Uint32Array;
  /** Adaptive fetch timeout, ms. */
  readonly timeoutMs: Float64Array;
}

/** Options of createChunkTable. */
export interface ChunkTableOptions {
  /** Allocate the typed arrays on SharedArrayBuffer (worker threads can then rank in place). Default false. */
  shared?: boolean;
}

/** Allocates a chunk table of `n` chunks over `edges` edges with `k` backups, all PENDING and unranked. */
export function createChunkTable(
  n: number,
  edges: number,
  k: number,
  opts: ChunkTableOptions = {},
): ChunkTable {
  checkArg(Number.isInteger(n) && n >= 0 && n <= 0xffffffff, 'n', 'an integer number of chunks in [0, 2^32)');
  checkArg(
    Number.isInteger(edges) && edges >= 1 && edges <= MAX_EDGES,
    'edges',
    `an integer in [1, ${MAX_EDGES}]`,
  );
  checkArg(Number.isInteger(k) && k >= 1 && k <= 16, 'k', 'an integer in [1, 16]');
  const words = Math.ceil(edges / 32);
  try {
    const sh = opts.shared === true;
    const u8 = (len: number) => (sh ? new Uint8Array(new SharedArrayBuffer(len)) : new Uint8Array(len));
    const u16 = (len: number) =>
      sh ? new Uint16Array(new SharedArrayBuffer(len * 2)) : new Uint16Array(len);
    const u32 = (len: number) =>
      sh ? new Uint32Array(new SharedArrayBuffer(len * 4)) : new Uint32Array(len);
    const f32 = (len: number) =>
      sh ? new Float32Array(new SharedArrayBuffer(len * 4)) : new Float32Array(len);
    const t: ChunkTable = {
      n,
      k,
      edges,
      words,
      status: u8(n),
      assigned: u16(n).fill(NO_EDGE),
      backups: u16(n * k).fill(NO_EDGE),
      retries: u8(n),
      priority: f32(n),
      attempt: u32(n),
      dispatchedAt: u32(n),
      deadline: u32(n),
      candidates: u32(n * words),
    };
    t.status.fill(ChunkStatus.PENDING);
    return t;
  } catch (cause) {
    throw new PortalError(
      'PORTAL_INVALID_ARGUMENT',
      `cannot allocate a chunk table of ${n} chunks × ${edges} edges`,
      { cause },
    );
  }
}

/** Allocates an edge table of `e` edges: unavailable, zero bandwidth, health 1, max_parallel 4. */
export function createEdgeTable(e: number): EdgeTable {
  checkArg(Number.isInteger(e) && e >= 1 && e <= MAX_EDGES, 'e', `an integer in [1, ${MAX_EDGES}]`);
  return {
    e,
    bandwidth: new Float64Array(e),
    rtt: new Float64Array(e),
    health: new Float64Array(e).fill(1),
    queueDepth: new Uint32Array(e),
    maxParallel: new Uint32Array(e).fill(4),
    available: new Uint8Array(e),
    flags: new Uint32Array(e),
    timeoutMs: new Float64Array(e).fill(30_000),
  };
}

/** True when bit `edge` is set in chunk `chunk`'s candidate bitset. */
export function hasCandidate(t: ChunkTable, chunk: number, edge: number): boolean {
  return ((t.candidates[chunk * t.words + (edge >>> 5)] >>> (edge & 31)) & 1) === 1;
}

/** Sets or clears bit `edge` of chunk `chunk`'s candidate bitset. */
export function setCandidate(t: ChunkTable, chunk: number, edge: number, on: boolean): void {
  const i = chunk * t.words + (edge >>> 5);
  const bit = 1 << (edge & 31);
  t.candidates[i] = on ? (t.candidates[i] | bit) >>> 0 : (t.candidates[i] & ~bit) >>> 0;
}

/** True when chunk `chunk` has no candidate edge at all. */
export function candidatesEmpty(t: ChunkTable, chunk: number): boolean {
  const base = chunk * t.words;
  for (let w = 0; w < t.words; w++) if (t.candidates[base + w] !== 0) return false;
  return true;
}
