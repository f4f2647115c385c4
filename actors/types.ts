import type { EdgeEstimate } from '../scheduler/estimators.js';
import type { EdgeKind } from '../common/index.js';

/** How an edge is reached and what it promises; given to EdgeActor.configure. */
export interface EdgeConfig {
  url: string;
  kind: EdgeKind;
  /** EdgeFlags bits (METERED, BATTERY_LOW). */
  flags: number;
  maxParallel: number;
  /** Prior bandwidth (bytes/s) and RTT (ms) until the first samples arrive. */
  bandwidthHint?: number;
  rttHint?: number;
  /**
   * Where the edge is: a label such as `eu-west/ams` (`portal edge --location`), compared for equality only.
   * A read from a location no edge there holds the file for gets a pre-position task to an accepting edge
   * with that label (actors/replica-placement.ts).
   */
  location?: string;
  /** The edge takes pre-positioned chunks (`portal edge --accept`: PUT /v1/chunks/<cid>). */
  accepts?: boolean;
}

/** What the cluster knows of an edge right now (EdgeActor.snapshot): its configuration and estimates. */
export interface EdgeView extends EdgeConfig, EdgeEstimate {
  id: string;
  /** Bumped on every change that should trigger a full re-rank (online/offline). */
  epoch: number;
  /** This transfer's chunks in flight on the edge (TransferStatus only). */
  queueDepth?: number;
  /** The last failure of this edge in this transfer, e.g. `http: HTTP 404 for bytes=0-65535` (TransferStatus only). */
  lastError?: string;
  /** Failures since its last delivered chunk (TransferStatus only). */
  failuresSinceOk?: number;
  /**
   * Given up for this transfer (TransferStatus only): it failed for longer than the source budget, or it
   * serves a file of another size than the transfer started with. `available` is then false, whatever the edge says of itself.
   */
  retired?: boolean;
  /** Why it was given up, e.g. `failed for 61 s without delivering a chunk (5 failures; source budget 60 s)`. */
  retiredReason?: string;
}

/** One chunk outcome reported to an EdgeActor. */
export interface EdgeSample {
  ok: boolean;
  bytes: number;
  firstByteMs: number;
  transferMs: number;
  reason?: string;
  /** Retry-After the source sent with a busy answer, ms. */
  retryAfterMs?: number;
}

/** Telemetry an edge (or a monitoring service) publishes about itself. */
export interface EdgeTelemetry {
  online?: boolean;
  metered?: boolean;
  batteryLow?: boolean;
  bandwidth?: number;
  rtt?: number;
  maxParallel?: number;
}

/** An edge of one transfer as SchedulerActor.start takes it. */
export interface TransferEdge {
  id: string;
  config: EdgeConfig;
  /** Chunks the edge holds: base64 little-endian bitmap, or 'all'; undefined = ask the edge (/v1/have). */
  holds?: string;
  /** True for an edge that joined the running transfer by announcing its holdings (a swarm peer), not one it started with. */
  announced?: boolean;
}

/** SchedulerActor.start's argument. */
/** What gave a transfer's whole-file sha-256 (TransferRequest.checksumFrom). */
export type ChecksumOrigin = 'manifest' | 'checksum-flag' | 'metalink' | 'digest-header';

