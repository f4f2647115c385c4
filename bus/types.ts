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
