import type { ChunkTable } from '../tables.js';
import type { EdgeRanking } from './cost.js';
import { ChunkStatus, INF_RANK, NO_EDGE } from '../types.js';

/**
 * Fused cost + K-best for one chunk (CPU reference of the WGSL kernel): scans the chunk's
 * candidate bitset, keeps the K lowest edge ranks by insertion into a K-slot list, and writes the
 * K best edges (best first, NO_EDGE padded) into `backups`. Returns how many were found.
 * `scratch` must hold at least K entries; it avoids allocation on the hot path.
 */
export function rankChunk(t: ChunkTable, ranking: EdgeRanking, chunk: number, scratch: Int32Array): number {
  const k = t.k;
  if (k === 3) return rankChunk3(t, ranking, chunk);
  const rank = ranking.rank;
  const cand = t.candidates;
  let found = 0;
  const base = chunk * t.words;
  for (let w = 0; w < t.words; w++) {
    let bits = cand[base + w] | 0;
    const off = w << 5;
    while (bits !== 0) {
      const r = rank[off + 31 - Math.clz32(bits & -bits)];
      bits &= bits - 1;
      if (found < k) found++;
      else if (r >= scratch[k - 1]) continue;
      let i = found - 1;
      while (i > 0 && scratch[i - 1] > r) {
        scratch[i] = scratch[i - 1];
        i--;
      }
      scratch[i] = r;
    }
  }
  while (found > 0 && scratch[found - 1] === INF_RANK) found--;
  const out = chunk * k;
  for (let i = 0; i < k; i++) t.backups[out + i] = i < found ? ranking.edgeOfRank[scratch[i]] : NO_EDGE;
  return found;
}

/** rankChunk specialized for K = 3 (the default): the three best ranks live in locals. */
function rankChunk3(t: ChunkTable, ranking: EdgeRanking, chunk: number): number {
  const rank = ranking.rank;
  const cand = t.candidates;
  let r0 = INF_RANK,
    r1 = INF_RANK,
    r2 = INF_RANK;
  const base = chunk * t.words;
  for (let w = 0; w < t.words; w++) {
    let bits = cand[base + w] | 0;
    const off = w << 5;
    while (bits !== 0) {
      const r = rank[off + 31 - Math.clz32(bits & -bits)];
      bits &= bits - 1;
      if (r < r2) {
        if (r < r1) {
          r2 = r1;
          if (r < r0) {
            r1 = r0;
            r0 = r;
          } else r1 = r;
        } else r2 = r;
      }
    }
  }
  const eor = ranking.edgeOfRank;
  const o = chunk * 3;
  const b = t.backups;
  b[o] = r0 === INF_RANK ? NO_EDGE : eor[r0];
  b[o + 1] = r1 === INF_RANK ? NO_EDGE : eor[r1];
  b[o + 2] = r2 === INF_RANK ? NO_EDGE : eor[r2];
  return r0 === INF_RANK ? 0 : r1 === INF_RANK ? 1 : r2 === INF_RANK ? 2 : 3;
}

/**
 * The k_best kernel: re-ranks the listed chunks (`count` entries of `chunks`, or all chunks when
 * `chunks` is undefined). PENDING and IN_FLIGHT chunks get fresh backups; a PENDING chunk is also
 * pointed at its best source (NO_EDGE when it has none usable). Other statuses are left alone.
 * Returns the number of chunks re-ranked.
 */
export function rankChunks(
  t: ChunkTable,
  ranking: EdgeRanking,
  chunks?: Uint32Array,
  count?: number,
): number {
  const total0 = chunks ? (count ?? chunks.length) : t.n;
  if (total0 >= LUT_MIN_CHUNKS && lutApplies(t))
    return rankRangeLut(t, ranking, buildRankLut(ranking, t.words), chunks, 0, total0);
  const scratch = new Int32Array(t.k);
  let ranked = 0;
  const total = chunks ? (count ?? chunks.length) : t.n;
  for (let i = 0; i < total; i++) {
    const c = chunks ? chunks[i] : i;
    const s = t.status[c];
    if (s !== ChunkStatus.PENDING && s !== ChunkStatus.IN_FLIGHT) continue;
    rankChunk(t, ranking, c, scratch);
    if (s === ChunkStatus.PENDING) t.assigned[c] = t.backups[c * t.k];
    ranked++;
  }
  return ranked;
}

// ---- byte-LUT kernel (exact, used by rankChunks for large batches) -------------------------------

