import type { BusHealth } from '../common/health.js';
import { escapeName, unescapeName } from '../common/wire-escape.js';

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
  /** The connection's state for health probes (common/health.ts); absent on buses that cannot lose one. */
  health?(): BusHealth;
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

/** An id that goes into a subject token as it is: letters, digits, `_`, `-` (no `.`, `*`, `>`, spaces, `~`). */
const PLAIN_TOKEN = /^[A-Za-z0-9_-]+$/;

/**
 * The subject token of an id (transfer, edge, peer, coordinator, task id): the id itself when it has only letters,
 * digits, `_` and `-`, else `~` and the base64url of its UTF-8 (common/wire-escape.ts, as actor ids in URLs): a
 * NATS token cannot hold `.` (a separator: `release-1.2.3` would be three tokens and match no `portal.transfer.*.x`
 * wildcard), `*`, `>` or white space, and one id must always give one token. subjectTokenId reverses it.
 */
export function subjectToken(id: string): string {
  return escapeName(id, PLAIN_TOKEN);
}

/** The id whose subject token is `token` (inverse of subjectToken); undefined when `token` is not one. */
export function subjectTokenId(token: string): string | undefined {
  return unescapeName(token, PLAIN_TOKEN);
}

/** Subject names, one function per kind of message (documented in docs/api.md, "NATS"); ids go in as subjectToken. */
export const subjects = {
  dispatch: (transferId: string) => `portal.transfer.${subjectToken(transferId)}.dispatch`,
  report: (transferId: string) => `portal.transfer.${subjectToken(transferId)}.report`,
  cancel: (transferId: string) => `portal.transfer.${subjectToken(transferId)}.cancel`,
  edgeTelemetry: (edgeId: string) => `portal.edge.${subjectToken(edgeId)}.telemetry`,
  edgeHave: (edgeId: string) => `portal.edge.${subjectToken(edgeId)}.have`,
  /** A pre-position task for whichever node takes it (queue group): PrePositionTaskMessage. */
  prePosition: (taskId: string) => `portal.preposition.${subjectToken(taskId)}.start`,
  /** Where a reader puts a message it rejected from `subject` (see DeadLetterEvent). */
  deadLetter: (subject: string) => `portal.deadletter.${subject}`,
  /** Wildcards: every edge's telemetry, every edge's availability, every transfer's dispatch, every dead letter. */
  allEdgeTelemetry: 'portal.edge.*.telemetry',
  allEdgeHave: 'portal.edge.*.have',
  allPrePositions: 'portal.preposition.*.start',
  allDispatch: 'portal.transfer.*.dispatch',
  allReports: 'portal.transfer.*.report',
  allDeadLetters: 'portal.deadletter.>',
  /** One attempt of a task for peer `peerId` (PeerTaskMessage, JetStream). */
  peerTask: (peerId: string) => `portal.peer.${subjectToken(peerId)}.task`,
  /** A peer's advertisement and telemetry (PeerHeartbeatMessage). */
  peerHeartbeat: (peerId: string) => `portal.peer.${subjectToken(peerId)}.heartbeat`,
  /** Peers' answers to coordinator `coordId` (PeerResultMessage, JetStream). */
  coordResult: (coordId: string) => `portal.coord.${subjectToken(coordId)}.result`,
  /** Tasks submitted to coordinator `coordId` (CoordSubmitMessage, JetStream). */
  coordSubmit: (coordId: string) => `portal.coord.${subjectToken(coordId)}.submit`,
  /** Final outcomes of coordinator `coordId`'s tasks (CoordOutcomeMessage, JetStream). */
  coordOutcome: (coordId: string) => `portal.coord.${subjectToken(coordId)}.outcome`,
  /** Wildcard: every peer's heartbeat. */
  allPeerHeartbeats: 'portal.peer.*.heartbeat',
} as const;