export interface TransferRequest {
  transferId: string;
  /** The manifest inline (at most ~4 MiB of body through Dapr: about 62 000 chunks); or give manifestUrl. */
  manifest?: import('../transfer/manifest.js').Manifest;
  /**
   * The manifest by reference instead: an http(s):// URL, a file:// URL or an absolute path the Portal host can
   * read, holding the JSON `portal manifest` writes or the binary format (docs/manifest-format.md). The actor state keeps the reference, not the manifest, and a
   * reactivation loads it again (its id must still be the journal's).
   */
  manifestUrl?: string;
  /**
   * The manifest by content id instead: the sha-256 (64 lowercase hex) of its binary encoding
   * (docs/manifest-format.md), fetched from the request's `portal` edges at `<url>/v1/manifests/<cid>` and checked
   * against the id. The actor state keeps the id; a reactivation fetches it again.
   */
  manifestCid?: string;
  /** Where the chunks are written (a partial file when `publishAs` is set). */
  output: string;
  /** The name `output` is renamed to once the file is verified (`<out>.portal-part` → `<out>`); absent: it keeps its name. */
  publishAs?: string;
  /**
   * What gave the manifest's whole-file sha-256, named in the error when the finished file does not match it:
   * `manifest` (a Portal manifest; the default), `checksum-flag` (fetch's `--checksum`), `metalink` (a
   * Metalink's `<hash type="sha-256">`) or `digest-header` (the mirrors' `Digest: SHA-256=` header).
   */
  checksumFrom?: ChecksumOrigin;
  /**
   * On a host with an output root (`portal serve --output-root`) `output` and `publishAs` must resolve inside
   * it, and a first start may write over an existing regular file only when this is true (default false:
   * refused with PORTAL_OUTPUT_REFUSED, so a caller cannot cut someone's file to the transfer's size). On any host,
   * the publish (`output` renamed to `publishAs`) replaces a file another program created at `publishAs` while the
   * transfer ran only when this is true (`portal fetch --force` sets it); otherwise the transfer fails naming that
   * file and the verified bytes stay in `output`.
   */
  overwrite?: boolean;
  edges: TransferEdge[];
  /** Scheduler tunables (SchedulerConfig, partial) and the tick period. */
  scheduler?: Partial<import('../scheduler/types.js').SchedulerConfig>;
  tickMs?: number;
  /** Minimum interval between journal writes, ms (default 100). */
  persistMs?: number;
  /**
   * On resume, check the journaled chunks against their CIDs ('journaled'), or every chunk of the
   * output ('all': also keeps chunks written before a crash but not journaled yet). Default: 'all'
   * for files up to 4 GiB.
   */
  verifyOnResume?: 'journaled' | 'all';
  /**
   * A validator (a strong ETag, else a Last-Modified date) of each mirror source, by edge id, as it answered when
   * the transfer started, and sent by the chunk fetches as `If-Range` (HttpClientOptions.ifRange). When every
   * mirror the transfer started with has one, a resume keeps the journaled chunks that have no hash to check
   * (NO_CID, a file known only from its sources) at their full length: the caller vouches that the sources still
   * serve that version (`portal fetch` compares them with its probes and starts over when one differs), and
   * If-Range keeps any other version's bytes out. Without them such chunks are fetched again.
   */
  validators?: Record<string, string>;
  /** Learned completion time and failure risk per edge replace the formula's time and health factors. */
  learned?: boolean;
  /** Edge slots kept free for edges announced while the transfer runs (default 32). */
  spareEdges?: number;
  /** Run a tick as soon as reports free slots, at most once per this many ms (default 5; negative = only on the timer). */
  dispatchOnReportMs?: number;
  /** Fail the transfer when nothing is in flight and no chunk completes for this long, ms (default 60 000). */
  stallTimeoutMs?: number;
  /**
   * Source budget: an edge that delivers nothing while failing for this long (and at least 3 times) is
   * given up for this transfer, ms (default 60 000). A run whose edges are all given up ends, naming each
   * edge's last cause.
   */
  edgeBudgetMs?: number;
  /**
   * A pre-position task: `output` is then the URL of an edge that accepts chunks (`portal edge
   * --accept`), and each chunk is PUT there once fetched and verified (the edge checks it again).
   */
  prePosition?: PrePosition;
  /**
   * Where this transfer's reader is (a location label, as edges carry): the transfer and reads of its
   * content count as reads of the file there, so the host may replicate it to an accepting edge with that
   * label that does not hold it yet (actors/replica-placement.ts). Absent: no placement.
   */
  location?: string;
  /**
   * The order chunks are fetched in when nothing raises their priority: 'sequential' (chunk order, the
   * default) or a pseudo-random permutation seeded by `orderSeed` (BitTorrent's random piece selection). A
   * swarm member (`swarm`) orders its chunks by ownership instead.
   */
  order?: 'sequential' | 'random';
  orderSeed?: number;
  /**
   * This transfer is a member of a swarm (`portal fetch --swarm`) whose peers announce holdings of the manifest:
   * `selfId` is this member's edge id as the peers know it. The edges the transfer starts with are its origin;
   * they fetch only chunks no live peer holds, and this member fetches from them first the chunks it owns by
   * rendezvous hashing among the members (scheduler/swarm-selection.ts); `order` is then ignored.
   */
  swarm?: { selfId: string };
}

