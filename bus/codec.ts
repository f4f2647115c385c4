import { PortalError, type PortalErrorCode } from '../common/errors.js';
import { pb, WIRE_VERSION } from '../proto/index.js';
import { subjectMatches } from './memory-bus.js';
import { COORD_STREAM, TRANSFERS_STREAM } from './nats-bus-names.js';
import { subjectToken, subjectTokenId } from './types.js';
import type {
  CoordOutcomeMessage,
  CoordSubmitMessage,
  DeadLetterEvent,
  PeerHeartbeatMessage,
  PeerResultMessage,
  PeerTaskMessage,
  PrePositionTaskMessage,
} from './types.js';
import type {
  CancelRequest,
  ChunkReport,
  DispatchBatch,
  DispatchItem,
  EdgeHaveEvent,
  EdgeKind,
  EdgeTelemetryEvent,
  FailureReason,
} from '../common/vocabulary.js';

/** The message kinds of the wire format, one per subject family. */
export type WireKind =
  | 'telemetry'
  | 'have'
  | 'dispatch'
  | 'report'
  | 'cancel'
  | 'deadletter'
  | 'peertask'
  | 'peerresult'
  | 'peerheartbeat'
  | 'coordsubmit'
  | 'coordoutcome'
  | 'preposition';

/** Encodes and decodes one kind of message; decoders validate fully and throw only PortalError PORTAL_WIRE_*. */
export interface WireCodec<T = unknown> {
  readonly kind: WireKind;
  /** Subject pattern this codec serves (NATS syntax). */
  readonly pattern: string;
  /** Largest encoded message accepted either way, bytes. */
  readonly maxBytes: number;
  /** True where delivery goes through JetStream (stream PORTAL_TRANSFERS or PORTAL_COORD, see jetStreamOf). */
  readonly jetstream: boolean;
  /** Encodes `msg` for `subject`; throws PORTAL_INVALID_ARGUMENT naming a bad field, PORTAL_WIRE_TOO_LARGE over maxBytes. */
  encode(msg: T, subject: string): Uint8Array;
  /**
   * Decodes bytes that arrived on `subject`; throws PORTAL_WIRE_TOO_LARGE, PORTAL_WIRE_MALFORMED (not protobuf,
   * truncated, a required field missing or out of range, the id in the message differs from the subject's) or
   * PORTAL_WIRE_VERSION (version absent or newer than WIRE_VERSION).
   */
  decode(bytes: Uint8Array, subject: string): T;
}

/** Per-kind size limits in bytes (defaults: DEFAULT_MAX_BYTES). */
export type WireLimits = Partial<Record<WireKind, number>>;

/** Default size limits; NATS's default max_payload is 1 MiB, so nothing above that is useful without server changes. */
export const DEFAULT_MAX_BYTES: Readonly<Record<WireKind, number>> = {
  telemetry: 64 * 1024,
  have: 1024 * 1024,
  dispatch: 1024 * 1024,
  report: 16 * 1024,
  cancel: 1024,
  deadletter: 64 * 1024,
  peertask: 1024 * 1024,
  peerresult: 1024 * 1024,
  peerheartbeat: 16 * 1024,
  coordsubmit: 1024 * 1024,
  coordoutcome: 1024 * 1024,
  preposition: 1024 * 1024,
};

/** Bytes of a rejected message kept in its dead letter. */
export const DEAD_LETTER_PAYLOAD_BYTES = 4096;

type Generated = { encode(m: object): { finish(): Uint8Array }; decode(b: Uint8Array): object };

const wireError = (code: PortalErrorCode, message: string, cause?: unknown): PortalError =>
  new PortalError(code, message, cause === undefined ? undefined : { cause });
const bad = (what: string, detail: string): PortalError =>
  wireError('PORTAL_WIRE_MALFORMED', `${what}: ${detail}`);
const badArg = (field: string, expectation: string, v: unknown): PortalError =>
  new PortalError(
    'PORTAL_INVALID_ARGUMENT',
    `${field}: expected ${expectation}, got ${typeof v === 'string' ? JSON.stringify(v) : String(v)}`,
  );

// ---- decoding helpers: every value that comes off the wire passes one of these ----

type Rec = Record<string, unknown>;

function raw(T: Generated, name: string, bytes: Uint8Array, maxBytes: number): Rec {
  if (!(bytes instanceof Uint8Array)) throw bad(name, 'payload is not bytes');
  if (bytes.length > maxBytes)
    throw wireError(
      'PORTAL_WIRE_TOO_LARGE',
      `${name}: ${bytes.length} bytes exceed the limit of ${maxBytes}`,
    );
  let m: Rec;
  try {
    m = T.decode(bytes) as Rec;
  } catch (err) {
    throw wireError(
      'PORTAL_WIRE_MALFORMED',
      `${name}: not a valid protobuf message (${(err as Error)?.message ?? String(err)})`,
      err,
    );
  }
  const v = m.version;
  if (typeof v !== 'number' || v === 0)
    throw wireError('PORTAL_WIRE_VERSION', `${name}: version missing (expected ${WIRE_VERSION})`);
  if (v > WIRE_VERSION)
    throw wireError(
      'PORTAL_WIRE_VERSION',
      `${name}: unknown version ${v} (this reader knows up to ${WIRE_VERSION})`,
    );
  return m;
}

function str(m: Rec, key: string, name: string, required: boolean, max = 4096): string {
  const v = m[key];
  if (v === undefined || v === null) {
    if (required) throw bad(name, `${key} missing`);
    return '';
  }
  if (typeof v !== 'string') throw bad(name, `${key} is not a string`);
  if (required && v === '') throw bad(name, `${key} missing`);
  if (v.length > max) throw bad(name, `${key} longer than ${max} characters`);
  return v;
}

function u32(m: Rec, key: string): number {
  const v = m[key];
  return typeof v === 'number' ? v : 0;
}

function u64(m: Rec, key: string, name: string): number {
  const v = m[key];
  if (v === undefined || v === null) return 0;
  if (typeof v === 'number') return v;
  const long = v as { low: number; high: number; toNumber(): number };
  if (typeof long.toNumber !== 'function') throw bad(name, `${key} is not an integer`);
  if (long.high >>> 0 > 0x1fffff) throw bad(name, `${key} exceeds 2^53`);
  return long.toNumber();
}

