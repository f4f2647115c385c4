import { browserRefusal, reachableOnLoopback } from '../common/browser-guard.js';
import { decodePathSegment } from '../common/path-segment.js';
import { splitIdHint, transferIdOfPathSegment } from '../common/actor-id-wire.js';
import { createServer, type IncomingMessage, type ServerResponse, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { open, type FileHandle } from 'node:fs/promises';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createSilentLogger, type Logger } from '../common/logger.js';
import { chunkRange, type Manifest } from './manifest.js';
import { cidOf, NO_CID } from './cid.js';
import { parseRange } from './http-range.js';
import { BufferPool } from '../common/buffer-pool.js';
import { isLocationLabel } from '../common/vocabulary.js';
import type { PortalErrorCode } from '../common/errors.js';

/** A transfer's state as a content source reports it (SchedulerActor's TransferStatus['state']). */
export type ContentState = 'idle' | 'queued' | 'running' | 'verifying' | 'done' | 'failed' | 'cancelled';

/**
 * Where a content server gets a running transfer's bytes from: the scheduler of the transfer (through
 * its actor; actors/content-source.ts) says which chunks are verified and raises the priority of those
 * a reader waits for; the bytes are read from the output file.
 */
export interface ContentSource {
  /** The manifest, the output file and the state (with why it does not run: `error`, when failed or cancelled). */
  info(): Promise<{ manifest: Manifest; output: string; state: ContentState; error?: string }>;
  /** Registers a read of [offset, offset + length) and answers which of its chunks [first, last] are verified. */
  read(q: {
    readerId: string;
    offset: number;
    length: number;
    rateBytesPerSec?: number;
    /** Where the reader is (a location label, from the request's `x-portal-location`). */
    location?: string;
  }): Promise<{ state: ContentState; error?: string; first: number; last: number; complete: number[] }>;
  /**
   * Calls `listener(chunk)` each time a chunk's bytes are verified and written to the output (the event of
   * the data plane's report, before the scheduler applies it); returns the function that stops it. Optional:
   * without it a waiting read asks `read` again every `pollMs`.
   */
  onVerified?(listener: (chunk: number) => void): () => void;
  /**
   * Whether `chunk` is known verified and written without asking (optional). A read of such a chunk is served at
   * once and its `read` call goes out beside it, not waited for.
   */
  known?(chunk: number): boolean;
}

/** Options of serveContent and createContentServer. */
export interface ContentServeOptions {
  /**
   * How often a read waiting for a chunk asks the source again, ms: default 5 for a source without
   * `onVerified`; with it the wait ends on the chunk's event and asks again only every 250 ms (a transfer
   * that failed, or an event lost when the scheduler moved to another host).
   */
  pollMs?: number;
  /** Chunks of a Range a read asks for at once, from the one it waits for (default 8). */
  windowChunks?: number;
  /** Readers' consumption rates across their requests (one per server; default: one per response). */
  readers?: ReaderRates;
  /** Open output files shared by the responses (one per server; default: each response opens its own). */
  files?: OutputFiles;
  /** Chunk buffers shared by the responses (one per server; default: one per response). */
  buffers?: BufferPool;
  logger?: Logger;
  /** The transfer's id, as answers and log records name it. */
  transferId?: string;
}

/**
 * A reader's consumption rate across its requests (a player reading a file as a series of Ranges on one
 * keep-alive connection): bytes served to it over the time since its session began that was not spent
 * waiting for chunks. A gap longer than `sessionGapMs` (default 2 s: a pause) starts a new session; readers
 * idle that long are forgotten when the map grows past 1024.
 */
export class ReaderRates {
  private readonly sessions = new Map<
    string,
    { began: number; lastAt: number; bytes: number; waitedMs: number }
  >();

  constructor(private readonly sessionGapMs = 2000) {}

