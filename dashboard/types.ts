import type { ActorHost, ActorHostStats } from '../runtime/index.js';
import type { Logger } from '../common/logger.js';
import type { Registry } from 'prom-client';
import type { TransferStatus } from '../actors/index.js';

/** createDashboard's options. */
export interface DashboardOptions {
  /** The actor host the transfers run on (embedded or Dapr); polled through `proxy().invoke('status')`. */
  host: ActorHost;
  /** Transfer ids to poll, asked again on every poll (a transfer that leaves the list keeps its last view until evicted). */
  transfers: () => readonly string[];
  /**
   * Ids of the transfers that wait for a running slot (the host's admission queue, oldest first), asked on every
   * poll. They are not polled: the snapshot counts them and lists the first MAX_QUEUED_LISTED.
   */
  queued?: () => readonly string[];
  /**
   * A number that changes whenever transfer `transferId` may leave a finished state: a start, a restart, a
   * reactivation, a forget and new start each give its row on the host's list a new one (TransferIndex.revision;
   * undefined when the id is not on it). With it, a transfer whose last status was done, failed or cancelled is not
   * polled again while its revision stays the same (its status cannot change before one of those), so a poll costs
   * a status call per unfinished transfer only; without it (or while it answers undefined) every listed transfer is
   * polled on every poll. A finished transfer's view and metrics stay those of its last status.
   */
  revision?: (transferId: string) => number | undefined;
  logger: Logger;
  /** TCP port; 0 (default) = a free port. */
  port?: number;
  /** Interface to listen on (default 127.0.0.1: loopback only; the dashboard has no authentication). */
  hostname?: string;
  /** Unread bytes an /events client may queue before it is dropped (default 1 MiB, SSE_MAX_BUFFERED_BYTES). */
  sseMaxBufferedBytes?: number;
  /** Poll period, ms (default 500; at most 1000 so the page updates at least once a second). */
  pollMs?: number;
  /** The tick engine's counters (TickEngine.stats()); read defensively, any shape. */
  engineStats?: () => unknown;
  /** Views of transfers no longer listed that are kept (default 8). */
  keepFinished?: number;
  /** Points of throughput/tick history per transfer (default 240: two minutes at 500 ms). */
  historyPoints?: number;
  /** Events kept (default 200). */
  maxEvents?: number;
}

/** A running dashboard: its URL, the Prometheus registry and the hooks other components feed. */
export interface Dashboard {
  /** `http://host:port/` of the page; `/events`, `/api/state`, `/metrics` live beside it. */
  readonly url: string;
  /** The prom-client registry served on /metrics (components may register their own metrics on it). */
  readonly metrics: Registry;
  /** Adds a function whose samples are exported on every scrape; returns a function that removes it. */
  registerMetricsSource(source: MetricsSource): () => void;
  /** Counts a message that was dead-lettered (`reason` must come from a small fixed set: it is a label). */
  recordDeadLetter(reason: string, count?: number): void;
  /** Drops a transfer now (SchedulerActor.forget): its card, history and metric series. */
  forgetTransfer(transferId: string): void;
  /** The latest snapshot (what /api/state returns). */
  snapshot(): DashboardSnapshot;
  /** Polls now instead of waiting for the timer (tests, shutdown). */
  pollNow(): Promise<DashboardSnapshot>;
  /** Stops polling, ends the event streams and closes the server. */
  close(): Promise<void>;
}

/** One sample a metrics source contributes; `name` must match /^portal_[a-z0-9_]+$/. */
export interface MetricSample {
  name: string;
  help: string;
  type: 'gauge' | 'counter';
  value: number;
  labels?: Readonly<Record<string, string | number>>;
}

/** Contributes samples on every scrape (stream actors, the bus, …). A source that throws is logged and skipped. */
export type MetricsSource = () => readonly MetricSample[] | Promise<readonly MetricSample[]>;

/** Per-phase tick times in ms, when the scheduler reports them (`status.lastTickMs`). */
export type PhaseTimes = Readonly<Record<string, number>>;

