import { PortalError, checkArg } from '../common/errors.js';
import {
  createChunkTable,
  createEdgeTable,
  hasCandidate,
  setCandidate,
  type ChunkTable,
  type EdgeTable,
} from './tables.js';
import {
  ChunkPriority,
  ChunkStatus,
  NO_EDGE,
  INF_RANK,
  defaultSchedulerConfig,
  type SchedulerConfig,
} from './types.js';
import { rankEdges, expectedTimeMs, edgeUsable, type EdgeRanking } from './kernels/cost.js';
import { rankChunk, rankChunks } from './kernels/k-best.js';
import {
  detectFailures,
  failoverAssign,
  FailureCause,
  FailoverOutcome,
  type FailoverCounts,
} from './kernels/failures.js';
import { loadBalance, generateDispatch, type ScanOrder } from './kernels/dispatch.js';

/** What a transfer looks like to the scheduler. */
export interface TransferShape {
  chunks: number;
  /** Nominal chunk size in bytes (the cost model's transfer time uses it). */
  chunkBytes: number;
  /** Edge slots; edges beyond those known at start can join later in unused slots. */
  edgeCapacity: number;
  /**
   * Allocate the chunk table on SharedArrayBuffer, so that a parallel tick engine
   * (createParallelCpuTickEngine) can rank it from worker threads in place. Default false: an
   * unshared table is ranked on the calling thread.
   */
  sharedMemory?: boolean;
  /**
   * Most chunks one re-rank visits (default RANK_WINDOW). A transfer of more chunks is re-ranked in windows of
   * the scheduling order instead of all at once: a full re-rank (an edge came online, a bandwidth moved) ranks the
   * next `rankWindow` chunks from the first pending one, and later ticks rank further ahead as the scan reaches
   * the second half of what is ranked. Chunks beyond the window keep their last ranking (dispatch still checks
   * their edges live and spills) or, never ranked, wait. A tick then costs O(window), not O(chunks).
   */
  rankWindow?: number;
}

/** Default TransferShape.rankWindow: 262,144 chunks (a transfer up to that size is re-ranked whole). */
export const RANK_WINDOW = 262_144;

/** Edge attributes the scheduler takes from estimators and telemetry. */
export interface EdgeUpdate {
  bandwidth?: number;
  rtt?: number;
  health?: number;
  available?: boolean;
  flags?: number;
  maxParallel?: number;
  timeoutMs?: number;
}

/** One dispatch decided by a tick. */
export interface Dispatch {
  chunk: number;
  edge: number;
  attempt: number;
  deadline: number;
  hedge: boolean;
}

/** One fetch the scheduler wants aborted (hedge loser, timed-out attempt). */
export interface Cancel {
  chunk: number;
  edge: number;
  attempt: number;
}

/** What one tick did; times in ms. */
export interface TickResult {
  now: number;
  fullRerank: boolean;
  ranked: number;
  failed: number;
  failover: FailoverCounts;
  moved: number;
  dispatch: Dispatch[];
  cancels: Cancel[];
  hedges: number;
  phaseMs: {
    rank: number;
    detect: number;
    failover: number;
    balance: number;
    dispatch: number;
    total: number;
  };
}

/**
 * A replacement for the rank phase of a tick (e.g. the WebGPU k_best kernel): must leave the table
 * exactly as `rankChunks(t, ranking, chunks, count)` would (all chunks when `chunks` is undefined)
 * and return the same count.
 */
export type RankPhase = (
  t: ChunkTable,
  ranking: EdgeRanking,
  chunks: Uint32Array | undefined,
  count: number,
) => number;

/** Optional hooks of `ChunkScheduler.tick`; without them the tick runs the CPU reference kernels. */
export interface TickHooks {
  rank?: RankPhase;
}

/**
 * One kernel call of a tick, as `ChunkScheduler.tickPhases` hands it to its driver. The driver
 * must answer with exactly what the CPU reference (`runTickPhase`) would return and leave the
 * tables exactly as it would; it may take its time (e.g. await a GPU) as long as nothing else
 * mutates the scheduler meanwhile.
 */
export type TickPhase =
  | { kind: 'rank'; t: ChunkTable; ranking: EdgeRanking; chunks: Uint32Array | undefined; count: number }
  | {
      kind: 'detect';
      t: ChunkTable;
      edges: EdgeTable;
      now: number;
      inFlight: Uint32Array;
      count: number;
      outIds: Uint32Array;
      outCauses: Uint8Array;
    }
  | {
      kind: 'failover';
      t: ChunkTable;
      edges: EdgeTable;
      ranking: EdgeRanking;
      failed: Uint32Array;
      count: number;
      maxAttempts: number;
      outcome: Uint8Array;
    }
  | {
      kind: 'balance';
      t: ChunkTable;
      edges: EdgeTable;
      ranking: EdgeRanking;
      scan: ScanOrder;
      over: number;
      under: number;
    }
  | {
      kind: 'dispatch';
      t: ChunkTable;
      edges: EdgeTable;
      ranking: EdgeRanking;
      scan: ScanOrder;
      now: number;
      limit: number;
      nextAttempt: number;
      out: Uint32Array;
    };

/** What a driver answers to each TickPhase (rank, detect, balance: a count). */
export type TickPhaseResult = number | FailoverCounts | { count: number; spilled: number };

/** Runs one phase on the CPU reference kernels (what `tick()` does for every phase without a hook). */
export function runTickPhase(p: TickPhase): TickPhaseResult {
  switch (p.kind) {
    case 'rank':
      return p.chunks ? rankChunks(p.t, p.ranking, p.chunks, p.count) : rankChunks(p.t, p.ranking);
    case 'detect':
      return detectFailures(p.t, p.edges, p.now, p.inFlight, p.count, p.outIds, p.outCauses);
    case 'failover':
      return failoverAssign(p.t, p.edges, p.ranking, p.failed, p.count, p.maxAttempts, p.outcome);
    case 'balance':
      return loadBalance(p.t, p.edges, p.ranking, p.scan, p.over, p.under);
    case 'dispatch':
      return generateDispatch(p.t, p.edges, p.ranking, p.scan, p.now, p.limit, p.nextAttempt, p.out);
  }
}

/** The outcome of one report. */
export type ReportOutcome = 'completed' | 'failed' | 'hedge-failed' | 'promoted' | 'stale' | 'duplicate';

/** A completion or failure coming back from an executor. */
export interface ReportInput {
  chunk: number;
  attempt: number;
  edge: number;
  ok: boolean;
  reason?: string;
}

interface Hedge {
  edge: number;
  attempt: number;
  deadline: number;
  dispatchedAt: number;
}

/** A SchedulerCounters with every counter at zero. */
export function zeroCounters(): SchedulerCounters {
  return {
    dispatched: 0,
    completed: 0,
    failures: 0,
    failovers: 0,
    recomputed: 0,
    timeouts: 0,
    corrupt: 0,
    hedges: 0,
    hedgeWins: 0,
    moved: 0,
    spilled: 0,
    fullReranks: 0,
    staleReports: 0,
    forgiven: 0,
    preempted: 0,
  };
}