/** Ranks below this are covered by the byte lookup tables (two u32 rank-space words). */
const LUT_RANKS = 64;
/** Bitsets wider than this many words use the plain scan (the tables would outgrow L1/L2). */
const LUT_MAX_WORDS = 8;
/** rankChunks builds the tables only for at least this many chunks (building costs ≈ words × 4 × 256 entries). */
export const LUT_MIN_CHUNKS = 2048;

/**
 * Byte lookup tables of one ranking over a `words`-word bitset: for byte position p (edges
 * 8p..8p+7) and byte value v, `lut[(p << 9) | (v << 1)]` / `[... + 1]` is the rank-space mask of the
 * edges of v whose rank is in 0..31 / 32..63. OR-ing the entries of a chunk's bytes yields its
 * candidates' set of top-64 ranks, sorted for free; the K lowest set bits are the K best edges
 * whenever the mask holds at least K bits or no usable edge ranks ≥ 64 (else: exact fallback scan).
 */
export interface RankLut {
  readonly lut: Int32Array;
  readonly words: number;
  /** True when some usable edge has rank ≥ 64 (a chunk short of K top-64 bits must then be scanned). */
  readonly tail: boolean;
}

/** Builds the byte lookup tables of `ranking` for bitsets of `words` u32 words. */
export function buildRankLut(ranking: EdgeRanking, words: number): RankLut {
  const positions = words * 4;
  const lut = new Int32Array(positions << 9);
  const rank = ranking.rank;
  for (let p = 0; p < positions; p++) {
    const base = p << 9;
    for (let b = 0; b < 8; b++) {
      const e = p * 8 + b;
      const r = e < rank.length ? rank[e] : INF_RANK;
      if (r >= LUT_RANKS) continue;
      lut[base + ((1 << b) << 1) + (r >>> 5)] = 1 << (r & 31);
    }
    for (let v = 3; v < 256; v++) {
      const low = v & -v;
      if (low === v) continue;
      const a = base + ((v ^ low) << 1);
      const c = base + (low << 1);
      lut[base + (v << 1)] = lut[a] | lut[c];
      lut[base + (v << 1) + 1] = lut[a + 1] | lut[c + 1];
    }
  }
  return { lut, words, tail: ranking.usable > LUT_RANKS };
}

/** True when the byte-LUT kernel applies to this table (narrow enough bitsets). */
export function lutApplies(t: Pick<ChunkTable, 'words'>): boolean {
  return t.words <= LUT_MAX_WORDS;
}

/** The fields of a chunk table the rank kernels touch (workers see only these). */
export type RankTable = Pick<
  ChunkTable,
  'n' | 'k' | 'words' | 'status' | 'assigned' | 'backups' | 'candidates'
>;

/**
 * rankChunks over chunks `from..to-1` (indices into `chunks`, or chunk ids when `chunks` is
 * undefined) with the byte-LUT kernel; exactly equal to the scan. Returns the number re-ranked.
 */
