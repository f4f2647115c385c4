import { checkArg } from '../common/errors.js';
import { ChunkPriority, ChunkStatus } from './types.js';
import { edgeUsable, expectedTimeMs } from './kernels/cost.js';
import { DEMAND_PER_EDGE, type ChunkScheduler } from './scheduler.js';
import type { EdgeTable } from './tables.js';

export { ChunkPriority };

/** The read-ahead window of a sequential reader (readAheadChunks), in chunks after its read. */
export interface ReadAheadWindow {
  /**
   * The first `urgent` chunks go at DEMAND priority: dispatched at once, each alone on its edge (it
   * pre-empts slower-priority fetches there), so each arrives within one tick plus one chunk's solo time.
   */
  urgent: number;
  /** All the chunks of the window (≥ urgent); those after the urgent ones go at READ_AHEAD, ahead of NORMAL. */
  total: number;
}

/**
 * How many chunks to fetch ahead of a sequential reader consuming `rateBytesPerSec`, by Little's law (the
 * chunks that must be on their way, L = λ·W, are the reader's rate in chunks per second times the time W
 * from a chunk's raise to its verification) applied twice:
 *
 * - urgent (DEMAND): W = one tick (until the dispatch) + (DEMAND_PER_EDGE + 1) × the slowest usable
 *   edge's time for one chunk alone (`soloChunkMs`, default the per-fetch estimate size / bandwidth +
 *   RTT): a chunk raised now waits about one chunk time for one of the DEMAND_PER_EDGE DEMAND fetches of
 *   its edge to end, then shares the edge with the other, and still arrives before the reader needs it
 *   whichever edge takes it. One more chunk covers the one being read.
 * - total: W = one tick + twice the mean expected time of one chunk on the edges as they are shared
 *   (size / per-fetch bandwidth + RTT: once waiting for a slot behind a chunk in flight, once fetching),
 *   + 1; the chunks after the urgent ones wait for free slots at READ_AHEAD, so the urgent ones that
 *   follow are already on their way when the reader comes near.
 *
 * Both follow the reader's rate and the edges' measured speed; no constant number of chunks. An edge
 * without an estimate counts as 1 s per chunk. Returns { urgent: 0, total: 0 } for an unknown rate.
 */
export function readAheadChunks(o: {
  rateBytesPerSec: number | undefined;
  chunkBytes: number;
  tickMs: number;
  edges: EdgeTable;
  soloChunkMs?: (edge: number) => number;
}): ReadAheadWindow {
  const rate = o.rateBytesPerSec;
  if (rate === undefined || !(rate > 0) || !Number.isFinite(rate)) return { urgent: 0, total: 0 };
  let sum = 0;
  let usable = 0;
  let slowestSolo = 0;
  for (let e = 0; e < o.edges.e; e++) {
    if (!edgeUsable(o.edges, e) || !(o.edges.bandwidth[e] > 0)) continue;
    sum += expectedTimeMs(o.edges, e, o.chunkBytes);
    const solo = o.soloChunkMs?.(e) ?? expectedTimeMs(o.edges, e, o.chunkBytes);
    if (Number.isFinite(solo)) slowestSolo = Math.max(slowestSolo, solo);
    usable++;
  }
  // no bandwidth estimate yet: assume a chunk takes a second
  const chunkMs = usable > 0 ? sum / usable : 1000;
  const soloMs = usable > 0 ? slowestSolo : 1000;
  const chunksIn = (ms: number): number => Math.ceil((rate * ms) / 1000 / o.chunkBytes) + 1;
  const urgent = chunksIn(o.tickMs + (DEMAND_PER_EDGE + 1) * soloMs);
  return { urgent, total: Math.max(urgent, chunksIn(o.tickMs + 2 * chunkMs)) };
}

/**
 * Priority of the missing chunks a read covers: above DEMAND, so a read's own chunks go before any
 * read-ahead (ChunkScheduler's DEMAND dispatch sends them first and lets no read-ahead chunk share their edge).
 */
export const READ_PRIORITY = ChunkPriority.DEMAND + 1;