/** Counters over the life of the scheduler. */
export interface SchedulerCounters {
  dispatched: number;
  completed: number;
  failures: number;
  failovers: number;
  recomputed: number;
  timeouts: number;
  corrupt: number;
  hedges: number;
  hedgeWins: number;
  moved: number;
  spilled: number;
  fullReranks: number;
  staleReports: number;
  /** Chunks that got excluded edges back because nothing else could serve them. */
  forgiven: number;
  /**
   * Fetches cancelled (back to pending) to give their edge to other work: NORMAL or BACKGROUND chunks to a
   * DEMAND chunk, or a background task's chunks to a foreground transfer (`preemptEdge`).
   */
  preempted: number;
}

/**
 * DEMAND fetches one edge runs at once. Fetches on one edge share its bandwidth: k at once each take k × the
 * time of one alone and end together, so a reader's chunks sent all at once would all arrive late. Two keep
 * them ending in the order they are needed (the next one's request overlaps the last bytes of the one
 * before, hiding the round trip) at the edge's whole throughput.
 */
export const DEMAND_PER_EDGE = 2;

/**
 * The chunk scheduler of one transfer (docs/architecture.md, "The tick"): owns the chunk and edge tables and runs the
 * tick — sync → rank (fused cost + K-best, incremental) → detect_failures → failover →
 * load_balance → generate_dispatch → endgame hedging. Pure apart from the tables: no I/O, no
 * clock (`now` is passed in, ms since the transfer's epoch), no logger.
 */
export class ChunkScheduler {
  readonly chunks: ChunkTable;
  readonly edges: EdgeTable;
  readonly config: SchedulerConfig;
  readonly chunkBytes: number;
  readonly counters: SchedulerCounters = zeroCounters();

  private ranking: EdgeRanking;
  private nextAttempt = 1;
  private readonly dirtyFlag: Uint8Array;
  private dirty: Uint32Array;
  private dirtyCount = 0;
  private needFull = true;
  private readonly rankWindow: number;
  /** With windowed re-ranks: scan positions [scanStart, rankedTo) hold chunks ranked since the last full re-rank. */
  private rankedTo = 0;
  private windowed = false;
  private readonly rerankBandwidth: Float64Array;
  private readonly rerankAvailable: Uint8Array;
  private readonly inFlight = new Set<number>();
  private readonly reportedFailed: number[] = [];
  private readonly pairFailures = new Map<number, number>();
  private readonly excluded = new Set<number>();
  private readonly corruptExcluded = new Set<number>();
  /** Pairs (chunk × edges + edge) excluded only after a transient failure (`unreachable`: refused, reset). */
  private readonly transientExcluded = new Set<number>();
  private readonly forgivenPairs = new Set<number>();
  private readonly hedges = new Map<number, Hedge>();
  private readonly pendingCancels: Cancel[] = [];
  /** Chunks at DEMAND priority or above that are not complete (few: the bytes readers wait for). */
  private readonly demanded = new Set<number>();
  /** The turn of each demanded chunk (setPriority): within one priority, lower turns are dispatched first. */
  private readonly turns = new Map<number, number>();
  /** The highest turn the DEMAND dispatch has sent (servedTurn). */
  private lastServedTurn = 0;
  /** DEMAND chunks in flight, by the edge they run on (that edge takes nothing below DEMAND meanwhile). */
  private readonly demandOn = new Map<number, number>();
  /** Each edge's measured throughput, all its fetches together (bytes/s; 0: not measured), by edge index. */
  private readonly throughput: number[] = [];
  private order: Uint32Array | undefined;
  private orderStale = false;
  private uniformPriority = true;
  private scanStart = 0;
  private completeCount = 0;
  private permanentCount = 0;
  /** Scratch of the detect and failover phases, sized to the chunks in flight (not to the transfer). */
  private failIds: Uint32Array;
  private failCauses: Uint8Array;
  private outcome: Uint8Array;
  private dispatchOut: Uint32Array;
  private readonly scratchK: Int32Array;

  /**
   * `firstAttempt` seeds the attempt ids: a scheduler rebuilt after a restart should start where
   * no report of the previous incarnation can match (reports of old attempts are then 'stale').
   */
  /** The attempt id the next dispatch gets: every attempt issued so far is below it (mod 2^32). */
  get nextAttemptId(): number {
    return this.nextAttempt;
  }

  constructor(shape: TransferShape, config: Partial<SchedulerConfig> = {}, firstAttempt = 1) {
    checkArg(Number.isInteger(shape.chunkBytes) && shape.chunkBytes > 0, 'chunkBytes', 'a positive integer');
    this.config = {
      ...defaultSchedulerConfig,
      ...config,
      weights: { ...defaultSchedulerConfig.weights, ...config.weights },
    };
    const c = this.config;
    checkArg(
      c.overloadThreshold > c.underloadThreshold,
      'overloadThreshold',
      'greater than underloadThreshold',
    );
    checkArg(
      Number.isInteger(c.maxDispatchPerTick) && c.maxDispatchPerTick > 0,
      'maxDispatchPerTick',
      'a positive integer',
    );
    checkArg(
      Number.isInteger(c.perEdgeRetryLimit) && c.perEdgeRetryLimit >= 1,
      'perEdgeRetryLimit',
      'an integer ≥ 1',
    );
    this.chunks = createChunkTable(shape.chunks, shape.edgeCapacity, c.k, {
      shared: shape.sharedMemory === true,
    });
    this.edges = createEdgeTable(shape.edgeCapacity);
    this.chunkBytes = shape.chunkBytes;
    this.rankWindow = shape.rankWindow ?? RANK_WINDOW;
    checkArg(Number.isInteger(this.rankWindow) && this.rankWindow >= 1, 'rankWindow', 'a positive integer');
    this.dirtyFlag = new Uint8Array(shape.chunks);
    this.dirty = new Uint32Array(Math.min(shape.chunks, 1024));
    this.rerankBandwidth = new Float64Array(shape.edgeCapacity);
    this.rerankAvailable = new Uint8Array(shape.edgeCapacity);
    this.ranking = rankEdges(this.edges, this.chunkBytes, this.config);
    const scratch = Math.max(1, Math.min(shape.chunks, 1024));
    this.failIds = new Uint32Array(scratch);
    this.failCauses = new Uint8Array(scratch);
    this.outcome = new Uint8Array(scratch);
    this.dispatchOut = new Uint32Array(c.maxDispatchPerTick);
    this.nextAttempt = firstAttempt >>> 0 || 1;
    this.scratchK = new Int32Array(c.k);
  }

  // ---- sync: inputs between ticks ------------------------------------------------------------

  /** Declares that `edge` holds (or no longer holds) `chunk`. An edge excluded for the chunk stays excluded. */
  setAvailability(chunk: number, edge: number, has: boolean): void {
    this.checkChunk(chunk);
    this.checkEdge(edge);
    if (has && this.excluded.has(chunk * this.edges.e + edge)) return;
    if (hasCandidate(this.chunks, chunk, edge) === has) return;
    setCandidate(this.chunks, chunk, edge, has);
    if (has && this.chunks.status[chunk] === ChunkStatus.FAILED_PERMANENT) {
      this.chunks.status[chunk] = ChunkStatus.PENDING;
      this.chunks.retries[chunk] = 0;
      this.permanentCount--;
      if (this.scanStart > 0) this.scanStart = 0;
    }
    this.markDirty(chunk);
  }

