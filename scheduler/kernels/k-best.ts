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
      while (i > 0 && scratch[i - 1] > r) { scratch[i] = scratch[i - 1]; i--; }
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
  let r0 = INF_RANK, r1 = INF_RANK, r2 = INF_RANK;
  const base = chunk * t.words;
  for (let w = 0; w < t.words; w++) {
    let bits = cand[base + w] | 0;
    const off = w << 5;
    while (bits !== 0) {
      const r = rank[off + 31 - Math.clz32(bits & -bits)];
      bits &= bits - 1;
      if (r < r2) {
        if (r < r1) { r2 = r1; if (r < r0) { r1 = r0; r0 = r; } else r1 = r; } else r2 = r;
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
export function rankChunks(t: ChunkTable, ranking: EdgeRanking, chunks?: Uint32Array, count?: number): number {
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
