export { PortalError, isPortalError, checkArg, codeOf } from './errors.js';
export type { PortalErrorCode, GpuErrorCode, StreamErrorCode, DashboardErrorCode } from './errors.js';
export { errorTable, exitCodeFor, httpStatusFor, isPortalErrorCode } from './error-table.js';
export type { ExitCode, ErrorDisposition } from './error-table.js';
export { createSystemClock, ManualClock } from './clock.js';
export type { Clock, TimerHandle } from './clock.js';
export { createLogger, createSilentLogger } from './logger.js';
export type { Logger } from './logger.js';
export { freePort } from './net.js';
export { quantile, quantileSorted } from './quantile.js';
export type {
  EdgeKind,
  DispatchItem,
  DispatchBatch,
  FailureReason,
  ChunkReport,
  CancelRequest,
  EdgeBattery,
  EdgeTelemetryEvent,
  EdgeHaveEvent,
} from './vocabulary.js';
export {
  redactUrl,
  isRedactedUrl,
  redactText,
  redactDeep,
  escapeControl,
  isSecretParam,
  REDACTED,
} from './redact.js';
export { httpUrl, checkHttpUrl } from './source-url.js';
export { createLogLimiter } from './log-limit.js';
export type { LogLimiter } from './log-limit.js';
export { bitsetBytes, hasBit, setBit, clearBit } from './bitset.js';
export { TRANSFER_ENDED_CHUNK } from './vocabulary.js';
export { BufferPool } from './buffer-pool.js';
