import type { ChunkTable } from '../tables.js';
import type { EdgeRanking } from './cost.js';
import { ChunkStatus, INF_RANK, NO_EDGE } from '../types.js';

/**
 * Fused cost + K-best for one chunk (CPU reference of the WGSL kernel): scans the chunk's
 * candidate bitset, keeps the K lowest edge ranks by insertion into a K-slot list, and writes the
 * K best edges (best first, NO_EDGE padded) into `backups`. Returns how many were found.
 * `scratch` must hold at least K entries; it avoids allocation on the hot path.
 */
export function rankChunk(t: ChunkTable, ranking: EdgeRanking, chunk: number, scratch: Uint32Array): number {
  const k = t.k;
  const rank = ranking.rank;
  let found = 0;
  const base = chunk * t.words;
  for (let w = 0; w < t.words; w++) {
    let bits = t.candidates[base + w];
    while (bits !== 0) {
      const low = bits & -bits;
      const e = (w << 5) + (31 - Math.clz32(low));
      bits = (bits ^ low) >>> 0;
      const r = rank[e];
      if (r === INF_RANK) continue;
      if (found < k) {
        let i = found++;
        while (i > 0 && scratch[i - 1] > r) { scratch[i] = scratch[i - 1]; i--; }
        scratch[i] = r;
      } else if (r < scratch[k - 1]) {
        let i = k - 1;
        while (i > 0 && scratch[i - 1] > r) { scratch[i] = scratch[i - 1]; i--; }
        scratch[i] = r;
      }
    }
  }
  const out = chunk * k;
  for (let i = 0; i < k; i++) t.backups[out + i] = i < found ? ranking.edgeOfRank[scratch[i]] : NO_EDGE;
  return found;
}

/**
 * The k_best kernel: re-ranks the listed chunks (`count` entries of `chunks`, or all chunks when
 * `chunks` is undefined). PENDING and IN_FLIGHT chunks get fresh backups; a PENDING chunk is also
 * pointed at its best source (NO_EDGE when it has none usable). Other statuses are left alone.
 * Returns the number of chunks re-ranked.
 */
export function rankChunks(t: ChunkTable, ranking: EdgeRanking, chunks?: Uint32Array, count?: number): number {
  const scratch = new Uint32Array(t.k);
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
