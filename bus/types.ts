/**
 * The event plane as Portal's code sees it. The embedded default is an in-process bus; the NATS
 * adapter implements the same interface (subjects follow NATS syntax: `.`-separated tokens,
 * `*` matches one token, `>` the rest).
 */
export interface Bus {
  /** Delivers `msg` to every matching subscription (one member per queue group). */
  publish<T>(subject: string, msg: T): Promise<void>;
  subscribe<T>(subject: string, handler: (msg: T, subject: string) => void | Promise<void>, opts?: { queue?: string }): Subscription;
  close(): Promise<void>;
}

export interface Subscription {
  readonly subject: string;
  unsubscribe(): void;
}

/** Subject names, one function per kind of message (documented in README). */
export const subjects = {
  dispatch: (transferId: string) => `portal.transfer.${transferId}.dispatch`,
  report: (transferId: string) => `portal.transfer.${transferId}.report`,
  cancel: (transferId: string) => `portal.transfer.${transferId}.cancel`,
  edgeTelemetry: (edgeId: string) => `portal.edge.${edgeId}.telemetry`,
  edgeHave: (edgeId: string) => `portal.edge.${edgeId}.have`,
} as const;

/** How an executor reaches an edge: a Portal edge (chunks by CID) or a plain HTTP mirror (Range on one URL). */
export type EdgeKind = 'portal' | 'mirror';

/** One chunk fetch the scheduler asks an executor to perform. */
export interface DispatchItem {
  chunk: number;
  /** Increases with every dispatch of this chunk; reports carry it back (idempotence, hedging). */
  attempt: number;
  edgeIndex: number;
  edgeUrl: string;
  edgeKind: EdgeKind;
  cid: string;
  offset: number;
  length: number;
  /** Milliseconds the executor should wait before giving up on this fetch. */
  timeoutMs: number;
}

/** A batch of dispatches for one transfer (one tick's output). */
export interface DispatchBatch {
  transferId: string;
  /** Path of the output file the executor writes verified chunks into. */
  output: string;
  fileSize: number;
  items: DispatchItem[];
}

/** Why a chunk fetch failed. */
export type FailureReason = 'timeout' | 'http' | 'unreachable' | 'corrupt' | 'short' | 'cancelled' | 'io';

/** The outcome of one dispatched fetch. Times in milliseconds. */
export interface ChunkReport {
  transferId: string;
  chunk: number;
  attempt: number;
  edgeIndex: number;
  ok: boolean;
  bytes: number;
  /** Request sent → first byte received. */
  firstByteMs: number;
  /** Request sent → last byte received. */
  transferMs: number;
  reason?: FailureReason;
  detail?: string;
  executorId: string;
}

/** Asks executors to abort a fetch (the loser of an endgame hedge). */
export interface CancelRequest {
  transferId: string;
  chunk: number;
  attempt: number;
}