  /**
   * Declares that `edge` holds every chunk (an edge with the whole file): one pass over the candidate bits and a
   * full re-rank at the next tick, instead of `setAvailability` per chunk (which queues each chunk for re-ranking).
   * Chunks for which the edge is excluded stay excluded.
   */
  setEdgeHoldsAll(edge: number): void {
    this.checkEdge(edge);
    const t = this.chunks;
    const E = this.edges.e;
    const word = edge >>> 5;
    const bit = 1 << (edge & 31);
    const anyExcluded = this.excluded.size > 0;
    for (let c = 0; c < t.n; c++) {
      if (anyExcluded && this.excluded.has(c * E + edge)) continue;
      const i = c * t.words + word;
      t.candidates[i] = (t.candidates[i] | bit) >>> 0;
      if (t.status[c] === ChunkStatus.FAILED_PERMANENT) {
        t.status[c] = ChunkStatus.PENDING;
        t.retries[c] = 0;
        this.permanentCount--;
        this.scanStart = 0;
      }
    }
    this.needFull = true;
  }

  /** Declares every chunk `edge` holds from a bitmap (bit i = chunk i, little-endian bytes). */
  setEdgeHoldings(edge: number, bitmap: Uint8Array): void {
    this.checkEdge(edge);
    checkArg(bitmap.length * 8 >= this.chunks.n, 'bitmap', `at least ${this.chunks.n} bits`);
    for (let c = 0; c < this.chunks.n; c++)
      this.setAvailability(c, edge, ((bitmap[c >>> 3] >>> (c & 7)) & 1) === 1);
  }

  /** Marks a chunk complete without fetching it (resume from a journal). */
  markComplete(chunk: number): void {
    this.checkChunk(chunk);
    const s = this.chunks.status[chunk];
    if (s === ChunkStatus.COMPLETE) return;
    if (s === ChunkStatus.IN_FLIGHT)
      throw new PortalError('PORTAL_INVALID_ARGUMENT', `chunk ${chunk} is in flight; report it instead`);
    if (s === ChunkStatus.FAILED_PERMANENT) this.permanentCount--;
    this.chunks.status[chunk] = ChunkStatus.COMPLETE;
    this.chunks.assigned[chunk] = NO_EDGE;
    this.completeCount++;
  }

  /**
   * Sets a chunk's priority (higher is dispatched first) and, at DEMAND or above, its `turn` (≥ 0, default 0): the
   * DEMAND dispatch sends the chunks of one priority in turn order, then in chunk order (AccessTracker gives
   * concurrent readers' chunks alternating turns). Throws PORTAL_INVALID_ARGUMENT for a non-finite priority or a
   * negative or non-finite turn, PORTAL_UNKNOWN_CHUNK for a chunk out of range.
   */
  setPriority(chunk: number, priority: number, turn = 0): void {
    this.checkChunk(chunk);
    checkArg(Number.isFinite(priority), 'priority', 'a finite number');
    checkArg(Number.isFinite(turn) && turn >= 0, 'turn', 'a finite number ≥ 0');
    if (priority >= ChunkPriority.DEMAND) {
      if (this.chunks.status[chunk] !== ChunkStatus.COMPLETE) {
        this.demanded.add(chunk);
        this.turns.set(chunk, turn);
      }
    } else this.dropDemand(chunk);
    if (this.chunks.priority[chunk] === Math.fround(priority)) return;
    this.chunks.priority[chunk] = priority;
    this.uniformPriority = false;
    this.orderStale = true;
  }

  /**
   * Sets edge `edge`'s measured throughput: bytes/s of all its fetches together, as its recent completions
   * show (0: not measured). Only the DEMAND dispatch and the endgame's choice of a hedge's edge read it: a
   * pre-empted edge gives a demanded chunk its whole throughput, and an edge whose own fetches have ended
   * gives a hedge the same, which the per-fetch `bandwidth` estimate (a share, while the edge runs several
   * fetches at once) does not tell. Ranking and the dispatch kernel do not use it.
   */
  setEdgeThroughput(edge: number, bytesPerSec: number): void {
    this.checkEdge(edge);
    checkArg(bytesPerSec >= 0 && Number.isFinite(bytesPerSec), 'bytesPerSec', 'a finite number ≥ 0');
    this.throughput[edge] = bytesPerSec;
  }

  /**
   * Expected milliseconds of one chunk from edge `e` when it has the edge to itself: chunk / throughput +
   * RTT with a measured throughput, else the per-fetch estimate (expectedTimeMs).
   */
  soloChunkMs(e: number): number {
    const tp = this.throughput[e] ?? 0;
    return tp > 0
      ? (this.chunkBytes / tp) * 1000 + this.edges.rtt[e]
      : expectedTimeMs(this.edges, e, this.chunkBytes);
  }

  /**
   * Expected milliseconds of one more chunk on edge `e` beside the `queueDepth[e]` fetches running there: with a
   * measured throughput (setEdgeThroughput) its share, chunk · (queueDepth + 1) / throughput + RTT, or the
   * per-fetch estimate (expectedTimeMs) where that is sooner or nothing is measured. The per-fetch estimate
   * alone is the edge's rate split among the fetches it ran while busy: at a transfer's end, when an edge's
   * own fetches have finished, a new one there gets the whole rate. A 12 MB/s mirror that ran 11 × 1 MiB
   * at once measures ~1.1 MB/s per fetch (≈ 950 ms a chunk) yet delivers one chunk alone in ~90 ms; the
   * endgame uses this to see that a tail chunk on a 2 MB/s mirror is worth duplicating there.
   */
  hedgeChunkMs(e: number): number {
    const perFetch = expectedTimeMs(this.edges, e, this.chunkBytes);
    const tp = this.throughput[e] ?? 0;
    if (!(tp > 0)) return perFetch;
    const shared = ((this.chunkBytes * (this.edges.queueDepth[e] + 1)) / tp) * 1000 + this.edges.rtt[e];
    return Math.min(perFetch, shared);
  }