/** One edge of one transfer as the page shows it. */
export interface EdgeSnapshot {
  id: string;
  url: string;
  kind: string;
  /** False when the edge is offline or the transfer gave the source up (`givenUp`). */
  online: boolean;
  /** The transfer gave this source up (the source budget); `reason` says why. */
  givenUp: boolean;
  /** Why the source was given up, then its last failure in this transfer, when there is one. */
  reason?: string;
  queueDepth: number;
  maxParallel: number;
  /** queueDepth / maxParallel (0…1+). */
  load: number;
  health: number;
  successRate: number;
  /** Estimated bandwidth, bytes/s, and RTT, ms. */
  bandwidth: number;
  rtt: number;
  flags: number;
  metered: boolean;
  batteryLow: boolean;
  /** Chunks this edge completed for the transfer. */
  chunks: number;
}

/** Bounded history of one transfer, one point per poll (parallel arrays). */
export interface TransferHistory {
  /** ms since the Unix epoch. */
  t: number[];
  /** bytes/s over the previous poll interval. */
  throughput: number[];
  tickP50: number[];
  tickP99: number[];
  /** lastTickMs.total when reported, else NaN → null in JSON. */
  tickLast: (number | null)[];
}

/** One transfer as the page shows it. */
export interface TransferSnapshot {
  id: string;
  /** The transfer's state, 'unreachable' while its status calls fail, 'idle' before the first answer. */
  state: TransferStatus['state'] | 'unreachable' | 'idle';
  error?: string;
  /** Whether transfers() still lists it. */
  polled: boolean;
  progress: number;
  bytesDone: number;
  fileSize: number;
  total: number;
  complete: number;
  inFlight: number;
  pending: number;
  failedPermanent: number;
  startedAt: number;
  finishedAt?: number;
  verified: boolean;
  /** bytes/s over the last poll interval and since the start. */
  throughput: number;
  avgThroughput: number;
  /** Seconds left at the recent rate; null when unknown. */
  etaSec: number | null;
  ticks: number;
  tickMsP50: number;
  tickMsP99: number;
  lastTickMs?: PhaseTimes;
  backend: string;
  counters: Record<string, number>;
  edges: EdgeSnapshot[];
  history: TransferHistory;
}

/** Something worth a line in the event list; a union keyed on `type`. */
export type DashboardEvent =
  | { seq: number; at: number; type: 'transfer-started'; transfer: string }
  | { seq: number; at: number; type: 'transfer-done'; transfer: string; verified: boolean; seconds: number }
  | { seq: number; at: number; type: 'transfer-failed'; transfer: string; error: string }
  | {
      seq: number;
      at: number;
      type: 'failover' | 'corrupt' | 'timeout' | 'hedge';
      transfer: string;
      count: number;
      total: number;
    }
  | { seq: number; at: number; type: 'edge-offline' | 'edge-online'; transfer: string; edge: string }
  /** The transfer gave the source up; `reason` says why (and its last error). */
  | { seq: number; at: number; type: 'edge-given-up'; transfer: string; edge: string; reason: string }
  | { seq: number; at: number; type: 'poll-error'; transfer: string; message: string };

/** Queued ids a snapshot lists (the rest are counted). */
export const MAX_QUEUED_LISTED = 100;

/** What /api/state returns and /events streams, once per poll. */
export interface DashboardSnapshot {
  version: 1;
  /** Increments on every poll. */
  seq: number;
  /** ms since the Unix epoch. */
  at: number;
  pollMs: number;
  host: { kind: string; stats: ActorHostStats | null };
  /** The backend running the kernels (engine stats, else the first transfer's status). */
  backend: string;
  engine: Record<string, number | string> | null;
  /**
   * Running first, then verifying, idle, unreachable, queued, failed, cancelled and done (see STATE_ORDER); in a
   * state, the order they were first seen, and the finished ones the most recently finished first. The finished
   * ones after the first FINISHED_WITH_HISTORY (tracker.ts) come with an empty history.
   */
  transfers: TransferSnapshot[];
  /** Transfers per state: those in `transfers` by their state, plus the queued ones `queued` counts. */
  counts: Record<string, number>;
  /** Transfers waiting for a running slot that are not in `transfers`: how many, and the first MAX_QUEUED_LISTED ids. */
  queued: { total: number; ids: string[] };
  /** Newest last. */
  events: DashboardEvent[];
}
