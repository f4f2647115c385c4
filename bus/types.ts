/**
 * The event plane as Portal's code sees it. The embedded default is an in-process bus; the NATS
 * adapter implements the same interface (subjects follow NATS syntax: `.`-separated tokens,
 * `*` matches one token, `>` the rest).
 */
export interface Bus {
  /** Delivers `msg` to every matching subscription (one member per queue group). */
  publish<T>(subject: string, msg: T): Promise<void>;
  subscribe<T>(
    subject: string,
    handler: (msg: T, subject: string) => void | Promise<void>,
    opts?: { queue?: string },
  ): Subscription;
  close(): Promise<void>;
}

export interface Subscription {
  readonly subject: string;
  unsubscribe(): void;
  /**
   * Resolves once the subscription receives messages (the NATS bus creates JetStream consumers
   * asynchronously); rejects with the reason it never will. Absent on buses where subscribing is immediate.
   */
  readonly ready?: Promise<void>;
}

/** Subject names, one function per kind of message (documented in README). */
export const subjects = {
  dispatch: (transferId: string) => `portal.transfer.${transferId}.dispatch`,
  report: (transferId: string) => `portal.transfer.${transferId}.report`,
  cancel: (transferId: string) => `portal.transfer.${transferId}.cancel`,
  edgeTelemetry: (edgeId: string) => `portal.edge.${edgeId}.telemetry`,
  edgeHave: (edgeId: string) => `portal.edge.${edgeId}.have`,
  /** Where a reader puts a message it rejected from `subject` (see DeadLetterEvent). */
  deadLetter: (subject: string) => `portal.deadletter.${subject}`,
  /** Wildcards: every edge's telemetry, every edge's availability, every transfer's dispatch, every dead letter. */
  allEdgeTelemetry: 'portal.edge.*.telemetry',
  allEdgeHave: 'portal.edge.*.have',
  allDispatch: 'portal.transfer.*.dispatch',
  allReports: 'portal.transfer.*.report',
  allDeadLetters: 'portal.deadletter.>',
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

/** Why a chunk fetch failed. `busy`: the edge answered 5xx or 429 (try again later); `http`: any other HTTP error (e.g. 404: it lacks the chunk). */
export type FailureReason =
  'timeout' | 'http' | 'busy' | 'unreachable' | 'corrupt' | 'short' | 'cancelled' | 'io';

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

/** Battery state an edge reports. */
export interface EdgeBattery {
  /** Charge in [0, 1]. */
  level: number;
  charging: boolean;
  /** The edge asks to be spared (scheduler flag BATTERY_LOW). */
  low: boolean;
}

/**
 * Telemetry about one edge (`subjects.edgeTelemetry(edgeId)`). Absent fields mean unchanged; the first
 * message of an edge announces it (it then needs `url`).
 */
export interface EdgeTelemetryEvent {
  edgeId: string;
  /** Unix epoch ms when sent (0 = unknown). */
  sentAtMs: number;
  online?: boolean;
  metered?: boolean;
  battery?: EdgeBattery;
  /** Bandwidth samples, oldest first: bytes per second at `atMs`. */
  bandwidth: Array<{ atMs: number; bytesPerSec: number }>;
  /** RTT samples, oldest first: milliseconds at `atMs`. */
  rtt: Array<{ atMs: number; rttMs: number }>;
  maxParallel?: number;
  /** Base URL of the edge ('' = not given). */
  url: string;
  kind?: EdgeKind;
}

/**
 * Which chunks of a manifest an edge holds (`subjects.edgeHave(edgeId)`): a full bitmap
 * (little-endian, bit i of byte i>>3 = chunk i) or a delta against the message numbered `baseSeq`.
 */
export type EdgeHaveEvent =
  | {
      kind: 'full';
      edgeId: string;
      manifestId: string;
      chunkCount: number;
      seq: number;
      sentAtMs: number;
      bitmap: Uint8Array;
    }
  | {
      kind: 'incremental';
      edgeId: string;
      manifestId: string;
      chunkCount: number;
      seq: number;
      sentAtMs: number;
      baseSeq: number;
      added: number[];
      removed: number[];
    };

/** A message a reader rejected (`subjects.deadLetter(original subject)`), with the typed reason. */
export interface DeadLetterEvent {
  /** The subject the rejected message arrived on. */
  subject: string;
  /** PortalError code of the rejection (PORTAL_WIRE_*). */
  code: string;
  reason: string;
  /** The rejected bytes (cut to a few KiB). */
  payload: Uint8Array;
  /** Size of the rejected message in bytes. */
  payloadSize: number;
  rejectedBy: string;
  atMs: number;
}
