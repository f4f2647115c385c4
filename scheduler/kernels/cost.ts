import type { EdgeTable } from '../tables.js';
import type { SchedulerConfig } from '../types.js';
import { EdgeFlags, INF_RANK } from '../types.js';

/**
 * Edge ranking: the cost model in docs/architecture.md, computed once per edge per tick.
 *
 * Every factor of cost(chunk, edge) — transfer time for a chunk of the transfer's chunk size,
 * queue load², 1 − health, metered, battery — depends on the edge alone; the chunk contributes only
 * whether the cost is infinite (edge lacks the chunk, or is excluded for it). So the order of edges
 * by (cost, edge id) is the same for every chunk, and the K best sources of a chunk are its K
 * lowest-ranked candidate edges. Ranking the E edges here and selecting by integer rank per chunk
 * (see k-best.ts) is exactly equivalent to evaluating the N×E cost matrix and taking the K smallest
 * with ties to the lower id, without materializing the matrix, and it makes the per-chunk kernel
 * integer-only, so GPU and CPU agree bit for bit.
 */
export interface EdgeRanking {
  /** Cost per edge; Infinity for an unusable edge. */
  readonly cost: Float64Array;
  /** rank[e] = position of edge e in ascending (cost, id) order; INF_RANK when cost is infinite. */
  readonly rank: Int32Array;
  /** edgeOfRank[r] = the edge with rank r, for r < usable. */
  readonly edgeOfRank: Uint16Array;
  /** Number of edges with finite cost. */
  readonly usable: number;
}

/** Expected milliseconds for one chunk of `chunkBytes` from edge `e`: size / bandwidth + RTT. */
export function expectedTimeMs(edges: EdgeTable, e: number, chunkBytes: number): number {
  const bw = edges.bandwidth[e];
  return (bw > 0 ? (chunkBytes / bw) * 1000 : Infinity) + edges.rtt[e];
}

/** True when edge `e` can be asked for chunks at all this tick. */
export function edgeUsable(edges: EdgeTable, e: number): boolean {
  return edges.available[e] === 1 && edges.maxParallel[e] > 0;
}

/** Computes every edge's cost and the (cost, id) ranking. Pure; O(E log E). */
export function rankEdges(
  edges: EdgeTable,
  chunkBytes: number,
  config: Pick<SchedulerConfig, 'weights' | 'maxAcceptableTimeMs'>,
): EdgeRanking {
  const n = edges.e;
  const cost = new Float64Array(n);
  const w = config.weights;
  let maxTime = config.maxAcceptableTimeMs;
  if (maxTime === undefined) {
    maxTime = 0;
    for (let e = 0; e < n; e++) {
      if (!edgeUsable(edges, e)) continue;
      const t = expectedTimeMs(edges, e, chunkBytes);
      if (Number.isFinite(t) && t > maxTime) maxTime = t;
    }
  }
  const order: number[] = [];
  for (let e = 0; e < n; e++) {
    if (!edgeUsable(edges, e)) {
      cost[e] = Infinity;
      continue;
    }
    const t = expectedTimeMs(edges, e, chunkBytes);
    const timeFactor = !Number.isFinite(t) ? 1 : maxTime > 0 ? Math.min(t / maxTime, 1) : 0;
    const load = edges.queueDepth[e] / edges.maxParallel[e];
    const healthFactor = 1 - Math.min(1, Math.max(0, edges.health[e]));
    const metered = (edges.flags[e] & EdgeFlags.METERED) !== 0 ? 1 : 0;
    const battery = (edges.flags[e] & EdgeFlags.BATTERY_LOW) !== 0 ? 1 : 0;
    cost[e] =
      w.time * timeFactor +
      w.load * load * load +
      w.health * healthFactor +
      w.metered * metered +
      w.battery * battery;
    order.push(e);
  }
  order.sort((a, b) => cost[a] - cost[b] || a - b);
  const rank = new Int32Array(n).fill(INF_RANK);
  const edgeOfRank = new Uint16Array(n);
  for (let r = 0; r < order.length; r++) {
    rank[order[r]] = r;
    edgeOfRank[r] = order[r];
  }
  return { cost, rank, edgeOfRank, usable: order.length };
}