  /**
   * Updates an edge. Coming online, going offline and a bandwidth move beyond
   * `significantBandwidthChange` since the last full re-rank trigger a full re-rank (docs/architecture.md, "Estimators").
   */
  updateEdge(edge: number, u: EdgeUpdate): void {
    this.checkEdge(edge);
    const t = this.edges;
    const wasUsable = edgeUsable(t, edge);
    if (u.bandwidth !== undefined) {
      checkArg(u.bandwidth >= 0 && Number.isFinite(u.bandwidth), 'bandwidth', 'a finite number ≥ 0');
      t.bandwidth[edge] = u.bandwidth;
    }
    if (u.rtt !== undefined) {
      checkArg(u.rtt >= 0 && Number.isFinite(u.rtt), 'rtt', 'a finite number ≥ 0');
      t.rtt[edge] = u.rtt;
    }
    if (u.health !== undefined) {
      checkArg(u.health >= 0 && u.health <= 1, 'health', 'a number in [0, 1]');
      t.health[edge] = u.health;
    }
    if (u.flags !== undefined) t.flags[edge] = u.flags >>> 0;
    if (u.maxParallel !== undefined) {
      checkArg(Number.isInteger(u.maxParallel) && u.maxParallel >= 0, 'maxParallel', 'an integer ≥ 0');
      t.maxParallel[edge] = u.maxParallel;
    }
    if (u.timeoutMs !== undefined) {
      checkArg(u.timeoutMs > 0, 'timeoutMs', 'a positive number');
      t.timeoutMs[edge] = u.timeoutMs;
    }
    if (u.available !== undefined) t.available[edge] = u.available ? 1 : 0;
    if (t.available[edge] !== this.rerankAvailable[edge]) this.needFull = true;
    // max_parallel to or from 0 (a background task's gate) changes whether the edge can be ranked at all:
    // chunks ranked while it could not be have it nowhere in their backups
    if (edgeUsable(t, edge) !== wasUsable) this.needFull = true;
    const base = this.rerankBandwidth[edge];
    const bw = t.bandwidth[edge];
    if (
      t.available[edge] === 1 &&
      (base === 0 ? bw > 0 : Math.abs(bw - base) / base > this.config.significantBandwidthChange)
    )
      this.needFull = true;
  }

  /**
   * Cancels the fetches in flight on `edge` (primaries and hedges) of chunks whose priority is below
   * `belowPriority`, so the edge's bandwidth goes to other work: each such chunk goes back to PENDING (a
   * hedge of it on another edge carries on as its fetch), its attempt id goes stale, and its cancel goes out
   * in the next tick's `cancels`; the edge's slots are released. Cancelling costs the chunk no attempt and
   * excludes no edge. Returns how many fetches were cancelled (also counted in `counters.preempted`).
   * Throws PORTAL_INVALID_ARGUMENT for an edge index out of range.
   */
  preemptEdge(edge: number, belowPriority: number = ChunkPriority.READ_AHEAD): number {
    this.checkEdge(edge);
    const before = this.pendingCancels.length;
    this.preemptOn(edge, belowPriority, this.pendingCancels);
    return this.pendingCancels.length - before;
  }

  /** Requests a full re-rank at the next tick (e.g. a time-of-day schedule change). */
  requestFullRerank(): void {
    this.needFull = true;
  }

  /**
   * Applies an executor's report. Idempotent: a report whose attempt is not the chunk's current
   * attempt (or its hedge) is `stale`, one for a complete chunk is `duplicate`; neither changes
   * anything. A corrupt chunk excludes that edge for that chunk at once; other failures count
   * towards `perEdgeRetryLimit`.
   */
  report(r: ReportInput): ReportOutcome {
    this.checkChunk(r.chunk);
    this.checkEdge(r.edge);
    const t = this.chunks;
    const c = r.chunk;
    if (t.status[c] === ChunkStatus.COMPLETE) {
      this.counters.staleReports++;
      return 'duplicate';
    }
    const hedge = this.hedges.get(c);
    const isPrimary =
      t.status[c] === ChunkStatus.IN_FLIGHT && t.attempt[c] === r.attempt && t.assigned[c] === r.edge;
    const isHedge = hedge !== undefined && hedge.attempt === r.attempt && hedge.edge === r.edge;
    if (!isPrimary && !isHedge) {
      this.counters.staleReports++;
      return 'stale';
    }
    if (r.ok) {
      this.release(r.edge);
      if (isPrimary && hedge) {
        this.release(hedge.edge);
        this.pendingCancels.push({ chunk: c, edge: hedge.edge, attempt: hedge.attempt });
      }
      if (isHedge) {
        this.release(t.assigned[c]);
        this.pendingCancels.push({ chunk: c, edge: t.assigned[c], attempt: t.attempt[c] });
        this.counters.hedgeWins++;
      }
      this.hedges.delete(c);
      this.complete(c);
      return 'completed';
    }
    this.counters.failures++;
    if (r.reason === 'corrupt') this.counters.corrupt++;
    this.recordPairFailure(c, r.edge, r.reason);
    this.release(r.edge);
    if (isHedge) {
      this.hedges.delete(c);
      return 'hedge-failed';
    }
    if (hedge) {
      this.promoteHedge(c, hedge);
      return 'promoted';
    }
    t.status[c] = ChunkStatus.FAILED;
    this.inFlight.delete(c);
    this.reportedFailed.push(c);
    return 'failed';
  }

  // ---- the tick ------------------------------------------------------------------------------

  /**
   * What the next tick's rank phase will re-rank: every chunk (`full`), or the `count` dirty chunks
   * in `chunks` (a view valid until the next mutation of the scheduler).
   */
  rankWork(): { full: boolean; chunks: Uint32Array | undefined; count: number } {
    const w = this.windowPlan();
    if (w) {
      const list = this.windowList(w.from, w.to);
      return { full: this.needFull, chunks: list, count: list.length };
    }
    return this.needFull
      ? { full: true, chunks: undefined, count: this.chunks.n }
      : { full: false, chunks: this.dirty.subarray(0, this.dirtyCount), count: this.dirtyCount };
  }

  /**
   * The scan positions [from, to) the next tick ranks as a window, or undefined when it ranks everything (a full
   * re-rank of a transfer within rankWindow) or only the dirty chunks.
   */
  private windowPlan(): { from: number; to: number } | undefined {
    const n = this.chunks.n;
    const W = this.rankWindow;
    if (n <= W) return undefined;
    const to = Math.min(n, this.scanStart + W);
    if (this.needFull) return { from: this.scanStart, to };
    if (!this.windowed || this.rankedTo >= n || this.rankedTo - this.scanStart >= W / 2) return undefined;
    return { from: Math.max(this.rankedTo, this.scanStart), to };
  }

  /** Chunk ids at scan positions [from, to) in the current order, then the dirty chunks (ranking twice is harmless). */
  private windowList(from: number, to: number): Uint32Array {
    const o = this.uniformPriority ? undefined : this.order;
    const list = new Uint32Array(to - from + this.dirtyCount);
    for (let i = from; i < to; i++) list[i - from] = o ? o[i] : i;
    list.set(this.dirty.subarray(0, this.dirtyCount), to - from);
    return list;
  }

  /** Runs one scheduler tick at `now` (ms since the transfer's epoch); `hooks.rank` replaces the rank phase. */
  tick(now: number, hooks: TickHooks = {}): TickResult {
    const g = this.tickPhases(now);
    let step = g.next();
    while (!step.done) {
      const p = step.value;
      step = g.next(
        p.kind === 'rank' && hooks.rank ? hooks.rank(p.t, p.ranking, p.chunks, p.count) : runTickPhase(p),
      );
    }
    return step.value;
  }

