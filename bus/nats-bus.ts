import { AsyncResource } from 'node:async_hooks';
import { nuid, nanos, type Msg, type Subscription as NatsSubscription } from '@nats-io/transport-node';
import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  jetstream,
  jetstreamManager,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from '@nats-io/jetstream';
import { PortalError, isPortalError } from '../common/errors.js';
import { createSilentLogger, type Logger } from '../common/logger.js';
import { createLogLimiter } from '../common/log-limit.js';
import type { BusConnectionState, BusHealth } from '../common/health.js';
import { logHandlerError } from './handler-errors.js';
import {
  createCodecRegistry,
  isJetStreamPattern,
  jetStreamOf,
  type CodecRegistry,
  type WireCodec,
  type WireLimits,
} from './codec.js';
import { subjects, type Bus, type DeadLetterEvent, type Subscription } from './types.js';
import type { DispatchBatch } from '../common/vocabulary.js';
import { COORD_STREAM, DEAD_LETTER_STREAM, TRANSFERS_STREAM, durableName } from './nats-bus-names.js';
import { connectNats, type NatsConnectOptions } from './nats-connect.js';

export { COORD_STREAM, DEAD_LETTER_STREAM, TRANSFERS_STREAM, durableName };

/** Retention of one stream the bus creates when it is missing (an existing stream is left as it is). */
export interface NatsStreamOptions {
  /** Oldest message kept, ms (transfers default 24 h, dead letters 7 days). */
  maxAgeMs?: number;
  /** Bytes kept before the oldest go (transfers default 1 GiB, dead letters 256 MiB). */
  maxBytes?: number;
  storage?: 'file' | 'memory';
  replicas?: number;
}

/** Options of createNatsBus: where NATS is and how to log in (NatsConnectOptions), then the bus's own. */
export interface NatsBusOptions extends NatsConnectOptions {
  /** Client name; also names the durable consumers of subscriptions without a queue group (default `portal-<pid>`). */
  name?: string;
  logger?: Logger;
  /** Stream settings, or false to not create that stream (it must then exist for JetStream subjects). */
  streams?: {
    transfers?: NatsStreamOptions | false;
    deadLetters?: NatsStreamOptions | false;
    /** PORTAL_COORD: peer tasks, the coordinator's results, submissions and outcomes (default 24 h, 1 GiB). */
    coord?: NatsStreamOptions | false;
  };
  /** Per-kind message size limits (see DEFAULT_MAX_BYTES). */
  limits?: WireLimits;
  /** How long one JetStream publish keeps retrying until the server acks it (default 60 s); then PORTAL_BUS_UNAVAILABLE. */
  publishTimeoutMs?: number;
  /**
   * JetStream publishes waiting for the server to store them (in flight, or retrying while NATS is away) at most
   * at once, by count and by payload bytes (defaults DEFAULT_MAX_PENDING_PUBLISHES, DEFAULT_MAX_PENDING_PUBLISH_BYTES).
   * A publish beyond either is dropped at once: it rejects with PORTAL_BUS_UNAVAILABLE and is counted
   * (stats().publishesDropped, publishBytesDropped), with one warning per outage, so the memory an outage holds is
   * bounded by these and not by publishTimeoutMs × the publish rate.
   */
  maxPendingPublishes?: number;
  maxPendingPublishBytes?: number;
  /** JetStream redelivers a message not acked within this time (default 30 s). */
  ackWaitMs?: number;
  /** Deliveries of one message before JetStream gives up on it (default 20). */
  maxDeliver?: number;
  /** A durable consumer nobody pulled from for this long is removed by the server (default 1 h). */
  consumerInactiveMs?: number;
  /** Called for every message this bus dead-letters. */
  onDeadLetter?: (d: DeadLetterEvent) => void;
  /** Called when a handler throws or rejects (default: logged). */
  onError?: (err: unknown, subject: string) => void;
}

/** Counters of a NATS bus. */
export interface NatsBusStats {
  published: number;
  delivered: number;
  /** JetStream deliveries that were not the first (at-least-once at work). */
  redelivered: number;
  handlerErrors: number;
  deadLettered: number;
  deadLetteredByCode: Record<string, number>;
  /** JetStream publishes that had to be sent again (no ack in time, server away). */
  publishRetries: number;
  disconnects: number;
  reconnects: number;
  /** Reconnects after which the streams were checked (and recreated when the server had lost them). */
  recoveries: number;
  /** Dispatch batches split into several messages to fit under the size limit. */
  splitPublishes: number;
  /** JetStream publishes waiting for the server now (in flight or retrying), and their payload bytes. */
  publishesPending: number;
  publishBytesPending: number;
  /** JetStream publishes dropped because the pending ones were at maxPendingPublishes(/Bytes), and their bytes. */
  publishesDropped: number;
  publishBytesDropped: number;
}