/** What a pre-position task copies and when (TransferRequest.prePosition). */
export interface PrePosition {
  /** Chunks to copy: indices and inclusive [first, last] ranges (default: every chunk). */
  chunks?: Array<number | [number, number]>;
  /** Or the chunks covering this byte range of the file. */
  byteRange?: { offset: number; length: number };
  /** Run only on edges no foreground transfer of this host uses or wants (default true). */
  background?: boolean;
  /**
   * Unix ms by which the chunks should be on the target ("before 2 AM"): once the chunks left no longer
   * fit in the time left at half the edges' estimated bandwidth, the task runs as a foreground transfer.
   */
  deadlineWallMs?: number;
}

/** A read of a transfer's content (SchedulerActor.read). */
export interface ContentReadRequest {
  /** Who reads (one HTTP connection, say); a reader whose reads follow each other is sequential. */
  readerId: string;
  /** Byte offset and length of the read (length ≥ 1; cut at the end of the file). */
  offset: number;
  length: number;
  /** The reader's consumption rate, bytes/s, when known (sizes its read-ahead). */
  rateBytesPerSec?: number;
  /** Where the reader is (a location label; default: the transfer's `location`). */
  location?: string;
}

/** The answer to a ContentReadRequest. */
export interface ContentReadResult {
  state: TransferStatus['state'];
  /** Why the transfer is not running: its error when failed, `cancelled` when cancelled (absent otherwise). */
  error?: string;
  /** Chunks the read covers, [first, last]. */
  first: number;
  last: number;
  /** Of those, the chunks verified now (ascending). */
  complete: number[];
  /** Chunks after the read now fetched ahead of the reader. */
  readAhead: number;
  sequential: boolean;
}

/** What SchedulerActor.contentInfo answers. */
export interface ContentInfo {
  state: TransferStatus['state'];
  /** Why the transfer is not running: its error when failed, `cancelled` when cancelled (absent otherwise). */
  error?: string;
  manifest: import('../transfer/manifest.js').Manifest;
  output: string;
}

/** Where a transfer stands (SchedulerActor.status). */
export interface TransferStatus {
  transferId: string;
  /**
   * queued (waiting for one of the host's running slots) → running → verifying → done | failed; cancel →
   * cancelled; restart takes failed or cancelled back to running (or queued).
   */
  state: 'queued' | 'running' | 'verifying' | 'done' | 'failed' | 'cancelled';
  error?: string;
  total: number;
  complete: number;
  inFlight: number;
  pending: number;
  failedPermanent: number;
  bytesDone: number;
  fileSize: number;
  startedAt: number;
  finishedAt?: number;
  verified: boolean;
  /** Chunks kept on resume (their bytes matched their CID). */
  resumedChunks: number;
  /** Of those, chunks the journal did not list yet (written just before a crash). */
  recoveredChunks: number;
  ticks: number;
  /** Quantiles of the last 8192 ticks' times. */
  tickMsP50: number;
  tickMsP99: number;
  /** Phase times of the last tick, ms. */
  lastTickMs?: {
    rank: number;
    detect: number;
    failover: number;
    balance: number;
    dispatch: number;
    total: number;
  };
  backend: string;
  /** Whether learned predictors drive the time and health factors. */
  learned?: boolean;
  counters: import('../scheduler/scheduler.js').SchedulerCounters;
  /** The transfer's edges as it sees them: only when status was asked for them (`{ edges: true }`). */
  edges?: EdgeView[];
  /** Chunks each edge completed (same order as the request's edges, then those that joined). */
  perEdgeChunks: number[];
  /** Chunks each edge completed, by edge id (the same counts as perEdgeChunks). */
  chunksByEdge?: Record<string, number>;
  /**
   * The sources failing now — failures since their last delivered chunk, or given up — each with its last error;
   * absent when none fails, and once the transfer is done (its edges' `lastError` keep what failed before). In every status, with or without `edges`.
   */
  failingSources?: SourceFailure[];
}

/** One failing source of a transfer as a plain status names it (TransferStatus.failingSources). */
export interface SourceFailure {
  /** The edge id. */
  id: string;
  /** Its last failure in this transfer, e.g. `http: HTTP 404 for bytes=0-65535`. */
  lastError?: string;
  /** Failures since its last delivered chunk. */
  failuresSinceOk: number;
  /** Given up for this transfer (see EdgeView.retired), with why. */
  retired: boolean;
  retiredReason?: string;
}