  /**
   * The tick as a sequence of kernel calls: yields each TickPhase (rank, detect, failover, balance,
   * dispatch) and expects the driver to pass back its result through `next()`; returns the
   * TickResult. `tick()` drives it with the CPU reference; an asynchronous driver (the WebGPU tick
   * engine) may run any phase elsewhere, provided the scheduler is not mutated until it is done.
   */
  *tickPhases(now: number): Generator<TickPhase, TickResult, TickPhaseResult> {
    checkArg(Number.isFinite(now) && now >= 0, 'now', 'ms since the transfer epoch, ≥ 0');
    now = Math.min(0xffffffff, Math.floor(now));
    const t0 = performance.now();
    const t = this.chunks;
    this.ranking = rankEdges(this.edges, this.chunkBytes, this.config);
    const full = this.needFull;
    const win = this.windowPlan();
    let ranked: number;
    if (win) {
      const list = this.windowList(win.from, win.to);
      ranked = (yield { kind: 'rank', t, ranking: this.ranking, chunks: list, count: list.length }) as number;
      this.windowed = true;
      this.rankedTo = win.to;
      if (full) {
        this.needFull = false;
        this.rerankBandwidth.set(this.edges.bandwidth);
        this.rerankAvailable.set(this.edges.available);
        this.counters.fullReranks++;
      }
    } else if (full) {
      ranked = (yield { kind: 'rank', t, ranking: this.ranking, chunks: undefined, count: t.n }) as number;
      this.needFull = false;
      this.rerankBandwidth.set(this.edges.bandwidth);
      this.rerankAvailable.set(this.edges.available);
      this.counters.fullReranks++;
    } else {
      ranked = (yield {
        kind: 'rank',
        t,
        ranking: this.ranking,
        chunks: this.dirty,
        count: this.dirtyCount,
      }) as number;
    }
    for (let i = 0; i < this.dirtyCount; i++) this.dirtyFlag[this.dirty[i]] = 0;
    this.dirtyCount = 0;
    // a start or a bitmap that touched many chunks grew the queue: give that memory back
    if (this.dirty.length > 4096) this.dirty = new Uint32Array(1024);
    const t1 = performance.now();

    // detect_failures over the in-flight set (ascending ids), then explicit failure reports.
    const ids = Uint32Array.from(this.inFlight).sort();
    this.ensureFailCapacity(ids.length + this.reportedFailed.length);
    let failed = (yield {
      kind: 'detect',
      t,
      edges: this.edges,
      now,
      inFlight: ids,
      count: ids.length,
      outIds: this.failIds,
      outCauses: this.failCauses,
    }) as number;
    const cancels: Cancel[] = this.pendingCancels.splice(0);
    let kept = 0;
    for (let i = 0; i < failed; i++) {
      const c = this.failIds[i];
      const e = t.assigned[c];
      this.inFlight.delete(c);
      this.release(e);
      cancels.push({ chunk: c, edge: e, attempt: t.attempt[c] });
      if (this.failCauses[i] === FailureCause.TIMEOUT) {
        this.counters.timeouts++;
        this.counters.failures++;
        this.recordPairFailure(c, e, 'timeout');
      }
      const hedge = this.hedges.get(c);
      if (hedge && this.edges.available[hedge.edge] === 1) {
        t.status[c] = ChunkStatus.IN_FLIGHT;
        this.promoteHedge(c, hedge);
        this.inFlight.add(c);
        continue;
      }
      this.failIds[kept++] = c;
    }
    failed = kept;
    for (const c of this.reportedFailed) if (t.status[c] === ChunkStatus.FAILED) this.failIds[failed++] = c;
    this.reportedFailed.length = 0;
    const t2 = performance.now();

    const fo = (yield {
      kind: 'failover',
      t,
      edges: this.edges,
      ranking: this.ranking,
      failed: this.failIds,
      count: failed,
      maxAttempts: this.config.maxAttemptsPerChunk,
      outcome: this.outcome,
    }) as FailoverCounts;
    this.forgiveExclusions(failed, fo);
    this.counters.failovers += fo.backup + fo.recomputed;
    this.counters.recomputed += fo.recomputed;
    this.permanentCount += fo.permanent;
    this.expireHedges(now, cancels);
    const t3 = performance.now();

    const scan = this.scanOrder();
    const moved = (yield {
      kind: 'balance',
      t,
      edges: this.edges,
      ranking: this.ranking,
      scan,
      over: this.config.overloadThreshold,
      under: this.config.underloadThreshold,
    }) as number;
    this.counters.moved += moved;
    const t4 = performance.now();

    // DEMAND chunks go first, each to the edge that delivers it soonest, ahead of everything else there
    const demand = this.dispatchDemand(now, cancels);
    // while an edge runs a DEMAND fetch it takes no other new chunk (they would share its bandwidth):
    // its slots look full to the dispatch kernel and the endgame
    const clamped: Array<[number, number]> = [];
    for (const e of new Set(this.demandOn.values())) {
      clamped.push([e, this.edges.maxParallel[e]]);
      this.edges.maxParallel[e] = Math.min(this.edges.maxParallel[e], this.edges.queueDepth[e]);
    }

    const { count: n, spilled } = (yield {
      kind: 'dispatch',
      t,
      edges: this.edges,
      ranking: this.ranking,
      scan,
      now,
      limit: this.config.maxDispatchPerTick,
      nextAttempt: this.nextAttempt,
      out: this.dispatchOut,
    }) as { count: number; spilled: number };
    this.counters.spilled += spilled;
    this.nextAttempt = (this.nextAttempt + n) >>> 0;
    const dispatch = new Array<Dispatch>(n + demand.length);
    for (let i = 0; i < demand.length; i++) dispatch[i] = demand[i];
    for (let i = 0; i < n; i++) {
      const c = this.dispatchOut[i];
      this.inFlight.add(c);
      dispatch[demand.length + i] = {
        chunk: c,
        edge: t.assigned[c],
        attempt: t.attempt[c],
        deadline: t.deadline[c],
        hedge: false,
      };
    }
    this.counters.dispatched += n;
    const hedges = this.endgame(now, dispatch);
    for (const [e, max] of clamped) this.edges.maxParallel[e] = max;
    const t5 = performance.now();

    return {
      now,
      fullRerank: full,
      ranked,
      failed,
      failover: fo,
      moved,
      dispatch,
      cancels,
      hedges,
      phaseMs: {
        rank: t1 - t0,
        detect: t2 - t1,
        failover: t3 - t2,
        balance: t4 - t3,
        dispatch: t5 - t4,
        total: t5 - t0,
      },
    };
  }

  // ---- queries -------------------------------------------------------------------------------

  /** Chunk counts by state. */
  progress(): {
    total: number;
    complete: number;
    inFlight: number;
    failedPermanent: number;
    pending: number;
    hedged: number;
  } {
    const total = this.chunks.n;
    const inFlight = this.inFlight.size;
    return {
      total,
      complete: this.completeCount,
      inFlight,
      failedPermanent: this.permanentCount,
      pending: total - this.completeCount - inFlight - this.permanentCount,
      hedged: this.hedges.size,
    };
  }