  /** Bytes/s of reader `id` at `now` (ms, performance.now()), or undefined before it was served anything. */
  rate(id: string, now: number): number | undefined {
    const s = this.sessions.get(id);
    if (!s || s.bytes === 0 || now - s.lastAt > this.sessionGapMs) return undefined;
    const activeS = (now - s.began - s.waitedMs) / 1000;
    return activeS > 0 ? s.bytes / activeS : undefined;
  }

  /** Records `bytes` served to reader `id` at `now`, after it waited `waitedMs` for them. */
  served(id: string, now: number, bytes: number, waitedMs = 0): void {
    let s = this.sessions.get(id);
    if (!s || now - s.lastAt - waitedMs > this.sessionGapMs) {
      if (this.sessions.size >= 1024)
        for (const [k, v] of this.sessions) if (now - v.lastAt > this.sessionGapMs) this.sessions.delete(k);
      s = { began: now, lastAt: now, bytes: 0, waitedMs: 0 };
      this.sessions.set(id, s);
    } else s.waitedMs += waitedMs;
    s.bytes += bytes;
    s.lastAt = now;
  }
}

/**
 * Output files opened for reading, shared by a server's responses: a reader's series of Range requests opens the
 * output once instead of once per request (open and close cost ~0.9 ms of the serving thread per request in a
 * profile of `bench/fabric.js --only reader`, against answers of 1–5 ms). A file unused for `idleMs` (default
 * 1 s) is closed, so a transfer that rewrites its output (a restart) is read again from a new open soon after.
 */
export class OutputFiles {
  private readonly files = new Map<
    string,
    { handle: Promise<FileHandle>; users: number; timer?: ReturnType<typeof setTimeout> }
  >();

  constructor(private readonly idleMs = 1000) {}

  /**
   * The open handle of `file` and the function that returns it (call it once, when the response ends). Rejects
   * with open's error (ENOENT while the output does not exist yet); a failed open is not kept.
   */
  async acquire(file: string): Promise<{ handle: FileHandle; release: () => void }> {
    let f = this.files.get(file);
    if (!f) {
      f = { handle: open(file, 'r'), users: 0 };
      this.files.set(file, f);
      const entry = f;
      f.handle.catch(() => {
        if (this.files.get(file) === entry) this.files.delete(file);
      });
    }
    clearTimeout(f.timer);
    f.users++;
    const entry = f;
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      if (--entry.users > 0) return;
      entry.timer = setTimeout(() => void this.drop(file, entry), this.idleMs);
      entry.timer.unref?.();
    };
    try {
      return { handle: await f.handle, release };
    } catch (err) {
      release();
      throw err;
    }
  }

  /** Closes every file no response uses (those in use close when released, after idleMs). */
  async close(): Promise<void> {
    await Promise.all(
      [...this.files].filter(([, f]) => f.users === 0).map(([file, f]) => this.drop(file, f)),
    );
  }

  private async drop(
    file: string,
    f: { handle: Promise<FileHandle>; users: number; timer?: ReturnType<typeof setTimeout> },
  ): Promise<void> {
    clearTimeout(f.timer);
    if (f.users > 0 || this.files.get(file) !== f) return;
    this.files.delete(file);
    await f.handle.then((h) => h.close()).catch(() => undefined);
  }
}

/** Counters of a content server. */
export interface ContentServerStats {
  requests: number;
  bytesServed: number;
  /** Times a read had to wait for a chunk not verified yet, and the total wait, ms. */
  stalls: number;
  stallMs: number;
  /** Chunks whose bytes in the output did not match their CID when read (never served). */
  verifyFailures: number;
  /**
   * Responses that never waited, neither for a chunk nor for the scheduler's answer (every chunk they served was
   * known verified, ContentSource.known or a verified-chunk event): their time from the request's
   * arrival to the last byte handed to the socket, as a histogram. `counts[i]` responses took ≤ `le[i]` ms (and
   * more than `le[i - 1]`); the last bucket is unbounded (`le` Infinity, printed as null in JSON). This is the
   * server's own share of a reader's wait: a read answered late by the reader's clock but fast here was late in
   * the reader, the network or the operating system's scheduling, not in Portal.
   */
  readyAnswers: { le: number[]; counts: number[]; maxMs: number };
  /**
   * The serving thread's event-loop delay while the server listened (perf_hooks.monitorEventLoopDelay, 5 ms
   * resolution), ms: how long a request that had arrived could wait for the thread to look at it. Absent from
   * serveContent's own stats (it is the server's).
   */
  eventLoopDelayMs?: { p50: number; p99: number; max: number };
}