/**
 * Default bound on pending JetStream publishes: 1024 messages, 64 MiB. A running transfer publishes a dispatch
 * batch per tick at most (50 ms ticks: 20 a second), so 1024 hold a minute of one busy transfer's dispatches; a
 * dispatch batch is at most 1 MiB (DEFAULT_MAX_BYTES.dispatch), so 64 of the largest fill the byte bound.
 */
export const DEFAULT_MAX_PENDING_PUBLISHES = 1024;
export const DEFAULT_MAX_PENDING_PUBLISH_BYTES = 64 * 1024 * 1024;

/** The Bus on NATS: protobuf on the wire, JetStream for dispatch and reports, core NATS for the rest. */
export interface NatsBus extends Bus {
  /** The client name. */
  readonly name: string;
  stats(): NatsBusStats;
  /** The connection: connected, reconnecting (since the server went away) or closed, and since when. */
  health(): BusHealth;
  /** Resolves once the server has seen everything published so far on core subjects. */
  flush(): Promise<void>;
}

interface JsSub {
  readonly durable: string;
  readonly stream: string;
  closed: boolean;
  messages?: ConsumerMessages;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Handlers of one JetStream subscription running at once, at most (the consumer pulls this many at a time). */
const MAX_IN_FLIGHT = 256;

/**
 * Bytes a JetStream publish adds to the payload in headers (`NATS/1.0`, `Nats-Msg-Id: <22-char nuid>`), rounded
 * up: the server's max_payload bounds headers and payload together.
 */
const JS_HEADER_ROOM = 128;

function apiCode(err: unknown): number | undefined {
  return err instanceof JetStreamApiError ? err.apiError().err_code : undefined;
}

/** True when a publish failed because no stream takes the subject or JetStream is not up (yet): worth recreating. */
function isStreamMissing(err: unknown): boolean {
  const code = apiCode(err);
  if (code === 10059 || code === 10039 || code === 10076) return true;
  const text = `${(err as Error)?.name ?? ''} ${(err as Error)?.message ?? String(err)}`;
  return /no responders|503|stream not found|jetstream (is )?not enabled/i.test(text);
}

/**
 * Connects to NATS and returns a Bus. Ensures stream PORTAL_TRANSFERS (subjects `portal.transfer.*.dispatch`
 * and `.report`, limits retention) and PORTAL_DEADLETTER (`portal.deadletter.>`). Publishing on a JetStream
 * subject resolves once the server stored the message (retried with the same message id while the server is
 * away, so retries are not stored twice); subscribing there binds a durable pull consumer — the queue group's
 * (shared by its members) or this client's — and acks each message after its handler resolves (nak on a
 * rejection: redelivered later), marking it in progress while the handler runs; handlers of one subscription run
 * concurrently (up to 256). A message that does not decode goes to `portal.deadletter.<subject>` with its
 * reason, is counted, and is never redelivered; one that reaches max_deliver is dead-lettered with
 * PORTAL_DELIVERY_EXHAUSTED. A message over the server's max_payload rejects at once with PORTAL_WIRE_TOO_LARGE
 * (a dispatch batch is split into batches under it first). After a reconnect, streams and consumers the server
 * lost (memory storage) are recreated. Rejects with PORTAL_CONFIG_INVALID for bad options and
 * PORTAL_BUS_UNAVAILABLE when the server cannot be reached or JetStream is off.
 */
export async function createNatsBus(opts: NatsBusOptions): Promise<NatsBus> {
  if (!opts || typeof opts !== 'object')
    throw new PortalError('PORTAL_CONFIG_INVALID', 'opts: expected an object');
  const name = opts.name ?? `portal-${process.pid}`;
  const log = (opts.logger ?? createSilentLogger()).child({ component: 'nats-bus', client: name });
  const codecs: CodecRegistry = createCodecRegistry({ limits: opts.limits });
  const publishTimeoutMs = opts.publishTimeoutMs ?? 60_000;
  const maxPending = opts.maxPendingPublishes ?? DEFAULT_MAX_PENDING_PUBLISHES;
  const maxPendingBytes = opts.maxPendingPublishBytes ?? DEFAULT_MAX_PENDING_PUBLISH_BYTES;
  for (const [key, v] of [
    ['maxPendingPublishes', maxPending],
    ['maxPendingPublishBytes', maxPendingBytes],
  ] as const)
    if (!Number.isSafeInteger(v) || v < 1)
      throw new PortalError(
        'PORTAL_CONFIG_INVALID',
        `opts.${key}: expected an integer ≥ 1, got ${String(v)}`,
      );
  const ackWaitMs = opts.ackWaitMs ?? 30_000;
  const onError = opts.onError ?? ((err: unknown, subject: string) => logHandlerError(log, err, subject));
  const scope = new AsyncResource('PortalNatsBus');

  const { nc, servers } = await connectNats(opts, name);
  const js: JetStreamClient = jetstream(nc);
  let jsm: JetStreamManager;
  /** Creates the streams that are missing: at start, and again after a server restart lost them (memory storage). */
  const ensureStreams = async (): Promise<void> => {
    await ensureStream(
      jsm,
      TRANSFERS_STREAM,
      ['portal.transfer.*.dispatch', 'portal.transfer.*.report'],
      opts.streams?.transfers,
      { maxAgeMs: 24 * 3600_000, maxBytes: 1024 ** 3 },
      log,
    );
    await ensureStream(
      jsm,
      DEAD_LETTER_STREAM,
      ['portal.deadletter.>'],
      opts.streams?.deadLetters,
      { maxAgeMs: 7 * 24 * 3600_000, maxBytes: 256 * 1024 ** 2 },
      log,
    );
    await ensureStream(
      jsm,
      COORD_STREAM,
      ['portal.peer.*.task', 'portal.coord.*.result', 'portal.coord.*.submit', 'portal.coord.*.outcome'],
      opts.streams?.coord,
      { maxAgeMs: 24 * 3600_000, maxBytes: 1024 ** 3 },
      log,
    );
  };
  try {
    jsm = await jetstreamManager(nc);
    await ensureStreams();
  } catch (cause) {
    await nc.close().catch(() => undefined);
    if (isPortalError(cause)) throw cause;
    throw new PortalError(
      'PORTAL_BUS_UNAVAILABLE',
      `JetStream is not available at ${servers.join(',')}: ${(cause as Error)?.message ?? String(cause)}`,
      { cause },
    );
  }

  const stats: NatsBusStats = {
    published: 0,
    delivered: 0,
    redelivered: 0,
    handlerErrors: 0,
    deadLettered: 0,
    deadLetteredByCode: {},
    publishRetries: 0,
    disconnects: 0,
    reconnects: 0,
    recoveries: 0,
    splitPublishes: 0,
    publishesPending: 0,
    publishBytesPending: 0,
    publishesDropped: 0,
    publishBytesDropped: 0,
  };
  /** Dropped publishes since the bound was last reached (one warning then; an info when publishes fit again). */
  let droppingSince: { at: number; dropped: number } | undefined;
  const coreSubs = new Set<NatsSubscription>();
  const jsSubs = new Set<JsSub>();
  const ownSlots = new Map<string, Set<number>>();
  let closed = false;
  let closing: Promise<void> | null = null;

  /**
   * After a reconnect: the server may have restarted without its streams and consumers (memory storage, or a lost
   * store). Recreate the streams, and have every subscription whose durable is gone bind again (its loop
   * recreates the consumer). Runs once at a time; a failure (JetStream not ready yet) is retried with backoff.
   */
  let recovering: Promise<void> | undefined;
  const recover = (): Promise<void> =>
    (recovering ??= (async () => {
      for (let attempt = 0; !closed; attempt++) {
        try {
          await ensureStreams();
          for (const sub of jsSubs) {
            const gone = await jsm.consumers.info(sub.stream, sub.durable).then(
              () => false,
              (err: unknown) => apiCode(err) === 10014 || apiCode(err) === 10059,
            );
            if (gone) {
              log.warn({ durable: sub.durable }, 'consumer lost by the server; binding again');
              sub.messages?.stop();
            }
          }
          stats.recoveries++;
          return;
        } catch (err) {
          log.warn({ err, attempt }, 'cannot recreate JetStream streams yet; retrying');
          await sleep(Math.min(2000, 100 * 2 ** Math.min(attempt, 5)));
        }
      }
    })().finally(() => {
      recovering = undefined;
    }));

  /** The connection's state and when it entered it (wall ms), for health probes. */
  let connection: { state: BusConnectionState; sinceMs: number } = {
    state: 'connected',
    sinceMs: Date.now(),
  };
  const enter = (state: BusConnectionState): void => {
    if (connection.state !== state && connection.state !== 'closed')
      connection = { state, sinceMs: Date.now() };
  };
  void nc.closed().then(() => enter('closed'));

  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') {
        enter('reconnecting');
        stats.disconnects++;
        log.warn({ server: (s as { server?: string }).server }, 'disconnected from NATS');
      } else if (s.type === 'reconnect') {
        enter('connected');
        stats.reconnects++;
        log.info({ server: (s as { server?: string }).server }, 'reconnected to NATS');
        void recover();
      }
    }
  })().catch(() => undefined);

  const deadLetterLog = createLogLimiter();
  /**
   * Puts a rejected message on the dead-letter subject. With `msgId` it goes through JetStream with that message
   * id, so that several members reporting the same message store it once (duplicate window).
   */
  const deadLetter = (subject: string, data: Uint8Array, err: unknown, msgId?: string): void => {
    const code = isPortalError(err) ? err.code : 'PORTAL_WIRE_MALFORMED';
    stats.deadLettered++;
    stats.deadLetteredByCode[code] = (stats.deadLetteredByCode[code] ?? 0) + 1;
    const d: DeadLetterEvent = {
      subject,
      code,
      reason: (err as Error)?.message ?? String(err),
      payload: data,
      payloadSize: data.length,
      rejectedBy: name,
      atMs: Date.now(),
    };
    // anyone who may publish can make these at will: at most 10 lines per 10 s, the rest counted
    const { ok, suppressed } = deadLetterLog.allow();
    if (ok)
      log.warn(
        { subject, code, reason: d.reason, bytes: data.length, suppressed },
        'message rejected to the dead-letter subject',
      );
    if (subject.startsWith('portal.deadletter.')) return; // never dead-letter a dead letter
    try {
      const bytes = codecs.encode(subjects.deadLetter(subject), d);
      if (msgId === undefined) nc.publish(subjects.deadLetter(subject), bytes);
      else
        js.publish(subjects.deadLetter(subject), bytes, { msgID: msgId }).catch((e: unknown) =>
          log.error({ err: e, subject }, 'cannot publish dead letter'),
        );
    } catch (e) {
      log.error({ err: e, subject }, 'cannot publish dead letter');
    }
    try {
      opts.onDeadLetter?.(d);
    } catch (e) {
      log.error({ err: e }, 'onDeadLetter failed');
    }
  };

  const decode = (subject: string, data: Uint8Array): { ok: true; msg: unknown } | { ok: false } => {
    try {
      return { ok: true, msg: codecs.decode(subject, data) };
    } catch (err) {
      deadLetter(subject, data, err);
      return { ok: false };
    }
  };

  const runHandler = (
    handler: (msg: unknown, subject: string) => void | Promise<void>,
    msg: unknown,
    subject: string,
  ): Promise<void> =>
    scope.runInAsyncScope(async () => {
      await handler(msg, subject);
    });

  /** The largest payload the server takes now (its max_payload, less the headers of a JetStream publish). */
  const payloadLimit = (jetstreamPublish: boolean): number =>
    (nc.info?.max_payload ?? 1024 * 1024) - (jetstreamPublish ? JS_HEADER_ROOM : 0);

  /**
   * Throws PORTAL_WIRE_TOO_LARGE naming the size and the limit when `size` is over the server's max_payload: the
   * server would refuse it (a JetStream publish was retried for the whole publish timeout, a core one threw an
   * untyped client error).
   */
  const checkSize = (subject: string, size: number, jetstreamPublish: boolean): void => {
    const limit = payloadLimit(jetstreamPublish);
    if (size > limit)
      throw new PortalError(
        'PORTAL_WIRE_TOO_LARGE',
        `${subject}: a message of ${size} bytes is over the NATS server's max_payload (${limit} bytes${jetstreamPublish ? ` after ${JS_HEADER_ROOM} bytes of JetStream headers` : ''})`,
      );
  };

  /**
   * Encodes a dispatch batch as one message, or as several batches of its items (halved until each fits under the
   * codec's and the server's limits): executors take each part on its own. A single item that does not fit throws
   * PORTAL_WIRE_TOO_LARGE.
   */
  const encodeDispatch = (
    subject: string,
    batch: DispatchBatch,
    codec: WireCodec<DispatchBatch>,
  ): Uint8Array[] => {
    const limit = Math.min(codec.maxBytes, payloadLimit(true));
    let data: Uint8Array | undefined;
    try {
      data = codec.encode(batch, subject);
    } catch (err) {
      if (!isPortalError(err, 'PORTAL_WIRE_TOO_LARGE') || batch.items.length < 2) throw err;
    }
    if (data && data.length <= limit) return [data];
    if (batch.items.length < 2) {
      checkSize(subject, data!.length, true);
      return [data!];
    }
    const half = Math.ceil(batch.items.length / 2);
    return [
      ...encodeDispatch(subject, { ...batch, items: batch.items.slice(0, half) }, codec),
      ...encodeDispatch(subject, { ...batch, items: batch.items.slice(half) }, codec),
    ];
  };

  /**
   * jsPublish within the bound on pending publishes: one that would take the pending ones past
   * maxPendingPublishes or maxPendingPublishBytes is dropped at once (PORTAL_BUS_UNAVAILABLE), counted, and warned
   * of once until publishes fit again.
   */
  const boundedJsPublish = async (subject: string, data: Uint8Array): Promise<void> => {
    if (
      stats.publishesPending + 1 > maxPending ||
      stats.publishBytesPending + data.length > maxPendingBytes
    ) {
      stats.publishesDropped++;
      stats.publishBytesDropped += data.length;
      if (droppingSince === undefined) {
        droppingSince = { at: Date.now(), dropped: 0 };
        log.warn(
          {
            subject,
            pending: stats.publishesPending,
            pendingBytes: stats.publishBytesPending,
            maxPendingPublishes: maxPending,
            maxPendingPublishBytes: maxPendingBytes,
          },
          'JetStream publishes waiting for NATS reached their bound: further ones are dropped (counted in portal_bus_publishes_dropped_total) until some are stored',
        );
      }
      droppingSince.dropped++;
      throw new PortalError(
        'PORTAL_BUS_UNAVAILABLE',
        `JetStream publish on ${subject} dropped: ${stats.publishesPending} publishes (${stats.publishBytesPending} bytes) already wait for NATS, the most allowed is ${maxPending} (${maxPendingBytes} bytes)`,
      );
    }
    if (droppingSince !== undefined) {
      log.info(
        { dropped: droppingSince.dropped, forMs: Date.now() - droppingSince.at },
        'JetStream publishes fit under their bound again',
      );
      droppingSince = undefined;
    }
    stats.publishesPending++;
    stats.publishBytesPending += data.length;
    try {
      await jsPublish(subject, data);
    } finally {
      stats.publishesPending--;
      stats.publishBytesPending -= data.length;
    }
  };

  const jsPublish = async (subject: string, data: Uint8Array): Promise<void> => {
    const msgID = nuid.next();
    const deadline = Date.now() + publishTimeoutMs;
    let delay = 50;
    for (;;) {
      try {
        await js.publish(subject, data, {
          msgID,
          timeout: Math.max(250, Math.min(5000, deadline - Date.now())),
        });
        return;
      } catch (cause) {
        if (closed)
          throw new PortalError('PORTAL_HOST_STOPPED', `bus closed: cannot publish to ${subject}`, { cause });
        if (Date.now() + delay >= deadline) {
          throw new PortalError(
            'PORTAL_BUS_UNAVAILABLE',
            `JetStream did not store the message on ${subject} within ${publishTimeoutMs} ms: ${(cause as Error)?.message ?? String(cause)}`,
            { cause },
          );
        }
        stats.publishRetries++;
        // No stream stores the subject any more (a server restart lost a memory stream): recreate it.
        if (isStreamMissing(cause)) void recover();
        await sleep(delay);
        delay = Math.min(delay * 2, 1000);
      }
    }
  };

  const ensureConsumer = async (
    stream: string,
    durable: string,
    filter: string,
    startMs: number,
    shared: boolean,
  ): Promise<void> => {
    for (let i = 0; ; i++) {
      try {
        await jsm.consumers.info(stream, durable);
        return;
      } catch (err) {
        if (apiCode(err) !== 10014) throw err;
      }
      try {
        await jsm.consumers.add(stream, {
          durable_name: durable,
          filter_subject: filter,
          ack_policy: AckPolicy.Explicit,
          // A little before subscribe() so a message published right after it is not missed; duplicates are harmless.
          deliver_policy: DeliverPolicy.StartTime,
          opt_start_time: new Date(startMs - 2000).toISOString(),
          ack_wait: nanos(ackWaitMs),
          max_deliver: opts.maxDeliver ?? 20,
          max_ack_pending: shared ? 4096 : 10_000,
          inactive_threshold: nanos(opts.consumerInactiveMs ?? 3600_000),
        });
        return;
      } catch (err) {
        if (i >= 3) throw err; // another member created it at the same time: look again
      }
    }
  };

  const handleJs = async (
    m: JsMsg,
    handler: (msg: unknown, subject: string) => void | Promise<void>,
  ): Promise<void> => {
    if (m.info.deliveryCount > 1) stats.redelivered++;
    const r = decode(m.subject, m.data);
    if (!r.ok) {
      m.term();
      return;
    } // no reason text: servers before 2.10 ignore '+TERM <reason>'
    stats.delivered++;
    working.add(m);
    startHeartbeat();
    try {
      await runHandler(handler, r.msg, m.subject);
      m.ack();
    } catch (err) {
      stats.handlerErrors++;
      onError(err, m.subject);
      m.nak(Math.min(5000, 250 * m.info.deliveryCount));
    } finally {
      working.delete(m);
    }
  };

  /**
   * Messages whose handler is still running. Every ackWait/3 each gets a `+WPI` (JsMsg.working()), which restarts
   * its ack wait: a handler that takes longer than ackWaitMs (a report waiting for its actor's turn) is not
   * redelivered to another member meanwhile (NATS docs, "Acknowledgement models": in-progress).
   */
  const working = new Set<JsMsg>();
  let heartbeat: ReturnType<typeof setInterval> | undefined;
  const startHeartbeat = (): void => {
    if (heartbeat) return;
    heartbeat = setInterval(
      () => {
        if (working.size === 0 || closed) {
          clearInterval(heartbeat);
          heartbeat = undefined;
          return;
        }
        for (const m of working) m.working();
      },
      Math.max(250, ackWaitMs / 3),
    );
    heartbeat.unref();
  };

  const subscribeJs = (
    subject: string,
    handler: (msg: unknown, subject: string) => void | Promise<void>,
    queue: string | undefined,
  ): Subscription => {
    // A queue group shares one durable; each other subscription of this client to the subject has its own,
    // numbered in subscription order so a restarted process binds the same ones again.
    let slot = 0;
    if (queue === undefined) {
      const used = ownSlots.get(subject) ?? new Set<number>();
      ownSlots.set(subject, used);
      while (used.has(slot)) slot++;
      used.add(slot);
    }
    const durable = durableName(queue ?? (slot === 0 ? name : `${name}_${slot}`), subject);
    const stream = jetStreamOf(subject) ?? TRANSFERS_STREAM;
    const state: JsSub = { durable, stream, closed: false };
    jsSubs.add(state);
    const startMs = Date.now();
    let markReady!: () => void;
    let markFailed!: (err: unknown) => void;
    const ready = new Promise<void>((res, rej) => {
      markReady = res;
      markFailed = rej;
    });
    ready.catch(() => undefined);
    const loop = async (): Promise<void> => {
      let attempt = 0;
      while (!state.closed && !closed) {
        try {
          if (attempt > 0) await ensureStreams(); // the server may have lost the stream with the consumer
          await ensureConsumer(stream, durable, subject, startMs, queue !== undefined);
          const consumer = await js.consumers.get(stream, durable);
          // Ends (instead of pulling forever from nothing) when the server lost the stream or the consumer: this
          // loop then recreates them. See nats.js ConsumeOptions.abort_on_missing_resource.
          const messages = await consumer.consume({ max_messages: 256, abort_on_missing_resource: true });
          state.messages = messages;
          void (async () => {
            for await (const st of messages.status())
              if (st.type === 'consumer_deleted' || st.type === 'consumer_not_found') messages.stop();
          })().catch(() => undefined);
          if (state.closed) {
            messages.stop();
            return;
          }
          markReady();
          attempt = 0;
          // Handlers run concurrently, up to MAX_IN_FLIGHT per subscription, as on the in-process bus: a handler
          // that waits (a report acked only once its actor applied it) does not hold back the messages behind it.
          const inFlight = new Set<Promise<void>>();
          for await (const m of messages) {
            if (state.closed) break;
            const p = handleJs(m, handler).finally(() => inFlight.delete(p));
            inFlight.add(p);
            if (inFlight.size >= MAX_IN_FLIGHT) await Promise.race(inFlight);
          }
          if (state.closed || closed) return;
          log.warn({ subject, durable }, 'consumer stopped; binding again');
        } catch (err) {
          if (state.closed || closed) return;
          attempt++;
          log.warn({ err, subject, durable, attempt }, 'cannot bind JetStream consumer; retrying');
          if (attempt === 20)
            markFailed(
              new PortalError('PORTAL_BUS_UNAVAILABLE', `cannot bind consumer ${durable} for ${subject}`, {
                cause: err,
              }),
            );
        }
        await sleep(Math.min(2000, 100 * 2 ** Math.min(attempt, 5)));
      }
    };
    scope.runInAsyncScope(() => {
      void loop();
    });
    return {
      subject,
      ready,
      unsubscribe() {
        if (state.closed) return;
        state.closed = true;
        jsSubs.delete(state);
        state.messages?.stop();
        if (queue === undefined) {
          ownSlots.get(subject)?.delete(slot);
          // Nobody else reads this client's durable: remove it (a closed bus keeps it, so a restart resumes).
          if (!closed)
            jsm.consumers
              .delete(stream, durable)
              .catch((err: unknown) => log.debug({ err, durable }, 'cannot delete consumer'));
        }
      },
    };
  };

  /**
   * Resolves once the server has seen what this client sent so far (a PING answered). A flush pending when the
   * connection drops is rejected by nats.js ("connection disconnected"), yet the subscription is sent again on
   * reconnect: so it flushes again until one succeeds, and rejects only when the bus closes. (A bare nc.flush()
   * as a subscription's `ready`, awaited by nobody, was an unhandled rejection that ended `portal serve` when
   * a transfer started while NATS was away.)
   */
  const flushed = async (subject: string): Promise<void> => {
    for (;;) {
      try {
        await nc.flush();
        return;
      } catch (cause) {
        if (closed || nc.isClosed())
          throw new PortalError('PORTAL_HOST_STOPPED', `bus closed: ${subject} not subscribed`, { cause });
        await sleep(250);
      }
    }
  };

  const subscribeCore = (
    subject: string,
    handler: (msg: unknown, subject: string) => void | Promise<void>,
    queue: string | undefined,
  ): Subscription => {
    const sub = nc.subscribe(subject, {
      queue,
      callback: (err, m: Msg) => {
        if (err) {
          log.error({ err, subject }, 'subscription failed');
          return;
        }
        const r = decode(m.subject, m.data);
        if (!r.ok) return;
        stats.delivered++;
        const fail = (e: unknown): void => {
          stats.handlerErrors++;
          onError(e, m.subject);
        };
        try {
          // Sync handlers run without a promise per message (the hot telemetry path).
          const res = scope.runInAsyncScope(handler, null, r.msg, m.subject);
          if (res && typeof res.then === 'function') res.then(undefined, fail);
        } catch (e) {
          fail(e);
        }
      },
    });
    coreSubs.add(sub);
    const ready = flushed(subject);
    ready.catch(() => undefined);
    return {
      subject,
      ready,
      unsubscribe() {
        coreSubs.delete(sub);
        if (!sub.isClosed()) sub.unsubscribe();
      },
    };
  };

  /**
   * A message that reached max_deliver is dropped by the server, which says so in a MAX_DELIVERIES advisory
   * (NATS docs, "Monitoring JetStream": advisories). For the consumers of this client, the message is read back
   * by its stream sequence and dead-lettered with PORTAL_DELIVERY_EXHAUSTED, instead of vanishing.
   */
  const advisories = nc.subscribe('$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.*.*', {
    callback: (err, m) => {
      if (err || closed) return;
      let adv: { stream?: string; consumer?: string; stream_seq?: number; deliveries?: number };
      try {
        adv = m.json();
      } catch {
        return;
      }
      const { stream, consumer, stream_seq: seq } = adv;
      if (
        typeof seq !== 'number' ||
        typeof stream !== 'string' ||
        ![...jsSubs].some((sub) => sub.stream === stream && sub.durable === consumer)
      )
        return;
      jsm.streams
        .getMessage(stream, { seq })
        .then((stored) => {
          if (!stored) return;
          deadLetter(
            stored.subject,
            stored.data,
            new PortalError(
              'PORTAL_DELIVERY_EXHAUSTED',
              `${stored.subject}: not handled after ${adv.deliveries ?? '?'} deliveries to consumer ${consumer} (max_deliver); the server dropped it`,
            ),
            `maxdeliver-${stream}-${seq}`,
          );
        })
        .catch((e: unknown) =>
          log.error({ err: e, seq, stream, consumer }, 'cannot read back a message past max_deliver'),
        );
    },
  });
  coreSubs.add(advisories);

  return {
    name,
    async publish<T>(subject: string, msg: T): Promise<void> {
      if (closed) throw new PortalError('PORTAL_HOST_STOPPED', `bus closed: cannot publish to ${subject}`);
      const codec = codecs.forSubject(subject);
      if (!codec)
        throw new PortalError(
          'PORTAL_WIRE_UNKNOWN_SUBJECT',
          `no Portal message travels on subject ${JSON.stringify(subject)}`,
        );
      if (codec.kind === 'dispatch') {
        const parts = encodeDispatch(subject, msg as DispatchBatch, codec as WireCodec<DispatchBatch>);
        if (parts.length > 1) stats.splitPublishes++;
        for (const data of parts) await boundedJsPublish(subject, data);
        stats.published += parts.length;
        return;
      }
      const data = codec.encode(msg, subject);
      checkSize(subject, data.length, codec.jetstream);
      if (codec.jetstream) await boundedJsPublish(subject, data);
      else nc.publish(subject, data);
      stats.published++;
    },
    subscribe<T>(
      subject: string,
      handler: (msg: T, subject: string) => void | Promise<void>,
      o: { queue?: string } = {},
    ): Subscription {
      if (closed) throw new PortalError('PORTAL_HOST_STOPPED', `bus closed: cannot subscribe to ${subject}`);
      if (typeof subject !== 'string' || subject === '')
        throw new PortalError('PORTAL_INVALID_ARGUMENT', 'subject: expected a non-empty string');
      const h = handler as (msg: unknown, subject: string) => void | Promise<void>;
      return isJetStreamPattern(subject)
        ? subscribeJs(subject, h, o.queue)
        : subscribeCore(subject, h, o.queue);
    },
    stats: () => ({ ...stats, deadLetteredByCode: { ...stats.deadLetteredByCode } }),
    health: () => ({
      kind: 'nats',
      ...connection,
      disconnects: stats.disconnects,
      reconnects: stats.reconnects,
    }),
    flush: () => nc.flush(),
    close() {
      if (closing) return closing;
      closed = true;
      enter('closed');
      closing = (async () => {
        for (const s of jsSubs) {
          s.closed = true;
          s.messages?.stop();
        }
        jsSubs.clear();
        coreSubs.clear();
        if (!nc.isClosed()) {
          try {
            await nc.drain();
          } catch (err) {
            log.debug({ err }, 'drain failed; closing');
            await nc.close().catch(() => undefined);
          }
        }
      })();
      return closing;
    },
  };
}

