/**
 * The wire-free vocabulary of a transfer: what the scheduler dispatches, what an executor reports back,
 * what edges announce. The bus carries these (bus/codec.ts encodes them as protobuf) and transfer/
 * produces and consumes them; neither area owns them, so both import them from here.
 */

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
  /**
   * On NATS only: the real `edgeUrl`, sealed (AES-256-GCM under PORTAL_DISPATCH_KEY, bus/dispatch-seal.ts), when it
   * holds credentials; `edgeUrl` is then redacted.
   */
  sealedUrl?: Uint8Array;
}

/** A batch of dispatches for one transfer (one tick's output). */
export interface DispatchBatch {
  transferId: string;
  /** Path of the output file the executor writes verified chunks into. */
  output: string;
  fileSize: number;
  items: DispatchItem[];
  /** On NATS only: the real `output` sealed as DispatchItem.sealedUrl, when it is an edge URL with credentials. */
  sealedOutput?: Uint8Array;
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
  /** The source asked not to be asked again for this long (Retry-After of a 503/429), ms. */
  retryAfterMs?: number;
  executorId: string;
}

/**
 * `CancelRequest.chunk` of a transfer's end (done, failed, cancelled, forgotten): no chunk has this index (manifests
 * hold at most 2^27 chunks), and `attempt` is then the transfer's next attempt id, so every dispatch it issued
 * before it ended (`attempt` below that) is void. Executors drop those still queued or arriving later, and
 * fetch a dispatch with a higher attempt again (the transfer was restarted).
 */
export const TRANSFER_ENDED_CHUNK = 0xffffffff;

/** Asks executors to abort a fetch (the loser of an endgame hedge), or every fetch of an ended transfer (TRANSFER_ENDED_CHUNK). */
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
 * Telemetry about one edge (bus subject `portal.edge.<edgeId>.telemetry`). Absent fields mean unchanged; the first
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
  /** Where the edge is, a label such as `eu-west/ams` (absent: not given). */
  location?: string;
  /** The edge accepts pre-positioned chunks by PUT (absent: unchanged/not given). */
  accepts?: boolean;
}

/**
 * Which chunks of a manifest an edge holds (bus subject `portal.edge.<edgeId>.have`): a full bitmap
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

/**
 * True for a location label (where an edge or a reader is, such as `eu-west/ams`, compared for equality only): a
 * string of 1 to 256 characters, none of them a control character.
 */
export function isLocationLabel(v: unknown): v is string {
  if (typeof v !== 'string' || v.length === 0 || v.length > 256) return false;
  for (let i = 0; i < v.length; i++) if (v.charCodeAt(i) < 0x20 || v.charCodeAt(i) === 0x7f) return false;
  return true;
}