/** Upper bounds (ms) of ContentServerStats.readyAnswers' buckets. */
export const READY_ANSWER_BUCKETS_MS = [1, 2, 5, 10, 20, 30, 50, 100, 200, 500, Infinity];

/** Stats with every counter at zero. */
export function emptyContentStats(): ContentServerStats {
  return {
    requests: 0,
    bytesServed: 0,
    stalls: 0,
    stallMs: 0,
    verifyFailures: 0,
    readyAnswers: { le: READY_ANSWER_BUCKETS_MS, counts: READY_ANSWER_BUCKETS_MS.map(() => 0), maxMs: 0 },
  };
}

function recordReadyAnswer(stats: ContentServerStats, ms: number): void {
  const h = stats.readyAnswers;
  const i = h.le.findIndex((b) => ms <= b);
  h.counts[i]++;
  h.maxMs = Math.max(h.maxMs, ms);
}

/**
 * Serves bytes of a running transfer as an HTTP response (GET or HEAD, one `bytes=` Range or the whole
 * content): headers at once, then the bytes as streamContent writes them — each chunk once it is verified and
 * its bytes in the output file hash to its CID again: a response never carries an unverified byte; it is cut
 * (socket destroyed) when the transfer fails or a chunk no longer matches. An invalid `x-portal-location` label
 * is answered 400 before anything is read. A reader names itself across requests with `x-portal-reader`
 * (default: its address and port).
 */
