import { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';

/** Response headers as undici parses them (lower-case names; a repeated header is an array). */
export type ResponseHeaders = Record<string, string | string[] | undefined>;

/**
 * What to do with a response's body, decided from its status and headers before any byte of it is read:
 * - `data`: each piece goes to the `onData` callback as it arrives (no stream, no promise per piece);
 * - `skip`: it is not wanted: read and dropped when it is at most SKIP_LIMIT_BYTES long (so the connection is
 *   kept), else the request is aborted (the connection closes) — what undici's `body.dump()` does;
 * - `stream`: the rest of it becomes a Readable (the caller reads it later, as request()'s body).
 */
export type BodyMode = 'data' | 'skip' | 'stream';

/** Bytes of an unwanted body read to keep its connection (undici's `dump()` default limit, 128 KiB). */
export const SKIP_LIMIT_BYTES = 128 * 1024;

/** How one response of `dispatchBody` ended. */
export interface DispatchedBody {
  statusCode: number;
  headers: ResponseHeaders;
  mode: BodyMode;
  /** The rest of the body, for mode `stream` only (then the promise settles at the response's head). */
  body?: Readable;
}

/** The callbacks of dispatchBody: both run synchronously inside undici's socket read, and may throw. */
export interface BodyCallbacks {
  /** The final status (1xx are skipped) and headers; a throw aborts the request with that error. */
  onHead(statusCode: number, headers: ResponseHeaders): BodyMode;
  /** One piece of the body, in order (mode `data`); a throw aborts the request with that error. */
  onData(piece: Buffer): void;
}

/** Aborts a skipped body past SKIP_LIMIT_BYTES; never reaches a caller. */
class SkipDone extends Error {}

/**
 * undici's dispatch handler (Dispatcher.dispatch, the `onRequestStart`/`onResponse*` controller API of undici 7)
 * for one request whose body is read through callbacks. It replaces `dispatcher.request()` on the chunk path:
 * request() wraps every response in a Readable and `for await` adds a promise and a microtask per 64 KiB
 * piece; measured on the 2-core dev machine (BENCHMARKS.md, "Session 6: where the CPU…"), receiving 512 MiB
 * through this path costs ~0.2 s less CPU than through the stream. Kept as our own code because undici's public
 * handlers (RedirectHandler, RetryHandler) wrap another handler and do not end at a callback.
 */
class BodyHandler implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | undefined;
  private mode: BodyMode | undefined;
  private status = 0;
  private headers: ResponseHeaders = {};
  private skipped = 0;
  private stream: Readable | undefined;
  private settled = false;
  private readonly onAbort = (): void => this.abort(abortReason(this.signal));

  constructor(
    private readonly cb: BodyCallbacks,
    private readonly signal: AbortSignal | undefined,
    private readonly resolve: (r: DispatchedBody) => void,
    private readonly reject: (err: unknown) => void,
  ) {
    signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  /** Aborts the request with `err` now, or at its start when it has not started (still queued). */
  private abort(err: Error): void {
    if (this.controller) this.controller.abort(err);
    else this.fail(err);
  }

  private done(): void {
    this.signal?.removeEventListener('abort', this.onAbort);
  }

  private fail(err: unknown): void {
    this.done();
    if (this.stream) {
      this.stream.destroy(err as Error);
      this.stream = undefined;
    }
    if (this.settled) return;
    this.settled = true;
    this.reject(err);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.settled) controller.abort(new Error('aborted before the request was sent'));
    else if (this.signal?.aborted) controller.abort(abortReason(this.signal));
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: ResponseHeaders,
  ): void {
    if (statusCode < 200) return;
    this.status = statusCode;
    this.headers = headers;
    let mode: BodyMode;
    try {
      mode = this.cb.onHead(statusCode, headers);
    } catch (err) {
      controller.abort(err as Error);
      return;
    }
    this.mode = mode;
    if (mode === 'skip') {
      const cl = Number(headers['content-length']);
      if (cl > SKIP_LIMIT_BYTES) controller.abort(new SkipDone());
    } else if (mode === 'stream') {
      const body = new Readable({
        read: () => controller.resume(),
        destroy: (err, callback) => {
          if (this.stream === body) {
            this.stream = undefined;
            if (!controller.aborted) controller.abort(err ?? new Error('response body destroyed'));
          }
          callback(err);
        },
      });
      this.stream = body;
      this.settled = true;
      this.resolve({ statusCode, headers, mode, body });
    }
  }

  onResponseData(controller: Dispatcher.DispatchController, piece: Buffer): void {
    if (this.mode === 'data') {
      try {
        this.cb.onData(piece);
      } catch (err) {
        controller.abort(err as Error);
      }
    } else if (this.mode === 'stream') {
      if (this.stream && !this.stream.push(piece)) controller.pause();
    } else if ((this.skipped += piece.length) > SKIP_LIMIT_BYTES) controller.abort(new SkipDone());
  }

  onResponseEnd(): void {
    this.done();
    const body = this.stream;
    this.stream = undefined;
    body?.push(null);
    if (this.settled) return;
    this.settled = true;
    this.resolve({ statusCode: this.status, headers: this.headers, mode: this.mode ?? 'skip' });
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    if (err instanceof SkipDone && !this.settled) {
      this.done();
      this.settled = true;
      this.resolve({ statusCode: this.status, headers: this.headers, mode: 'skip' });
      return;
    }
    this.fail(err);
  }
}

function abortReason(signal: AbortSignal | undefined): Error {
  const r: unknown = signal?.reason;
  return r instanceof Error ? r : new Error('aborted', { cause: r });
}

/**
 * Sends one request on `dispatcher` and hands its response to `cb` (see BodyHandler): resolves when the body
 * has ended (modes `data` and `skip`) or at the head (`stream`); rejects with undici's error of the transport
 * (UND_ERR_SOCKET, UND_ERR_BODY_TIMEOUT, …), with what a callback threw, or with `signal.reason` once the
 * signal aborts (a request still queued for a connection is aborted when it gets one). No redirects here.
 */
export function dispatchBody(
  dispatcher: Dispatcher,
  opts: Dispatcher.DispatchOptions,
  cb: BodyCallbacks,
  signal?: AbortSignal,
): Promise<DispatchedBody> {
  return new Promise<DispatchedBody>((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortReason(signal));
      return;
    }
    const h = new BodyHandler(cb, signal, resolve, reject);
    try {
      dispatcher.dispatch(opts, h);
    } catch (err) {
      h.onResponseError(undefined as unknown as Dispatcher.DispatchController, err as Error);
    }
  });
}
