/** Name of the JetStream stream that carries GpuStreamActor input and output records (`streamSubjects.all`). */
export const STREAM_STREAM = 'PORTAL_STREAM';

/** Subjects of one stream `id` (NATS tokens: no `.`, `*`, `>` or spaces in `id`). */
export const streamSubjects = {
  /** Records in: each message is whole records of the kernel's input layout. */
  input: (id: string): string => `portal.stream.${id}.in`,
  /** Batch outputs: whole records of the kernel's output layout. */
  output: (id: string): string => `portal.stream.${id}.out`,
  /** Failed batches: their input records; header/field `error` carries the PortalError code. */
  failed: (id: string): string => `portal.stream.${id}.failed`,
  /** Every stream subject (the JetStream stream captures these). */
  all: 'portal.stream.>',
} as const;

const TOKEN = /^[A-Za-z0-9_-]{1,64}$/;

/** True when `id` can name a stream (one NATS token of letters, digits, `_`, `-`). */
export function isStreamId(id: unknown): id is string {
  return typeof id === 'string' && TOKEN.test(id);
}
