import { isPortalError, PortalError, type FieldProblem, type PortalErrorCode } from '../common/errors.js';
import { errorTable, httpStatusFor } from '../common/error-table.js';

/**
 * The one error body both actor HTTP APIs answer with (the Dapr host to daprd, the embedded API to callers):
 * `{ "error": { "code": "PORTAL_…", "message": "…", "fields": [{ "path": "/edges/0/config/url", "message": "…" }] } }`.
 * `fields` is present only when schema validation rejected the body; it lists every problem at once.
 * Never HTML, never a stack trace. See docs/api.md#errors.
 */
export interface ErrorEnvelope {
  readonly error: {
    readonly code: PortalErrorCode;
    readonly message: string;
    readonly fields?: readonly FieldProblem[];
  };
}

/**
 * The HTTP status of an error code, from the one table (common/error-table.ts): 400 bad input, 404 an unknown
 * transfer, edge, actor type or method, 409 a state conflict, 5xx the host or a dependency; unknown codes 500.
 */
export function httpStatusOf(code: string): number {
  return Object.hasOwn(errorTable, code) ? httpStatusFor(code as PortalErrorCode) : 500;
}

/**
 * The envelope and status of any thrown value: a PortalError keeps its code, message and fields; anything else is
 * PORTAL_INTERNAL with its message only (a stack never leaves the process: log `err` on the host's side).
 */
export function errorEnvelope(err: unknown): { status: number; body: ErrorEnvelope } {
  if (isPortalError(err)) {
    const body: ErrorEnvelope = {
      error: { code: err.code, message: err.message, ...(err.fields ? { fields: err.fields } : {}) },
    };
    return { status: httpStatusOf(err.code), body };
  }
  const message = err instanceof Error ? err.message : String(err);
  return { status: 500, body: { error: { code: 'PORTAL_INTERNAL', message } } };
}

/**
 * The status the Dapr host answers daprd with. daprd 1.16 turns an app's 404 into its own "actor method not found"
 * and drops the body (pkg/actors/targets/app/app.go), so a 404-class error goes to daprd as 410 Gone, whose body
 * daprd passes on inside its ERR_ACTOR_INVOKE_METHOD message ("error from actor service: (410) {…}"); the code in
 * the envelope is what callers read. Every other status goes unchanged.
 */
export function daprAppStatusOf(status: number): number {
  return status === 404 ? 410 : status;
}

/** PORTAL_INVALID_ARGUMENT for a request body that is not JSON (its parser's message, never the body itself). */
export function notJsonError(what: string, cause: unknown): PortalError {
  const detail = cause instanceof Error ? cause.message : String(cause);
  return new PortalError('PORTAL_INVALID_ARGUMENT', `${what}: the body is not JSON (${detail})`, { cause });
}

/**
 * The argument of an actor call from its raw body, whatever its content type (daprd forwards gRPC InvokeActor with
 * none; `curl -d` sends a form type): empty or whitespace-only is "no argument", anything else is JSON, scalars
 * (`5`, `"text"`, `true`, `null`) included. Throws PORTAL_INVALID_ARGUMENT when the text is not JSON.
 */
export function parseCallBody(what: string, body: Uint8Array | string | undefined): unknown {
  if (body === undefined) return undefined;
  const text = typeof body === 'string' ? body : Buffer.from(body).toString('utf8');
  if (text.trim().length === 0) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw notJsonError(what, err);
  }
}