async function ensureStream(
  jsm: JetStreamManager,
  stream: string,
  subs: string[],
  o: NatsStreamOptions | false | undefined,
  d: { maxAgeMs: number; maxBytes: number },
  log: Logger,
): Promise<void> {
  if (o === false) return;
  try {
    const info = await jsm.streams.info(stream);
    const missing = subs.filter((s) => !info.config.subjects?.includes(s));
    if (missing.length) log.warn({ stream, missing }, 'existing stream does not capture all Portal subjects');
    return;
  } catch (err) {
    if (apiCode(err) !== 10059) throw err;
  }
  try {
    await jsm.streams.add({
      name: stream,
      subjects: subs,
      retention: RetentionPolicy.Limits,
      storage: o?.storage === 'memory' ? StorageType.Memory : StorageType.File,
      max_age: nanos(o?.maxAgeMs ?? d.maxAgeMs),
      max_bytes: o?.maxBytes ?? d.maxBytes,
      discard: DiscardPolicy.Old,
      num_replicas: o?.replicas ?? 1,
      duplicate_window: nanos(120_000),
    });
  } catch (err) {
    // JetStream refuses a stream whose subjects another stream already takes (10065): name that stream, since
    // Portal owns its stream layout and nothing else may take portal.* subjects (an old deploy made PORTAL on portal.>)
    if (apiCode(err) === 10065) {
      const other = await jsm.streams.find(subs[0]).catch(() => undefined);
      throw new PortalError(
        'PORTAL_CONFIG_INVALID',
        `NATS stream ${stream} (${subs.join(', ')}) cannot be created: its subjects overlap stream ${other ?? '(unknown)'}; Portal creates and owns the streams ${TRANSFERS_STREAM}, ${DEAD_LETTER_STREAM}, ${COORD_STREAM} and PORTAL_STREAM, delete the other one`,
        { cause: err },
      );
    }
    // Another client created it meanwhile.
    await jsm.streams.info(stream).catch(() => {
      throw err;
    });
  }
}
