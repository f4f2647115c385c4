import http from 'node:http';
import { decodeActorId, type ActorHost } from '../runtime/index.js';
import { PortalError, codeOf, isPortalError } from '../common/errors.js';
import { httpStatusFor } from '../common/error-table.js';
import type { Logger } from '../common/logger.js';

/** Options of serveActorApi. */
export interface ActorApiOptions {
  /** TCP port (0 = any free port). */
  port: number;
  /** Interface to bind (default 127.0.0.1: the API has no authentication). */
  hostname?: string;
  log: Logger;
}

/**
 * Serves the embedded host's actors over HTTP with the shape of Dapr's actor API
 * (`POST /v1.0/actors/<type>/<wire id>/method/<method>`), so clients (createDaprActorClient) talk to either runtime
 * the same way; an id that is not in the wire form is refused with PORTAL_INVALID_ARGUMENT.
 */
export function serveActorApi(host: ActorHost, opts: ActorApiOptions): Promise<http.Server> {
  const log = opts.log;
  const server = http.createServer((req, res) => {
    const m = /^\/v1\.0\/actors\/([^/]+)\/([^/]+)\/method\/([^/?]+)$/.exec(req.url ?? '');
    if (req.url === '/healthz' || req.url === '/v1.0/healthz') {
      res.writeHead(204).end();
      return;
    }
    if (!m || (req.method !== 'POST' && req.method !== 'PUT')) {
      res.writeHead(404).end();
      return;
    }
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      const text = Buffer.concat(parts).toString('utf8');
      let arg: unknown;
      try {
        arg = text.length ? JSON.parse(text) : undefined;
      } catch {
        res
          .writeHead(httpStatusFor('PORTAL_INVALID_ARGUMENT'), { 'content-type': 'application/json' })
          .end(JSON.stringify({ error: { code: 'PORTAL_INVALID_ARGUMENT', message: 'body is not JSON' } }));
        return;
      }
      let ref;
      try {
        // Ids arrive in their wire form (runtime/state-keys.ts encodeActorId), as on the Dapr path: one rule for
        // ids on every host, so `a%2Fb` is not `a/b` and `%41` is not `A`.
        const wireId = decodeURIComponent(m[2]);
        const id = decodeActorId(wireId);
        if (id === undefined)
          throw new PortalError(
            'PORTAL_INVALID_ARGUMENT',
            `actor id ${JSON.stringify(wireId)} is not in the wire form Portal hosts use (see encodeActorId)`,
          );
        ref = host.proxy(decodeURIComponent(m[1]), id);
      } catch (err) {
        const code = isPortalError(err) ? err.code : 'PORTAL_INVALID_ARGUMENT';
        res
          .writeHead(httpStatusFor(code), { 'content-type': 'application/json' })
          .end(
            JSON.stringify({ error: { code, message: err instanceof Error ? err.message : String(err) } }),
          );
        return;
      }
      ref.invoke(decodeURIComponent(m[3]), arg).then(
        (r) => {
          if (r === undefined) res.writeHead(200).end();
          else res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(r));
        },
        (err: unknown) => {
          const code = codeOf(err);
          const status = httpStatusFor(code);
          if (status >= 500) log.warn({ err }, 'actor call failed');
          res
            .writeHead(status, { 'content-type': 'application/json' })
            .end(
              JSON.stringify({ error: { code, message: err instanceof Error ? err.message : String(err) } }),
            );
        },
      );
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.hostname ?? '127.0.0.1', () => resolve(server));
  });
}
