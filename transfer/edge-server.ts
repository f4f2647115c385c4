import { browserRefusal, isLoopbackHost } from '../common/browser-guard.js';
import { createServer, type IncomingMessage, type ServerResponse, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import { readSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { randomInt, createHash, timingSafeEqual } from 'node:crypto';
import { createSystemClock, type Clock, type TimerHandle } from '../common/clock.js';
import { PortalError } from '../common/errors.js';
import { httpStatusFor } from '../common/error-table.js';
import { localWriteError, withPath } from '../common/local-write-error.js';
import { requestTimeouts } from '../common/net.js';
import { createSilentLogger, type Logger } from '../common/logger.js';
import { chunkRange, packManifest, parseManifest, type Manifest } from './manifest.js';
import { createManifestStore } from './manifest-store.js';
import { createTokenBucket, type TokenBucket } from './token-bucket.js';
import { encodeHaveBitmap } from './have-bitmap.js';
import { createPrng } from './prng.js';
import { parseRange } from './http-range.js';
import { cidOf, NO_CID } from './cid.js';
import { BufferPool } from '../common/buffer-pool.js';
import { continueBody, decideContinue } from '../common/expect-continue.js';
import { subjects, type Bus } from '../bus/types.js';
import type { EdgeHaveEvent, EdgeTelemetryEvent } from '../common/vocabulary.js';

/** Largest body slice written at once; the bandwidth cap takes tokens per slice. */
export const EDGE_SLICE_BYTES = 64 * 1024;

/**
 * Largest body slice of an edge without a bandwidth cap (a swarm peer, a plain `portal edge`), whose slices are
 * one chunk (at least EDGE_SLICE_BYTES, at most this): a 256 KiB chunk goes out as one file read and one socket
 * write instead of four of each. Each read is a round trip through
 * libuv's thread pool, and at 8 swarm members on 2 cores those round trips were ~9 % of a member's main-thread
 * profile (BENCHMARKS.md, issue 18, session 6). Bounds the memory of one response to this many bytes.
 */
export const EDGE_UNPACED_SLICE_BYTES = 1024 * 1024;

/** Faults an edge injects, for demos and tests. Rates draw from a PRNG seeded with `seed`. */
export interface EdgeFaults {
  /** After this many ms (edge clock) since start the edge goes offline: listener closed, sockets destroyed. */
  offlineAtMs?: number;
  /** Fraction of chunk and /file requests answered 503. */
  failRate?: number;
  /** Fraction of chunk and /file responses whose body has a flipped byte (headers unchanged). */
  corruptRate?: number;
  /** Chunks whose bytes are always served corrupted. */
  corruptChunks?: Set<number>;
  /** PRNG seed (default: random), for reproducible failRate/corruptRate draws. */
  seed?: number;
}

/** Options for createEdgeServer. */
export interface EdgeServerOptions {
  /** Reported by /health (default `edge-<port>`). */
  id?: string;
  /** Where the edge is, a label such as `eu-west/ams`: reported by /health and announced with its URL. */
  location?: string;
  /** The file this edge serves chunks of, and its manifest. */
  source: { path: string; manifest: Manifest };
  /** Chunk indices this edge holds (default 'all'). */
  holds?: Set<number> | 'all';
  /** Cap over all response bodies of this edge together (default: uncapped). */
  bandwidthBytesPerSec?: number;
  /** Token-bucket burst for the cap (default: see createTokenBucket). */
  burstBytes?: number;
  /** Delay before the first byte of every response. */
  rttMs?: number;
  faults?: EdgeFaults;
  clock?: Clock;
  logger?: Logger;
  /** Listen address (default 127.0.0.1) and port (default 0: any free port). */
  host?: string;
  port?: number;
  /** Serve HTTPS with this PEM certificate (chain) and key (`portal edge --tls-cert/--tls-key`). */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /**
   * Accept chunks by `PUT /v1/chunks/<cid>` (pre-positioning). The body must be exactly the
   * chunk's length and hash to its CID before it is written at the chunk's offsets in `source.path` and
   * announced as held; a mismatching body is refused with 422 and nothing is kept. A file system that is full
   * (ENOSPC/EDQUOT) answers 507 `{ error: 'no space left on device: cannot write <path> (ENOSPC)', code:
   * 'PORTAL_NO_SPACE', cid }`, another local write error 500 naming it; either way no part of the chunk is kept
   * and the edge serves on. With `token`, a PUT needs
   * `Authorization: Bearer <token>` (401 otherwise). The source file is opened read-write, and created
   * (sparse, the manifest's size, holding nothing unless `holds` says so) when it does not exist.
   */
  accept?: { token?: string };
  /**
   * Read body slices with a synchronous read on the event loop instead of through libuv's thread pool: for a
   * source that sits in the page cache (a swarm peer serves chunks it has just written), where a 256 KiB copy
   * takes tens of µs and the thread-pool round trip costs more CPU than the copy (BENCHMARKS.md, issue 18,
   * session 7). Off by default: a cold file on a disk would stall every connection of the edge per read.
   */
  syncReads?: boolean;
  /** A request (headers and body: a PUT) must arrive within this many ms, else 408 (default REQUEST_TIMEOUT_MS). */
  requestTimeoutMs?: number;
  /**
   * Announce this edge on a bus: a telemetry message with its URL (so schedulers can configure it) and its
   * holdings as a full `portal.edge.<id>.have` message, both at start and every `announceEveryMs` for late
   * joiners; a change of holdings sends the have message alone, within `announceCoalesceMs` of the change.
   */
  announce?: { bus: Bus; announceEveryMs?: number; announceCoalesceMs?: number; maxParallel?: number };
  /**
   * Binary manifests by content id (docs/manifest-format.md): the edge always serves its own at
   * `GET /v1/manifests/<sha-256 of its binary encoding>`; with `dir` it also keeps manifests PUT there (checked
   * against the id before they are kept) and serves them, at most `maxFiles` of them (default
   * MANIFEST_DIR_MAX_FILES, 1000; 507 past it) of `maxBytes` in all (default MANIFEST_DIR_MAX_BYTES, 1 GiB; 413
   * past it). With `token`, such a PUT needs `Authorization: Bearer <token>`.
   */
  manifests?: { dir?: string; token?: string; maxFiles?: number; maxBytes?: number };
}

/** Counters of what an edge has done. */
export interface EdgeServerStats {
  requests: number;
  bytesServed: number;
  corruptServed: number;
  failedInjected: number;
  /** Chunks stored from PUT bodies that matched their CID. */
  chunksAccepted: number;
  /**
   * PUT bodies refused: CID mismatch (422), wrong length (413/422), unknown CID (404), bad token (401), a full
   * disk (507) or another local write error (500).
   */
  putsRefused: number;
  /** Body slice buffers allocated; one the socket has finished with is reused (SLICE_POOL_MAX_FREE kept). */
  sliceBuffersAllocated: number;
}

/**
 * Free slice buffers one edge keeps for reuse: enough for the slices of 32 responses in flight. A swarm member
 * serves about as many bytes as it fetches, and a fresh buffer per 256 KiB slice (malloc, page faults on first
 * touch, then collection of external memory) was ~5 % of its main thread (BENCHMARKS.md, issue 18, session 7).
 */
const SLICE_POOL_MAX_FREE = 32;

/** A running edge (Portal chunk server and plain Range mirror of one file). */
export interface EdgeServer {
  readonly id: string;
  /** `http://host:port` (`https://` with `tls`), without a trailing slash. */
  readonly url: string;
  readonly port: number;
  readonly manifest: Manifest;
  /** The content id of the edge's own manifest: sha-256 of its binary encoding, served at /v1/manifests/<id>. */
  readonly manifestCid: string;
  stats(): EdgeServerStats;
  /** True once the edge has gone offline or closed. */
  isOffline(): boolean;
  /** The chunk indices this edge holds now (a copy); 'all' for an edge that holds the whole file. */
  holdings(): Set<number> | 'all';
  /**
   * Declares chunks held that were written into the source file by someone else and verified there (a
   * fetcher serving what it fetched: the swarm). Each one is re-read and checked against its CID first; a
   * chunk that does not match is not added. Resolves to how many were added. Announces on change.
   */
  addHoldings(chunks: Iterable<number>): Promise<number>;
  /**
   * Declares chunks held without reading them back: for a caller that has itself verified each chunk's bytes
   * against its CID and finished writing them into the source file before the call (the swarm peer on its
   * executor's ok report: node/swarm.ts), where addHoldings would read and hash every chunk a second time.
   * Indices outside the manifest, chunks already held and chunks without a CID are skipped. Returns how many were
   * added; announces on change. Never throws.
   */
  holdVerified(chunks: Iterable<number>): number;
  /** Stops accepting connections and destroys open sockets (clients see ECONNREFUSED/ECONNRESET); idempotent. */
  goOffline(): Promise<void>;
  /** Goes offline, cancels timers and closes the source file; idempotent. */
  close(): Promise<void>;
}

function checkRate(v: unknown, name: string): void {
  if (v !== undefined && (typeof v !== 'number' || !(v >= 0 && v <= 1)))
    throw new PortalError(
      'PORTAL_INVALID_ARGUMENT',
      `${name}: expected a number in [0, 1], got ${JSON.stringify(v)}`,
    );
}

function checkNonNeg(v: unknown, name: string): void {
  if (v !== undefined && (typeof v !== 'number' || !Number.isFinite(v) || v < 0))
    throw new PortalError(
      'PORTAL_INVALID_ARGUMENT',
      `${name}: expected a non-negative finite number, got ${JSON.stringify(v)}`,
    );
}

/**
 * Starts an edge serving `source` over HTTP: `/health`, `/v1/chunks/<cid>`, `/v1/have/<manifestId>` and
 * `/file` (Range mirror), with optional bandwidth cap, RTT and injected faults; with `accept`, also
 * `PUT /v1/chunks/<cid>` (verified against the CID before it is held), and with `announce` its URL and
 * holdings on a bus. Binary manifests by content id at `/v1/manifests/<cid>`: its own always, and with
 * `manifests.dir` those PUT to it (transfer/manifest-store.ts). Rejects with
 * PORTAL_INVALID_ARGUMENT for bad options, PORTAL_MANIFEST_INVALID for a bad manifest,
 * PORTAL_MANIFEST_MISMATCH when the file size differs from the manifest, and the listen error otherwise.
 */
export async function createEdgeServer(opts: EdgeServerOptions): Promise<EdgeServer> {
  if (!opts || typeof opts !== 'object')
    throw new PortalError('PORTAL_INVALID_ARGUMENT', 'opts: expected an object');
  if (!opts.source || typeof opts.source.path !== 'string')
    throw new PortalError('PORTAL_INVALID_ARGUMENT', 'opts.source.path: expected a string');
  const manifest = parseManifest(opts.source.manifest);
  const n = manifest.chunks.length;
  const holdsOpt = opts.holds ?? 'all';
  if (holdsOpt !== 'all') {
    if (!(holdsOpt instanceof Set))
      throw new PortalError(
        'PORTAL_INVALID_ARGUMENT',
        "opts.holds: expected a Set of chunk indices or 'all'",
      );
    for (const i of holdsOpt)
      if (!Number.isInteger(i) || i < 0 || i >= n)
        throw new PortalError(
          'PORTAL_INVALID_ARGUMENT',
          `opts.holds: chunk index ${String(i)} is outside [0, ${n})`,
        );
  }
  checkNonNeg(opts.rttMs, 'opts.rttMs');
  if (
    opts.bandwidthBytesPerSec !== undefined &&
    !(typeof opts.bandwidthBytesPerSec === 'number' && opts.bandwidthBytesPerSec > 0)
  ) {
    throw new PortalError(
      'PORTAL_INVALID_ARGUMENT',
      `opts.bandwidthBytesPerSec: expected a positive number, got ${String(opts.bandwidthBytesPerSec)}`,
    );
  }
  const faults = opts.faults ?? {};
  checkRate(faults.failRate, 'opts.faults.failRate');
  checkRate(faults.corruptRate, 'opts.faults.corruptRate');
  checkNonNeg(faults.offlineAtMs, 'opts.faults.offlineAtMs');
  if (faults.corruptChunks !== undefined && !(faults.corruptChunks instanceof Set))
    throw new PortalError(
      'PORTAL_INVALID_ARGUMENT',
      'opts.faults.corruptChunks: expected a Set of chunk indices',
    );
  const clock = opts.clock ?? createSystemClock();
  const rand = createPrng(faults.seed ?? randomInt(0, 2 ** 32));
  const failRate = faults.failRate ?? 0;
  const corruptRate = faults.corruptRate ?? 0;
  const corruptChunks = faults.corruptChunks ?? new Set<number>();
  const rttMs = opts.rttMs ?? 0;
  const bucket: TokenBucket | null = opts.bandwidthBytesPerSec
    ? createTokenBucket({ rateBytesPerSec: opts.bandwidthBytesPerSec, burstBytes: opts.burstBytes, clock })
    : null;
  // mutable copy: PUT, addHoldings and holdVerified add to it
  const holds: Set<number> | 'all' = holdsOpt === 'all' ? 'all' : new Set(holdsOpt);
  const isHeld = (i: number): boolean => holds === 'all' || holds.has(i);
  if (opts.accept !== undefined && (typeof opts.accept !== 'object' || opts.accept === null))
    throw new PortalError('PORTAL_INVALID_ARGUMENT', 'opts.accept: expected an object');
  const putToken = opts.accept?.token;
  if (putToken !== undefined && (typeof putToken !== 'string' || putToken === ''))
    throw new PortalError('PORTAL_INVALID_ARGUMENT', 'opts.accept.token: expected a non-empty string');

  const manifestToken = opts.manifests?.token;
  const manifestStore = await createManifestStore({
    own: packManifest(manifest),
    dir: opts.manifests?.dir,
    maxFiles: opts.manifests?.maxFiles,
    maxBytes: opts.manifests?.maxBytes,
    authorized:
      manifestToken === undefined
        ? undefined
        : (req) => bearerMatches(req.headers.authorization, manifestToken),
    logger: opts.logger ?? createSilentLogger(),
  });

  const byCid = new Map<string, number[]>();
  manifest.chunks.forEach((cid, i) => {
    const list = byCid.get(cid);
    if (list) list.push(i);
    else byCid.set(cid, [i]);
  });

  let fh: FileHandle;
  try {
    fh = opts.accept
      ? await openForWrite(opts.source.path, manifest.fileSize)
      : await open(opts.source.path, 'r');
  } catch (err) {
    throw new PortalError(
      'PORTAL_INVALID_ARGUMENT',
      `opts.source.path: cannot open ${opts.source.path}: ${(err as Error).message}`,
      { cause: err },
    );
  }
  const size = (await fh.stat()).size;
  if (size !== manifest.fileSize) {
    await fh.close();
    throw new PortalError(
      'PORTAL_MANIFEST_MISMATCH',
      `opts.source: ${opts.source.path} has ${size} bytes, manifest ${manifest.id} says ${manifest.fileSize}`,
    );
  }

  const counters: Omit<EdgeServerStats, 'sliceBuffersAllocated'> = {
    requests: 0,
    bytesServed: 0,
    corruptServed: 0,
    failedInjected: 0,
    chunksAccepted: 0,
    putsRefused: 0,
  };
  // every slice fits one pool buffer: 64 KiB under a cap (the bucket takes tokens per slice), else a whole chunk
  // up to EDGE_UNPACED_SLICE_BYTES
  const sliceBytes = bucket
    ? EDGE_SLICE_BYTES
    : Math.min(EDGE_UNPACED_SLICE_BYTES, Math.max(EDGE_SLICE_BYTES, manifest.chunkSize));
  const slices = new BufferPool(SLICE_POOL_MAX_FREE);
  const syncReads = opts.syncReads === true;
  const sockets = new Set<Socket>();
  let offline = false;
  let closed = false;
  let offlinePromise: Promise<void> | null = null;
  let offlineTimer: TimerHandle | null = null;
  let id = opts.id ?? '';
  let log = opts.logger ?? createSilentLogger();

  const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
    new Promise((resolve, reject) => {
      if (ms <= 0) {
        resolve();
        return;
      }
      const onAbort = (): void => {
        clock.clearTimeout(h);
        reject(new PortalError('PORTAL_CANCELLED', 'client went away'));
      };
      const h = clock.setTimeout(() => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      signal.addEventListener('abort', onAbort, { once: true });
    });

  const waitWritable = (res: ServerResponse): Promise<void> =>
    new Promise((resolve) => {
      const done = (): void => {
        res.off('drain', done);
        res.off('close', done);
        resolve();
      };
      res.on('drain', done);
      res.on('close', done);
    });

  const sendJson = (res: ServerResponse, status: number, body: unknown): void => {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  };

  /** Streams file bytes [offset, offset+length) in slices, paced by the bucket, flipping the bytes at `flipAt`. */
  const streamBody = async (
    res: ServerResponse,
    signal: AbortSignal,
    offset: number,
    length: number,
    flipAt: number[],
  ): Promise<void> => {
    if (flipAt.length > 0) counters.corruptServed++;
    for (let pos = 0; pos < length;) {
      const len = Math.min(sliceBytes, length - pos);
      if (bucket) await bucket.take(len, signal);
      if (signal.aborted) return;
      const pooled = slices.take(len);
      const buf = pooled.subarray(0, len);
      let bytesRead: number;
      try {
        bytesRead = syncReads
          ? readSync(fh.fd, buf, 0, len, offset + pos)
          : (await fh.read(buf, 0, len, offset + pos)).bytesRead;
      } catch (err) {
        slices.give(pooled);
        throw err;
      }
      if (bytesRead !== len) {
        slices.give(pooled);
        throw new PortalError(
          'PORTAL_MANIFEST_MISMATCH',
          `short read of ${opts.source.path} at ${offset + pos}: ${bytesRead} of ${len} bytes`,
        );
      }
      const sliceStart = offset + pos;
      for (const p of flipAt) if (p >= sliceStart && p < sliceStart + len) buf[p - sliceStart] ^= 0xff;
      counters.bytesServed += len;
      pos += len;
      // back to the pool only once the socket has written the bytes (or failed: a destroyed socket errors its
      // pending writes); a callback that never runs leaves the buffer to the garbage collector
      const written = res.write(buf, () => slices.give(pooled));
      if (!written) await waitWritable(res);
      if (signal.aborted) return;
    }
    res.end();
  };

  const drawFail = (): boolean => failRate > 0 && rand() < failRate;
  const drawCorrupt = (): boolean => corruptRate > 0 && rand() < corruptRate;

  const handleChunk = async (
    req: IncomingMessage,
    res: ServerResponse,
    signal: AbortSignal,
    cid: string,
  ): Promise<void> => {
    const index = byCid.get(cid.toLowerCase())?.find(isHeld);
    if (index === undefined) {
      await sleep(rttMs, signal);
      sendJson(res, 404, { error: 'chunk not held', cid });
      return;
    }
    if (drawFail()) {
      counters.failedInjected++;
      await sleep(rttMs, signal);
      sendJson(res, 503, { error: 'injected failure' });
      return;
    }
    const { offset, length } = chunkRange(manifest, index);
    // a Range of the chunk: the rest of a chunk whose first bytes a fetcher kept from an interrupted fetch
    const r = parseRange(req.headers.range, length);
    if (r.kind === 'unsatisfiable') {
      await sleep(rttMs, signal);
      res.writeHead(416, { 'content-range': `bytes */${length}`, 'content-length': 0 });
      res.end();
      return;
    }
    const start = r.kind === 'range' ? r.start : 0;
    const end = r.kind === 'range' ? r.end : length - 1;
    const flip = offset + (length >> 1);
    const flipAt =
      (corruptChunks.has(index) || drawCorrupt()) && flip >= offset + start && flip <= offset + end
        ? [flip]
        : [];
    await sleep(rttMs, signal);
    res.writeHead(r.kind === 'range' ? 206 : 200, {
      'content-type': 'application/octet-stream',
      'content-length': end - start + 1,
      'accept-ranges': 'bytes',
      'x-portal-chunk': index,
      ...(r.kind === 'range' ? { 'content-range': `bytes ${start}-${end}/${length}` } : {}),
    });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    await streamBody(res, signal, offset + start, end - start + 1, length > 0 ? flipAt : []);
  };

  /** Sends a JSON refusal of a PUT and closes the connection (the rest of the body is not read). */
  const refusePut = (res: ServerResponse, status: number, body: Record<string, unknown>): void => {
    counters.putsRefused++;
    const text = JSON.stringify(body);
    res.writeHead(status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(text),
      connection: 'close',
    });
    res.end(text);
  };

  /**
   * Writes a PUT chunk's `body` at `offset` of the source file, through short writes (a file system that fills
   * up mid-chunk takes part of it, then refuses the rest). On a local write error (ENOSPC/EDQUOT:
   * PORTAL_NO_SPACE; EFBIG, EIO, EACCES, EPERM, EROFS: PORTAL_TRANSFER_FAILED) the bytes that were written are
   * zeroed again (their blocks are allocated by then, so this needs no room), so no part of a chunk is left in
   * the file, and the error, naming the file, is returned; any other error is thrown.
   */
  const writeChunk = async (body: Buffer, offset: number): Promise<PortalError | undefined> => {
    let done = 0;
    try {
      while (done < body.length) {
        const { bytesWritten } = await fh.write(body, done, body.length - done, offset + done);
        if (bytesWritten <= 0) throw new Error(`write of ${opts.source.path} made no progress`);
        done += bytesWritten;
      }
      return undefined;
    } catch (err) {
      const failure = localWriteError(withPath(err, opts.source.path));
      if (failure === undefined) throw err;
      if (done > 0)
        await fh.write(Buffer.alloc(done), 0, done, offset).catch((zeroErr: unknown) => {
          log.warn(
            { err: zeroErr, offset, bytes: done },
            'cannot zero the part of a PUT chunk that was written',
          );
        });
      return failure;
    }
  };

  /**
   * `PUT /v1/chunks/<cid>`: the body is stored only when it is exactly the chunk's length and hashes to
   * its CID; then it is written at every offset of the manifest that has this CID, held, and announced.
   */
  const handlePut = async (req: IncomingMessage, res: ServerResponse, cidIn: string): Promise<void> => {
    if (putToken !== undefined && !bearerMatches(req.headers.authorization, putToken)) {
      refusePut(res, 401, { error: 'a PUT needs Authorization: Bearer <token>' });
      return;
    }
    const cid = cidIn.toLowerCase();
    const indices = cid === NO_CID ? undefined : byCid.get(cid);
    if (!indices) {
      refusePut(res, 404, { error: `not a chunk of manifest ${manifest.id}`, cid });
      return;
    }
    const { length } = chunkRange(manifest, indices[0]);
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) > length) {
      refusePut(res, 413, { error: `body of ${declared} bytes; chunk ${cid} has ${length}`, cid });
      return;
    }
    continueBody(req, res);
    const body = await readBody(req, length);
    if (body === null) {
      refusePut(res, 413, { error: `body longer than the chunk's ${length} bytes`, cid });
      return;
    }
    if (body.length !== length) {
      refusePut(res, 422, { error: `body has ${body.length} bytes; chunk ${cid} has ${length}`, cid });
      return;
    }
    const actual = cidOf(body);
    if (actual !== cid) {
      log.warn({ cid, actual }, 'PUT chunk refused: body does not hash to its CID');
      refusePut(res, 422, { error: 'body does not hash to the CID', cid, sha256: actual });
      return;
    }
    const missing = indices.filter((i) => !isHeld(i));
    for (const i of missing) {
      const { offset } = chunkRange(manifest, i);
      const failure = await writeChunk(body, offset);
      if (failure !== undefined) {
        // a full disk (507) or another local write error: nothing is held, the connection stays usable
        log.warn({ cid, chunk: i, err: failure }, 'PUT chunk not stored: the source file cannot be written');
        sendJson(res, httpStatusFor(failure.code), { error: failure.message, code: failure.code, cid });
        counters.putsRefused++;
        return;
      }
    }
    if (missing.length > 0 && holds !== 'all') {
      for (const i of missing) holds.add(i);
      counters.chunksAccepted++;
      scheduleAnnounce();
    }
    sendJson(res, missing.length > 0 ? 201 : 200, { cid, stored: missing.length > 0, chunks: indices });
  };

  const handleFile = async (
    req: IncomingMessage,
    res: ServerResponse,
    signal: AbortSignal,
  ): Promise<void> => {
    const r = parseRange(req.headers.range, size);
    if (r.kind === 'unsatisfiable') {
      await sleep(rttMs, signal);
      res.writeHead(416, { 'content-range': `bytes */${size}`, 'content-length': 0 });
      res.end();
      return;
    }
    const start = r.kind === 'range' ? r.start : 0;
    const end = r.kind === 'range' ? r.end : size - 1;
    const length = end - start + 1;
    if (holds !== 'all' && length > 0) {
      const first = Math.floor(start / manifest.chunkSize);
      const last = Math.floor(end / manifest.chunkSize);
      for (let i = first; i <= last; i++) {
        if (!isHeld(i)) {
          await sleep(rttMs, signal);
          sendJson(res, 404, { error: 'range not held', chunk: i });
          return;
        }
      }
    }
    if (drawFail()) {
      counters.failedInjected++;
      await sleep(rttMs, signal);
      sendJson(res, 503, { error: 'injected failure' });
      return;
    }
    const flipAt: number[] = [];
    if (length > 0) {
      for (const i of corruptChunks) {
        const c = chunkRange(manifest, i);
        const p =
          Math.max(c.offset, start) +
          ((Math.min(c.offset + c.length, end + 1) - Math.max(c.offset, start)) >> 1);
        if (c.offset <= end && c.offset + c.length > start) flipAt.push(p);
      }
      if (flipAt.length === 0 && drawCorrupt()) flipAt.push(start + (length >> 1));
    }
    await sleep(rttMs, signal);
    const headers: Record<string, string | number> = {
      'content-type': 'application/octet-stream',
      'content-length': length,
      'accept-ranges': 'bytes',
    };
    if (r.kind === 'range') headers['content-range'] = `bytes ${start}-${end}/${size}`;
    res.writeHead(r.kind === 'range' ? 206 : 200, headers);
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    await streamBody(res, signal, start, length, flipAt);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    counters.requests++;
    if (offline) {
      req.socket.destroy();
      return;
    }
    const ac = new AbortController();
    // only a response cut before its end aborts its work: aborting builds a DOMException with a stack, which for
    // every served chunk was ~1 % of a swarm member's main thread (BENCHMARKS.md, issue 18, session 7)
    res.on('close', () => {
      if (!res.writableFinished) ac.abort();
    });
    const path = (req.url ?? '/').split('?')[0];
    if (path.startsWith('/v1/manifests/') && ['GET', 'HEAD', 'PUT'].includes(req.method ?? '')) {
      await sleep(rttMs, ac.signal);
      await manifestStore.handle(req, res, path.slice('/v1/manifests/'.length));
      return;
    }
    if (req.method === 'PUT' && opts.accept && path.startsWith('/v1/chunks/')) {
      await handlePut(req, res, path.slice('/v1/chunks/'.length));
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      const allow = opts.accept ? 'GET, HEAD, PUT' : 'GET, HEAD';
      res.writeHead(405, { allow, 'content-length': 0, connection: 'close' });
      res.end();
      return;
    }
    if (path === '/health') {
      await sleep(rttMs, ac.signal);
      sendJson(res, 200, { ok: true, id, ...(opts.location ? { location: opts.location } : {}) });
      return;
    }
    if (path.startsWith('/v1/chunks/')) {
      await handleChunk(req, res, ac.signal, path.slice('/v1/chunks/'.length));
      return;
    }
    if (path.startsWith('/v1/have/')) {
      await sleep(rttMs, ac.signal);
      const mid = path.slice('/v1/have/'.length);
      if (mid !== manifest.id) {
        sendJson(res, 404, { error: 'unknown manifest', manifestId: mid });
        return;
      }
      sendJson(res, 200, { manifestId: manifest.id, chunks: n, bitmap: encodeHaveBitmap(holds, n) });
      return;
    }
    if (path === '/file') {
      await handleFile(req, res, ac.signal);
      return;
    }
    await sleep(rttMs, ac.signal);
    sendJson(res, 404, { error: 'not found', path });
  };

  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    // Host is checked on a loopback edge only: one bound beyond it is reached by its operators' names, and what it
    // serves is public by design (chunks and manifests named by their hashes); a PUT stores only what hashes to
    // its id and, with accept.token, only with the token, which a web page cannot send.
    const crossSite = browserRefusal(req, { loopback: isLoopbackHost(opts.host ?? '127.0.0.1') });
    if (crossSite !== undefined) {
      sendJson(res, 403, { error: crossSite, code: 'PORTAL_CROSS_SITE_REFUSED' });
      return;
    }
    handle(req, res).catch((err: unknown) => {
      if (err instanceof PortalError && err.code === 'PORTAL_CANCELLED') return;
      log.warn({ err, url: req.url }, 'edge request failed');
      if (!res.headersSent) sendJson(res, 500, { error: String((err as Error).message ?? err) });
      else res.destroy();
    });
  };
  let server: Server;
  try {
    server = opts.tls
      ? createHttpsServer(
          { cert: opts.tls.cert, key: opts.tls.key, ...requestTimeouts(opts.requestTimeoutMs) },
          onRequest,
        )
      : createServer(requestTimeouts(opts.requestTimeoutMs), onRequest);
  } catch (cause) {
    await fh.close();
    throw new PortalError('PORTAL_CONFIG_INVALID', `tls: cannot use the certificate and key given`, {
      cause,
    });
  }
  // `Expect: 100-continue` is answered after a PUT's token and length checks: a refused PUT gets its 401/413 and no 100
  decideContinue(server, onRequest);
  server.keepAliveTimeout = 30_000;
  server.on('connection', (s: Socket) => {
    if (offline) {
      s.destroy();
      return;
    }
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  }).catch(async (err: unknown) => {
    await fh.close();
    throw err;
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  if (id === '') id = `edge-${port}`;
  log = log.child({ edgeId: id });
  const url = `${opts.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`;

  // ---- announcements on the bus (telemetry with the URL, then full have bitmaps) ----
  const ann = opts.announce;
  let haveSeq = 0;
  let coalesceTimer: TimerHandle | null = null;
  let periodicTimer: TimerHandle | null = null;
  const publish = (subject: string, msg: EdgeTelemetryEvent | EdgeHaveEvent): void => {
    ann?.bus
      .publish(subject, msg)
      .catch((err: unknown) => log.warn({ err, subject }, 'announcement not sent'));
  };
  /** Telemetry: the edge's URL, state and hints (what a scheduler configures its EdgeActor from). */
  const announceTelemetry = (online: boolean): void => {
    if (!ann) return;
    const at = clock.wallNow();
    publish(subjects.edgeTelemetry(id), {
      edgeId: id,
      sentAtMs: at,
      online,
      bandwidth: opts.bandwidthBytesPerSec ? [{ atMs: at, bytesPerSec: opts.bandwidthBytesPerSec }] : [],
      rtt: rttMs > 0 ? [{ atMs: at, rttMs }] : [],
      ...(ann.maxParallel !== undefined ? { maxParallel: ann.maxParallel } : {}),
      url,
      kind: 'portal',
      ...(opts.location ? { location: opts.location } : {}),
      ...(opts.accept ? { accepts: true } : {}),
    });
  };
  /** The full have bitmap of the edge's holdings now. */
  const announceHave = (): void => {
    if (!ann) return;
    const at = clock.wallNow();
    // seq from the wall clock, so a restarted edge's messages are not taken for stale ones
    haveSeq = Math.max(haveSeq + 1, at);
    publish(subjects.edgeHave(id), {
      kind: 'full',
      edgeId: id,
      manifestId: manifest.id,
      chunkCount: n,
      seq: haveSeq,
      sentAtMs: at,
      bitmap: Buffer.from(encodeHaveBitmap(holds, n), 'base64'),
    });
  };
  // A change of holdings sends only the have bitmap: the telemetry (URL, hints) has not changed, and every
  // telemetry message costs each receiver an EdgeActor turn. Sent with every have, it was most of the have traffic
  // a swarm member handled (7 peers × up to 20 changes/s each at 8 members; BENCHMARKS.md, issue 18, session 7).
  function scheduleAnnounce(): void {
    if (!ann || coalesceTimer || offline) return;
    coalesceTimer = clock.setTimeout(() => {
      coalesceTimer = null;
      announceHave();
    }, ann.announceCoalesceMs ?? 20);
  }
  const announceAll = (): void => {
    announceTelemetry(true);
    announceHave();
  };
  // telemetry and haves at start and every announceEveryMs, for late joiners
  const periodic = (): void => {
    if (!ann || offline) return;
    periodicTimer = clock.setTimeout(() => {
      announceAll();
      periodic();
    }, ann.announceEveryMs ?? 2000);
  };
  if (ann) {
    announceAll();
    periodic();
  }

  const goOffline = (): Promise<void> => {
    if (offlinePromise) return offlinePromise;
    if (ann) announceTelemetry(false);
    for (const h of [coalesceTimer, periodicTimer]) if (h) clock.clearTimeout(h);
    coalesceTimer = periodicTimer = null;
    offline = true;
    if (offlineTimer) {
      clock.clearTimeout(offlineTimer);
      offlineTimer = null;
    }
    offlinePromise = new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const s of sockets) s.destroy();
      sockets.clear();
    });
    log.info({ url }, 'edge offline');
    return offlinePromise;
  };

  if (faults.offlineAtMs !== undefined)
    offlineTimer = clock.setTimeout(() => {
      offlineTimer = null;
      void goOffline();
    }, faults.offlineAtMs);
  log.debug({ url, manifestId: manifest.id }, 'edge listening');

  return {
    id,
    url,
    port,
    manifest,
    manifestCid: manifestStore.ownCid!,
    stats: () => ({ ...counters, sliceBuffersAllocated: slices.allocated }),
    isOffline: () => offline,
    holdings: () => (holds === 'all' ? 'all' : new Set(holds)),
    async addHoldings(chunks) {
      if (holds === 'all') return 0;
      let added = 0;
      const buf = Buffer.allocUnsafe(manifest.chunkSize);
      for (const i of chunks) {
        if (!Number.isInteger(i) || i < 0 || i >= n || holds.has(i)) continue;
        const { offset, length } = chunkRange(manifest, i);
        const { bytesRead } = await fh.read(buf, 0, length, offset);
        if (bytesRead !== length || manifest.chunks[i] === NO_CID) continue;
        if (cidOf(buf.subarray(0, length)) !== manifest.chunks[i]) continue;
        holds.add(i);
        added++;
      }
      if (added > 0) scheduleAnnounce();
      return added;
    },
    holdVerified(chunks) {
      if (holds === 'all') return 0;
      let added = 0;
      for (const i of chunks) {
        if (!Number.isInteger(i) || i < 0 || i >= n || holds.has(i) || manifest.chunks[i] === NO_CID)
          continue;
        holds.add(i);
        added++;
      }
      if (added > 0) scheduleAnnounce();
      return added;
    },
    goOffline,
    async close() {
      await goOffline();
      if (!closed) {
        closed = true;
        await fh.close();
      }
    },
  };
}

/** Opens (creating it sparse at `size` bytes when missing) a file an accepting edge writes chunks into. */
async function openForWrite(path: string, size: number): Promise<FileHandle> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r+');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    fh = await open(path, 'wx+');
    await fh.truncate(size);
  }
  return fh;
}

/** Reads a request body of at most `limit` bytes; null when it is longer (the rest is left unread). */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let got = 0;
    const onData = (d: Buffer): void => {
      got += d.length;
      if (got > limit) {
        req.off('data', onData);
        req.pause();
        resolve(null);
        return;
      }
      parts.push(d);
    };
    req.on('data', onData);
    req.once('end', () => resolve(Buffer.concat(parts, got)));
    req.once('error', reject);
  });
}

/** Constant-time check of an `Authorization: Bearer <token>` header (hashes first, so lengths do not leak). */
function bearerMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer\s+(.+)$/i.exec(header ?? '');
  if (!m) return false;
  const h = (v: string): Buffer => createHash('sha256').update(v).digest();
  return timingSafeEqual(h(m[1].trim()), h(token));
}