export async function serveContent(
  req: IncomingMessage,
  res: ServerResponse,
  source: ContentSource,
  opts: ContentServeOptions & { stats?: ContentServerStats } = {},
): Promise<void> {
  const stats = opts.stats;
  const arrived = performance.now();
  const log = opts.logger ?? createSilentLogger();
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD', 'content-length': 0 }).end();
    return;
  }
  const locationHeader = req.headers['x-portal-location'];
  if (locationHeader !== undefined && !isLocationLabel(locationHeader)) {
    const text = JSON.stringify({
      error: 'x-portal-location must be one location label of 1 to 256 characters without control characters',
    });
    res.writeHead(400, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
    return;
  }
  const info = await source.info();
  const name = opts.transferId !== undefined ? `transfer ${opts.transferId}` : 'the transfer';
  // a transfer that no longer runs is answered with why, before any byte: its content will not come
  if (info.state === 'failed' || info.state === 'cancelled') {
    refuseContent(res, notRunning(name, info.state, info.error));
    return;
  }
  const size = info.manifest.fileSize;
  const r = parseRange(req.headers.range, size);
  if (r.kind === 'unsatisfiable') {
    res.writeHead(416, { 'content-range': `bytes */${size}`, 'content-length': 0 }).end();
    return;
  }
  const start = r.kind === 'range' ? r.start : 0;
  const end = r.kind === 'range' ? r.end : size - 1;
  const headers: Record<string, string | number> = {
    'content-type': 'application/octet-stream',
    'content-length': Math.max(0, end - start + 1),
    'accept-ranges': 'bytes',
  };
  if (r.kind === 'range') headers['content-range'] = `bytes ${start}-${end}/${size}`;
  const status = r.kind === 'range' ? 206 : 200;
  if (req.method === 'HEAD' || size === 0) {
    res.writeHead(status, headers).end();
    return;
  }
  const readerId =
    (typeof req.headers['x-portal-reader'] === 'string' && req.headers['x-portal-reader']) ||
    `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? 0}`;
  // The status goes out with the first byte: until then a read that cannot be served (the transfer failed, was
  // cancelled or stopped while the reader waited for its first chunk) is answered with a status naming why. Once
  // bytes went out, a cut destroys the socket: the reader sees a body shorter than its Content-Length (an error),
  // never a clean short answer.
  let sent = 0;
  const sink: ContentSink = {
    on: (e: string, f: (...a: unknown[]) => void) => (res.on(e, f), sink),
    off: (e: string, f: (...a: unknown[]) => void) => (res.off(e, f), sink),
    write(bytes, done) {
      if (!res.headersSent) res.writeHead(status, headers);
      sent += bytes.length;
      return res.write(bytes, done);
    },
  } as ContentSink;
  const got = await streamContent(source, sink, {
    ...opts,
    start,
    end,
    readerId,
    ...(locationHeader !== undefined ? { location: locationHeader } : {}),
  });
  if (got.ended === 'complete') {
    res.end();
    if (stats && !got.waited) recordReadyAnswer(stats, performance.now() - arrived);
  } else if (got.ended === 'cut') {
    const state = got.detail.state as ContentState | undefined;
    const error = got.detail.error as string | undefined;
    const why = state === undefined ? got.why : notRunning(name, state, error).message;
    log.warn(
      { transferId: opts.transferId, readerId, sentBytes: sent, ofBytes: end - start + 1, ...got.detail },
      `content read of ${name} cut after ${sent} of ${end - start + 1} bytes: ${why}`,
    );
    const changed = got.detail.output as 'modified' | 'removed' | undefined;
    if (!res.headersSent)
      refuseContent(
        res,
        state !== undefined
          ? notRunning(name, state, error)
          : changed !== undefined
            ? {
                status: changed === 'removed' ? 410 : 409,
                code: 'PORTAL_OUTPUT_CHANGED',
                message: `${name}: ${got.why}; start the transfer again with its request to fetch it again`,
              }
            : { status: 500, code: 'PORTAL_INTERNAL', message: `${name}: ${got.why}` },
      );
    else res.destroy();
  } else if (!res.headersSent) res.destroy();
}

/** Why a read of a transfer that does not run now cannot be served, as an HTTP answer. */
function notRunning(
  name: string,
  state: ContentState,
  error: string | undefined,
): { status: number; code: PortalErrorCode; message: string } {
  if (state === 'failed')
    return {
      status: 409,
      code: 'PORTAL_TRANSFER_FAILED',
      message: `${name} is failed: ${error ?? 'no reason recorded'}`,
    };
  if (state === 'cancelled')
    return { status: 409, code: 'PORTAL_CANCELLED', message: `${name} is cancelled` };
  // not running and not done (a transfer not resumed on this host): what was asked is not there yet
  return {
    status: 425,
    code: 'PORTAL_TRANSFER_CONFLICT',
    message: `${name} is ${state}, not done yet: the content read waits for chunks it does not fetch`,
  };
}

