import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Server as HttpsServer } from 'node:https';

/** Requests that asked for `100 Continue` and have not had it yet. */
const awaiting = new WeakSet<IncomingMessage>();

/**
 * Makes `server` decide `Expect: 100-continue` itself: such a request goes to `listener` like any other, and
 * `100 Continue` is sent only when the listener calls continueBody, once the request passed its checks and its body
 * is about to be read. A request refused first (a Content-Length over the limit, a wrong token) gets its final
 * answer without a 100 (RFC 9110 §10.1.1). Node's default sends 100 Continue before any check, so a client that
 * waits for it (curl, for a body over 1 MiB) started the body, saw the connection closed under it ("Broken pipe")
 * and never read the 413.
 */
export function decideContinue(
  server: Server | HttpsServer,
  listener: (req: IncomingMessage, res: ServerResponse) => void,
): void {
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    awaiting.add(req);
    listener(req, res);
  });
}

/**
 * Sends the `100 Continue` that `req` asked for (once; nothing for a request that did not ask): call it before
 * reading or draining the body of a request served through decideContinue.
 */
export function continueBody(req: IncomingMessage, res: ServerResponse): void {
  if (awaiting.delete(req)) res.writeContinue();
}
