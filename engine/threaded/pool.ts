import { existsSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { PortalError, checkArg } from '../../common/errors.js';
import type { ChunkTable } from '../../scheduler/tables.js';
import type { EdgeRanking } from '../../scheduler/kernels/cost.js';
import { buildRankLut, lutApplies, rankChunkRange, rankChunks } from '../../scheduler/kernels/k-best.js';
import type { PoolReply, RankMessage, TableMessage } from './protocol.js';

/** True when the arrays the rank kernels touch (status, assigned, backups, candidates) are on SharedArrayBuffer. */
export function isRankShared(t: ChunkTable): boolean {
  return (
    t.status.buffer instanceof SharedArrayBuffer &&
    t.assigned.buffer instanceof SharedArrayBuffer &&
    t.backups.buffer instanceof SharedArrayBuffer &&
    t.candidates.buffer instanceof SharedArrayBuffer
  );
}

/** Where the compiled worker script is: next to this module in dist/, or dist/ of the project when running from source (jest). */
export function defaultWorkerUrl(): URL {
  const here = new URL('./worker.js', import.meta.url);
  if (here.protocol === 'file:' && existsSync(fileURLToPath(here))) return here;
  const built = fileURLToPath(new URL('../../dist/engine/threaded/worker.js', import.meta.url));
  if (existsSync(built)) return pathToFileURL(built);
  throw new PortalError(
    'PORTAL_CONFIG_INVALID',
    `the parallel rank worker is not built (looked for ${fileURLToPath(here)} and ${built}); run npm run build`,
  );
}

/** Options of createParallelRank. */
export interface ParallelRankOptions {
  /** Threads that rank, the calling thread included (threads − 1 workers). Default: os.availableParallelism(). */
  threads?: number;
  /** The compiled worker script (default: defaultWorkerUrl()). */
  workerUrl?: URL | string;
}

/** A pool of rank workers: `rank` is rankChunks split over the threads, exactly equal to it. */
export interface ParallelRank {
  readonly threads: number;
  /**
   * Re-ranks like `rankChunks(t, ranking, chunks, count)`, on the workers when the table's rank
   * arrays are on SharedArrayBuffer (createChunkTable's `shared`, TransferShape's `sharedMemory`)
   * and on the calling thread otherwise, or when the work is small. The table must not be mutated
   * until the promise settles. Rejects when a worker fails (the table may then be partly ranked:
   * re-rank it on the calling thread).
   */
  rank(t: ChunkTable, ranking: EdgeRanking, chunks?: Uint32Array, count?: number): Promise<number>;
  /** Chunks ranked on the worker threads so far (not those the calling thread ranked): shows the workers ran. */
  readonly workerRanked: number;
  /** Terminates the workers; idempotent. */
  close(): Promise<void>;
}

interface Slot {
  worker: Worker;
  tableId: number;
  pending: { resolve: (n: number) => void; reject: (e: Error) => void } | undefined;
  dead: Error | undefined;
}

/** Starts a pool of `threads − 1` rank workers (the caller's thread ranks a share too). */
export function createParallelRank(opts: ParallelRankOptions = {}): ParallelRank {
  const threads = opts.threads ?? os.availableParallelism();
  checkArg(Number.isInteger(threads) && threads >= 1 && threads <= 256, 'threads', 'an integer in [1, 256]');
  const url = threads > 1 ? (opts.workerUrl ?? defaultWorkerUrl()) : undefined;
  const slots: Slot[] = [];
  for (let i = 0; i < threads - 1; i++) {
    const worker = new Worker(url!);
    const slot: Slot = { worker, tableId: -1, pending: undefined, dead: undefined };
    worker.unref();
    worker.on('message', (m: PoolReply) => {
      const p = slot.pending;
      slot.pending = undefined;
      worker.unref();
      if (!p) return;
      if (m.error !== undefined)
        p.reject(new PortalError('PORTAL_INVALID_ARGUMENT', `rank worker failed: ${m.error}`));
      else p.resolve(m.ranked);
    });
    const fail = (err: Error): void => {
      slot.dead ??= err;
      const p = slot.pending;
      slot.pending = undefined;
      p?.reject(err);
    };
    worker.on('error', fail);
    worker.on('exit', (code) =>
      fail(new PortalError('PORTAL_HOST_STOPPED', `rank worker exited (code ${code})`)),
    );
    slots.push(slot);
  }
  const tableIds = new WeakMap<ChunkTable, number>();
  let nextTableId = 1;
  let list: Uint32Array = new Uint32Array(new SharedArrayBuffer(4));
  let seq = 0;
  let closed = false;
  let busy = false;
  let workerRanked = 0;

  function post(slot: Slot, msg: RankMessage): Promise<number> {
    if (slot.dead) return Promise.reject(slot.dead);
    return new Promise<number>((resolve, reject) => {
      slot.pending = { resolve, reject };
      slot.worker.ref();
      slot.worker.postMessage(msg);
    });
  }

  async function rank(
    t: ChunkTable,
    ranking: EdgeRanking,
    chunks?: Uint32Array,
    count?: number,
  ): Promise<number> {
    if (closed) throw new PortalError('PORTAL_HOST_STOPPED', 'the parallel rank pool is closed');
    if (busy) throw new PortalError('PORTAL_INVALID_ARGUMENT', 'the parallel rank pool is already ranking');
    const total = chunks ? (count ?? chunks.length) : t.n;
    if (slots.length === 0 || total < 2 * threads || !isRankShared(t))
      return chunks ? rankChunks(t, ranking, chunks, total) : rankChunks(t, ranking);
    busy = true;
    try {
      let id = tableIds.get(t);
      if (id === undefined) {
        id = nextTableId++;
        tableIds.set(t, id);
      }
      let shared: Uint32Array | undefined;
      if (chunks) {
        if (chunks.buffer instanceof SharedArrayBuffer) shared = chunks;
        else {
          if (list.length < total)
            list = new Uint32Array(new SharedArrayBuffer(Math.max(total, list.length * 2) * 4));
          list.set(chunks.subarray(0, total));
          shared = list;
        }
      }
      const rk = Int32Array.from(ranking.rank);
      const eor = Uint16Array.from(ranking.edgeOfRank);
      const per = Math.ceil(total / threads);
      const jobs: Promise<number>[] = [];
      for (let i = 0; i < slots.length; i++) {
        const slot = slots[i];
        if (slot.tableId !== id) {
          const tm: TableMessage = {
            type: 'table',
            id,
            n: t.n,
            k: t.k,
            words: t.words,
            status: t.status,
            assigned: t.assigned,
            backups: t.backups,
            candidates: t.candidates,
          };
          slot.worker.postMessage(tm);
          slot.tableId = id;
        }
        const from = Math.min(total, i * per);
        const to = Math.min(total, from + per);
        jobs.push(
          post(slot, {
            type: 'rank',
            seq: ++seq,
            tableId: id,
            rank: rk,
            edgeOfRank: eor,
            usable: ranking.usable,
            chunks: shared,
            from,
            to,
          }),
        );
      }
      // the calling thread takes the last share
      const mine = rankChunkRange(
        t,
        ranking,
        shared,
        Math.min(total, slots.length * per),
        total,
        lutApplies(t) ? buildRankLut(ranking, t.words) : undefined,
      );
      const done = await Promise.allSettled(jobs);
      let ranked = mine;
      for (const d of done) {
        if (d.status === 'rejected') throw d.reason;
        ranked += d.value;
      }
      workerRanked += ranked - mine;
      return ranked;
    } finally {
      busy = false;
    }
  }

  return {
    threads,
    rank,
    get workerRanked() {
      return workerRanked;
    },
    async close() {
      if (closed) return;
      closed = true;
      await Promise.all(slots.map((s) => s.worker.terminate()));
    },
  };
}
