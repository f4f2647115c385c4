import { headers as natsHeaders, nanos } from '@nats-io/transport-node';
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
import { connectNats, type NatsConnectOptions } from './nats-connect.js';
import type {
  PausablePullClient,
  PullConsumer,
  PullConsumerOptions,
  PullConsumerStats,
  PullGate,
  PulledMessage,
} from './types.js';

/** Options of createJetStreamPullClient: where NATS is and how to log in (as for the bus), the stream to keep. */
export interface JetStreamPullClientOptions extends NatsConnectOptions {
  /** Connection name the server shows (default `portal-pull-<pid>`). */
  name?: string;
  logger?: Logger;
  /** The JetStream stream this client publishes into and pulls from; created with these limits when absent. */
  stream: {
    name: string;
    /** Subjects the stream captures (NATS wildcards allowed). */
    subjects: string[];
    /** Default file storage. */
    storage?: 'file' | 'memory';
    /** Messages older than this are dropped, ms (default 1 h). */
    maxAgeMs?: number;
    /** The stream drops its oldest messages above this size, bytes (default 1 GiB). */
    maxBytes?: number;
    /** Window within which a repeated message id is stored once, ms (default 120 s). */
    duplicateWindowMs?: number;
  };
  /** A message pulled but not acked within this time is redelivered, ms (default 60 s). */
  ackWaitMs?: number;
}

/** JetStream API error codes (nats-server `server/errors.json`): stream not found, consumer not found. */
const STREAM_NOT_FOUND = 10059;
const CONSUMER_NOT_FOUND = 10014;