/** Answers a refused content read: its status and `{ error: { code, message } }` (the actor API's envelope). */
function refuseContent(
  res: ServerResponse,
  e: { status: number; code: PortalErrorCode; message: string },
): void {
  const text = JSON.stringify({ error: { code: e.code, message: e.message } });
  res.writeHead(e.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/**
 * Where streamContent writes: an HTTP response, process.stdout, any Writable. `write` returns false when the
 * caller should wait for 'drain'; 'close' (a reader that went away: a socket closed, EPIPE) ends the stream.
 */
export type ContentSink = Pick<NodeJS.WritableStream, 'on' | 'off'> & {
  write(bytes: Uint8Array, done: (err?: Error | null) => void): boolean;
};

/** How streamContent ended. */
export type StreamContentResult =
  /** Every byte of the range was written; `waited`: it waited for a chunk or for the scheduler's answer. */
  | { ended: 'complete'; waited: boolean }
  /** The sink closed first (the reader went away). */
  | { ended: 'closed' }
  /**
   * It stopped before the end, for `why`: the transfer ended (failed, cancelled) with a chunk of the range
   * missing, a verified chunk no longer matches its CID in the output, or a read failed. The bytes written
   * before are the verified prefix of the range.
   */
  | { ended: 'cut'; why: string; detail: Record<string, unknown> };

/**
 * Writes bytes [start, end] (inclusive) of a running transfer to `sink`, in order: each chunk as soon as it is
 * verified — announced by the source's `onVerified` event (or seen by `read`) — and its bytes in the output file
 * hash to its CID again, so `sink` never gets an unverified byte (a chunk without a CID, NO_CID, is checked by its
 * length only). Each read it waits on goes to `source.read`, which raises the missing chunks' priority; the
 * reader's consumption rate (ReaderRates) goes with it, so the scheduler sizes the read-ahead, and so does
 * `location` (the scheduler then pre-positions the file on an accepting edge there). It waits for 'drain' when
 * `sink.write` says so (a slow reader holds at most the chunks written to it, never the file: the rest stays in
 * the output file). Resolves with how it ended (StreamContentResult); the caller ends or destroys the sink.
 * Rejects only with source.info's error.
 */
export async function streamContent(
  source: ContentSource,
  sink: ContentSink,
  o: ContentServeOptions & {
    stats?: ContentServerStats;
    /** First and last byte (inclusive); default the whole content. */
    start?: number;
    end?: number;
    readerId: string;
    /** Where the reader is (a location label). */
    location?: string;
  },
): Promise<StreamContentResult> {
  const stats = o.stats;
  const pollMs = o.pollMs ?? (source.onVerified ? 250 : 5);
  const windowChunks = Math.max(1, o.windowChunks ?? 8);
  const readers = o.readers ?? new ReaderRates();
  const { readerId, location } = o;
  const info = await source.info();
  const m = info.manifest;
  const start = o.start ?? 0;
  const end = o.end ?? m.fileSize - 1;
  if (end < start) return { ended: 'complete', waited: false };
  const log = o.logger ?? createSilentLogger();
  let closed = false;
  const firstChunk = Math.floor(start / m.chunkSize);
  const lastChunk = Math.floor(end / m.chunkSize);
  /** Chunks of this response known verified (from `read` answers and `onVerified` events), not served yet. */
  const verified = new Set<number>();
  let wake: (() => void) | undefined;
  const onClose = (): void => {
    closed = true;
    wake?.();
  };
  sink.on('close', onClose);
  // listening before the first read: a chunk verified between a read's answer and the wait is not missed
  const stopListening = source.onVerified?.((chunk) => {
    if (chunk < firstChunk || chunk > lastChunk) return;
    verified.add(chunk);
    wake?.();
  });
  // opened now, beside the first read's actor call, not after the wait (again later if it was not there yet)
  const files = o.files ?? new OutputFiles(0);
  let fh: FileHandle | undefined;
  let releaseFile: (() => void) | undefined;
  const acquire = async (): Promise<FileHandle> => {
    const got = await files.acquire(info.output);
    releaseFile = got.release;
    return (fh = got.handle);
  };
  const opening: Promise<FileHandle | Error> = acquire().catch((err: unknown) =>
    err instanceof Error ? err : new Error(String(err)),
  );
  const buffers = o.buffers ?? new BufferPool(2);
  const cut = (why: string, detail: Record<string, unknown> = {}): StreamContentResult => ({
    ended: 'cut',
    why,
    detail,
  });
  /** Resolves on the next `onVerified` event of this response, the sink's close, or after `ms`. */
  const nextEvent = (ms: number): Promise<void> =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        wake = undefined;
        resolve();
      }
      wake = done;
    });
  try {
    let pos = start;
    let waited = 0;
    let asked = false;
    let state: ContentState = 'running';
    let error: string | undefined;
    while (pos <= end && !closed) {
      const c = Math.floor(pos / m.chunkSize);
      if (!verified.has(c)) {
        const upTo = Math.min(lastChunk, c + windowChunks - 1);
        const rate = readers.rate(readerId, performance.now());
        const q = {
          readerId,
          offset: pos,
          length: Math.min(end + 1, chunkRange(m, upTo).offset + chunkRange(m, upTo).length) - pos,
          ...(rate !== undefined ? { rateBytesPerSec: rate } : {}),
          ...(location !== undefined ? { location } : {}),
        };
        if (source.known?.(c)) {
          // served now; the read still tells the scheduler where the reader is (read-ahead), without a wait
          verified.add(c);
          void source.read(q).then(
            (plan) => plan.complete.forEach((k) => verified.add(k)),
            (err: unknown) => log.debug({ readerId, err }, 'content read-ahead call failed'),
          );
        } else {
          asked = true;
          const plan = await source.read(q);
          for (const k of plan.complete) verified.add(k);
          state = plan.state;
          error = plan.error;
        }
      }
      if (!verified.has(c)) {
        const w0 = performance.now();
        if (stats) stats.stalls++;
        // wait for the chunk's event; without one (or past pollMs) ask the scheduler again (no priority changes)
        while (!verified.has(c) && !closed) {
          if (state === 'failed' || state === 'cancelled' || state === 'idle')
            return cut('content read cut: the transfer is not running and chunk is missing', {
              chunk: c,
              state,
              ...(error !== undefined ? { error } : {}),
            });
          await nextEvent(pollMs);
          if (verified.has(c) || closed) break;
          const again = await source.read({ readerId, offset: pos, length: 1 });
          if (again.complete[0] === c) verified.add(c);
          state = again.state;
          error = again.error;
        }
        if (closed) return { ended: 'closed' };
        const w = performance.now() - w0;
        waited += w;
        if (stats) stats.stallMs += w;
      }
      // serve the run of verified chunks from c on
      let handle = fh ?? (await opening);
      // the output appears with the first chunk written: an early open may have come before it
      if (handle instanceof Error) handle = await acquire();
      for (let cc = c; verified.has(cc) && pos <= end; cc++) {
        verified.delete(cc);
        const { offset, length } = chunkRange(m, cc);
        // a pooled buffer, back in the pool once the sink has taken its bytes (the write's callback)
        const buf = buffers.take(length);
        const { bytesRead } = await handle.read(buf, 0, length, offset);
        const bytes = buf.subarray(0, length);
        if (bytesRead !== length || (m.chunks[cc] !== NO_CID && cidOf(bytes) !== m.chunks[cc])) {
          buffers.give(buf);
          if (stats) stats.verifyFailures++;
          const what =
            bytesRead !== length
              ? `is shorter than chunk ${cc} (bytes ${offset}-${offset + length - 1})`
              : `no longer matches chunk ${cc}'s CID (bytes ${offset}-${offset + length - 1})`;
          return cut(`output ${info.output} was modified after it was verified: it ${what}`, {
            chunk: cc,
            output: 'modified',
          });
        }
        const from = pos - offset;
        const to = Math.min(end + 1, offset + length) - offset;
        const ok = sink.write(bytes.subarray(from, to), (err) => {
          if (!err) buffers.give(buf);
        });
        readers.served(readerId, performance.now(), to - from, waited);
        waited = 0;
        if (stats) stats.bytesServed += to - from;
        pos = offset + to;
        if (!ok) await drained(sink);
        if (closed) return { ended: 'closed' };
      }
    }
    return closed ? { ended: 'closed' } : { ended: 'complete', waited: asked };
  } catch (err) {
    if (closed) return { ended: 'closed' };
    // a verified chunk is read from the output: a missing file was removed after it was written
    if ((err as NodeJS.ErrnoException).code === 'ENOENT')
      return cut(`output ${info.output} was removed after it was verified (ENOENT)`, { output: 'removed' });
    return cut('content read failed', { err });
  } finally {
    sink.off('close', onClose);
    stopListening?.();
    await opening;
    releaseFile?.();
  }
}