  /**
   * The earliest scheduler time (ms since the transfer's epoch) at which a tick could act with no new report or
   * edge change: one ms past the earliest deadline of a fetch or hedge in flight (detect_failures times out at
   * `now > deadline`) and, in the endgame, when an unhedged fetch becomes late enough to hedge
   * (`hedgeAfterFraction` of its edge's expected time). Infinity when nothing is in flight. O(in flight).
   */
  nextDueAt(): number {
    const t = this.chunks;
    const cfg = this.config;
    const remaining = this.chunks.n - this.completeCount - this.permanentCount;
    const endgame =
      remaining > 0 &&
      remaining <= cfg.endgameChunks &&
      remaining <= this.inFlight.size &&
      this.hedges.size < cfg.maxHedges;
    let due = Infinity;
    for (const c of this.inFlight) {
      due = Math.min(due, t.deadline[c] + 1);
      if (endgame && !this.hedges.has(c)) {
        const expected = Math.max(1, expectedTimeMs(this.edges, t.assigned[c], this.chunkBytes));
        due = Math.min(due, t.dispatchedAt[c] + Math.ceil(cfg.hedgeAfterFraction * expected));
      }
    }
    for (const h of this.hedges.values()) due = Math.min(due, h.deadline + 1);
    return due;
  }

  /**
   * Edges a stranded chunk waits for: for each PENDING chunk none of whose candidate edges is usable now (online
   * with max_parallel > 0), its candidates that are online but held at max_parallel 0 by the caller (a gate such as
   * the tail gate, not an outage). Edges excluded for a chunk (it failed them) are not its candidates. A caller that
   * closes edges by policy opens these again, so no chunk waits forever for an edge that is up and has not failed it
   * while the edges that stay open have. Empty when no chunk is stranded so. O(chunks × edge words); never throws.
   */
  heldSourcesOfStrandedChunks(): Set<number> {
    const t = this.chunks;
    const edges = this.edges;
    const held = new Set<number>();
    const each = (c: number, visit: (e: number) => boolean): boolean => {
      for (let w = 0; w < t.words; w++) {
        let bits = t.candidates[c * t.words + w] | 0;
        while (bits !== 0) {
          const e = (w << 5) + 31 - Math.clz32(bits & -bits);
          bits &= bits - 1;
          if (visit(e)) return true;
        }
      }
      return false;
    };
    const usable = (e: number): boolean => edgeUsable(edges, e);
    const hold = (e: number): boolean => {
      if (edges.available[e] === 1 && edges.maxParallel[e] === 0) held.add(e);
      return false;
    };
    for (let c = 0; c < t.n; c++) if (t.status[c] === ChunkStatus.PENDING && !each(c, usable)) each(c, hold);
    return held;
  }

  /** The turn of a chunk at DEMAND or above that is not complete (setPriority), else 0. */
  demandTurn(chunk: number): number {
    return this.turns.get(chunk) ?? 0;
  }

  /**
   * The highest turn the DEMAND dispatch has sent so far (0 before any): the virtual time of start-time fair
   * queuing, where a reader that raises chunks again takes its next turns from.
   */
  get servedTurn(): number {
    return this.lastServedTurn;
  }

  /** Whether a DEMAND chunk (bytes a reader waits for) is pending: neither in flight nor complete. */
  get demandWaiting(): boolean {
    for (const c of this.demanded) if (this.chunks.status[c] === ChunkStatus.PENDING) return true;
    return false;
  }

  /** True when every chunk is complete. */
  get done(): boolean {
    return this.completeCount === this.chunks.n;
  }

  /** The ranking computed at the last tick. */
  get edgeRanking(): EdgeRanking {
    return this.ranking;
  }

  /**
   * Bytes of the typed arrays this scheduler holds, by part: `chunkTable` (the kernels' per-chunk arrays), `queues`
   * (the re-rank flags and queue, the detect/failover scratch) and `edges` (per-edge arrays). Hash sets of
   * exclusions and hedges are not counted (they hold only chunks that failed or are hedged). Never throws.
   */
  memoryBytes(): { chunkTable: number; queues: number; edges: number } {
    const sum = (xs: ArrayBufferView[]): number => xs.reduce((a, x) => a + x.byteLength, 0);
    const t = this.chunks;
    const e = this.edges;
    return {
      chunkTable: sum([
        t.status,
        t.assigned,
        t.backups,
        t.retries,
        t.priority,
        t.attempt,
        t.dispatchedAt,
        t.deadline,
        t.candidates,
      ]),
      queues:
        sum([this.dirtyFlag, this.dirty, this.failIds, this.failCauses, this.outcome]) +
        (this.order?.byteLength ?? 0),
      edges: sum([
        e.bandwidth,
        e.rtt,
        e.health,
        e.queueDepth,
        e.maxParallel,
        e.available,
        e.flags,
        e.timeoutMs,
      ]),
    };
  }

  /** Completion bitmap (bit i = chunk i complete), little-endian bytes. */
  completionBitmap(): Uint8Array {
    const out = new Uint8Array(Math.ceil(this.chunks.n / 8));
    const s = this.chunks.status;
    for (let c = 0; c < this.chunks.n; c++) if (s[c] === ChunkStatus.COMPLETE) out[c >>> 3] |= 1 << (c & 7);
    return out;
  }

  // ---- internals -----------------------------------------------------------------------------