function dbl(m: Rec, key: string, name: string, nonNegative = true): number {
  const v = m[key];
  if (v === undefined || v === null) return 0;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw bad(name, `${key} is not a finite number`);
  if (nonNegative && v < 0) throw bad(name, `${key} is negative`);
  return v;
}

function has(m: Rec, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(m, key) && m[key] !== null && m[key] !== undefined;
}

/** A sealed secret (bus/dispatch-seal.ts) under `key`, as `{ [key]: bytes }`, or `{}` when absent or empty. */
function sealed<K extends string>(m: Rec, key: K): { [k in K]?: Uint8Array } {
  const v = m[key];
  return v instanceof Uint8Array && v.length > 0 ? ({ [key]: v } as { [k in K]: Uint8Array }) : {};
}

function list(m: Rec, key: string): unknown[] {
  const v = m[key];
  return Array.isArray(v) ? v : [];
}

/** The `<id>` token of `portal.<area>.<id>.<kind>`, or undefined for a wildcard or another shape. */
function subjectIdToken(subject: string): string | undefined {
  const t = subject.split('.');
  return t.length === 4 && t[2] !== '*' && t[2] !== '>' ? t[2] : undefined;
}

/** What the subject's id token says, for messages: the id it encodes (subjectTokenId), or the token as it is. */
function shownSubjectId(token: string): string {
  const id = subjectTokenId(token);
  return id === undefined ? `token ${JSON.stringify(token)} (not an encoded id)` : JSON.stringify(id);
}

function checkSubjectId(name: string, field: string, value: string, subject: string): void {
  const token = subjectIdToken(subject);
  if (token !== undefined && token !== subjectToken(value))
    throw bad(name, `${field} ${JSON.stringify(value)} differs from the subject's ${shownSubjectId(token)}`);
}

// ---- enum maps ----

const edgeKinds: Record<EdgeKind, number> = {
  portal: pb.EdgeKind.EDGE_KIND_PORTAL,
  mirror: pb.EdgeKind.EDGE_KIND_MIRROR,
};
const edgeKindOf = (v: unknown): EdgeKind | undefined =>
  v === pb.EdgeKind.EDGE_KIND_PORTAL ? 'portal' : v === pb.EdgeKind.EDGE_KIND_MIRROR ? 'mirror' : undefined;
const reasons: Record<FailureReason, number> = {
  timeout: pb.FailureReason.FAILURE_REASON_TIMEOUT,
  http: pb.FailureReason.FAILURE_REASON_HTTP,
  unreachable: pb.FailureReason.FAILURE_REASON_UNREACHABLE,
  corrupt: pb.FailureReason.FAILURE_REASON_CORRUPT,
  short: pb.FailureReason.FAILURE_REASON_SHORT,
  cancelled: pb.FailureReason.FAILURE_REASON_CANCELLED,
  io: pb.FailureReason.FAILURE_REASON_IO,
  busy: pb.FailureReason.FAILURE_REASON_BUSY,
};
const reasonOf = new Map<number, FailureReason>(
  Object.entries(reasons).map(([k, v]) => [v, k as FailureReason]),
);

// ---- encoding helpers: Portal objects are checked at the boundary, with the field named ----

const isU32 = (v: unknown): v is number =>
  Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 0xffffffff;
const isU53 = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const isNonNeg = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;
function needU32(v: unknown, field: string): number {
  if (!isU32(v)) throw badArg(field, 'an integer in [0, 2^32)', v);
  return v;
}
function needU53(v: unknown, field: string): number {
  if (!isU53(v)) throw badArg(field, 'a non-negative safe integer', v);
  return v;
}
function needNum(v: unknown, field: string): number {
  if (!isNonNeg(v)) throw badArg(field, 'a non-negative finite number', v);
  return v;
}
function needStr(v: unknown, field: string, allowEmpty = false): string {
  if (typeof v !== 'string' || (!allowEmpty && v === ''))
    throw badArg(field, allowEmpty ? 'a string' : 'a non-empty string', v);
  return v;
}
function needObj(v: unknown, field: string): Rec {
  if (!v || typeof v !== 'object') throw badArg(field, 'an object', v);
  return v as Rec;
}

function finish(T: Generated, name: string, obj: object, maxBytes: number): Uint8Array {
  const bytes = T.encode(obj).finish();
  if (bytes.length > maxBytes)
    throw wireError(
      'PORTAL_WIRE_TOO_LARGE',
      `${name}: encoded size ${bytes.length} bytes exceeds the limit of ${maxBytes}`,
    );
  return bytes;
}

// ---- the codecs ----