function drained(sink: ContentSink): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      sink.off('drain', done);
      sink.off('close', done);
      resolve();
    };
    sink.on('drain', done);
    sink.on('close', done);
  });
}

/** A running content server. */
export interface ContentServer {
  /** `http://host:port`, without a trailing slash. */
  readonly url: string;
  readonly port: number;
  stats(): ContentServerStats;
  /** Stops accepting; resolves once the responses in progress have ended (idle connections are closed). */
  close(): Promise<void>;
}

/**
 * Starts an HTTP server for transfers' content: `GET|HEAD /v1/transfers/<id>/content` (and `/content`
 * for `defaultTransfer`), served by serveContent from `sources(id)`; 404 for an unknown transfer.
 * Rejects with the listen error.
 */
export async function createContentServer(
  o: ContentServeOptions & {
    sources: (transferId: string) => ContentSource | undefined;
    defaultTransfer?: string;
    host?: string;
    port?: number;
  },
): Promise<ContentServer> {
  const log = o.logger ?? createSilentLogger();
  const stats = emptyContentStats();
  const loopDelay = monitorEventLoopDelay({ resolution: 5 });
  loopDelay.enable();
  const readers = o.readers ?? new ReaderRates();
  const files = o.files ?? new OutputFiles();
  const buffers = o.buffers ?? new BufferPool(8);
  const active = new Set<Promise<void>>();
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    stats.requests++;
    const path = (req.url ?? '/').split('?')[0];
    const refuse = (status: number, error: string, code?: string): void => {
      const text = JSON.stringify({ error, path, ...(code ? { code } : {}) });
      res.writeHead(status, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(text),
      });
      res.end(text);
    };
    const crossSite = browserRefusal(req, { loopback: reachableOnLoopback(o.host ?? '127.0.0.1') });
    if (crossSite !== undefined) {
      refuse(403, crossSite, 'PORTAL_CROSS_SITE_REFUSED');
      return;
    }
    const m = /^\/v1\/transfers\/([^/]+)\/content$/.exec(path);
    let id: string | undefined;
    try {
      // the actor API's wire form (`~` and base64url) or %-encoding: either names the transfer
      id = m
        ? transferIdOfPathSegment(decodePathSegment('transfer id', m[1]))
        : path === '/content'
          ? o.defaultTransfer
          : undefined;
    } catch (err) {
      // thrown here, in the request callback, it would have ended the process
      refuse(400, (err as Error).message, 'PORTAL_INVALID_ARGUMENT');
      return;
    }
    const source = id === undefined ? undefined : o.sources(id);
    if (!source) {
      refuse(404, `no such transfer${splitIdHint(path)}`);
      return;
    }
    const p = serveContent(req, res, source, { ...o, stats, readers, files, buffers, transferId: id }).catch(
      (err: unknown) => {
        log.warn({ err, path }, 'content request failed');
        if (!res.headersSent) res.writeHead(500).end();
        else res.destroy();
      },
    );
    active.add(p);
    void p.finally(() => active.delete(p));
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  const host = o.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    stats: () => ({
      ...stats,
      eventLoopDelayMs: {
        p50: loopDelay.percentile(50) / 1e6,
        p99: loopDelay.percentile(99) / 1e6,
        max: loopDelay.max / 1e6,
      },
      readyAnswers: { ...stats.readyAnswers, counts: [...stats.readyAnswers.counts] },
    }),
    close() {
      closing ??= (async () => {
        loopDelay.disable();
        const done = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        await Promise.all([...active]);
        server.closeIdleConnections();
        for (const s of sockets) if (!s.destroyed) s.end();
        await done;
        await files.close();
      })();
      return closing;
    },
  };
}
