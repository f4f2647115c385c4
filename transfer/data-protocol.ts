import type { EdgeKind, FailureReason } from '../common/index.js';
import type { SourceFault } from './chunk-fetch-error.js';
import type { HttpClientOptions } from './http-client.js';

/** What a data-plane worker thread is started with (its `workerData`). */
export interface DataWorkerData {
  /** Options of the worker's own HTTP client (undici Agent: a Pool per origin, its TLS trust, proxy, headers). */
  http: HttpClientOptions;
  /**
   * Write each piece of a chunk at its offset as it arrives (true), or keep the chunk in a pooled buffer and
   * write it once verified (false: for executors that share an output file with other processes, where
   * another process's hedge of the same chunk could be overwritten with unverified bytes).
   */
  streamWrites: boolean;
  /**
   * Keep a partial-chunk log beside each streamed output (partial-chunks.ts), so a fetch cut short (a crash,
   * a timeout) is finished later by asking only for the rest of the chunk.
   */
  keepPartialChunks: boolean;
  /** Run a young-generation collection after this many received bytes (0: leave it to V8); see DATA_GC_EVERY_BYTES. */
  gcEveryBytes: number;
  /**
   * Real path of the folder every output must stay inside (an executor's output root): each time this thread
   * opens an output or its partial-chunk log, the path is walked again (checkStillConfinedSync), since a folder of it
   * may have become a link to outside since the dispatch was confined. Absent: no root.
   */
  outputRoot?: string;
}

/** One chunk fetch for a worker: where from, which bytes, where they go. No chunk bytes travel in messages. */
export interface DataJob {
  output: string;
  fileSize: number;
  chunk: number;
  edgeUrl: string;
  edgeKind: EdgeKind;
  cid: string;
  offset: number;
  length: number;
  timeoutMs: number;
}

/** How a fetch ended: verified and written, or the cause a ChunkReport carries (same fields as ChunkFetchError). */
export type DataOutcome =
  | {
      ok: true;
      bytes: number;
      firstByteMs: number;
      transferMs: number;
      /**
       * Bytes of the chunk kept in the file from an earlier, interrupted fetch, or (a hedge) written by the attempt
       * streaming the chunk when the hedge began (not fetched again).
       */
      keptBytes?: number;
    }
  | {
      ok: false;
      reason: FailureReason;
      fault: SourceFault;
      detail: string;
      firstByteMs: number;
      elapsedMs: number;
      retryAfterMs?: number;
      status?: number;
    };

/** Main thread → worker. */
export type ToDataWorker =
  /** The configuration of a thread started before its plane (data-thread-prestart.ts): first, and once. */
  | { t: 'init'; data: DataWorkerData }
  | { t: 'job'; id: number; job: DataJob }
  | { t: 'cancel'; id: number; detail: string }
  | { t: 'close-file'; id: number; output: string; sync: boolean };

/** Worker → main thread. */
export type FromDataWorker =
  { t: 'done'; id: number; outcome: DataOutcome } | { t: 'closed'; id: number; error?: string };
