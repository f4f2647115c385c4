import { checkArg } from '../common/errors.js';
import { ChunkPriority, ChunkStatus } from './types.js';
import { edgeUsable, expectedTimeMs } from './kernels/cost.js';
import type { ChunkScheduler } from './scheduler.js';
import type { EdgeTable } from './tables.js';

export { ChunkPriority };

/**
 * How many chunks to fetch ahead of a sequential reader consuming `rateBytesPerSec`: by Little's law
 * (L = λ·W) the chunks that must be on their way are the reader's rate in chunks per second times the
 * time a chunk takes from being prioritized to being verified. That time is one tick (until the
 * dispatch) plus, on the edges available, the mean expected time of one chunk (`expectedTimeMs`:
 * size / bandwidth + RTT) twice: once waiting for a slot behind a chunk already in flight, once
 * fetching. One more chunk covers the one being read. Returns at least 1; 0 for an unknown rate.
 */
export function readAheadChunks(o: {
  rateBytesPerSec: number | undefined;
  chunkBytes: number;
  tickMs: number;
  edges: EdgeTable;
}): number {
  const rate = o.rateBytesPerSec;
  if (rate === undefined || !(rate > 0) || !Number.isFinite(rate)) return 0;
  let sum = 0;
  let usable = 0;
  for (let e = 0; e < o.edges.e; e++) {
    if (!edgeUsable(o.edges, e) || !(o.edges.bandwidth[e] > 0)) continue;
    sum += expectedTimeMs(o.edges, e, o.chunkBytes);
    usable++;
  }
  // no bandwidth estimate yet: assume a chunk takes a second
  const chunkMs = usable > 0 ? sum / usable : 1000;
  const leadMs = o.tickMs + 2 * chunkMs;
  return Math.max(1, Math.ceil((rate * leadMs) / 1000 / o.chunkBytes) + 1);
}

/** One reader of a transfer's content, as the tracker remembers it. */
interface Reader {
  /** First chunk after the last read: where a sequential reader reads next. */
  next: number;
  lastAt: number;
  sequential: boolean;
  /** Chunks this reader raised that may still be pending (lowered again when it seeks elsewhere). */
  raised: Set<number>;
}

/** What one read did to the scheduler. */
export interface ReadPlan {
  /** Chunks of the read that are verified now, ascending. */
  complete: number[];
  /** Chunks of the read still missing, now at DEMAND priority. */
  missing: number[];
  /** Whether the reader was seen reading sequentially (its read started where the last one ended). */
  sequential: boolean;
  /** Chunks after the read raised to READ_AHEAD (0 for a reader not seen reading sequentially). */
  readAhead: number;
  /** Chunks whose priority this read changed (0: the dispatch order is as before). */
  changed: number;
}

/**
 * Access-pattern tracking ("sequential access: pre-fetch next N chunks ahead") over
 * one ChunkScheduler: each read raises the priority of exactly the missing chunks it covers to DEMAND,
 * and for a reader whose read begins where its previous one ended, the next `readAheadChunks(...)`
 * chunks to READ_AHEAD. A reader that seeks elsewhere gets the chunks it raised and still waits for
 * lowered back to NORMAL. Readers idle for `idleMs` are forgotten. Pure: time is an argument.
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
    if (r && !sequential) {
      for (const c of r.raised)
        if (s.chunks.status[c] !== ChunkStatus.COMPLETE && s.chunks.priority[c] > ChunkPriority.NORMAL)
          s.setPriority(c, ChunkPriority.NORMAL);
      r.raised.clear();
    }
    if (!r) {
      r = { next: 0, lastAt: q.now, sequential: false, raised: new Set() };
      this.readers.set(q.readerId, r);
    }
    r.next = q.last + 1;
    r.lastAt = q.now;
    r.sequential = sequential;
    let changed = 0;
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
      if (s.chunks.priority[c] < ChunkPriority.DEMAND) {
        s.setPriority(c, ChunkPriority.DEMAND);
        changed++;
      }
      r.raised.add(c);
    }
    let readAhead = 0;
    if (sequential) {
      readAhead = readAheadChunks({
        rateBytesPerSec: q.rateBytesPerSec,
        chunkBytes: s.chunkBytes,
        tickMs: this.opts.tickMs,
        edges: s.edges,
      });
      const end = Math.min(n - 1, q.last + readAhead);
      for (let c = q.last + 1; c <= end; c++) {
        if (status[c] === ChunkStatus.COMPLETE) continue;
        if (s.chunks.priority[c] < ChunkPriority.READ_AHEAD) {
          s.setPriority(c, ChunkPriority.READ_AHEAD);
          changed++;
        }
        r.raised.add(c);
      }
    }
    return { complete, missing, sequential, readAhead, changed };
  }

  /** Readers seen within `idleMs` (default 30 s). */
  get size(): number {
    return this.readers.size;
  }

  private expire(now: number): void {
    const idle = this.opts.idleMs ?? 30_000;
    for (const [id, r] of this.readers) if (now - r.lastAt > idle) this.readers.delete(id);
  }
}
