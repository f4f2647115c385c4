import { browserRefusal, reachableOnLoopback } from '../common/browser-guard.js';
import { PortalError, codeOf } from '../common/errors.js';
import { httpStatusFor } from '../common/error-table.js';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../common/logger.js';
import { renderPage } from './page.js';
import type { DashboardSnapshot } from './types.js';

/** The dashboard's HTTP side: the page, the SSE stream, the JSON state and /metrics. */
export interface DashboardServer {
  readonly url: string;
  /** Sends a snapshot to every connected /events client. */
  broadcast(s: DashboardSnapshot): void;
  clients(): number;
  /** /events clients dropped so far because they stopped reading. */
  droppedClients(): number;
  close(): Promise<void>;
}

/**
 * Bytes an /events client may have queued unread (its socket's write buffer) before it is dropped:
 * a client that stops reading costs at most this much memory, not a copy of every snapshot since.
 * A snapshot of a few transfers is a few KiB, so 1 MiB is hundreds of frames of slack.
 */
export const SSE_MAX_BUFFERED_BYTES = 1024 * 1024;

/** Starts the server; rejects with PORTAL_DASHBOARD_LISTEN_FAILED when the port cannot be bound. */
export async function startDashboardServer(o: {
  port: number;
  hostname: string;
  logger: Logger;
  /** Unread bytes per /events client before it is dropped (default SSE_MAX_BUFFERED_BYTES). */
  maxBufferedBytes?: number;
  /** Called once for every slow /events client dropped. */
  onSlowClient?: () => void;
  snapshot: () => DashboardSnapshot;
  metrics: () => Promise<{ contentType: string; body: string }>;
}): Promise<DashboardServer> {
  const page = renderPage();
  const clients = new Set<http.ServerResponse>();
  const maxBuffered = o.maxBufferedBytes ?? SSE_MAX_BUFFERED_BYTES;
  let dropped = 0;
  /** Writes to one client, or drops it when it has more than maxBuffered bytes unread. */
  const send = (c: http.ServerResponse, data: string): void => {
    if (c.writableLength > maxBuffered) {
      clients.delete(c);
      dropped++;
      o.onSlowClient?.();
      o.logger.warn(
        { buffered: c.writableLength },
        'dashboard: dropped an /events client that stopped reading',
      );
      c.destroy();
      return;
    }
    c.write(data);
  };
  const heartbeat = setInterval(() => {
    for (const c of clients) send(c, ': ping\n\n');
  }, 15_000);
  heartbeat.unref();

  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const crossSite = browserRefusal(req, { loopback: reachableOnLoopback(o.hostname) });
    if (crossSite !== undefined) {
      res.writeHead(403, { 'content-type': 'text/plain' }).end(`${crossSite}\n`);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    switch (path) {
      case '/':
      case '/index.html':
        res.writeHead(200, {
          'content-type': 'text/html; charset=utf-8',
          'cache-control': 'no-store',
          'content-security-policy':
            "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:",
        });
        res.end(req.method === 'HEAD' ? undefined : page);
        return;
      case '/api/state':
        res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
        res.end(req.method === 'HEAD' ? undefined : JSON.stringify(o.snapshot()));
        return;
      case '/events': {
        res.writeHead(200, {
          'content-type': 'text/event-stream',
          'cache-control': 'no-store',
          connection: 'keep-alive',
          'x-accel-buffering': 'no',
        });
        res.write('retry: 1000\n\n');
        const s = o.snapshot();
        if (s.seq > 0) res.write(frame(s));
        clients.add(res);
        const drop = () => {
          clients.delete(res);
        };
        req.on('close', drop);
        res.on('error', drop);
        return;
      }
      case '/metrics':
        o.metrics().then(
          ({ contentType, body }) => {
            res.writeHead(200, { 'content-type': contentType });
            res.end(req.method === 'HEAD' ? undefined : body);
          },
          (err: unknown) => {
            o.logger.error({ err }, 'dashboard: /metrics failed');
            const code = codeOf(err);
            res
              .writeHead(httpStatusFor(code), { 'content-type': 'text/plain' })
              .end(`metrics failed [${code}]\n`);
          },
        );
        return;
      default:
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  });
  server.on('clientError', (err, socket) => {
    o.logger.debug({ err }, 'dashboard: client error');
    socket.destroy();
  });

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) =>
      reject(
        new PortalError(
          'PORTAL_DASHBOARD_LISTEN_FAILED',
          `dashboard: cannot listen on ${o.hostname}:${o.port}: ${err.message}`,
          { cause: err },
        ),
      );
    server.once('error', onError);
    server.listen(o.port, o.hostname, () => {
      server.off('error', onError);
      resolve();
    });
  }).catch((err: unknown) => {
    clearInterval(heartbeat);
    throw err;
  });
  server.on('error', (err) => o.logger.error({ err }, 'dashboard: server error'));

  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${host}:${addr.port}/`,
    broadcast(s) {
      if (clients.size === 0) return;
      const f = frame(s);
      for (const c of clients) send(c, f);
    },
    clients: () => clients.size,
    droppedClients: () => dropped,
    async close() {
      clearInterval(heartbeat);
      for (const c of clients) c.end();
      clients.clear();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

function frame(s: DashboardSnapshot): string {
  return `id: ${s.seq}\ndata: ${JSON.stringify(s)}\n\n`;
}