/** A message a reader rejected (`subjects.deadLetter(original subject)`), with the typed reason. */
export interface DeadLetterEvent {
  /** The subject the rejected message arrived on. */
  subject: string;
  /** PortalError code of the rejection: PORTAL_WIRE_* (could not decode), PORTAL_DELIVERY_EXHAUSTED (max_deliver reached). */
  code: string;
  reason: string;
  /** The rejected bytes (cut to a few KiB). */
  payload: Uint8Array;
  /** Size of the rejected message in bytes. */
  payloadSize: number;
  rejectedBy: string;
  atMs: number;
}

/**
 * Flow control a pausable pull consumer obeys: it pulls only while `paused` is false, and sizes each pull
 * to `roomBeforePause` (in the units its handler reports per message). A backpressure buffer is one.
 */
export interface PullGate {
  /** True while the consumer must not pull. */
  readonly paused: boolean;
  /** Units (e.g. records) that still fit before the gate pauses. */
  readonly roomBeforePause: number;
  /** Resolves once `paused` has turned false. */
  whenResumed(): Promise<void>;
}

/** One message a pull consumer delivered: its bytes (a copy the handler owns) and how to settle it, once. */
export interface PulledMessage {
  readonly subject: string;
  /** Stream sequence number of the message. */
  readonly seq: number;
  /** 1 on the first delivery, more on redeliveries. */
  readonly deliveryCount: number;
  readonly data: Uint8Array;
  /** Done with it: it is not delivered again. */
  ack(): void;
  /** Not processed: deliver it again after `delayMs` (default: at once). */
  nak(delayMs?: number): void;
  /** Never deliver it again (it cannot be processed). */
  term(): void;
}

/** Options of PausablePullClient.pull. */
export interface PullConsumerOptions {
  /** Durable consumer name; members of a group that share it share the messages. */
  durable: string;
  /** Subject (NATS wildcards allowed) the consumer takes from the stream. */
  filterSubject: string;
  /** Messages one pull asks for at most (default 64); fewer when the gate nears its pause point. */
  maxMessagesPerPull?: number;
  /** Where to start when the consumer is new (default: every stored message). */
  deliver?: 'all' | 'new';
  /** Deliveries of a message before the server gives up on it (default 20). */
  maxDeliver?: number;
}

/** Counters of one pull consumer. */
export interface PullConsumerStats {
  /** Pull requests sent. */
  pulls: number;
  /** Pull requests sent while the gate was paused (must stay 0). */
  pullsWhilePaused: number;
  /** Messages delivered to this consumer (duplicates included). */
  messages: number;
  acked: number;
  naked: number;
  terminated: number;
  /** Deliveries that were not the first (at-least-once at work). */
  redelivered: number;
  /** Redeliveries of a message still unsettled here (dropped: its first delivery will be settled). */
  duplicatesIgnored: number;
  /** Times the loop waited for the gate to resume. */
  pausedWaits: number;
}

/** A running pull consumer. */
export interface PullConsumer {
  readonly durable: string;
  stats(): PullConsumerStats;
  /** Stops pulling; messages already handed out can still be settled. */
  stop(): Promise<void>;
}

/**
 * A persistent message log with pausable pull consumers (JetStream on NATS: createJetStreamPullClient).
 * A handler gets each message once per delivery (a redelivery of a message still unsettled here is
 * dropped), settles it with ack/nak/term, and resolves with the gate units it carried (to size the next
 * pull); a handler that rejects gets its message nak'ed (redelivered after 1 s).
 */
