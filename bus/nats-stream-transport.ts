import { headers, nanos } from '@nats-io/transport-node';
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
import { PortalError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import type { PushTicket } from '../stream/buffer.js';
import { StreamError } from '../stream/errors.js';
import type { StreamProcessor, StreamSink } from '../stream/processor.js';
import { isStreamId, streamSubjects } from '../stream/subjects.js';
import { STREAM_STREAM } from './nats-bus-names.js';
import { connectNats, type NatsConnectOptions } from './nats-connect.js';

/** Options of createNatsStreamTransport: where NATS is and how to log in (as for the bus), then the transport's own. */
export interface NatsStreamTransportOptions extends NatsConnectOptions {
  name?: string;
  logger?: Logger;
  /** Retention of PORTAL_STREAM when this creates it (default file storage, 1 h, 1 GiB). */
  storage?: 'file' | 'memory';
  maxAgeMs?: number;
  maxBytes?: number;
  /** A message pulled but not acked within this time is redelivered (default 60 s). */
  ackWaitMs?: number;
}

/** Counters of one JetStream source. */
export interface NatsSourceStats {
  /** Pull requests sent. */
  pulls: number;
  /** Pull requests sent while the buffer was paused (must stay 0). */
  pullsWhilePaused: number;
  messages: number;
  records: number;
  acked: number;
  naked: number;
  /** Messages whose bytes were not whole records (terminated, reported on `.failed`). */
  malformed: number;
  /** Deliveries that were not the first (at-least-once at work). */
  redelivered: number;
  /** Redeliveries of a message still being processed here (ignored: its first delivery will be acked). */
  duplicatesIgnored: number;
  /** Times the loop waited for the buffer to resume. */
  pausedWaits: number;
}

/** A JetStream pull consumer feeding one processor. */
export interface NatsStreamSource {
  readonly durable: string;
  stats(): NatsSourceStats;
  /** Stops pulling (messages in the buffer are still processed and acked). */
  stop(): Promise<void>;
}

/** Options of NatsStreamTransport.attach. */
export interface AttachOptions {
  /** Durable consumer name (default `stream_<id>`); members of a group share it. */
  durable?: string;
  /** Messages one pull asks for at most (default 64); fewer when the buffer nears its pause threshold. */
  maxMessagesPerPull?: number;
  /** Where to start when the consumer is new (default: every stored message). */
  deliver?: 'all' | 'new';
}

/**
 * NATS for stream processors: JetStream stream PORTAL_STREAM over `portal.stream.>`, raw bytes on
 * the wire (each message = whole fixed-layout records, many per message). `attach` binds a durable
 * pull consumer to a processor and pulls only while its buffer is below the pause threshold, each pull
 * sized to the room left; every message is acked once all its records have an outcome (output or
 * failure stored) and nak'ed when one could not be delivered. `sink` publishes outputs and failures
 * through JetStream (resolving once stored). Connects with the bus's credentials and TLS options. Rejects
 * with PORTAL_BUS_UNAVAILABLE when NATS or JetStream cannot be reached, or the server refuses the login.
 */
export interface NatsStreamTransport {
  /** Largest message the server takes, bytes. */
  readonly maxPayload: number;
  attach(streamId: string, processor: StreamProcessor, opts?: AttachOptions): Promise<NatsStreamSource>;
  /** Outputs on `output(streamId)`, failures on `failed(streamId)`, split on record borders (`recordBytes` of each) under the payload limit. */
  sink(streamId: string, recordBytes?: { output: number; input: number }): StreamSink;
  /** Publishes one message of records on `input(streamId)` (a producer's call); resolves once stored. */
  publishRecords(streamId: string, records: Uint8Array, msgId?: string): Promise<void>;
  /** Core subscription to a subject (tests, benchmarks, consumers of outputs). */
  subscribe(
    subject: string,
    handler: (data: Uint8Array, subject: string, error: string | undefined) => void,
  ): { unsubscribe(): void };
  /** Messages pending for `durable` on the server (not yet delivered) and delivered but unacked. */
  consumerInfo(durable: string): Promise<{ pending: number; ackPending: number }>;
  /** Removes a durable consumer (tests). */
  deleteConsumer(durable: string): Promise<void>;
  close(): Promise<void>;
}

function apiCode(err: unknown): number | undefined {
  return err instanceof JetStreamApiError ? err.apiError().err_code : undefined;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Connects and ensures stream PORTAL_STREAM. */
export async function createNatsStreamTransport(
  opts: NatsStreamTransportOptions,
): Promise<NatsStreamTransport> {
  const log = opts.logger;
  const { nc, servers } = await connectNats(opts, opts.name ?? `portal-stream-${process.pid}`);
  const js: JetStreamClient = jetstream(nc);
  let jsm: JetStreamManager;
  try {
    jsm = await jetstreamManager(nc);
    try {
      await jsm.streams.info(STREAM_STREAM);
    } catch (err) {
      if (apiCode(err) !== 10059) throw err;
      await jsm.streams
        .add({
          name: STREAM_STREAM,
          subjects: [streamSubjects.all],
          retention: RetentionPolicy.Limits,
          storage: opts.storage === 'memory' ? StorageType.Memory : StorageType.File,
          max_age: nanos(opts.maxAgeMs ?? 3600_000),
          max_bytes: opts.maxBytes ?? 1024 ** 3,
          discard: DiscardPolicy.Old,
          duplicate_window: nanos(120_000),
        })
        .catch(async (e: unknown) => {
          await jsm.streams.info(STREAM_STREAM).catch(() => {
            throw e;
          });
        });
    }
  } catch (cause) {
    await nc.close().catch(() => undefined);
    throw new PortalError(
      'PORTAL_BUS_UNAVAILABLE',
      `JetStream is not available at ${servers.join(',')}: ${(cause as Error)?.message ?? String(cause)}`,
      { cause },
    );
  }
  const maxPayload = nc.info?.max_payload ?? 1024 * 1024;
  const sources = new Set<{ stop(): Promise<void> }>();
  const ackWaitMs = opts.ackWaitMs ?? 60_000;

  const publishSplit = async (
    subject: string,
    bytes: Uint8Array,
    recordBytes: number,
    error?: StreamError,
  ): Promise<void> => {
    const h = error ? headers() : undefined;
    if (h && error) {
      h.set('Portal-Error-Code', error.code);
      h.set('Portal-Error', error.message.slice(0, 512).replace(/[\r\n]/g, ' '));
    }
    const per = Math.max(recordBytes, Math.floor((maxPayload - 1024) / recordBytes) * recordBytes);
    if (bytes.byteLength === 0) return;
    const parts: Promise<unknown>[] = [];
    for (let off = 0; off < bytes.byteLength; off += per)
      parts.push(
        js.publish(
          subject,
          bytes.subarray(off, Math.min(bytes.byteLength, off + per)),
          h ? { headers: h } : undefined,
        ),
      );
    await Promise.all(parts);
  };

  return {
    maxPayload,
    async attach(streamId, processor, o = {}) {
      if (!isStreamId(streamId))
        throw new PortalError(
          'PORTAL_INVALID_ARGUMENT',
          `streamId: expected one NATS token of [A-Za-z0-9_-], got ${JSON.stringify(streamId)}`,
        );
      const durable = o.durable ?? `stream_${streamId}`;
      const maxPerPull = Math.max(1, o.maxMessagesPerPull ?? 64);
      const buffer = processor.buffer;
      const rb = processor.executor.kernel.input.recordBytes;
      try {
        await jsm.consumers.info(STREAM_STREAM, durable);
      } catch (err) {
        if (apiCode(err) !== 10014) throw err;
        await jsm.consumers.add(STREAM_STREAM, {
          durable_name: durable,
          filter_subject: streamSubjects.input(streamId),
          ack_policy: AckPolicy.Explicit,
          deliver_policy: o.deliver === 'new' ? DeliverPolicy.New : DeliverPolicy.All,
          ack_wait: nanos(ackWaitMs),
          max_deliver: 20,
          max_ack_pending: 100_000,
        });
      }
      const consumer = await js.consumers.get(STREAM_STREAM, durable);
      const st: NatsSourceStats = {
        pulls: 0,
        pullsWhilePaused: 0,
        messages: 0,
        records: 0,
        acked: 0,
        naked: 0,
        malformed: 0,
        redelivered: 0,
        duplicatesIgnored: 0,
        pausedWaits: 0,
      };
      const inProcess = new Set<number>();
      let avgRecords = 0;
      let stopped = false;
      let current: ConsumerMessages | undefined;
      let wakeStop: () => void = () => undefined;
      const stopSignal = new Promise<void>((r) => {
        wakeStop = r;
      });

      const handle = async (m: JsMsg): Promise<void> => {
        st.messages++;
        const seq = m.seq;
        if (m.info.deliveryCount > 1) {
          st.redelivered++;
          if (inProcess.has(seq)) {
            st.duplicatesIgnored++;
            return;
          }
        }
        // m.data is a view into the client's read buffer (a Node Buffer: .slice() would not copy): keep a copy while buffered
        const data = new Uint8Array(m.data);
        if (data.byteLength % rb !== 0 || data.byteLength === 0) {
          st.malformed++;
          const e = new StreamError(
            'PORTAL_STREAM_BAD_RECORDS',
            `message ${seq} on ${m.subject}: ${data.byteLength} bytes are not whole records of ${rb} bytes`,
          );
          log?.warn(
            { seq, bytes: data.byteLength },
            'stream: message is not whole records; terminated and reported',
          );
          try {
            await publishSplit(streamSubjects.failed(streamId), data, 1, e);
            m.term();
          } catch {
            m.nak(1000);
          }
          return;
        }
        const n = data.byteLength / rb;
        st.records += n;
        avgRecords = avgRecords === 0 ? n : avgRecords * 0.9 + n * 0.1;
        inProcess.add(seq);
        const ticket: PushTicket = {
          remaining: n,
          onSettled: () => {
            inProcess.delete(seq);
            if (ticket.lost) {
              st.naked++;
              m.nak(1000);
            } else {
              st.acked++;
              m.ack();
            }
          },
        };
        try {
          await processor.push(data, ticket);
        } catch (err) {
          inProcess.delete(seq);
          st.naked++;
          m.nak(1000);
          if (!stopped) log?.error({ err, seq }, 'stream: cannot buffer a message; nak (redelivered later)');
        }
      };

      const loop = async (): Promise<void> => {
        let failures = 0;
        while (!stopped) {
          if (buffer.paused) {
            st.pausedWaits++;
            await Promise.race([buffer.whenResumed(), stopSignal]);
            continue;
          }
          const room = buffer.roomBeforePause;
          const max = Math.max(1, Math.min(maxPerPull, Math.floor(room / Math.max(1, avgRecords || 1))));
          try {
            st.pulls++;
            if (buffer.paused) st.pullsWhilePaused++;
            const it = await consumer.fetch({ max_messages: max, expires: 1000 });
            current = it;
            for await (const m of it) {
              await handle(m);
              if (stopped) {
                it.stop();
                break;
              }
            }
            current = undefined;
            failures = 0;
          } catch (err) {
            if (stopped) return;
            failures++;
            log?.warn({ err, durable, failures }, 'stream: pull failed; retrying');
            await Promise.race([sleep(Math.min(2000, 100 * 2 ** Math.min(failures, 4))), stopSignal]);
          }
        }
      };
      const running = loop();
      const src = {
        async stop() {
          if (stopped) return;
          stopped = true;
          wakeStop();
          current?.stop();
          await running;
          sources.delete(src);
        },
      };
      sources.add(src);
      return { durable, stats: () => ({ ...st }), stop: src.stop };
    },
    sink(streamId, rb = { output: 4, input: 4 }) {
      return {
        output: (bytes) => publishSplit(streamSubjects.output(streamId), bytes, rb.output),
        failed: (bytes, _count, error) =>
          publishSplit(streamSubjects.failed(streamId), bytes, rb.input, error),
      };
    },
    async publishRecords(streamId, records, msgId) {
      await js.publish(streamSubjects.input(streamId), records, msgId ? { msgID: msgId } : undefined);
    },
    subscribe(subject, handler) {
      const sub = nc.subscribe(subject, {
        callback: (err, m) => {
          if (err) {
            log?.error({ err, subject }, 'stream: subscription failed');
            return;
          }
          // a throwing handler must not reach the client: nats.js closes its reader on it
          try {
            handler(m.data, m.subject, m.headers?.get('Portal-Error-Code') || undefined);
          } catch (e) {
            log?.error({ err: e, subject }, 'stream: subscriber handler threw');
          }
        },
      });
      return { unsubscribe: () => sub.unsubscribe() };
    },
    async consumerInfo(durable) {
      const i = await jsm.consumers.info(STREAM_STREAM, durable);
      return { pending: i.num_pending, ackPending: i.num_ack_pending };
    },
    async deleteConsumer(durable) {
      await jsm.consumers.delete(STREAM_STREAM, durable).catch(() => undefined);
    },
    async close() {
      await Promise.all([...sources].map((s) => s.stop()));
      if (!nc.isClosed()) await nc.drain().catch(() => nc.close());
    },
  };
}
