import {
  createJetStreamPullClient,
  type NatsConnectOptions,
  type PausablePullClient,
  type PullConsumerStats,
  type PulledMessage,
} from '../bus/index.js';
import { PortalError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import type { PushTicket } from './buffer.js';
import type { StreamProcessor, StreamSink } from './processor.js';
import { STREAM_STREAM, isStreamId, streamSubjects } from './subjects.js';

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

/** Counters of one JetStream source: the pull consumer's, plus records and malformed messages. */
export interface NatsSourceStats extends PullConsumerStats {
  records: number;
  /** Messages whose bytes were not whole records (terminated, reported on `.failed`). */
  malformed: number;
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

/** Connects (through the bus's pausable pull client) and ensures stream STREAM_STREAM over `portal.stream.>`. */
export async function createNatsStreamTransport(
  opts: NatsStreamTransportOptions,
): Promise<NatsStreamTransport> {
  const log = opts.logger;
  const { storage, maxAgeMs, maxBytes, ...conn } = opts;
  const client: PausablePullClient = await createJetStreamPullClient({
    ...conn,
    name: opts.name ?? `portal-stream-${process.pid}`,
    stream: { name: STREAM_STREAM, subjects: [streamSubjects.all], storage, maxAgeMs, maxBytes },
  });
  const maxPayload = client.maxPayload;

  const publishSplit = async (
    subject: string,
    bytes: Uint8Array,
    recordBytes: number,
    error?: PortalError,
  ): Promise<void> => {
    const headers = error
      ? {
          'Portal-Error-Code': error.code,
          'Portal-Error': error.message.slice(0, 512).replace(/[\r\n]/g, ' '),
        }
      : undefined;
    const per = Math.max(recordBytes, Math.floor((maxPayload - 1024) / recordBytes) * recordBytes);
    if (bytes.byteLength === 0) return;
    const parts: Promise<unknown>[] = [];
    for (let off = 0; off < bytes.byteLength; off += per)
      parts.push(
        client.publish(
          subject,
          bytes.subarray(off, Math.min(bytes.byteLength, off + per)),
          headers ? { headers } : undefined,
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
      const rb = processor.executor.kernel.input.recordBytes;
      let records = 0;
      let malformed = 0;

      const handle = async (m: PulledMessage): Promise<number> => {
        const { data, seq } = m;
        if (data.byteLength % rb !== 0 || data.byteLength === 0) {
          malformed++;
          const e = new PortalError(
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
          return 0;
        }
        const n = data.byteLength / rb;
        records += n;
        const ticket: PushTicket = {
          remaining: n,
          onSettled: () => {
            if (ticket.lost) m.nak(1000);
            else m.ack();
          },
        };
        // a rejection (buffer stopped, …) makes the pull consumer nak it: redelivered later
        await processor.push(data, ticket);
        return n;
      };
      const consumer = await client.pull(
        {
          durable,
          filterSubject: streamSubjects.input(streamId),
          maxMessagesPerPull: o.maxMessagesPerPull,
          deliver: o.deliver,
        },
        processor.buffer,
        handle,
      );
      return {
        durable,
        stats: () => ({ ...consumer.stats(), records, malformed }),
        stop: () => consumer.stop(),
      };
    },
    sink(streamId, rb = { output: 4, input: 4 }) {
      return {
        output: (bytes) => publishSplit(streamSubjects.output(streamId), bytes, rb.output),
        failed: (bytes, _count, error) =>
          publishSplit(streamSubjects.failed(streamId), bytes, rb.input, error),
      };
    },
    async publishRecords(streamId, records, msgId) {
      await client.publish(streamSubjects.input(streamId), records, msgId ? { msgId } : undefined);
    },
    subscribe(subject, handler) {
      return client.subscribe(subject, (data, subj, header) =>
        handler(data, subj, header('Portal-Error-Code')),
      );
    },
    consumerInfo: (durable) => client.consumerInfo(durable),
    deleteConsumer: (durable) => client.deleteConsumer(durable),
    close: () => client.close(),
  };
}