  /**
   * Dispatches the pending DEMAND chunks (bytes a reader waits for) now, each to its candidate edge with the
   * smallest expected finish (its chunk time alone, soloChunkMs, times one plus the DEMAND fetches already there), with
   * the next attempt id. Fetches of chunks below READ_AHEAD on that edge are pre-empted: cancelled and
   * pending again (their bytes so far are lost; the DEMAND fetch gets the edge's whole bandwidth instead of
   * a share). An edge runs at most DEMAND_PER_EDGE DEMAND fetches at once (the others wait, in priority, turn
   * (setPriority), then chunk order), and none beside a DEMAND fetch of higher priority (a read's own chunk is
   * not slowed by read-ahead). Forgets DEMAND chunks no longer in flight.
   */
  private dispatchDemand(now: number, cancels: Cancel[]): Dispatch[] {
    const t = this.chunks;
    const edges = this.edges;
    for (const [c] of this.demandOn)
      if (t.status[c] !== ChunkStatus.IN_FLIGHT || t.priority[c] < ChunkPriority.DEMAND)
        this.demandOn.delete(c);
    const out: Dispatch[] = [];
    if (this.demanded.size === 0) return out;
    const perEdge = new Map<number, number>();
    /** The highest priority among each edge's DEMAND fetches: a lower one does not share that edge. */
    const topOn = new Map<number, number>();
    for (const [c, e] of this.demandOn) {
      perEdge.set(e, (perEdge.get(e) ?? 0) + 1);
      topOn.set(e, Math.max(topOn.get(e) ?? -Infinity, t.priority[c]));
    }
    const turn = (c: number): number => this.turns.get(c) ?? 0;
    for (const c of [...this.demanded].sort(
      (a, b) => t.priority[b] - t.priority[a] || turn(a) - turn(b) || a - b,
    )) {
      if (t.status[c] === ChunkStatus.COMPLETE || t.priority[c] < ChunkPriority.DEMAND) {
        this.dropDemand(c);
        continue;
      }
      if (t.status[c] !== ChunkStatus.PENDING) continue;
      let pick = NO_EDGE;
      let pickMs = Infinity;
      for (let w = 0; w < t.words; w++) {
        let bits = t.candidates[c * t.words + w] | 0;
        while (bits !== 0) {
          const e = (w << 5) + 31 - Math.clz32(bits & -bits);
          bits &= bits - 1;
          const busy = perEdge.get(e) ?? 0;
          if (
            this.ranking.rank[e] === INF_RANK ||
            busy >= Math.min(edges.maxParallel[e], DEMAND_PER_EDGE) ||
            (topOn.get(e) ?? -Infinity) > t.priority[c]
          )
            continue;
          // an edge without a bandwidth estimate yet counts as slow, not unusable
          const ms = Math.min(this.soloChunkMs(e), 1e9) * (1 + busy);
          if (ms < pickMs || (ms === pickMs && this.ranking.rank[e] < this.ranking.rank[pick])) {
            pickMs = ms;
            pick = e;
          }
        }
      }
      if (pick === NO_EDGE) continue;
      this.preemptOn(pick, ChunkPriority.READ_AHEAD, cancels);
      if (edges.queueDepth[pick] >= edges.maxParallel[pick]) continue;
      const attempt = this.nextAttempt;
      this.nextAttempt = (this.nextAttempt + 1) >>> 0;
      t.status[c] = ChunkStatus.IN_FLIGHT;
      t.assigned[c] = pick;
      t.attempt[c] = attempt;
      t.dispatchedAt[c] = now;
      t.deadline[c] = Math.min(0xffffffff, now + Math.ceil(edges.timeoutMs[pick]));
      edges.queueDepth[pick]++;
      this.inFlight.add(c);
      this.demandOn.set(c, pick);
      this.lastServedTurn = Math.max(this.lastServedTurn, turn(c));
      perEdge.set(pick, (perEdge.get(pick) ?? 0) + 1);
      topOn.set(pick, Math.max(topOn.get(pick) ?? -Infinity, t.priority[c]));
      this.counters.dispatched++;
      out.push({ chunk: c, edge: pick, attempt, deadline: t.deadline[c], hedge: false });
    }
    return out;
  }

  /** The running hedge of chunk `c` becomes its fetch (the primary attempt ended or was cancelled). */
  private promoteHedge(c: number, hedge: Hedge): void {
    const t = this.chunks;
    t.assigned[c] = hedge.edge;
    t.attempt[c] = hedge.attempt;
    t.dispatchedAt[c] = hedge.dispatchedAt;
    t.deadline[c] = hedge.deadline;
    this.hedges.delete(c);
  }

  /** The body of `preemptEdge`: cancels go to `cancels`. */
  private preemptOn(edge: number, belowPriority: number, cancels: Cancel[]): void {
    const t = this.chunks;
    for (const x of this.inFlight) {
      if (t.assigned[x] !== edge || t.priority[x] >= belowPriority) continue;
      const hedge = this.hedges.get(x);
      cancels.push({ chunk: x, edge, attempt: t.attempt[x] });
      this.release(edge);
      this.counters.preempted++;
      if (hedge) {
        // its hedge on another edge carries on as the chunk's fetch
        this.promoteHedge(x, hedge);
        continue;
      }
      t.status[x] = ChunkStatus.PENDING;
      this.inFlight.delete(x);
    }
    for (const [x, h] of this.hedges) {
      if (h.edge !== edge || t.priority[x] >= belowPriority) continue;
      cancels.push({ chunk: x, edge, attempt: h.attempt });
      this.release(edge);
      this.hedges.delete(x);
      this.counters.preempted++;
    }
  }

  private dropDemand(c: number): void {
    this.demanded.delete(c);
    this.turns.delete(c);
  }

  private complete(c: number): void {
    this.dropDemand(c);
    this.chunks.status[c] = ChunkStatus.COMPLETE;
    this.inFlight.delete(c);
    this.completeCount++;
    this.counters.completed++;
    this.advanceScanStart();
  }

  private release(edge: number): void {
    if (edge !== NO_EDGE && this.edges.queueDepth[edge] > 0) this.edges.queueDepth[edge]--;
  }

  /**
   * Counts a failure of edge `e` on chunk `c`; at the retry limit (at once for corrupt data) the
   * edge is excluded for that chunk. Transient failures — a timeout (slowness), `busy` (the edge
   * answered 5xx/429: try later) — never exclude; attempts stay bounded by maxAttemptsPerChunk.
   */
  private recordPairFailure(c: number, e: number, reason: string | undefined): void {
    if (reason === 'cancelled' || reason === 'timeout' || reason === 'busy') return;
    const key = c * this.edges.e + e;
    const n = (this.pairFailures.get(key) ?? 0) + 1;
    this.pairFailures.set(key, n);
    if (reason === 'corrupt' || n >= this.config.perEdgeRetryLimit) {
      this.excluded.add(key);
      if (reason === 'corrupt') this.corruptExcluded.add(key);
      if (reason === 'unreachable') this.transientExcluded.add(key);
      else this.transientExcluded.delete(key);
      setCandidate(this.chunks, c, e, false);
    }
  }

  /**
   * A chunk that failover would park or give up only because its live holders sent a corrupt copy
   * of it gets those edges back, once per edge: better another try — its bytes are checked against
   * the CID again — than a transfer that stalls. Edges excluded by the retry limit (e.g. they
   * answered 404) stay excluded; chunks out of attempts stay failed.
   */
  private forgiveExclusions(failed: number, fo: FailoverCounts): void {
    const t = this.chunks;
    const E = this.edges.e;
    for (let i = 0; i < failed; i++) {
      const o = this.outcome[i];
      if (o !== FailoverOutcome.PARKED && o !== FailoverOutcome.PERMANENT) continue;
      const c = this.failIds[i];
      if (t.retries[c] >= this.config.maxAttemptsPerChunk) continue;
      let restored = 0;
      for (let e = 0; e < E; e++) {
        const key = c * E + e;
        if (
          !this.corruptExcluded.has(key) ||
          this.forgivenPairs.has(key) ||
          this.ranking.rank[e] === INF_RANK
        )
          continue;
        this.excluded.delete(key);
        this.corruptExcluded.delete(key);
        this.forgivenPairs.add(key);
        this.pairFailures.delete(key);
        setCandidate(t, c, e, true);
        restored++;
      }
      if (restored === 0) continue;
      rankChunk(t, this.ranking, c, this.scratchK);
      t.status[c] = ChunkStatus.PENDING;
      t.assigned[c] = t.backups[c * t.k];
      if (o === FailoverOutcome.PARKED) fo.parked--;
      else {
        fo.permanent--;
      }
      fo.recomputed++;
      this.outcome[i] = FailoverOutcome.RECOMPUTED;
      this.counters.forgiven++;
    }
  }