function apiCode(err: unknown): number | undefined {
  return err instanceof JetStreamApiError ? err.apiError().err_code : undefined;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** True when a request failed because the stream or consumer is gone, or no JetStream answered (a restart). */
function isMissing(err: unknown): boolean {
  const code = apiCode(err);
  if (code === STREAM_NOT_FOUND || code === CONSUMER_NOT_FOUND) return true;
  const text = `${(err as Error)?.name ?? ''} ${(err as Error)?.message ?? String(err)}`;
  return /no responders|503|stream not found|consumer not found|jetstream (is )?not enabled/i.test(text);
}

/**
 * Connects to NATS and ensures the JetStream stream `opts.stream` (created with its limits, or taken as
 * it is when it exists), returning a PausablePullClient over it. Rejects with PORTAL_BUS_UNAVAILABLE when
 * NATS or JetStream cannot be reached, or the server refuses the login.
 */
export async function createJetStreamPullClient(
  opts: JetStreamPullClientOptions,
): Promise<PausablePullClient> {
  const log = opts.logger;
  const streamName = opts.stream.name;
  const { nc, servers } = await connectNats(opts, opts.name ?? `portal-pull-${process.pid}`);
  const js: JetStreamClient = jetstream(nc);
  let jsm: JetStreamManager;
  /** Creates the stream when it is missing: at start, and again when a server restart lost it (memory storage). */
  const ensureStream = async (): Promise<void> => {
    try {
      await jsm.streams.info(streamName);
    } catch (err) {
      if (apiCode(err) !== STREAM_NOT_FOUND) throw err;
      await jsm.streams
        .add({
          name: streamName,
          subjects: opts.stream.subjects,
          retention: RetentionPolicy.Limits,
          storage: opts.stream.storage === 'memory' ? StorageType.Memory : StorageType.File,
          max_age: nanos(opts.stream.maxAgeMs ?? 3600_000),
          max_bytes: opts.stream.maxBytes ?? 1024 ** 3,
          discard: DiscardPolicy.Old,
          duplicate_window: nanos(opts.stream.duplicateWindowMs ?? 120_000),
        })
        .catch(async (e: unknown) => {
          // another member created it meanwhile: fine when it now exists
          await jsm.streams.info(streamName).catch(() => {
            throw e;
          });
        });
    }
  };
  try {
    jsm = await jetstreamManager(nc);
    await ensureStream();
  } catch (cause) {
    await nc.close().catch(() => undefined);
    throw new PortalError(
      'PORTAL_BUS_UNAVAILABLE',
      `JetStream is not available at ${servers.join(',')}: ${(cause as Error)?.message ?? String(cause)}`,
      { cause },
    );
  }
  const maxPayload = nc.info?.max_payload ?? 1024 * 1024;
  const ackWaitMs = opts.ackWaitMs ?? 60_000;
  const consumers = new Set<{ stop(): Promise<void> }>();

  return {
    maxPayload,
    async pull(o: PullConsumerOptions, gate: PullGate, handler): Promise<PullConsumer> {
      const durable = o.durable;
      const maxPerPull = Math.max(1, o.maxMessagesPerPull ?? 64);
      const ensureConsumer = async (): Promise<void> => {
        try {
          await jsm.consumers.info(streamName, durable);
        } catch (err) {
          if (apiCode(err) !== CONSUMER_NOT_FOUND) throw err;
          await jsm.consumers.add(streamName, {
            durable_name: durable,
            filter_subject: o.filterSubject,
            ack_policy: AckPolicy.Explicit,
            deliver_policy: o.deliver === 'new' ? DeliverPolicy.New : DeliverPolicy.All,
            ack_wait: nanos(ackWaitMs),
            max_deliver: o.maxDeliver ?? 20,
            max_ack_pending: 100_000,
          });
        }
      };
      await ensureConsumer();
      let consumer = await js.consumers.get(streamName, durable);
      const st: PullConsumerStats = {
        pulls: 0,
        pullsWhilePaused: 0,
        messages: 0,
        acked: 0,
        naked: 0,
        terminated: 0,
        redelivered: 0,
        duplicatesIgnored: 0,
        pausedWaits: 0,
      };
      // stream sequences delivered here and not yet acked, nak'ed or terminated
      const inProcess = new Set<number>();
      // EMA (weight 0.1) of the gate units one message carries, to size pulls to the room left
      let avgUnits = 0;
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
        inProcess.add(seq);
        let settled = false;
        const settle = (): boolean => {
          if (settled) return false;
          settled = true;
          inProcess.delete(seq);
          return true;
        };
        const msg: PulledMessage = {
          subject: m.subject,
          seq,
          deliveryCount: m.info.deliveryCount,
          // m.data is a view into the client's read buffer (a Node Buffer: .slice() would not copy): copy it
          data: new Uint8Array(m.data),
          ack() {
            if (!settle()) return;
            st.acked++;
            m.ack();
          },
          nak(delayMs) {
            if (!settle()) return;
            st.naked++;
            m.nak(delayMs);
          },
          term() {
            if (!settle()) return;
            st.terminated++;
            m.term();
          },
        };
        try {
          const units = await handler(msg);
          if (typeof units === 'number' && units > 0)
            avgUnits = avgUnits === 0 ? units : avgUnits * 0.9 + units * 0.1;
        } catch (err) {
          msg.nak(1000);
          if (!stopped)
            log?.error({ err, seq, durable }, 'pull consumer: handler failed; nak (redelivered later)');
        }
      };

      const loop = async (): Promise<void> => {
        let failures = 0;
        while (!stopped) {
          if (gate.paused) {
            st.pausedWaits++;
            await Promise.race([gate.whenResumed(), stopSignal]);
            continue;
          }
          const room = gate.roomBeforePause;
          const max = Math.max(1, Math.min(maxPerPull, Math.floor(room / Math.max(1, avgUnits || 1))));
          try {
            st.pulls++;
            if (gate.paused) st.pullsWhilePaused++;
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
            log?.warn({ err, durable, failures }, 'pull consumer: pull failed; retrying');
            // The server may have restarted without the stream or the consumer (memory storage): recreate them
            //. The new consumer starts per `o.deliver` in the recreated stream.
            if (isMissing(err))
              await ensureStream()
                .then(ensureConsumer)
                .then(async () => {
                  consumer = await js.consumers.get(streamName, durable);
                  log?.warn({ durable }, 'pull consumer: stream or consumer lost by the server; recreated');
                })
                .catch((e: unknown) => log?.debug({ err: e, durable }, 'pull consumer: cannot recreate yet'));
            // exponential backoff 200 ms … 1.6 s, capped at 2 s
            await Promise.race([sleep(Math.min(2000, 100 * 2 ** Math.min(failures, 4))), stopSignal]);
          }
        }
      };
      const running = loop();
      const c = {
        async stop() {
          if (stopped) return;
          stopped = true;
          wakeStop();
          current?.stop();
          await running;
          consumers.delete(c);
        },
      };
      consumers.add(c);
      return { durable, stats: () => ({ ...st }), stop: () => c.stop() };
    },
    async publish(subject, data, po = {}) {
      const h = po.headers ? natsHeaders() : undefined;
      if (h && po.headers) for (const [k, v] of Object.entries(po.headers)) h.set(k, v);
      const limit = (nc.info?.max_payload ?? maxPayload) - 1024;
      if (data.byteLength > limit)
        throw new PortalError(
          'PORTAL_WIRE_TOO_LARGE',
          `${subject}: a message of ${data.byteLength} bytes is over the NATS server's max_payload (${limit} bytes after 1024 bytes for headers)`,
        );
      const send = () =>
        js.publish(subject, data, {
          ...(po.msgId ? { msgID: po.msgId } : {}),
          ...(h ? { headers: h } : {}),
        });
      try {
        await send();
      } catch (err) {
        if (!isMissing(err)) throw err;
        await ensureStream(); // lost in a server restart (memory storage): recreate it and send once more
        await send();
      }
    },
    subscribe(subject, handler) {
      const sub = nc.subscribe(subject, {
        callback: (err, m) => {
          if (err) {
            log?.error({ err, subject }, 'pull client: subscription failed');
            return;
          }
          // a throwing handler must not reach the client: nats.js closes its reader on it
          try {
            handler(m.data, m.subject, (name) => m.headers?.get(name) || undefined);
          } catch (e) {
            log?.error({ err: e, subject }, 'pull client: subscriber handler threw');
          }
        },
      });
      return { unsubscribe: () => sub.unsubscribe() };
    },
    async consumerInfo(durable) {
      const i = await jsm.consumers.info(streamName, durable);
      return { pending: i.num_pending, ackPending: i.num_ack_pending };
    },
    async deleteConsumer(durable) {
      await jsm.consumers.delete(streamName, durable).catch(() => undefined);
    },
    async close() {
      await Promise.all([...consumers].map((s) => s.stop()));
      if (!nc.isClosed()) await nc.drain().catch(() => nc.close());
    },
  };
}
