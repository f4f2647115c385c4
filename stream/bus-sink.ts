import { PortalError } from '../common/errors.js';
import type { Bus } from '../bus/index.js';
import type { StreamSink } from './processor.js';
import { streamSubjects } from './subjects.js';

/** What the in-process bus carries on `portal.stream.<id>.out` and `.failed`. */
export interface StreamBusMessage {
  streamId: string;
  /** Whole records (output layout on `.out`, input layout on `.failed`). */
  records: Uint8Array;
  count: number;
  /** On `.failed`: the PortalError code and message. */
  error?: { code: string; message: string };
}

/**
 * A sink onto a Bus as objects (the embedded default's in-process bus). The NATS bus's codec
 * registry has no codec for `portal.stream.*` and rejects these subjects: use createNatsStreamTransport there.
 */
export function createBusStreamSink(bus: Bus, streamId: string): StreamSink {
  return {
    output: (records, count) =>
      bus.publish<StreamBusMessage>(streamSubjects.output(streamId), { streamId, records, count }),
    failed: (records, count, error: PortalError) =>
      bus.publish<StreamBusMessage>(streamSubjects.failed(streamId), {
        streamId,
        records,
        count,
        error: { code: error.code, message: error.message },
      }),
  };
}
