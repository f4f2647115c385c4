import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { gzipSync } from 'node:zlib';

/**
 * How the mirror answers one request. `ok`: Range honoured (206, `bytes a-b/N`). `ignore-range`: 200 with the
 * whole file. `cr-equals`: 206 with `Content-Range: bytes=a-b/N`. `cr-missing`: 206 without Content-Range (with `fromStart`, the bytes of offset 0 for every
 * Range, as a broken cache sends them).
 * `reset-mid-body`: headers and half of the range, then the connection is destroyed. `stall`: headers and
 * 100 bytes, then nothing. `status`: that HTTP status (with `retryAfter` when given). `redirect`: `status`
 * (302 by default) to `location`. `html`: an HTML error page with 200. `gzip`: the range gzip-compressed
 * with Content-Encoding: gzip (with
 * `ignoreRange`, the whole file gzipped with 200). `trickle`: headers, then `bytes` bytes of the range every `everyMs` (default 1 byte
 * every 2 s, a source that never stalls yet never finishes) until the range is sent or the connection closes.
 */
export type MirrorMode =
  | { kind: 'ok' }
  | { kind: 'ignore-range' }
  | { kind: 'cr-equals' }
  | { kind: 'cr-missing'; fromStart?: boolean }
  | { kind: 'reset-mid-body' }
  | { kind: 'stall' }
  | { kind: 'status'; status: number; retryAfter?: string }
  | { kind: 'redirect'; location: string; status?: number }
  | { kind: 'html' }
  | { kind: 'gzip'; ignoreRange?: boolean }
  | { kind: 'trickle'; bytes?: number; everyMs?: number }
  /**
   * A dynamic server: 200 with the whole file streamed with Transfer-Encoding: chunked (no Content-Length),
   * Range ignored; HEAD answers with no Content-Length either unless `headSize`.
   */
  | { kind: 'chunked'; headSize?: boolean }
  /** A 206 whose Content-Range claims a file of `total` (any string: a huge or malformed size). */
  | { kind: 'claim-size'; total: string }
  /**
   * The file was replaced by `bytes` (another size): served as a real server would, 206 with the new size in
   * Content-Range, 416 with `Content-Range: bytes *\/<new size>` for a range past its end, or with `ignoreRange` a
   * 200 of the whole new file.
   */
  | { kind: 'replaced'; bytes: Buffer; ignoreRange?: boolean }
  /** Nothing for `ms` (a slow first answer), then the answer `then` gives. */
  | { kind: 'late'; ms: number; then: MirrorMode };

/** A misbehaving mirror of this test run (a node:http server on a free loopback port). */
export interface BadMirror {
  /** http://127.0.0.1:PORT/file.bin */
  readonly url: string;
  readonly origin: string;
  /** Requests answered so far, with their Range header and the connection they came on. */
  readonly requests: {
    range?: string;
    socket: number;
    method: string;
    path: string;
    at: number;
    auth?: string;
    headers: http.IncomingHttpHeaders;
  }[];
  /** TCP connections accepted so far. */
  connections(): number;
  close(): Promise<void>;
}

/**
 * Starts a mirror of `bytes` at `/file.bin` whose answer to request n (0-based) is `mode(n, req)`. HEAD gets
 * the headers of a whole-file 200 (Content-Length, Accept-Ranges unless the mode ignores Range).
 */
