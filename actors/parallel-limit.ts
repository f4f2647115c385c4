/**
 * How many chunk fetches a transfer keeps in flight on each edge, below the edge's configured max_parallel: as
 * many as the edge delivers in about `targetMs`, and at least `min`.
 *
 * Fetches on one edge share its bottleneck (an uplink, a token bucket, a server's cap): beyond what fills it,
 * more parallel fetches only split the same rate into slower chunks. Each one then takes longer, and what is
 * in flight when the edge dies, or when the transfer ends with its last chunks on a slow edge, is that much
 * more to lose or to hedge: with 8 × 1 MiB in flight on a 2 MB/s mirror every chunk takes 4 s, and the
 * transfer's tail waits on them. A fast edge, on the other hand, needs enough in flight to ride out a late
 * dispatch (a busy main thread, a round trip). Sizing the window by time covers both: ⌊R · targetMs / chunk⌋
 * fetches hold `targetMs` of the edge's delivered rate R. Where a cap is per connection instead (a server's
 * per-request limit, TCP windows on a long path), R grows with the fetches in flight and the window with it.
 * R is measured from completions while the edge is saturated (every allowed slot busy): a completion of
 * `bytes` after `transferMs` with n fetches in flight gives n · bytes / transferMs, averaged by an EMA.
 * Kept here because it is scheduling policy (an input of the scheduler: max_parallel per edge), not a
 * library concern. Pure: every method takes what it needs.
 */
export interface ParallelLimitOptions {
  /** Time of an edge's delivered rate to keep in flight on it, ms (default 1000). */
  targetMs?: number;
  /** Fewest fetches per edge: one transferring while the next request's round trip passes (default 2). */
  min?: number;
  /** Fetches per edge before its first measurement (default 4). */
  initial?: number;
  /** EMA weight of a new rate sample (default 0.25). */
  alpha?: number;
}

interface EdgeLimit {
  limit: number;
  /** EMA of the edge's delivered rate, bytes/ms (0: not measured yet). */
  rate: number;
}

/**
 * The cap a transfer takes for an edge that sets no limit: EdgeConfig.maxParallel 0 means "no limit"
 * (api/schemas/EdgeActor.json), and the adaptive limit below (sized by the edge's delivered rate) then decides alone;
 * this bound (the most `--edge URL#max=N` accepts, cli/edge-spec.ts MAX_PARALLEL) only keeps the scheduler's tables
 * finite.
 */
export const NO_LIMIT_PARALLEL = 1024;

/**
 * An edge's configured max_parallel (EdgeConfig/EdgeView.maxParallel, an integer ≥ 0) as the cap a transfer applies:
 * 0 (no limit) is NO_LIMIT_PARALLEL, anything else itself. Without this an edge configured with 0 was never asked.
 */
export function edgeParallelCap(maxParallel: number): number {
  return maxParallel === 0 ? NO_LIMIT_PARALLEL : maxParallel;
}

/** Per-edge parallel-fetch limits of one transfer (see the module comment). */
export class ParallelLimits {
  private readonly edges: EdgeLimit[] = [];
  private readonly targetMs: number;
  private readonly min: number;
  private readonly initial: number;
  private readonly alpha: number;

  constructor(o: ParallelLimitOptions = {}) {
    this.targetMs = o.targetMs ?? 1000;
    this.min = o.min ?? 2;
    this.initial = o.initial ?? 4;
    this.alpha = o.alpha ?? 0.25;
  }

  /** The fetches edge `edge` may have in flight: its limit, at most `configured` (0, a gated edge, stays 0). */
  limit(edge: number, configured: number): number {
    return Math.min(configured, this.state(edge).limit);
  }

  /** The edge's measured delivered rate, bytes/s (0 before its first saturated completion). */
  rateBytesPerSec(edge: number): number {
    return this.state(edge).rate * 1000;
  }

  /**
   * A chunk from `edge` completed: `bytes` (a chunk of `chunkBytes`) in `transferMs`, with `inFlight` fetches on
   * the edge just before it (this one included) and max_parallel `configured`. Returns true when the edge's
   * limit changed (the caller passes it on to the scheduler).
   */
  onComplete(
    edge: number,
    bytes: number,
    transferMs: number,
    inFlight: number,
    configured: number,
    chunkBytes: number,
  ): boolean {
    const s = this.state(edge);
    // an edge short of chunks (fewer in flight than allowed) says nothing about its capacity
    if (inFlight < Math.min(configured, s.limit) || !(transferMs > 0) || !(bytes > 0)) return false;
    const sample = (inFlight * bytes) / transferMs;
    s.rate = s.rate === 0 ? sample : this.alpha * sample + (1 - this.alpha) * s.rate;
    const before = s.limit;
    s.limit = this.sized(s.rate, chunkBytes);
    return Math.min(configured, s.limit) !== Math.min(configured, before);
  }

