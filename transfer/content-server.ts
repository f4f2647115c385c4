import { createServer, type IncomingMessage, type ServerResponse, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { open, type FileHandle } from 'node:fs/promises';
import { createSilentLogger, type Logger } from '../common/logger.js';
import { chunkRange, type Manifest } from './manifest.js';
import { cidOf, NO_CID } from './cid.js';
import { parseRange } from './http-range.js';

/** A transfer's state as a content source reports it (SchedulerActor's TransferStatus['state']). */
export type ContentState = 'idle' | 'queued' | 'running' | 'verifying' | 'done' | 'failed' | 'cancelled';

/**
 * Where a content server gets a running transfer's bytes from: the scheduler of the transfer (through
 * its actor; actors/content-source.ts) says which chunks are verified and raises the priority of those
 * a reader waits for; the bytes are read from the output file.
 */
export interface ContentSource {
  /** The manifest, the output file and the state. */
  info(): Promise<{ manifest: Manifest; output: string; state: ContentState }>;
  /** Registers a read of [offset, offset + length) and answers which of its chunks [first, last] are verified. */
  read(q: {
    readerId: string;
    offset: number;
    length: number;
    rateBytesPerSec?: number;
  }): Promise<{ state: ContentState; first: number; last: number; complete: number[] }>;
}

/** Options of serveContent and createContentServer. */
export interface ContentServeOptions {
  /** How often a read waiting for a chunk asks again, ms (default 5). */
  pollMs?: number;
  /** Chunks of a Range a read asks for at once, from the one it waits for (default 8). */
  windowChunks?: number;
  logger?: Logger;
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
}

/**
 * Serves bytes of a running transfer as an HTTP response (GET or HEAD, one `bytes=` Range or the whole
 * content): headers at once, then each chunk as soon as the scheduler reports it verified and its bytes
 * in the output file hash to its CID again — a response never carries an unverified byte; it is cut
 * (socket destroyed) when the transfer fails or a chunk no longer matches. Each read the response waits on
 * goes to `source.read`, which raises the missing chunks' priority; the reader's consumption rate (bytes
 * over the time not spent waiting for chunks) goes with it, so the scheduler sizes the read-ahead.
 */
export async function serveContent(
  req: IncomingMessage,
  res: ServerResponse,
  source: ContentSource,
  opts: ContentServeOptions & { stats?: ContentServerStats } = {},
): Promise<void> {
  const stats = opts.stats;
  const log = opts.logger ?? createSilentLogger();
  const pollMs = opts.pollMs ?? 5;
  const windowChunks = Math.max(1, opts.windowChunks ?? 8);
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD', 'content-length': 0 }).end();
    return;
  }
  const info = await source.info();
  const m = info.manifest;
  const size = m.fileSize;
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
  res.writeHead(r.kind === 'range' ? 206 : 200, headers);
  if (req.method === 'HEAD' || size === 0) {
    res.end();
    return;
  }
  let closed = false;
  res.on('close', () => {
    closed = true;
  });
  const readerId =
    (typeof req.headers['x-portal-reader'] === 'string' && req.headers['x-portal-reader']) ||
    `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? 0}`;
  const began = performance.now();
  let waitedMs = 0;
  let served = 0;
  let fh: FileHandle | undefined;
  const buf = Buffer.allocUnsafe(m.chunkSize);
  const cut = (why: string, extra: Record<string, unknown> = {}): void => {
    log.warn({ readerId, ...extra }, why);
    res.destroy();
  };
  try {
    let pos = start;
    const lastChunk = Math.floor(end / m.chunkSize);
    while (pos <= end && !closed) {
      const c = Math.floor(pos / m.chunkSize);
      const upTo = Math.min(lastChunk, c + windowChunks - 1);
      const activeS = (performance.now() - began - waitedMs) / 1000;
      const plan = await source.read({
        readerId,
        offset: pos,
        length: Math.min(end + 1, chunkRange(m, upTo).offset + chunkRange(m, upTo).length) - pos,
        ...(served > 0 && activeS > 0 ? { rateBytesPerSec: served / activeS } : {}),
      });
      if (plan.complete[0] !== c) {
        if (plan.state === 'failed' || plan.state === 'cancelled' || plan.state === 'idle') {
          cut('content read cut: the transfer is not running and chunk is missing', {
            chunk: c,
            state: plan.state,
          });
          return;
        }
        const w0 = performance.now();
        if (stats) stats.stalls++;
        // wait until the chunk is verified; each poll is a read (cheap: no priority changes after the first)
        for (;;) {
          await new Promise((resolve) => setTimeout(resolve, pollMs));
          if (closed) return;
          const again = await source.read({ readerId, offset: pos, length: 1 });
          if (again.complete[0] === c) break;
          if (again.state === 'failed') {
            cut('content read cut: the transfer failed', { chunk: c });
            return;
          }
        }
        const w = performance.now() - w0;
        waitedMs += w;
        if (stats) stats.stallMs += w;
        continue;
      }
      // serve the run of verified chunks from c on
      fh ??= await open(info.output, 'r');
      for (let k = 0; k < plan.complete.length && plan.complete[k] === c + k && pos <= end; k++) {
        const cc = c + k;
        const { offset, length } = chunkRange(m, cc);
        const { bytesRead } = await fh.read(buf, 0, length, offset);
        const bytes = buf.subarray(0, length);
        if (bytesRead !== length || (m.chunks[cc] !== NO_CID && cidOf(bytes) !== m.chunks[cc])) {
          if (stats) stats.verifyFailures++;
          cut('content read cut: a verified chunk no longer matches its CID in the output', { chunk: cc });
          return;
        }
        const from = pos - offset;
        const to = Math.min(end + 1, offset + length) - offset;
        const ok = res.write(Buffer.from(bytes.subarray(from, to)));
        served += to - from;
        if (stats) stats.bytesServed += to - from;
        pos = offset + to;
        if (!ok) await drained(res);
        if (closed) return;
      }
    }
    res.end();
  } catch (err) {
    if (!closed) cut('content read failed', { err });
  } finally {
    await fh?.close().catch(() => undefined);
  }
}

function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
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
  const stats: ContentServerStats = { requests: 0, bytesServed: 0, stalls: 0, stallMs: 0, verifyFailures: 0 };
  const active = new Set<Promise<void>>();
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    stats.requests++;
    const path = (req.url ?? '/').split('?')[0];
    const m = /^\/v1\/transfers\/([^/]+)\/content$/.exec(path);
    const id = m ? decodeURIComponent(m[1]) : path === '/content' ? o.defaultTransfer : undefined;
    const source = id === undefined ? undefined : o.sources(id);
    if (!source) {
      const text = JSON.stringify({ error: 'no such transfer', path });
      res.writeHead(404, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
      return;
    }
    const p = serveContent(req, res, source, { ...o, stats }).catch((err: unknown) => {
      log.warn({ err, path }, 'content request failed');
      if (!res.headersSent) res.writeHead(500).end();
      else res.destroy();
    });
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
    stats: () => ({ ...stats }),
    close() {
      closing ??= (async () => {
        const done = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        await Promise.all([...active]);
        server.closeIdleConnections();
        for (const s of sockets) if (!s.destroyed) s.end();
        await done;
      })();
      return closing;
    },
  };
}