/**
 * The fastest a reader can be served: the sum over usable edges of one chunk over its time alone there
 * (ChunkScheduler.soloChunkMs; an edge without an estimate counts as 1 s per chunk, as in
 * readAheadChunks), bytes/s; undefined without a usable edge.
 */
function edgesRate(s: ChunkScheduler): number | undefined {
  let sum = 0;
  for (let e = 0; e < s.edges.e; e++) {
    if (!edgeUsable(s.edges, e)) continue;
    const ms = s.edges.bandwidth[e] > 0 ? s.soloChunkMs(e) : 1000;
    if (ms > 0 && Number.isFinite(ms)) sum += (s.chunkBytes * 1000) / ms;
  }
  return sum > 0 ? sum : undefined;
}

/** One reader of a transfer's content, as the tracker remembers it. */
interface Reader {
  /** First chunk of the last read. */
  first: number;
  /** First chunk after the last read: where a sequential reader reads next. */
  next: number;
  lastAt: number;
  sequential: boolean;
  /** Chunks this reader raised that may still be pending (lowered again when it seeks elsewhere). */
  raised: Set<number>;
  /** The last turn this reader was given (ChunkScheduler.setPriority's turn). */
  lastTurn: number;
}

/** What one read did to the scheduler. */
export interface ReadPlan {
  /** Chunks of the read that are verified now, ascending. */
  complete: number[];
  /** Chunks of the read still missing, now at DEMAND priority. */
  missing: number[];
  /** Whether the reader was seen reading sequentially (its read started where the last one ended). */
  sequential: boolean;
  /**
   * Chunks after the read fetched ahead (0 for a reader not seen reading sequentially): the first
   * ReadAheadWindow.urgent of them at DEMAND, the rest at READ_AHEAD.
   */
  readAhead: number;
  /** Chunks whose priority this read changed (0: the dispatch order is as before). */
  changed: number;
}

/**
 * Access-pattern tracking ("sequential access: pre-fetch next N chunks ahead") over
 * one ChunkScheduler: each read raises the priority of exactly the missing chunks it covers to DEMAND,
 * and for a reader whose read begins where its previous one ended, the next `readAheadChunks(...)`
 * chunks: the urgent ones to DEMAND, the rest to READ_AHEAD. A reader that seeks elsewhere (a read that starts
 * neither inside nor right after its last one) gets the chunks it raised and still waits for lowered back to
 * NORMAL. Readers idle for `idleMs` are forgotten. Pure: time is an argument.
 *
 * Concurrent readers take turns (start-time fair queuing, Goyal, Vin & Cheng, SIGCOMM 1996, with one chunk as the
 * unit and each reader a flow): every chunk a read raises to DEMAND or above gets a turn (ChunkScheduler.setPriority),
 * and the DEMAND dispatch sends the chunks of one priority in turn order. A reader's new turns follow its last one
 * but never start before the scheduler's servedTurn, so a reader that joins, or comes back after a pause, is
 * served in the next round, one chunk of each waiting reader per turn, however many chunks the others have queued
 * (chunk order alone let a whole-file reader's windows starve a Range at the end of the file). A chunk keeps its
 * turn until it is raised further (read-ahead that is read gets a new one) or lowered; a reader that seeks keeps its
 * place: the turns of the chunks it still waited for go to the chunks of its new read first, in chunk order. Chunks
 * in flight take no turn. With one reader the order is chunk order, as before.
 */
export class AccessTracker {
  private readonly readers = new Map<string, Reader>();

  constructor(
    private readonly sched: ChunkScheduler,
    private readonly opts: { tickMs: number; idleMs?: number },
  ) {}