  /**
   * Starts edge `edge` from a delivered rate measured before (`rateBytesPerSec`, bytes/s, as rateBytesPerSec
   * gave it; a transfer resumed after a crash journals them) instead of `initial`: its limit is what that rate
   * sizes, as after a measurement, and new samples average into it. A rate that is not a positive finite number
   * is ignored.
   */
  seed(edge: number, rateBytesPerSec: number, chunkBytes: number): void {
    if (!(rateBytesPerSec > 0) || !Number.isFinite(rateBytesPerSec)) return;
    const s = this.state(edge);
    s.rate = rateBytesPerSec / 1000;
    s.limit = this.sized(s.rate, chunkBytes);
  }

  /** The fetches that hold `targetMs` of a delivered rate of `rate` bytes/ms, at least `min`. */
  private sized(rate: number, chunkBytes: number): number {
    return Math.max(this.min, Math.floor((rate * this.targetMs) / Math.max(1, chunkBytes)));
  }

  private state(edge: number): EdgeLimit {
    return (this.edges[edge] ??= { limit: this.initial, rate: 0 });
  }
}

/** What tailGate needs to know about one edge. */
export interface TailEdge {
  /** Fetches in flight on the edge now. */
  inFlight: number;
  /** Its measured delivered rate, bytes/s (0: not measured; such an edge is never gated). */
  rateBytesPerSec: number;
  /** It can take fetches (available, not gated to 0 by something else). */
  usable: boolean;
  /** It holds every chunk (a mirror): another such edge can take over whatever a gated one would have done. */
  holdsAll: boolean;
  /**
   * A pending chunk has no other edge that can take it (the others are down, closed, or excluded for it after
   * failing it, e.g. with a hash mismatch): such an edge is never gated.
   */
  needed?: boolean;
}

/**
 * The end of a transfer: which edges should take no new fetch because one more chunk would finish there after
 * the whole transfer could be done by all edges together. With `remainingBytes` left (pending and in flight)
 * and ΣR the summed measured rates, the transfer needs about remainingBytes / ΣR more; a chunk newly given to
 * edge e finishes after about (inFlight_e + 1) · chunkBytes / R_e (its fetches share its rate). When that is
 * later, the chunk is better left to a faster edge, and the slow edge's last fetches do not hold up the end
 * (the endgame's hedges only start once nothing is pending, by when the slow edge has taken its share).
 * Only edges that hold every chunk are gated, and only while another usable edge that holds every chunk is
 * not gated; an edge `needed` by a chunk no open edge may serve (holding every chunk is not enough: a mirror that
 * sent a chunk's bytes wrong is excluded for that chunk) is never gated. So a chunk is never left waiting for a
 * gated edge. Returns one flag per edge.
 */
export function tailGate(edges: readonly TailEdge[], remainingBytes: number, chunkBytes: number): boolean[] {
  const total = edges.reduce((a, e) => a + (e.usable ? e.rateBytesPerSec : 0), 0);
  const gated = edges.map(() => false);
  if (!(total > 0) || remainingBytes <= 0) return gated;
  const restSec = remainingBytes / total;
  edges.forEach((e, i) => {
    if (!e.usable || !e.holdsAll || e.needed === true || !(e.rateBytesPerSec > 0)) return;
    gated[i] = ((e.inFlight + 1) * chunkBytes) / e.rateBytesPerSec > restSec;
  });
  // at least one usable edge that holds everything keeps taking fetches: the fastest of them
  const open = edges.some((e, i) => e.usable && e.holdsAll && !gated[i]);
  if (!open) {
    let best = -1;
    edges.forEach((e, i) => {
      if (e.usable && e.holdsAll && (best < 0 || e.rateBytesPerSec > edges[best].rateBytesPerSec)) best = i;
    });
    if (best >= 0) gated[best] = false;
  }
  // an edge that does not hold everything is never gated, so its chunks are never stranded
  return gated;
}