export async function startBadMirror(
  bytes: Buffer,
  mode: (n: number, req: http.IncomingMessage) => MirrorMode = () => ({ kind: 'ok' }),
  opts: {
    etag?: string;
    lastModified?: string;
    /** Extra headers on every answer (an array is sent as one header line per value, e.g. several Link lines). */
    headers?: Record<string, string | string[]>;
  } = {},
): Promise<BadMirror> {
  const requests: BadMirror['requests'] = [];
  const sockets = new Set<Socket>();
  const ids = new WeakMap<Socket, number>();
  let conns = 0;
  const server = http.createServer((req, res) => {
    const n = requests.length;
    requests.push({
      range: req.headers.range,
      socket: ids.get(req.socket) ?? -1,
      method: req.method ?? 'GET',
      path: req.url ?? '',
      at: Date.now(),
      auth: req.headers.authorization,
      headers: req.headers,
    });
    answer(mode(n, req), req, res);
  });
  function answer(m: MirrorMode, req: http.IncomingMessage, res: http.ServerResponse): void {
    if (m.kind === 'late') {
      const t = setTimeout(() => answer(m.then, req, res), m.ms);
      res.on('close', () => clearTimeout(t));
      return;
    }
    const file = m.kind === 'replaced' ? m.bytes : bytes;
    const size = file.length;
    const r = /^bytes=(\d+)-(\d+)?$/.exec(req.headers.range ?? '');
    const a = r ? Number(r[1]) : 0;
    const b = r && r[2] !== undefined ? Math.min(Number(r[2]), size - 1) : size - 1;
    const part = file.subarray(a, b + 1);
    const meta: Record<string, string> = {};
    if (opts.etag) meta.etag = opts.etag;
    if (opts.lastModified) meta['last-modified'] = opts.lastModified;
    for (const [k, v] of Object.entries(opts.headers ?? {})) res.setHeader(k, v);
    if (req.method === 'HEAD') {
      res.writeHead(m.kind === 'status' ? m.status : 200, {
        ...(m.kind === 'chunked' && !m.headSize ? {} : { 'content-length': String(size) }),
        ...(m.kind === 'ignore-range' || m.kind === 'chunked' ? {} : { 'accept-ranges': 'bytes' }),
        ...meta,
      });
      res.end();
      return;
    }
    switch (m.kind) {
      case 'replaced':
        if (m.ignoreRange || !r) {
          res.writeHead(200, { 'content-length': String(size) });
          res.end(file);
        } else if (a >= size) {
          res.writeHead(416, { 'content-range': `bytes */${size}`, 'content-length': '0' });
          res.end();
        } else {
          res.writeHead(206, {
            'content-length': String(part.length),
            'content-range': `bytes ${a}-${b}/${size}`,
          });
          res.end(part);
        }
        return;
      case 'ok':
      case 'cr-equals':
      case 'cr-missing':
        if (!r) {
          res.writeHead(200, { 'content-length': String(size), 'accept-ranges': 'bytes', ...meta });
          res.end(bytes);
          return;
        }
        res.writeHead(206, {
          'content-length': String(part.length),
          ...(m.kind === 'cr-missing'
            ? {}
            : { 'content-range': `bytes${m.kind === 'cr-equals' ? '=' : ' '}${a}-${b}/${size}` }),
          ...meta,
        });
        res.end(m.kind === 'cr-missing' && m.fromStart ? file.subarray(0, part.length) : part);
        return;
      case 'claim-size':
        res.writeHead(206, {
          'content-length': String(part.length),
          'content-range': `bytes ${a}-${b}/${m.total}`,
        });
        res.end(part);
        return;
      case 'ignore-range':
        res.writeHead(200, { 'content-length': String(size), ...meta });
        res.end(bytes);
        return;
      case 'chunked': {
        // no Content-Length: node sends Transfer-Encoding: chunked, a piece per write
        res.writeHead(200, { 'content-type': 'application/octet-stream', ...meta });
        let at = 0;
        const next = (): void => {
          if (at >= size) {
            res.end();
            return;
          }
          res.write(bytes.subarray(at, (at += 50_000)), next);
        };
        next();
        return;
      }
      case 'reset-mid-body':
        res.writeHead(r ? 206 : 200, {
          'content-length': String(part.length),
          ...(r ? { 'content-range': `bytes ${a}-${b}/${size}` } : {}),
        });
        res.write(part.subarray(0, part.length >> 1), () => setTimeout(() => req.socket.destroy(), 20));
        return;
      case 'stall':
        res.writeHead(r ? 206 : 200, {
          'content-length': String(part.length),
          ...(r ? { 'content-range': `bytes ${a}-${b}/${size}` } : {}),
        });
        res.write(part.subarray(0, 100));
        return;
      case 'trickle': {
        res.writeHead(r ? 206 : 200, {
          'content-length': String(part.length),
          ...(r ? { 'content-range': `bytes ${a}-${b}/${size}` } : {}),
        });
        const step = m.bytes ?? 1;
        let at = 0;
        const send = (): void => {
          res.write(part.subarray(at, Math.min(part.length, at + step)));
          at += step;
          if (at >= part.length) {
            clearInterval(t);
            res.end();
          }
        };
        const t = setInterval(send, m.everyMs ?? 2000);
        res.on('close', () => clearInterval(t));
        send();
        return;
      }
      case 'status':
        res.writeHead(m.status, {
          'content-type': 'text/plain',
          ...(m.retryAfter !== undefined ? { 'retry-after': m.retryAfter } : {}),
        });
        res.end(`status ${m.status}\n`);
        return;
      case 'redirect':
        res.writeHead(m.status ?? 302, { location: m.location, 'content-length': '0' });
        res.end();
        return;
      case 'html': {
        const page = Buffer.from('<!doctype html><html><body><h1>Please log in</h1></body></html>');
        res.writeHead(200, {
          'content-type': 'text/html; charset=utf-8',
          'content-length': String(page.length),
        });
        res.end(page);
        return;
      }
      case 'gzip': {
        // ignoreRange: the whole file compressed, 200, whatever the Range (a server gzipping on the fly)
        const ranged = r && !m.ignoreRange;
        const z = gzipSync(ranged ? part : bytes);
        res.writeHead(ranged ? 206 : 200, {
          'content-encoding': 'gzip',
          'content-length': String(z.length),
          ...(ranged ? { 'content-range': `bytes ${a}-${b}/${size}` } : {}),
        });
        res.end(z);
        return;
      }
    }
  }
  server.on('connection', (s: Socket) => {
    ids.set(s, conns++);
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url: `${origin}/file.bin`,
    origin,
    requests,
    connections: () => conns,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