function telemetryCodec(maxBytes: number): WireCodec<EdgeTelemetryEvent> {
  const N = 'EdgeTelemetry';
  const T = pb.EdgeTelemetry as unknown as Generated;
  return {
    kind: 'telemetry',
    pattern: 'portal.edge.*.telemetry',
    maxBytes,
    jetstream: false,
    encode(e, subject) {
      needObj(e, 'telemetry');
      const o: Rec = {
        version: WIRE_VERSION,
        edgeId: needStr(e.edgeId, 'edgeId'),
        sentAtMs: e.sentAtMs === undefined ? 0 : needNum(e.sentAtMs, 'sentAtMs'),
      };
      if (e.online !== undefined) o.online = !!e.online;
      if (e.metered !== undefined) o.metered = !!e.metered;
      if (e.battery !== undefined) {
        const b = needObj(e.battery, 'battery');
        if (!(isNonNeg(b.level) && b.level <= 1))
          throw badArg('battery.level', 'a number in [0, 1]', b.level);
        o.battery = { level: b.level, charging: !!b.charging, low: !!b.low };
      }
      o.bandwidth = (e.bandwidth ?? []).map((s, i) => ({
        atMs: needNum(s?.atMs, `bandwidth[${i}].atMs`),
        bytesPerSec: needNum(s?.bytesPerSec, `bandwidth[${i}].bytesPerSec`),
      }));
      o.rtt = (e.rtt ?? []).map((s, i) => ({
        atMs: needNum(s?.atMs, `rtt[${i}].atMs`),
        rttMs: needNum(s?.rttMs, `rtt[${i}].rttMs`),
      }));
      if (e.maxParallel !== undefined) o.maxParallel = needU32(e.maxParallel, 'maxParallel');
      if (e.url) o.url = needStr(e.url, 'url');
      if (e.kind !== undefined) {
        if (!(e.kind in edgeKinds)) throw badArg('kind', "'portal' or 'mirror'", e.kind);
        o.kind = edgeKinds[e.kind];
      }
      if (e.location) o.location = needStr(e.location, 'location');
      if (e.accepts !== undefined) o.accepts = !!e.accepts;
      checkSubjectIdArg(subject, e.edgeId, 'edgeId');
      return finish(T, N, o, maxBytes);
    },
    decode(bytes, subject) {
      const m = raw(T, N, bytes, maxBytes);
      const edgeId = str(m, 'edgeId', N, true, 256);
      checkSubjectId(N, 'edgeId', edgeId, subject);
      const ev: EdgeTelemetryEvent = {
        edgeId,
        sentAtMs: dbl(m, 'sentAtMs', N),
        bandwidth: [],
        rtt: [],
        url: str(m, 'url', N, false, 2048),
      };
      if (ev.url !== '' && !/^https?:\/\//.test(ev.url)) throw bad(N, 'url is not http(s)');
      if (has(m, 'online')) ev.online = m.online === true;
      if (has(m, 'metered')) ev.metered = m.metered === true;
      if (has(m, 'battery')) {
        const b = m.battery as Rec;
        const level = dbl(b, 'level', N);
        if (level > 1) throw bad(N, 'battery.level above 1');
        ev.battery = { level, charging: b.charging === true, low: b.low === true };
      }
      for (const s of list(m, 'bandwidth'))
        ev.bandwidth.push({ atMs: dbl(s as Rec, 'atMs', N), bytesPerSec: dbl(s as Rec, 'bytesPerSec', N) });
      for (const s of list(m, 'rtt'))
        ev.rtt.push({ atMs: dbl(s as Rec, 'atMs', N), rttMs: dbl(s as Rec, 'rttMs', N) });
      if (has(m, 'maxParallel')) ev.maxParallel = u32(m, 'maxParallel');
      const kind = u32(m, 'kind');
      if (kind !== 0) {
        const k = edgeKindOf(kind);
        if (!k) throw bad(N, `kind ${kind} unknown`);
        ev.kind = k;
      }
      const location = str(m, 'location', N, false, 256);
      if (location !== '') ev.location = location;
      if (has(m, 'accepts')) ev.accepts = m.accepts === true;
      return ev;
    },
  };
}

function checkSubjectIdArg(subject: string, value: string, field: string): void {
  const token = subjectIdToken(subject);
  if (token !== undefined && token !== subjectToken(value))
    throw badArg(field, `the subject's id ${shownSubjectId(token)}`, value);
}

function haveCodec(maxBytes: number): WireCodec<EdgeHaveEvent> {
  const N = 'ChunkAvailability';
  const T = pb.ChunkAvailability as unknown as Generated;
  return {
    kind: 'have',
    pattern: 'portal.edge.*.have',
    maxBytes,
    jetstream: false,
    encode(e, subject) {
      needObj(e, 'have');
      const count = needU32(e.chunkCount, 'chunkCount');
      const o: Rec = {
        version: WIRE_VERSION,
        edgeId: needStr(e.edgeId, 'edgeId'),
        manifestId: needStr(e.manifestId, 'manifestId'),
        chunkCount: count,
        seq: needU53(e.seq, 'seq'),
        sentAtMs: e.sentAtMs === undefined ? 0 : needNum(e.sentAtMs, 'sentAtMs'),
      };
      checkSubjectIdArg(subject, e.edgeId, 'edgeId');
      if (e.kind === 'full') {
        if (!(e.bitmap instanceof Uint8Array) || e.bitmap.length < Math.ceil(count / 8))
          throw badArg('bitmap', `bytes covering ${count} chunks`, e.bitmap?.length);
        o.kind = pb.AvailabilityKind.AVAILABILITY_KIND_FULL;
        o.bitmap = e.bitmap;
      } else if (e.kind === 'incremental') {
        o.kind = pb.AvailabilityKind.AVAILABILITY_KIND_INCREMENTAL;
        o.baseSeq = needU53(e.baseSeq, 'baseSeq');
        const idx = (a: unknown, f: string): number[] => {
          if (!Array.isArray(a)) throw badArg(f, 'an array of chunk indices', a);
          return a.map((c, i) => {
            if (!isU32(c) || c >= count) throw badArg(`${f}[${i}]`, `a chunk index below ${count}`, c);
            return c;
          });
        };
        o.added = idx(e.added, 'added');
        o.removed = idx(e.removed, 'removed');
      } else throw badArg('kind', "'full' or 'incremental'", (e as { kind?: unknown }).kind);
      return finish(T, N, o, maxBytes);
    },
    decode(bytes, subject) {
      const m = raw(T, N, bytes, maxBytes);
      const edgeId = str(m, 'edgeId', N, true, 256);
      checkSubjectId(N, 'edgeId', edgeId, subject);
      const manifestId = str(m, 'manifestId', N, true, 256);
      const chunkCount = u32(m, 'chunkCount');
      const seq = u64(m, 'seq', N);
      const sentAtMs = dbl(m, 'sentAtMs', N);
      const kind = u32(m, 'kind');
      if (kind === Number(pb.AvailabilityKind.AVAILABILITY_KIND_FULL)) {
        const bitmap = m.bitmap instanceof Uint8Array ? m.bitmap : new Uint8Array(0);
        if (bitmap.length < Math.ceil(chunkCount / 8))
          throw bad(N, `bitmap of ${bitmap.length} bytes cannot cover ${chunkCount} chunks`);
        return { kind: 'full', edgeId, manifestId, chunkCount, seq, sentAtMs, bitmap };
      }
      if (kind === Number(pb.AvailabilityKind.AVAILABILITY_KIND_INCREMENTAL)) {
        const idx = (key: string): number[] =>
          list(m, key).map((c) => {
            if (typeof c !== 'number' || c >= chunkCount)
              throw bad(N, `${key} names chunk ${String(c)} of ${chunkCount}`);
            return c;
          });
        return {
          kind: 'incremental',
          edgeId,
          manifestId,
          chunkCount,
          seq,
          sentAtMs,
          baseSeq: u64(m, 'baseSeq', N),
          added: idx('added'),
          removed: idx('removed'),
        };
      }
      throw bad(N, `kind ${kind} is neither FULL nor INCREMENTAL`);
    },
  };
}

function dispatchCodec(maxBytes: number): WireCodec<DispatchBatch> {
  const N = 'DispatchBatch';
  const T = pb.DispatchBatch as unknown as Generated;
  return {
    kind: 'dispatch',
    pattern: 'portal.transfer.*.dispatch',
    maxBytes,
    jetstream: true,
    encode(b, subject) {
      needObj(b, 'batch');
      checkSubjectIdArg(subject, b.transferId, 'transferId');
      if (!Array.isArray(b.items)) throw badArg('items', 'an array', b.items);
      const items = b.items.map((it: DispatchItem, i) => {
        needObj(it, `items[${i}]`);
        if (!(it.edgeKind in edgeKinds))
          throw badArg(`items[${i}].edgeKind`, "'portal' or 'mirror'", it.edgeKind);
        return {
          chunk: needU32(it.chunk, `items[${i}].chunk`),
          attempt: needU32(it.attempt, `items[${i}].attempt`),
          edgeIndex: needU32(it.edgeIndex, `items[${i}].edgeIndex`),
          edgeUrl: needStr(it.edgeUrl, `items[${i}].edgeUrl`),
          edgeKind: edgeKinds[it.edgeKind],
          cid: needStr(it.cid, `items[${i}].cid`),
          offset: needU53(it.offset, `items[${i}].offset`),
          length: needU32(it.length, `items[${i}].length`),
          timeoutMs: needU32(Math.ceil(it.timeoutMs), `items[${i}].timeoutMs`),
          ...(it.sealedUrl?.length ? { sealedUrl: it.sealedUrl } : {}),
        };
      });
      return finish(
        T,
        N,
        {
          version: WIRE_VERSION,
          transferId: needStr(b.transferId, 'transferId'),
          output: needStr(b.output, 'output'),
          fileSize: needU53(b.fileSize, 'fileSize'),
          items,
          ...(b.sealedOutput?.length ? { sealedOutput: b.sealedOutput } : {}),
        },
        maxBytes,
      );
    },
    decode(bytes, subject) {
      const m = raw(T, N, bytes, maxBytes);
      const transferId = str(m, 'transferId', N, true, 256);
      checkSubjectId(N, 'transferId', transferId, subject);
      const fileSize = u64(m, 'fileSize', N);
      const items: DispatchItem[] = list(m, 'items').map((x, i) => {
        const r = x as Rec;
        const edgeKind = edgeKindOf(u32(r, 'edgeKind'));
        if (!edgeKind) throw bad(N, `items[${i}].edgeKind ${u32(r, 'edgeKind')} is not PORTAL or MIRROR`);
        const offset = u64(r, 'offset', N);
        const length = u32(r, 'length');
        if (offset + length > fileSize)
          throw bad(N, `items[${i}] ends at ${offset + length}, past fileSize ${fileSize}`);
        return {
          chunk: u32(r, 'chunk'),
          attempt: u32(r, 'attempt'),
          edgeIndex: u32(r, 'edgeIndex'),
          edgeUrl: str(r, 'edgeUrl', `${N}.items[${i}]`, true, 2048),
          edgeKind,
          cid: str(r, 'cid', `${N}.items[${i}]`, true, 256),
          offset,
          length,
          timeoutMs: u32(r, 'timeoutMs'),
          ...sealed(r, 'sealedUrl'),
        };
      });
      const batch: DispatchBatch = { transferId, output: str(m, 'output', N, true), fileSize, items };
      const so = sealed(m, 'sealedOutput').sealedOutput;
      if (so) batch.sealedOutput = so;
      return batch;
    },
  };
}

function reportCodec(maxBytes: number): WireCodec<ChunkReport> {
  const N = 'ChunkReport';
  const T = pb.ChunkReport as unknown as Generated;
  return {
    kind: 'report',
    pattern: 'portal.transfer.*.report',
    maxBytes,
    jetstream: true,
    encode(r, subject) {
      needObj(r, 'report');
      checkSubjectIdArg(subject, r.transferId, 'transferId');
      const o: Rec = {
        version: WIRE_VERSION,
        transferId: needStr(r.transferId, 'transferId'),
        chunk: needU32(r.chunk, 'chunk'),
        attempt: needU32(r.attempt, 'attempt'),
        edgeIndex: needU32(r.edgeIndex, 'edgeIndex'),
        firstByteMs: needNum(r.firstByteMs, 'firstByteMs'),
        transferMs: needNum(r.transferMs, 'transferMs'),
        executorId: needStr(r.executorId ?? '', 'executorId', true),
      };
      if (r.ok) o.completed = { bytes: needU53(r.bytes, 'bytes') };
      else {
        if (r.reason === undefined || !(r.reason in reasons))
          throw badArg('reason', `one of ${Object.keys(reasons).join(', ')}`, r.reason);
        o.failed = {
          reason: reasons[r.reason],
          detail: needStr(r.detail ?? '', 'detail', true).slice(0, 1024),
          ...(r.retryAfterMs
            ? { retryAfterMs: Math.min(0xffffffff, Math.round(needNum(r.retryAfterMs, 'retryAfterMs'))) }
            : {}),
        };
      }
      return finish(T, N, o, maxBytes);
    },
    decode(bytes, subject) {
      const m = raw(T, N, bytes, maxBytes);
      const transferId = str(m, 'transferId', N, true, 256);
      checkSubjectId(N, 'transferId', transferId, subject);
      const base = {
        transferId,
        chunk: u32(m, 'chunk'),
        attempt: u32(m, 'attempt'),
        edgeIndex: u32(m, 'edgeIndex'),
        firstByteMs: dbl(m, 'firstByteMs', N),
        transferMs: dbl(m, 'transferMs', N),
        executorId: str(m, 'executorId', N, false, 256),
      };
      if (has(m, 'completed')) return { ...base, ok: true, bytes: u64(m.completed as Rec, 'bytes', N) };
      if (has(m, 'failed')) {
        const f = m.failed as Rec;
        const reason = reasonOf.get(u32(f, 'reason'));
        if (!reason) throw bad(N, `failed.reason ${u32(f, 'reason')} unknown`);
        const detail = str(f, 'detail', N, false);
        const retryAfterMs = has(f, 'retryAfterMs') ? u32(f, 'retryAfterMs') : 0;
        return {
          ...base,
          ok: false,
          bytes: 0,
          reason,
          ...(detail ? { detail } : {}),
          ...(retryAfterMs > 0 ? { retryAfterMs } : {}),
        };
      }
      throw bad(N, 'outcome missing (neither completed nor failed)');
    },
  };
}

function cancelCodec(maxBytes: number): WireCodec<CancelRequest> {
  const N = 'CancelRequest';
  const T = pb.CancelRequest as unknown as Generated;
  return {
    kind: 'cancel',
    pattern: 'portal.transfer.*.cancel',
    maxBytes,
    jetstream: false,
    encode(c, subject) {
      needObj(c, 'cancel');
      checkSubjectIdArg(subject, c.transferId, 'transferId');
      return finish(
        T,
        N,
        {
          version: WIRE_VERSION,
          transferId: needStr(c.transferId, 'transferId'),
          chunk: needU32(c.chunk, 'chunk'),
          attempt: needU32(c.attempt, 'attempt'),
        },
        maxBytes,
      );
    },
    decode(bytes, subject) {
      const m = raw(T, N, bytes, maxBytes);
      const transferId = str(m, 'transferId', N, true, 256);
      checkSubjectId(N, 'transferId', transferId, subject);
      return { transferId, chunk: u32(m, 'chunk'), attempt: u32(m, 'attempt') };
    },
  };
}

/**
 * `portal.preposition.<taskId>.start`: a pre-position task; the request is JSON inside the protobuf
 * envelope (it carries the manifest), checked here to be a JSON object whose transferId is the task id.
 */
function prePositionCodec(maxBytes: number): WireCodec<PrePositionTaskMessage> {
  const N = 'PrePositionTask';
  const T = pb.PrePositionTask as unknown as Generated;
  return {
    kind: 'preposition',
    pattern: 'portal.preposition.*.start',
    maxBytes,
    jetstream: false,
    encode(t, subject) {
      needObj(t, 'prePositionTask');
      checkSubjectIdArg(subject, t.taskId, 'taskId');
      needObj(t.request, 'request');
      return finish(
        T,
        N,
        {
          version: WIRE_VERSION,
          taskId: needStr(t.taskId, 'taskId'),
          requestJson: Buffer.from(JSON.stringify(t.request), 'utf8'),
        },
        maxBytes,
      );
    },
    decode(bytes, subject) {
      const m = raw(T, N, bytes, maxBytes);
      const taskId = str(m, 'taskId', N, true, 256);
      checkSubjectId(N, 'taskId', taskId, subject);
      const body = m.requestJson;
      if (!(body instanceof Uint8Array) || body.length === 0) throw bad(N, 'requestJson missing');
      let request: unknown;
      try {
        request = JSON.parse(Buffer.from(body).toString('utf8'));
      } catch (err) {
        throw wireError('PORTAL_WIRE_MALFORMED', `${N}: requestJson is not JSON`, err);
      }
      if (!request || typeof request !== 'object' || Array.isArray(request))
        throw bad(N, 'requestJson is not a JSON object');
      if ((request as Rec).transferId !== taskId) throw bad(N, 'requestJson.transferId differs from taskId');
      return { taskId, request: request as Rec };
    },
  };
}

function deadLetterCodec(maxBytes: number): WireCodec<DeadLetterEvent> {
  const N = 'DeadLetter';
  const T = pb.DeadLetter as unknown as Generated;
  return {
    kind: 'deadletter',
    pattern: 'portal.deadletter.>',
    maxBytes,
    jetstream: false,
    encode(d) {
      needObj(d, 'deadLetter');
      const payload =
        d.payload instanceof Uint8Array
          ? d.payload.subarray(0, DEAD_LETTER_PAYLOAD_BYTES)
          : new Uint8Array(0);
      return finish(
        T,
        N,
        {
          version: WIRE_VERSION,
          subject: needStr(d.subject, 'subject'),
          code: needStr(d.code, 'code'),
          reason: needStr(d.reason ?? '', 'reason', true).slice(0, 2048),
          payload,
          payloadSize: needU32(d.payloadSize, 'payloadSize'),
          rejectedBy: needStr(d.rejectedBy ?? '', 'rejectedBy', true),
          atMs: needNum(d.atMs, 'atMs'),
        },
        maxBytes,
      );
    },
    decode(bytes) {
      const m = raw(T, N, bytes, maxBytes);
      return {
        subject: str(m, 'subject', N, true),
        code: str(m, 'code', N, true, 64),
        reason: str(m, 'reason', N, false),
        payload: m.payload instanceof Uint8Array ? m.payload : new Uint8Array(0),
        payloadSize: u32(m, 'payloadSize'),
        rejectedBy: str(m, 'rejectedBy', N, false),
        atMs: dbl(m, 'atMs', N),
      };
    },
  };
}

// ---- the learned coordinator and its peers ----

const ID_RE = /^[A-Za-z0-9_-]{1,64}$/;
const enc = new TextEncoder();
const utf8 = new TextDecoder('utf-8', { fatal: true });

function needId(v: unknown, field: string): string {
  if (typeof v !== 'string' || !ID_RE.test(v)) throw badArg(field, 'an id of 1–64 of A-Z a-z 0-9 _ -', v);
  return v;
}
function id(m: Rec, key: string, name: string): string {
  const v = str(m, key, name, true, 64);
  if (!ID_RE.test(v)) throw bad(name, `${key} ${JSON.stringify(v)} is not an id (1–64 of A-Z a-z 0-9 _ -)`);
  return v;
}
/** A JSON value as UTF-8 bytes (undefined = none, empty bytes). */
function jsonBytes(v: unknown, field: string): Uint8Array {
  if (v === undefined) return new Uint8Array(0);
  let text: string | undefined;
  try {
    text = JSON.stringify(v);
  } catch (err) {
    throw new PortalError(
      'PORTAL_INVALID_ARGUMENT',
      `${field}: not JSON-serializable (${(err as Error).message})`,
      {
        cause: err,
      },
    );
  }
  if (text === undefined) throw badArg(field, 'a JSON value', typeof v);
  return enc.encode(text);
}
/** The JSON value of a bytes field (absent or empty = undefined). */
function jsonOf(m: Rec, key: string, name: string): unknown {
  const b = m[key];
  if (!(b instanceof Uint8Array) || b.length === 0) return undefined;
  try {
    return JSON.parse(utf8.decode(b)) as unknown;
  } catch (err) {
    throw wireError('PORTAL_WIRE_MALFORMED', `${name}: ${key} is not UTF-8 JSON`, err);
  }
}
function positive(m: Rec, key: string, name: string): number {
  const v = dbl(m, key, name);
  if (!(v > 0)) throw bad(name, `${key} must be above 0`);
  return v;
}
function needPositive(v: unknown, field: string): number {
  if (!(typeof v === 'number' && Number.isFinite(v) && v > 0)) throw badArg(field, 'a number > 0', v);
  return v;
}
function needUnit(v: unknown, field: string): number {
  if (!(isNonNeg(v) && v <= 1)) throw badArg(field, 'a number in [0, 1]', v);
  return v;
}
function unit(m: Rec, key: string, name: string): number {
  const v = dbl(m, key, name);
  if (v > 1) throw bad(name, `${key} above 1`);
  return v;
}

function peerTaskCodec(maxBytes: number): WireCodec<PeerTaskMessage> {
  const N = 'PeerTask';
  const T = pb.PeerTask as unknown as Generated;
  return {
    kind: 'peertask',
    pattern: 'portal.peer.*.task',
    maxBytes,
    jetstream: true,
    encode(t, subject) {
      needObj(t, 'task');
      checkSubjectIdArg(subject, t.peerId, 'peerId');
      if (!(Number.isInteger(t.hour) && t.hour >= 0 && t.hour <= 23))
        throw badArg('hour', 'an integer in [0, 23]', t.hour);
      const attempt = needU53(t.attempt, 'attempt');
      if (attempt === 0) throw badArg('attempt', 'an integer > 0', attempt);
      return finish(
        T,
        N,
        {
          version: WIRE_VERSION,
          coordinatorId: needId(t.coordinatorId, 'coordinatorId'),
          peerId: needId(t.peerId, 'peerId'),
          taskId: needStr(t.taskId, 'taskId'),
          attempt,
          taskType: needStr(t.type, 'type'),
          work: needPositive(t.work, 'work'),
          hour: t.hour,
          payloadJson: jsonBytes(t.payload, 'payload'),
          sentAtMs: t.sentAtMs === undefined ? 0 : needNum(t.sentAtMs, 'sentAtMs'),
        },
        maxBytes,
      );
    },
    decode(bytes, subject) {
      const m = raw(T, N, bytes, maxBytes);
      const peerId = id(m, 'peerId', N);
      checkSubjectId(N, 'peerId', peerId, subject);
      const attempt = u64(m, 'attempt', N);
      if (attempt === 0) throw bad(N, 'attempt missing');
      const hour = u32(m, 'hour');
      if (hour > 23) throw bad(N, `hour ${hour} is not 0..23`);
      const t: PeerTaskMessage = {
        coordinatorId: id(m, 'coordinatorId', N),
        peerId,
        taskId: str(m, 'taskId', N, true, 256),
        attempt,
        type: str(m, 'taskType', N, true, 128),
        work: positive(m, 'work', N),
        hour,
        sentAtMs: dbl(m, 'sentAtMs', N),
      };
      const payload = jsonOf(m, 'payloadJson', N);
      if (payload !== undefined) t.payload = payload;
      return t;
    },
  };
}

function peerResultCodec(maxBytes: number): WireCodec<PeerResultMessage> {
  const N = 'PeerResult';
  const T = pb.PeerResult as unknown as Generated;
  return {
    kind: 'peerresult',
    pattern: 'portal.coord.*.result',
    maxBytes,
    jetstream: true,
    encode(r, subject) {
      needObj(r, 'result');
      checkSubjectIdArg(subject, r.coordinatorId, 'coordinatorId');
      const attempt = needU53(r.attempt, 'attempt');
      if (attempt === 0) throw badArg('attempt', 'an integer > 0', attempt);
      return finish(
        T,
        N,
        {
          version: WIRE_VERSION,
          coordinatorId: needId(r.coordinatorId, 'coordinatorId'),
          peerId: needId(r.peerId, 'peerId'),
          taskId: needStr(r.taskId, 'taskId'),
          attempt,
          ok: !!r.ok,
          outputJson: r.ok ? jsonBytes(r.output, 'output') : new Uint8Array(0),
          error: r.ok ? '' : needStr(r.error ?? 'failed', 'error', true).slice(0, 2048),
          serviceMs: needNum(r.serviceMs, 'serviceMs'),
          pressure: needUnit(r.pressure ?? 0, 'pressure'),
          sentAtMs: r.sentAtMs === undefined ? 0 : needNum(r.sentAtMs, 'sentAtMs'),
        },
        maxBytes,
      );
    },
    decode(bytes, subject) {
      const m = raw(T, N, bytes, maxBytes);
      const coordinatorId = id(m, 'coordinatorId', N);
      checkSubjectId(N, 'coordinatorId', coordinatorId, subject);
      const attempt = u64(m, 'attempt', N);
      if (attempt === 0) throw bad(N, 'attempt missing');
      const ok = m.ok === true;
      const r: PeerResultMessage = {
        coordinatorId,
        peerId: id(m, 'peerId', N),
        taskId: str(m, 'taskId', N, true, 256),
        attempt,
        ok,
        serviceMs: dbl(m, 'serviceMs', N),
        pressure: unit(m, 'pressure', N),
        sentAtMs: dbl(m, 'sentAtMs', N),
      };
      if (ok) {
        const output = jsonOf(m, 'outputJson', N);
        if (output !== undefined) r.output = output;
      } else r.error = str(m, 'error', N, false) || 'failed';
      return r;
    },
  };
}

function peerHeartbeatCodec(maxBytes: number): WireCodec<PeerHeartbeatMessage> {
  const N = 'PeerHeartbeat';
  const T = pb.PeerHeartbeat as unknown as Generated;
  return {
    kind: 'peerheartbeat',
    pattern: 'portal.peer.*.heartbeat',
    maxBytes,
    jetstream: false,
    encode(h, subject) {
      needObj(h, 'heartbeat');
      checkSubjectIdArg(subject, h.peerId, 'peerId');
      if (!Array.isArray(h.taskTypes) || h.taskTypes.length === 0)
        throw badArg('taskTypes', 'a non-empty array of task types', h.taskTypes);
      const one = (v: unknown, f: string): number => {
        const n = needU32(v, f);
        if (n === 0) throw badArg(f, 'an integer ≥ 1', v);
        return n;
      };
      return finish(
        T,
        N,
        {
          version: WIRE_VERSION,
          peerId: needId(h.peerId, 'peerId'),
          taskTypes: h.taskTypes.map((t, i) => needStr(t, `taskTypes[${i}]`)),
          maxInFlight: one(h.maxInFlight, 'maxInFlight'),
          concurrency: one(h.concurrency, 'concurrency'),
          latencyHintMs: needNum(h.latencyHintMs, 'latencyHintMs'),
          load: needU32(h.load, 'load'),
          running: needU32(h.running, 'running'),
          queued: needU32(h.queued, 'queued'),
          pressure: needUnit(h.pressure, 'pressure'),
          cpuPressure: needUnit(h.cpuPressure, 'cpuPressure'),
          memoryPressure: needUnit(h.memoryPressure, 'memoryPressure'),
          intervalMs: one(h.intervalMs, 'intervalMs'),
          leaving: !!h.leaving,
          seq: needU53(h.seq, 'seq'),
          sentAtMs: needNum(h.sentAtMs, 'sentAtMs'),
          completed: needU53(h.completed, 'completed'),
          failed: needU53(h.failed, 'failed'),
        },
        maxBytes,
      );
    },
    decode(bytes, subject) {
      const m = raw(T, N, bytes, maxBytes);
      const peerId = id(m, 'peerId', N);
      checkSubjectId(N, 'peerId', peerId, subject);
      const taskTypes = list(m, 'taskTypes').map((t, i) => {
        if (typeof t !== 'string' || t === '' || t.length > 128)
          throw bad(N, `taskTypes[${i}] is not a task type`);
        return t;
      });
      if (taskTypes.length === 0) throw bad(N, 'taskTypes empty');
      const atLeastOne = (k: string): number => {
        const v = u32(m, k);
        if (v === 0) throw bad(N, `${k} missing`);
        return v;
      };
      return {
        peerId,
        taskTypes,
        maxInFlight: atLeastOne('maxInFlight'),
        concurrency: atLeastOne('concurrency'),
        latencyHintMs: dbl(m, 'latencyHintMs', N),
        load: u32(m, 'load'),
        running: u32(m, 'running'),
        queued: u32(m, 'queued'),
        pressure: unit(m, 'pressure', N),
        cpuPressure: unit(m, 'cpuPressure', N),
        memoryPressure: unit(m, 'memoryPressure', N),
        intervalMs: atLeastOne('intervalMs'),
        leaving: m.leaving === true,
        seq: u64(m, 'seq', N),
        sentAtMs: dbl(m, 'sentAtMs', N),
        completed: u64(m, 'completed', N),
        failed: u64(m, 'failed', N),
      };
    },
  };
}

function coordSubmitCodec(maxBytes: number): WireCodec<CoordSubmitMessage> {
  const N = 'CoordSubmit';
  const T = pb.CoordSubmit as unknown as Generated;
  return {
    kind: 'coordsubmit',
    pattern: 'portal.coord.*.submit',
    maxBytes,
    jetstream: true,
    encode(c, subject) {
      needObj(c, 'submit');
      checkSubjectIdArg(subject, c.coordinatorId, 'coordinatorId');
      if (!Array.isArray(c.tasks) || c.tasks.length === 0)
        throw badArg('tasks', 'a non-empty array', c.tasks);
      return finish(
        T,
        N,
        {
          version: WIRE_VERSION,
          coordinatorId: needId(c.coordinatorId, 'coordinatorId'),
          submitter: needStr(c.submitter ?? '', 'submitter', true),
          tasks: c.tasks.map((t, i) => {
            needObj(t, `tasks[${i}]`);
            return {
              taskId: needStr(t.id, `tasks[${i}].id`),
              taskType: needStr(t.type, `tasks[${i}].type`),
              work: needPositive(t.work, `tasks[${i}].work`),
              payloadJson: jsonBytes(t.payload, `tasks[${i}].payload`),
              pin: t.pin === undefined ? '' : needId(t.pin, `tasks[${i}].pin`),
            };
          }),
        },
        maxBytes,
      );
    },
    decode(bytes, subject) {
      const m = raw(T, N, bytes, maxBytes);
      const coordinatorId = id(m, 'coordinatorId', N);
      checkSubjectId(N, 'coordinatorId', coordinatorId, subject);
      const tasks = list(m, 'tasks').map((x, i) => {
        const r = x as Rec;
        const n = `${N}.tasks[${i}]`;
        const t: CoordSubmitMessage['tasks'][number] = {
          id: str(r, 'taskId', n, true, 256),
          type: str(r, 'taskType', n, true, 128),
          work: positive(r, 'work', n),
        };
        const payload = jsonOf(r, 'payloadJson', n);
        if (payload !== undefined) t.payload = payload;
        const pin = str(r, 'pin', n, false, 64);
        if (pin) t.pin = pin;
        return t;
      });
      if (tasks.length === 0) throw bad(N, 'tasks empty');
      return { coordinatorId, tasks, submitter: str(m, 'submitter', N, false, 256) };
    },
  };
}

function coordOutcomeCodec(maxBytes: number): WireCodec<CoordOutcomeMessage> {
  const N = 'CoordOutcome';
  const T = pb.CoordOutcome as unknown as Generated;
  return {
    kind: 'coordoutcome',
    pattern: 'portal.coord.*.outcome',
    maxBytes,
    jetstream: true,
    encode(o, subject) {
      needObj(o, 'outcome');
      checkSubjectIdArg(subject, o.coordinatorId, 'coordinatorId');
      return finish(
        T,
        N,
        {
          version: WIRE_VERSION,
          coordinatorId: needId(o.coordinatorId, 'coordinatorId'),
          taskId: needStr(o.taskId, 'taskId'),
          taskType: needStr(o.type, 'type'),
          ok: !!o.ok,
          peerId: needStr(o.peer ?? '', 'peer', true),
          attempts: needU32(o.attempts, 'attempts'),
          failures: needU32(o.failures, 'failures'),
          latencyMs: needNum(o.latencyMs, 'latencyMs'),
          outputJson: o.ok ? jsonBytes(o.output, 'output') : new Uint8Array(0),
          error: o.ok ? '' : needStr(o.error ?? 'failed', 'error', true).slice(0, 2048),
        },
        maxBytes,
      );
    },
    decode(bytes, subject) {
      const m = raw(T, N, bytes, maxBytes);
      const coordinatorId = id(m, 'coordinatorId', N);
      checkSubjectId(N, 'coordinatorId', coordinatorId, subject);
      const ok = m.ok === true;
      const o: CoordOutcomeMessage = {
        coordinatorId,
        taskId: str(m, 'taskId', N, true, 256),
        type: str(m, 'taskType', N, true, 128),
        ok,
        peer: str(m, 'peerId', N, false, 64),
        attempts: u32(m, 'attempts'),
        failures: u32(m, 'failures'),
        latencyMs: dbl(m, 'latencyMs', N),
      };
      if (ok) {
        const output = jsonOf(m, 'outputJson', N);
        if (output !== undefined) o.output = output;
      } else o.error = str(m, 'error', N, false) || 'failed';
      return o;
    },
  };
}

/** Codecs by subject: the one place that knows which message travels on which subject. */
export interface CodecRegistry {
  readonly codecs: readonly WireCodec[];
  /** The codec of a concrete subject, or undefined when no Portal message travels there. */
  forSubject(subject: string): WireCodec | undefined;
  /** Encodes `msg` for `subject`; throws PORTAL_WIRE_UNKNOWN_SUBJECT where no codec serves it, else as WireCodec.encode. */
  encode(subject: string, msg: unknown): Uint8Array;
  /** Decodes bytes from `subject`; throws PORTAL_WIRE_UNKNOWN_SUBJECT where no codec serves it, else as WireCodec.decode. */
  decode(subject: string, bytes: Uint8Array): unknown;
}

/** Creates the registry of Portal's wire format, with optional per-kind size limits. */
export function createCodecRegistry(opts: { limits?: WireLimits } = {}): CodecRegistry {
  const lim = { ...DEFAULT_MAX_BYTES, ...(opts.limits ?? {}) };
  for (const [k, v] of Object.entries(lim))
    if (!Number.isSafeInteger(v) || v < 64)
      throw new PortalError(
        'PORTAL_INVALID_ARGUMENT',
        `limits.${k}: expected an integer ≥ 64, got ${String(v)}`,
      );
  const codecs: WireCodec[] = [
    telemetryCodec(lim.telemetry),
    haveCodec(lim.have),
    dispatchCodec(lim.dispatch),
    reportCodec(lim.report),
    cancelCodec(lim.cancel),
    deadLetterCodec(lim.deadletter),
    peerTaskCodec(lim.peertask),
    peerResultCodec(lim.peerresult),
    peerHeartbeatCodec(lim.peerheartbeat),
    coordSubmitCodec(lim.coordsubmit),
    coordOutcomeCodec(lim.coordoutcome),
    prePositionCodec(lim.preposition),
  ] as WireCodec[];
  const parsed = codecs.map((c) => ({ c, tokens: c.pattern.split('.') }));
  const forSubject = (subject: string): WireCodec | undefined => {
    const t = subject.split('.');
    return parsed.find((p) => subjectMatches(p.tokens, t))?.c;
  };
  const need = (subject: string): WireCodec => {
    const c = forSubject(subject);
    if (!c)
      throw new PortalError(
        'PORTAL_WIRE_UNKNOWN_SUBJECT',
        `no Portal message travels on subject ${JSON.stringify(subject)}`,
      );
    return c;
  };
  return {
    codecs,
    forSubject,
    encode: (subject, msg) => need(subject).encode(msg, subject),
    decode: (subject, bytes) => need(subject).decode(bytes, subject),
  };
}

/**
 * The JetStream stream that carries every subject `pattern` can match: PORTAL_TRANSFERS for
 * dispatch batches and chunk reports, PORTAL_COORD for peer tasks and the coordinator's results,
 * submissions and outcomes; undefined for core NATS subjects.
 */
export function jetStreamOf(pattern: string): string | undefined {
  const t = pattern.split('.');
  if (t.length !== 4 || t[0] !== 'portal' || t[2] === '>') return undefined;
  if (t[1] === 'transfer' && (t[3] === 'dispatch' || t[3] === 'report')) return TRANSFERS_STREAM;
  if (t[1] === 'peer' && t[3] === 'task') return COORD_STREAM;
  if (t[1] === 'coord' && (t[3] === 'result' || t[3] === 'submit' || t[3] === 'outcome')) return COORD_STREAM;
  return undefined;
}

/** True when every subject `pattern` can match is carried by JetStream (see jetStreamOf). */
export function isJetStreamPattern(pattern: string): boolean {
  return jetStreamOf(pattern) !== undefined;
}

const defaults = createCodecRegistry();
const typed = <T>(kind: WireKind) => ({
  encode: (msg: T, subject: string): Uint8Array =>
    defaults.codecs.find((c) => c.kind === kind)!.encode(msg, subject),
  decode: (bytes: Uint8Array, subject: string): T =>
    defaults.codecs.find((c) => c.kind === kind)!.decode(bytes, subject) as T,
});

/** Typed codecs with the default limits; `subject` is checked against the id in the message (pass a wildcard to skip). */
export const wire = {
  telemetry: typed<EdgeTelemetryEvent>('telemetry'),
  have: typed<EdgeHaveEvent>('have'),
  dispatch: typed<DispatchBatch>('dispatch'),
  report: typed<ChunkReport>('report'),
  cancel: typed<CancelRequest>('cancel'),
  deadLetter: typed<DeadLetterEvent>('deadletter'),
  peerTask: typed<PeerTaskMessage>('peertask'),
  peerResult: typed<PeerResultMessage>('peerresult'),
  peerHeartbeat: typed<PeerHeartbeatMessage>('peerheartbeat'),
  coordSubmit: typed<CoordSubmitMessage>('coordsubmit'),
  coordOutcome: typed<CoordOutcomeMessage>('coordoutcome'),
  prePosition: typed<PrePositionTaskMessage>('preposition'),
} as const;