  /** Registers a read of chunks [first, last] by `readerId` at `now` (ms) and raises priorities. */
  read(q: {
    readerId: string;
    first: number;
    last: number;
    now: number;
    rateBytesPerSec?: number;
  }): ReadPlan {
    const s = this.sched;
    const n = s.chunks.n;
    checkArg(Number.isInteger(q.first) && q.first >= 0 && q.first < n, 'first', `a chunk in [0, ${n})`);
    checkArg(Number.isInteger(q.last) && q.last >= q.first && q.last < n, 'last', `a chunk in [first, ${n})`);
    this.expire(q.now);
    let r = this.readers.get(q.readerId);
    const sequential = r !== undefined && q.first <= r.next && q.first >= r.next - 1;
    // a read that starts inside the last one (a content server asking again for the chunk it waits for, or for its
    // next window) is no seek: what the last read raised is still wanted
    const seek = r !== undefined && !sequential && (q.first < r.first || q.first > r.next);
    // a reader that seeks keeps its place in line: the turns of the chunks it waited for go to this read's chunks
    const held = r && seek ? this.waitingTurns(r) : [];
    if (r && seek) {
      for (const c of r.raised)
        if (s.chunks.status[c] !== ChunkStatus.COMPLETE && s.chunks.priority[c] > ChunkPriority.NORMAL)
          s.setPriority(c, ChunkPriority.NORMAL);
      r.raised.clear();
    } else if (r)
      for (const c of r.raised) if (s.chunks.status[c] === ChunkStatus.COMPLETE) r.raised.delete(c);
    if (!r) {
      r = { first: 0, next: 0, lastAt: q.now, sequential: false, raised: new Set(), lastTurn: 0 };
      this.readers.set(q.readerId, r);
    }
    r.first = q.first;
    r.next = q.last + 1;
    r.lastAt = q.now;
    r.sequential = sequential;
    let changed = 0;
    const reader = r;
    let h = 0;
    /**
     * Raises chunk `c` to `p` ≥ DEMAND with the reader's next turn: a held one, else one after its last. A chunk in
     * flight takes none (servedTurn: should its fetch fail it goes first); one already at `p` keeps its turn.
     */
    const raise = (c: number, p: number): void => {
      if (s.chunks.priority[c] >= p) return;
      let turn = s.servedTurn;
      if (s.chunks.status[c] === ChunkStatus.PENDING)
        turn = h < held.length ? held[h++] : (reader.lastTurn = Math.max(reader.lastTurn + 1, s.servedTurn));
      s.setPriority(c, p, turn);
      changed++;
    };
    const complete: number[] = [];
    const missing: number[] = [];
    const status = s.chunks.status;
    for (let c = q.first; c <= q.last; c++) {
      if (status[c] === ChunkStatus.COMPLETE) {
        complete.push(c);
        r.raised.delete(c);
        continue;
      }
      missing.push(c);
      raise(c, READ_PRIORITY);
      r.raised.add(c);
    }
    // a reader not seen before, or one that seeks, may read on from here at any rate: its window is sized
    // for the fastest reader the edges can serve until its rate is known
    const w = readAheadChunks({
      rateBytesPerSec: sequential && q.rateBytesPerSec !== undefined ? q.rateBytesPerSec : edgesRate(s),
      chunkBytes: s.chunkBytes,
      tickMs: this.opts.tickMs,
      edges: s.edges,
      soloChunkMs: (e) => s.soloChunkMs(e),
    });
    const readAhead = w.total;
    const end = Math.min(n - 1, q.last + w.total);
    for (let c = q.last + 1; c <= end; c++) {
      if (status[c] === ChunkStatus.COMPLETE) continue;
      if (c - q.last <= w.urgent) raise(c, ChunkPriority.DEMAND);
      else if (s.chunks.priority[c] < ChunkPriority.READ_AHEAD) {
        s.setPriority(c, ChunkPriority.READ_AHEAD);
        changed++;
      }
      r.raised.add(c);
    }
    return { complete, missing, sequential, readAhead, changed };
  }

  /** Readers seen within `idleMs` (default 30 s). */
  get size(): number {
    return this.readers.size;
  }

  /** The turns of the chunks `r` raised that wait (pending, at DEMAND or above), ascending, each once. */
  private waitingTurns(r: Reader): number[] {
    const s = this.sched;
    const turns = new Set<number>();
    for (const c of r.raised)
      if (s.chunks.status[c] === ChunkStatus.PENDING && s.chunks.priority[c] >= ChunkPriority.DEMAND)
        turns.add(s.demandTurn(c));
    return [...turns].sort((a, b) => a - b);
  }

  private expire(now: number): void {
    const idle = this.opts.idleMs ?? 30_000;
    for (const [id, r] of this.readers) if (now - r.lastAt > idle) this.readers.delete(id);
  }
}
