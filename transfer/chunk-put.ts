import { PortalError } from '../common/errors.js';
import { cidOf } from './cid.js';
import type { ChunkWriter } from './chunk-writer.js';

/** True when an executor's output names an edge to PUT chunks to (a pre-position task) rather than a file. */
export function isEdgeOutput(output: string): boolean {
  return /^https?:\/\//i.test(output);
}

/**
 * A ChunkWriter whose writes go to an edge that accepts chunks (`portal edge --accept`): each verified chunk
 * is sent as `PUT <edge>/v1/chunks/<cid>` (with `Authorization: Bearer <token>` when given), and a write
 * resolves once the edge answered 201 or 200 — it checked the body against the CID and holds it. Any other
 * answer rejects with PORTAL_EDGE_HTTP naming the status; a connection error with PORTAL_EDGE_UNREACHABLE.
 * The edge URL is never logged with credentials (none are put in it: the token travels in a header).
 */
export function openPutWriter(edgeUrl: string, opts: { fileSize: number; token?: string }): ChunkWriter {
  const base = edgeUrl.replace(/\/+$/, '');
  let closed = false;
  return {
    path: base,
    fileSize: opts.fileSize,
    // every write is acknowledged by the edge, which holds the chunk: nothing to flush in the background
    backgroundSyncs: 0,
    async write(offset, bytes) {
      if (closed) throw new PortalError('PORTAL_TRANSFER_FAILED', `writer to ${base} is closed`);
      const cid = cidOf(bytes);
      let res;
      try {
        // undici's index (fetch, WebSocket…) loads only when a chunk is PUT, not with every `portal fetch`
        const { request } = await import('undici');
        res = await request(`${base}/v1/chunks/${cid}`, {
          method: 'PUT',
          body: bytes,
          headers: {
            'content-type': 'application/octet-stream',
            ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
          },
        });
      } catch (cause) {
        throw new PortalError(
          'PORTAL_EDGE_UNREACHABLE',
          `PUT of chunk at ${offset} to ${base}: ${(cause as Error).message}`,
          { cause },
        );
      }
      const text = await res.body.text();
      if (res.statusCode !== 201 && res.statusCode !== 200)
        throw new PortalError(
          'PORTAL_EDGE_HTTP',
          `PUT of chunk ${cid} (at ${offset}) to ${base} answered ${res.statusCode}: ${text.slice(0, 200)}`,
        );
    },
    writeSync() {
      // only data-plane threads write synchronously, and edge outputs never go to them
      throw new PortalError('PORTAL_INVALID_ARGUMENT', `chunks go to ${base} by PUT, never synchronously`);
    },
    async sync() {},
    async close() {
      closed = true;
    },
  };
}