export function rankRangeLut(
  t: RankTable,
  ranking: EdgeRanking,
  lut: RankLut,
  chunks: Uint32Array | undefined,
  from: number,
  to: number,
): number {
  const k = t.k;
  const words = t.words;
  const status = t.status;
  const cand = t.candidates;
  const backups = t.backups;
  const assigned = t.assigned;
  const L = lut.lut;
  const tail = lut.tail;
  const eor = ranking.edgeOfRank;
  const scratch = new Int32Array(k);
  let ranked = 0;
  for (let i = from; i < to; i++) {
    const c = chunks ? chunks[i] : i;
    const s = status[c];
    if (s !== ChunkStatus.PENDING && s !== ChunkStatus.IN_FLIGHT) continue;
    ranked++;
    let lo = 0,
      hi = 0;
    const base = c * words;
    if (words === 4) {
      const x0 = cand[base],
        x1 = cand[base + 1],
        x2 = cand[base + 2],
        x3 = cand[base + 3];
      const a0 = (x0 & 255) << 1,
        a1 = 512 + (((x0 >>> 8) & 255) << 1),
        a2 = 1024 + (((x0 >>> 16) & 255) << 1),
        a3 = 1536 + ((x0 >>> 24) << 1);
      const b0 = 2048 + ((x1 & 255) << 1),
        b1 = 2560 + (((x1 >>> 8) & 255) << 1),
        b2 = 3072 + (((x1 >>> 16) & 255) << 1),
        b3 = 3584 + ((x1 >>> 24) << 1);
      const c0 = 4096 + ((x2 & 255) << 1),
        c1 = 4608 + (((x2 >>> 8) & 255) << 1),
        c2 = 5120 + (((x2 >>> 16) & 255) << 1),
        c3 = 5632 + ((x2 >>> 24) << 1);
      const d0 = 6144 + ((x3 & 255) << 1),
        d1 = 6656 + (((x3 >>> 8) & 255) << 1),
        d2 = 7168 + (((x3 >>> 16) & 255) << 1),
        d3 = 7680 + ((x3 >>> 24) << 1);
      lo =
        L[a0] |
        L[a1] |
        L[a2] |
        L[a3] |
        L[b0] |
        L[b1] |
        L[b2] |
        L[b3] |
        L[c0] |
        L[c1] |
        L[c2] |
        L[c3] |
        L[d0] |
        L[d1] |
        L[d2] |
        L[d3];
      if (k === 3 && lo !== 0) {
        const l1 = lo & (lo - 1);
        if (l1 !== 0) {
          const l2 = l1 & (l1 - 1);
          if (l2 !== 0) {
            const o3 = c * 3;
            backups[o3] = eor[31 - Math.clz32(lo & -lo)];
            backups[o3 + 1] = eor[31 - Math.clz32(l1 & -l1)];
            backups[o3 + 2] = eor[31 - Math.clz32(l2 & -l2)];
            if (s === ChunkStatus.PENDING) assigned[c] = backups[o3];
            continue;
          }
        }
      }
      hi =
        L[a0 + 1] |
        L[a1 + 1] |
        L[a2 + 1] |
        L[a3 + 1] |
        L[b0 + 1] |
        L[b1 + 1] |
        L[b2 + 1] |
        L[b3 + 1] |
        L[c0 + 1] |
        L[c1 + 1] |
        L[c2 + 1] |
        L[c3 + 1] |
        L[d0 + 1] |
        L[d1 + 1] |
        L[d2 + 1] |
        L[d3 + 1];
    } else
      for (let w = 0, p = 0; w < words; w++, p += 2048) {
        const x = cand[base + w];
        const i0 = p + ((x & 255) << 1);
        const i1 = p + 512 + (((x >>> 8) & 255) << 1);
        const i2 = p + 1024 + (((x >>> 16) & 255) << 1);
        const i3 = p + 1536 + ((x >>> 24) << 1);
        lo |= L[i0] | L[i1] | L[i2] | L[i3];
        hi |= L[i0 + 1] | L[i1 + 1] | L[i2 + 1] | L[i3 + 1];
      }
    const o = c * k;
    let n = 0;
    while (n < k) {
      let r: number;
      if (lo !== 0) {
        r = 31 - Math.clz32(lo & -lo);
        lo &= lo - 1;
      } else if (hi !== 0) {
        r = 63 - Math.clz32(hi & -hi);
        hi &= hi - 1;
      } else break;
      backups[o + n++] = eor[r];
    }
    if (n < k) {
      if (tail) {
        // fewer than K candidates in the top 64 ranks, and some usable edge ranks lower: scan
        rankChunk(t as ChunkTable, ranking, c, scratch);
      } else {
        for (let j = n; j < k; j++) backups[o + j] = NO_EDGE;
      }
    }
    if (s === ChunkStatus.PENDING) assigned[c] = backups[o];
  }
  return ranked;
}

/**
 * rankChunks restricted to entries `from..to-1` of `chunks` (chunk ids `from..to-1` when `chunks` is
 * undefined): the byte-LUT kernel when `lut` is given, else the scan. Exactly equal to rankChunks on
 * those chunks; disjoint ranges may run concurrently on a shared table. Returns the number re-ranked.
 */
export function rankChunkRange(
  t: RankTable,
  ranking: EdgeRanking,
  chunks: Uint32Array | undefined,
  from: number,
  to: number,
  lut?: RankLut,
): number {
  if (lut) return rankRangeLut(t, ranking, lut, chunks, from, to);
  const scratch = new Int32Array(t.k);
  let ranked = 0;
  for (let i = from; i < to; i++) {
    const c = chunks ? chunks[i] : i;
    const s = t.status[c];
    if (s !== ChunkStatus.PENDING && s !== ChunkStatus.IN_FLIGHT) continue;
    rankChunk(t as ChunkTable, ranking, c, scratch);
    if (s === ChunkStatus.PENDING) t.assigned[c] = t.backups[c * t.k];
    ranked++;
  }
  return ranked;
}