  /**
   * Chunks given up (FAILED_PERMANENT) whose only exclusions left are transient ones (a connection refused or
   * reset: `unreachable`) on an edge `usable` accepts: how many there are and, unless `dryRun`, gives those edges
   * back to them — pending again with their attempts reset, so the caller decides how long to keep retrying (a
   * source budget) and when (a backoff). O(transient exclusions).
   */
  retryTransientFailures(usable: (edge: number) => boolean, dryRun = false): number {
    const t = this.chunks;
    const E = this.edges.e;
    const chunks = new Set<number>();
    for (const key of this.transientExcluded) {
      const c = Math.floor(key / E);
      const e = key - c * E;
      if (t.status[c] !== ChunkStatus.FAILED_PERMANENT || !usable(e)) continue;
      chunks.add(c);
      if (dryRun) continue;
      this.transientExcluded.delete(key);
      this.excluded.delete(key);
      this.pairFailures.delete(key);
      setCandidate(t, c, e, true);
    }
    if (!dryRun)
      for (const c of chunks) {
        t.status[c] = ChunkStatus.PENDING;
        t.assigned[c] = NO_EDGE;
        t.retries[c] = 0;
        this.permanentCount--;
        this.scanStart = 0;
        this.markDirty(c);
      }
    return chunks.size;
  }

  /** Grows the detect/failover scratch to hold `n` chunks (every chunk in flight plus those reported failed). */
  private ensureFailCapacity(n: number): void {
    if (this.failIds.length >= n) return;
    const cap = Math.min(Math.max(1, this.chunks.n), Math.max(n, this.failIds.length * 2));
    this.failIds = new Uint32Array(cap);
    this.failCauses = new Uint8Array(cap);
    this.outcome = new Uint8Array(cap);
  }

  private markDirty(c: number): void {
    if (this.dirtyFlag[c]) return;
    this.dirtyFlag[c] = 1;
    if (this.dirtyCount === this.dirty.length) {
      const grown = new Uint32Array(Math.min(this.chunks.n, this.dirty.length * 2));
      grown.set(this.dirty);
      this.dirty = grown;
    }
    this.dirty[this.dirtyCount++] = c;
  }

  private scanOrder(): ScanOrder {
    if (this.uniformPriority) return { order: undefined, start: this.scanStart };
    if (!this.order || this.orderStale) {
      const p = this.chunks.priority;
      const idx = new Uint32Array(this.chunks.n);
      for (let i = 0; i < idx.length; i++) idx[i] = i;
      this.order = idx.sort((a, b) => p[b] - p[a] || a - b);
      this.orderStale = false;
      this.scanStart = 0;
      // the ranked window was counted in the old order: the next tick ranks one from the new scan start
      this.rankedTo = 0;
      this.advanceScanStart();
    }
    return { order: this.order, start: this.scanStart };
  }

  private advanceScanStart(): void {
    const s = this.chunks.status;
    const o = this.uniformPriority ? undefined : this.order;
    if (!this.uniformPriority && !o) return;
    while (
      this.scanStart < this.chunks.n &&
      s[o ? o[this.scanStart] : this.scanStart] === ChunkStatus.COMPLETE
    )
      this.scanStart++;
  }

  /** Drops hedges past their deadline (their fetch is cancelled; the primary carries on). */
  private expireHedges(now: number, cancels: Cancel[]): void {
    for (const [c, h] of this.hedges) {
      if (now <= h.deadline && this.edges.available[h.edge] === 1) continue;
      this.release(h.edge);
      cancels.push({ chunk: c, edge: h.edge, attempt: h.attempt });
      this.hedges.delete(c);
    }
  }

  /**
   * Endgame (as libtorrent's): once few chunks remain and all of them are in flight, duplicate
   * in-flight chunks on another candidate edge with a free slot when either the fetch is late
   * (in flight longer than `hedgeAfterFraction` of its edge's expected time) or that edge would
   * deliver a fresh copy in less than `hedgeGain` × the expected remaining time of the current
   * fetch (a fast edge idles while a slow one finishes the tail). Chunks with the most expected
   * time left go first; each is hedged on the free candidate with the smallest expected time
   * (hedgeChunkMs: its whole measured throughput shared with what runs there, not the per-fetch
   * estimate). The first report to succeed wins; the other attempt is cancelled.
   */
  private endgame(now: number, dispatch: Dispatch[]): number {
    const cfg = this.config;
    const remaining = this.chunks.n - this.completeCount - this.permanentCount;
    if (remaining === 0 || remaining > cfg.endgameChunks || this.hedges.size >= cfg.maxHedges) return 0;
    if (remaining > this.inFlight.size) return 0; // pending chunks still wait for a slot
    const t = this.chunks;
    const edges = this.edges;
    const late: Array<{ c: number; left: number; lateness: number }> = [];
    for (const c of this.inFlight) {
      if (this.hedges.has(c)) continue;
      const expected = Math.max(1, expectedTimeMs(edges, t.assigned[c], this.chunkBytes));
      const elapsed = now - t.dispatchedAt[c];
      late.push({ c, left: Math.max(0, expected - elapsed), lateness: elapsed / expected });
    }
    late.sort((a, b) => b.left - a.left || b.lateness - a.lateness || a.c - b.c);
    let made = 0;
    for (const { c, left, lateness } of late) {
      if (this.hedges.size >= cfg.maxHedges) break;
      const primary = t.assigned[c];
      let pick = NO_EDGE;
      let pickMs = Infinity;
      for (let w = 0; w < t.words; w++) {
        let bits = t.candidates[c * t.words + w] | 0;
        while (bits !== 0) {
          const b = (w << 5) + 31 - Math.clz32(bits & -bits);
          bits &= bits - 1;
          if (
            b === primary ||
            this.ranking.rank[b] === INF_RANK ||
            edges.queueDepth[b] >= edges.maxParallel[b]
          )
            continue;
          const ms = this.hedgeChunkMs(b);
          if (ms < pickMs) {
            pickMs = ms;
            pick = b;
          }
        }
      }
      if (pick === NO_EDGE) continue;
      if (lateness < cfg.hedgeAfterFraction && !(pickMs < left * cfg.hedgeGain)) continue;
      const attempt = this.nextAttempt;
      this.nextAttempt = (this.nextAttempt + 1) >>> 0;
      const deadline = Math.min(0xffffffff, now + Math.ceil(edges.timeoutMs[pick]));
      this.hedges.set(c, { edge: pick, attempt, deadline, dispatchedAt: now });
      edges.queueDepth[pick]++;
      dispatch.push({ chunk: c, edge: pick, attempt, deadline, hedge: true });
      this.counters.hedges++;
      this.counters.dispatched++;
      made++;
    }
    return made;
  }

  private checkChunk(c: number): void {
    if (!Number.isInteger(c) || c < 0 || c >= this.chunks.n)
      throw new PortalError(
        'PORTAL_UNKNOWN_CHUNK',
        `chunk ${c} is not in this transfer (0..${this.chunks.n - 1})`,
      );
  }

  private checkEdge(e: number): void {
    if (!Number.isInteger(e) || e < 0 || e >= this.edges.e)
      throw new PortalError(
        'PORTAL_UNKNOWN_EDGE',
        `edge ${e} is not in this transfer (0..${this.edges.e - 1})`,
      );
  }
}