export interface PausablePullClient {
  /** Largest message the server takes, bytes. */
  readonly maxPayload: number;
  /** Creates (or binds to) durable consumer `opts.durable` and starts pulling through `gate`. */
  pull(
    opts: PullConsumerOptions,
    gate: PullGate,
    handler: (m: PulledMessage) => Promise<number | void>,
  ): Promise<PullConsumer>;
  /** Stores one message; resolves once stored. `msgId` de-duplicates within the stream's window. */
  publish(
    subject: string,
    data: Uint8Array,
    opts?: { msgId?: string; headers?: Record<string, string> },
  ): Promise<void>;
  /** Core (not durable) subscription; `header(name)` reads a header of the message. */
  subscribe(
    subject: string,
    handler: (data: Uint8Array, subject: string, header: (name: string) => string | undefined) => void,
  ): { unsubscribe(): void };
  /** Messages pending for `durable` on the server (not yet delivered) and delivered but unacked. */
  consumerInfo(durable: string): Promise<{ pending: number; ackPending: number }>;
  /** Removes a durable consumer (absent: no error). */
  deleteConsumer(durable: string): Promise<void>;
  /** Stops every consumer and drains the connection. */
  close(): Promise<void>;
}

// ---- the learned coordinator and its peers (docs/coord-service.md) ----

/** One attempt of a task, from a coordinator to a peer (`subjects.peerTask(peerId)`). */
export interface PeerTaskMessage {
  /** The peer answers on `subjects.coordResult(coordinatorId)`. */
  coordinatorId: string;
  peerId: string;
  taskId: string;
  /** Unique within the coordinator, > 0. */
  attempt: number;
  type: string;
  /** Work units, > 0. */
  work: number;
  /** The coordinator's hour of day, 0..23. */
  hour: number;
  /** The task's input, any JSON value (absent = none). */
  payload?: unknown;
  sentAtMs: number;
}

/** A peer's answer for one attempt (`subjects.coordResult(coordinatorId)`). */
export interface PeerResultMessage {
  coordinatorId: string;
  peerId: string;
  taskId: string;
  attempt: number;
  ok: boolean;
  /** The output, any JSON value (ok only). */
  output?: unknown;
  error?: string;
  /** ms the peer spent on it, not counting its queue. */
  serviceMs: number;
  /** The peer's resource pressure, 0..1. */
  pressure: number;
  sentAtMs: number;
}

/** A peer's advertisement and telemetry (`subjects.peerHeartbeat(peerId)`). */
export interface PeerHeartbeatMessage {
  peerId: string;
  /** Task types it runs (at least one). */
  taskTypes: string[];
  /** Attempts a coordinator may have in flight on it. */
  maxInFlight: number;
  /** Tasks it runs at once. */
  concurrency: number;
  latencyHintMs: number;
  /** Running + queued. */
  load: number;
  running: number;
  queued: number;
  /** 0..1 each. */
  pressure: number;
  cpuPressure: number;
  memoryPressure: number;
  /** Period of its heartbeats, ms. */
  intervalMs: number;
  /** True in the last heartbeat of a peer that leaves on purpose. */
  leaving: boolean;
  seq: number;
  sentAtMs: number;
  completed: number;
  failed: number;
}

/** A task as a service submits it to a coordinator. */
export interface SubmittedTaskMessage {
  id: string;
  type: string;
  work: number;
  payload?: unknown;
  /** Run the first attempt on this peer. */
  pin?: string;
}

/** Tasks for coordinator `coordinatorId` (`subjects.coordSubmit(coordinatorId)`). */
export interface CoordSubmitMessage {
  coordinatorId: string;
  tasks: SubmittedTaskMessage[];
  /** Who submitted, for logs ('' = not given). */
  submitter: string;
}

/** The final outcome of a task (`subjects.coordOutcome(coordinatorId)`). */
export interface CoordOutcomeMessage {
  coordinatorId: string;
  taskId: string;
  type: string;
  ok: boolean;
  /** The peer of the last attempt. */
  peer: string;
  attempts: number;
  failures: number;
  /** Submission to final answer, ms. */
  latencyMs: number;
  output?: unknown;
  error?: string;
}

/**
 * A pre-position task on `portal.preposition.<taskId>.start`: `request` is the SchedulerActor start
 * request (a TransferRequest with `prePosition` set and `output` the target edge's URL, transferId = taskId),
 * kept as plain JSON here because bus/ does not know the actors' types; SchedulerActor.start validates it.
 */
export interface PrePositionTaskMessage {
  taskId: string;
  request: Record<string, unknown>;
}
