import net from 'node:net';

/**
 * A TCP port free on 127.0.0.1 right now (the OS picks it; another process may take it before the
 * caller binds it — rare on loopback). Rejects with the listen error.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/**
 * How long a client may take to send a whole request (headers and body) to a Portal HTTP server (the embedded
 * actor API, an edge), ms; Node answers 408 and closes the connection past it. Node's own default is 300 s, which
 * let a client that declared a body and sent 1 byte/s hold a connection for minutes. Responses are not bounded
 * by it (a content read may stream for as long as its transfer runs).
 */
export const REQUEST_TIMEOUT_MS = 60_000;
/** How long a client may take to send a request's headers, ms (Node's headersTimeout; its default is 60 s). */
export const HEADERS_TIMEOUT_MS = 10_000;

/**
 * The http.Server options that bound how long a request may take to arrive: `requestTimeout` (default
 * REQUEST_TIMEOUT_MS), `headersTimeout` (HEADERS_TIMEOUT_MS, at most the former) and how often Node checks them
 * (at most every second, so a shortened timeout fires on time).
 */
export function requestTimeouts(requestTimeoutMs = REQUEST_TIMEOUT_MS): {
  requestTimeout: number;
  headersTimeout: number;
  connectionsCheckingInterval: number;
} {
  return {
    requestTimeout: requestTimeoutMs,
    headersTimeout: Math.min(HEADERS_TIMEOUT_MS, requestTimeoutMs),
    connectionsCheckingInterval: Math.max(10, Math.min(1000, Math.floor(requestTimeoutMs / 4))),
  };
}
