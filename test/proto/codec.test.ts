import { createCodecRegistry, wire, DEFAULT_MAX_BYTES, type WireKind } from '../../bus/codec.js';
import type { DeadLetterEvent } from '../../bus/types.js';
import type {
  ChunkReport,
  DispatchBatch,
  EdgeHaveEvent,
  EdgeTelemetryEvent,
  CancelRequest,
} from '../../common/index.js';
import { isPortalError, type PortalError } from '../../common/errors.js';
import protobuf from 'protobufjs/minimal.js';
import { pb } from '../../proto/index.js';
import { createPrng } from '../../transfer/index.js';

const telemetry: EdgeTelemetryEvent = {
  edgeId: 'e1',
  sentAtMs: 1_700_000_000_123.5,
  online: true,
  metered: false,
  battery: { level: 0.5, charging: false, low: true },
  bandwidth: [
    { atMs: 1, bytesPerSec: 12_500_000 },
    { atMs: 2, bytesPerSec: 11_000_000.25 },
  ],
  rtt: [{ atMs: 3, rttMs: 12.5 }],
  maxParallel: 8,
  url: 'http://127.0.0.1:8080',
  kind: 'portal',
  location: 'eu-west/ams',
  accepts: true,
};
const haveFull: EdgeHaveEvent = {
  kind: 'full',
  edgeId: 'e1',
  manifestId: 'm1',
  chunkCount: 20,
  seq: 7,
  sentAtMs: 5,
  bitmap: new Uint8Array([0xff, 0x0f, 0x03]),
};
const haveInc: EdgeHaveEvent = {
  kind: 'incremental',
  edgeId: 'e1',
  manifestId: 'm1',
  chunkCount: 20,
  seq: 8,
  sentAtMs: 6,
  baseSeq: 7,
  added: [12, 19],
  removed: [0],
};
const batch: DispatchBatch = {
  transferId: 't1',
  output: '/tmp/out.bin',
  fileSize: 2 ** 40 + 5,
  items: [
    {
      chunk: 0,
      attempt: 1,
      edgeIndex: 2,
      edgeUrl: 'http://a',
      edgeKind: 'portal',
      cid: 'sha256-aa',
      offset: 0,
      length: 65536,
      timeoutMs: 10_000,
    },
    {
      chunk: 16_777_215,
      attempt: 3,
      edgeIndex: 0,
      edgeUrl: 'http://b/file',
      edgeKind: 'mirror',
      cid: 'sha256-bb',
      offset: 2 ** 40,
      length: 5,
      timeoutMs: 250,
    },
  ],
};
const reportOk: ChunkReport = {
  transferId: 't1',
  chunk: 4,
  attempt: 2,
  edgeIndex: 1,
  ok: true,
  bytes: 65536,
  firstByteMs: 1.25,
  transferMs: 20.5,
  executorId: 'x1',
};
const reportFail: ChunkReport = {
  transferId: 't1',
  chunk: 4,
  attempt: 3,
  edgeIndex: 1,
  ok: false,
  bytes: 0,
  firstByteMs: 0,
  transferMs: 10_000,
  reason: 'timeout',
  detail: 'no byte in 10 s',
  executorId: 'x1',
};
const cancel: CancelRequest = { transferId: 't1', chunk: 9, attempt: 4 };
const dead: DeadLetterEvent = {
  subject: 'portal.edge.e1.telemetry',
  code: 'PORTAL_WIRE_MALFORMED',
  reason: 'bad',
  payload: new Uint8Array([1, 2, 3]),
  payloadSize: 3,
  rejectedBy: 'c1',
  atMs: 99,
};

const registry = createCodecRegistry();

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (isPortalError(err)) return err.code;
    throw err;
  }
  return 'accepted';
}

describe('proto round trips', () => {
  test('round trip: every message decodes to what was encoded', () => {
    expect(
      wire.telemetry.decode(
        wire.telemetry.encode(telemetry, 'portal.edge.e1.telemetry'),
        'portal.edge.e1.telemetry',
      ),
    ).toEqual(telemetry);
    expect(
      wire.have.decode(wire.have.encode(haveFull, 'portal.edge.e1.have'), 'portal.edge.e1.have'),
    ).toEqual(haveFull);
    expect(wire.have.decode(wire.have.encode(haveInc, 'portal.edge.e1.have'), 'portal.edge.e1.have')).toEqual(
      haveInc,
    );
    expect(
      wire.dispatch.decode(
        wire.dispatch.encode(batch, 'portal.transfer.t1.dispatch'),
        'portal.transfer.t1.dispatch',
      ),
    ).toEqual(batch);
    expect(
      wire.report.decode(
        wire.report.encode(reportOk, 'portal.transfer.t1.report'),
        'portal.transfer.t1.report',
      ),
    ).toEqual(reportOk);
    expect(
      wire.report.decode(
        wire.report.encode(reportFail, 'portal.transfer.t1.report'),
        'portal.transfer.t1.report',
      ),
    ).toEqual(reportFail);
    const busy: ChunkReport = { ...reportFail, reason: 'busy', detail: 'HTTP 503', retryAfterMs: 5000 };
    expect(
      wire.report.decode(wire.report.encode(busy, 'portal.transfer.t1.report'), 'portal.transfer.t1.report'),
    ).toEqual(busy); // a source's Retry-After crosses NATS with the report
    expect(
      wire.cancel.decode(
        wire.cancel.encode(cancel, 'portal.transfer.t1.cancel'),
        'portal.transfer.t1.cancel',
      ),
    ).toEqual(cancel);
    expect(
      wire.deadLetter.decode(wire.deadLetter.encode(dead, 'portal.deadletter.x'), 'portal.deadletter.x'),
    ).toEqual(dead);
  });

  test('round trip: a heartbeat telemetry keeps absent fields absent (unchanged, not false)', () => {
    const hb = wire.telemetry.decode(
      wire.telemetry.encode(
        { edgeId: 'e2', sentAtMs: 0, bandwidth: [], rtt: [], url: '' },
        'portal.edge.e2.telemetry',
      ),
      'portal.edge.e2.telemetry',
    );
    expect(hb).toEqual({ edgeId: 'e2', sentAtMs: 0, bandwidth: [], rtt: [], url: '' });
    expect('online' in hb).toBe(false);
  });

  test('registry: picks the codec by subject; JetStream only for dispatch and report', () => {
    expect(registry.forSubject('portal.transfer.x.dispatch')?.kind).toBe('dispatch');
    expect(registry.forSubject('portal.transfer.x.report')?.jetstream).toBe(true);
    expect(registry.forSubject('portal.edge.x.telemetry')?.jetstream).toBe(false);
    expect(registry.forSubject('portal.deadletter.portal.edge.x.have')?.kind).toBe('deadletter');
    expect(registry.forSubject('portal.nope.x')).toBeUndefined();
    expect(codeOf(() => registry.decode('portal.nope.x', new Uint8Array(0)))).toBe(
      'PORTAL_WIRE_UNKNOWN_SUBJECT',
    );
    expect(codeOf(() => registry.encode('other.subject', {}))).toBe('PORTAL_WIRE_UNKNOWN_SUBJECT');
  });
});

describe('proto rejections', () => {
  const s = 'portal.transfer.t1.report';
  const good = wire.report.encode(reportOk, s);

  test('rejection: a message without version or with a newer one is PORTAL_WIRE_VERSION', () => {
    const noVersion = pb.ChunkReport.encode({ transferId: 't1', completed: { bytes: 1 } }).finish();
    expect(codeOf(() => wire.report.decode(noVersion, s))).toBe('PORTAL_WIRE_VERSION');
    const v2 = pb.ChunkReport.encode({ version: 2, transferId: 't1', completed: { bytes: 1 } }).finish();
    expect(codeOf(() => wire.report.decode(v2, s))).toBe('PORTAL_WIRE_VERSION');
  });

  test('rejection: every truncation of a chunk report is rejected (PORTAL_WIRE_MALFORMED; the empty prefix has no version)', () => {
    // The outcome oneof (completed = 9 / failed = 10) has the highest field numbers, so the encoder writes
    // it last, and the codec requires it: a strict prefix either lacks the outcome or ends inside a
    // field (a varint, a fixed64 double or a length-delimited body), so no prefix is a valid report.
    for (const r of [reportOk, reportFail]) {
      const bytes = wire.report.encode(r, s);
      expect(codeOf(() => wire.report.decode(bytes.subarray(0, 0), s))).toBe('PORTAL_WIRE_VERSION');
      const codes = new Set<string>();
      for (let cut = 1; cut < bytes.length; cut++)
        codes.add(`${cut}:${codeOf(() => wire.report.decode(bytes.subarray(0, cut), s))}`);
      expect([...codes]).toEqual(
        Array.from({ length: bytes.length - 1 }, (_, i) => `${i + 1}:PORTAL_WIRE_MALFORMED`),
      );
    }
  });

  test('rejection: a truncation of telemetry or a have message is rejected unless it ends on a field boundary, and then it decodes to something else', () => {
    // Protobuf has no length or end marker at the top level: a prefix that ends exactly after a field is a
    // valid encoding of the message without its later fields. Those prefixes (and only those) may decode;
    // when they do, the value must differ from the original (a dropped field is visible), never equal it.
    const cases: Array<[WireKind, string, unknown]> = [
      ['telemetry', 'portal.edge.e1.telemetry', telemetry],
      ['have', 'portal.edge.e1.have', haveFull],
      ['have', 'portal.edge.e1.have', haveInc],
    ];
    for (const [kind, subject, msg] of cases) {
      const bytes = registry.encode(subject, msg);
      const boundaries = new Set<number>();
      const reader = protobuf.Reader.create(bytes);
      while (reader.pos < reader.len) {
        const tag = reader.uint32();
        reader.skipType(tag & 7);
        boundaries.add(reader.pos);
      }
      expect(boundaries.has(bytes.length)).toBe(true);
      let decoded = 0;
      for (let cut = 1; cut < bytes.length; cut++) {
        const part = bytes.subarray(0, cut);
        let value: unknown;
        const code = codeOf(() => (value = registry.decode(subject, part)));
        if (!boundaries.has(cut)) {
          expect(`${kind} cut ${cut}: ${code}`).toBe(`${kind} cut ${cut}: PORTAL_WIRE_MALFORMED`);
          continue;
        }
        expect(['PORTAL_WIRE_MALFORMED', 'accepted']).toContain(code);
        if (code === 'accepted') {
          decoded++;
          expect(value).not.toEqual(msg);
        }
      }
      // the check above ran on real prefixes: each message has fields after its required ones
      expect(decoded).toBeGreaterThan(0);
    }
  });

  test('rejection: oversized input is PORTAL_WIRE_TOO_LARGE before parsing; encoding over the limit throws too', () => {
    expect(codeOf(() => wire.report.decode(new Uint8Array(DEFAULT_MAX_BYTES.report + 1), s))).toBe(
      'PORTAL_WIRE_TOO_LARGE',
    );
    const small = createCodecRegistry({ limits: { dispatch: 128 } });
    expect(
      codeOf(() =>
        small.encode('portal.transfer.t1.dispatch', {
          ...batch,
          items: [...batch.items, ...batch.items, ...batch.items],
        }),
      ),
    ).toBe('PORTAL_WIRE_TOO_LARGE');
  });

  test('rejection: missing required fields, unknown enums, ids that differ from the subject are PORTAL_WIRE_MALFORMED', () => {
    expect(
      codeOf(() => wire.report.decode(pb.ChunkReport.encode({ version: 1, transferId: 't1' }).finish(), s)),
    ).toBe('PORTAL_WIRE_MALFORMED');
    expect(
      codeOf(() =>
        wire.report.decode(pb.ChunkReport.encode({ version: 1, completed: { bytes: 1 } }).finish(), s),
      ),
    ).toBe('PORTAL_WIRE_MALFORMED');
    expect(
      codeOf(() =>
        wire.report.decode(
          pb.ChunkReport.encode({ version: 1, transferId: 't1', failed: { reason: 99 as never } }).finish(),
          s,
        ),
      ),
    ).toBe('PORTAL_WIRE_MALFORMED');
    expect(codeOf(() => wire.report.decode(good, 'portal.transfer.other.report'))).toBe(
      'PORTAL_WIRE_MALFORMED',
    );
    expect(codeOf(() => wire.report.decode(good, 'portal.transfer.*.report'))).toBe('accepted');
    const item = {
      chunk: 0,
      attempt: 1,
      edgeIndex: 0,
      edgeUrl: 'http://a',
      edgeKind: 0,
      cid: 'c',
      offset: 0,
      length: 1,
      timeoutMs: 1,
    };
    expect(
      codeOf(() =>
        wire.dispatch.decode(
          pb.DispatchBatch.encode({
            version: 1,
            transferId: 't1',
            output: 'o',
            fileSize: 1,
            items: [item],
          }).finish(),
          'portal.transfer.t1.dispatch',
        ),
      ),
    ).toBe('PORTAL_WIRE_MALFORMED');
    expect(
      codeOf(() =>
        wire.dispatch.decode(
          pb.DispatchBatch.encode({
            version: 1,
            transferId: 't1',
            output: 'o',
            fileSize: 0,
            items: [{ ...item, edgeKind: 1 }],
          }).finish(),
          'portal.transfer.t1.dispatch',
        ),
      ),
    ).toBe('PORTAL_WIRE_MALFORMED');
    expect(
      codeOf(() =>
        wire.have.decode(
          pb.ChunkAvailability.encode({
            version: 1,
            edgeId: 'e1',
            manifestId: 'm',
            chunkCount: 100,
            kind: 1,
            bitmap: new Uint8Array(3),
          }).finish(),
          'portal.edge.e1.have',
        ),
      ),
    ).toBe('PORTAL_WIRE_MALFORMED');
    expect(
      codeOf(() =>
        wire.have.decode(
          pb.ChunkAvailability.encode({
            version: 1,
            edgeId: 'e1',
            manifestId: 'm',
            chunkCount: 10,
            kind: 2,
            added: [10],
          }).finish(),
          'portal.edge.e1.have',
        ),
      ),
    ).toBe('PORTAL_WIRE_MALFORMED');
    expect(
      codeOf(() =>
        wire.telemetry.decode(
          pb.EdgeTelemetry.encode({
            version: 1,
            edgeId: 'e1',
            bandwidth: [{ atMs: 1, bytesPerSec: NaN }],
          }).finish(),
          'portal.edge.e1.telemetry',
        ),
      ),
    ).toBe('PORTAL_WIRE_MALFORMED');
    expect(
      codeOf(() =>
        wire.dispatch.decode(
          pb.DispatchBatch.encode({ version: 1, transferId: 't1', output: 'o', fileSize: 2 ** 60 }).finish(),
          'portal.transfer.t1.dispatch',
        ),
      ),
    ).toBe('PORTAL_WIRE_MALFORMED');
  });

  test('rejection: bad Portal objects are refused at encode with the field named', () => {
    let err: PortalError | undefined;
    try {
      wire.dispatch.encode(
        { ...batch, items: [{ ...batch.items[0], chunk: -1 }] },
        'portal.transfer.t1.dispatch',
      );
    } catch (e) {
      err = e as PortalError;
    }
    expect(err?.code).toBe('PORTAL_INVALID_ARGUMENT');
    expect(err?.message).toMatch(/items\[0\]\.chunk/);
    expect(codeOf(() => wire.report.encode({ ...reportFail, reason: undefined }, s))).toBe(
      'PORTAL_INVALID_ARGUMENT',
    );
  });
});

describe('proto fuzz', () => {
  const samples: Array<[WireKind, string, Uint8Array]> = [
    ['telemetry', 'portal.edge.e1.telemetry', wire.telemetry.encode(telemetry, 'portal.edge.e1.telemetry')],
    ['have', 'portal.edge.e1.have', wire.have.encode(haveFull, 'portal.edge.e1.have')],
    ['have', 'portal.edge.e1.have', wire.have.encode(haveInc, 'portal.edge.e1.have')],
    ['dispatch', 'portal.transfer.t1.dispatch', wire.dispatch.encode(batch, 'portal.transfer.t1.dispatch')],
    ['report', 'portal.transfer.t1.report', wire.report.encode(reportFail, 'portal.transfer.t1.report')],
    ['cancel', 'portal.transfer.t1.cancel', wire.cancel.encode(cancel, 'portal.transfer.t1.cancel')],
    ['deadletter', 'portal.deadletter.x', wire.deadLetter.encode(dead, 'portal.deadletter.x')],
  ];
  const allowed = new Set(['PORTAL_WIRE_MALFORMED', 'PORTAL_WIRE_VERSION', 'PORTAL_WIRE_TOO_LARGE']);

  const check = (subject: string, bytes: Uint8Array, tally: Record<string, number>): void => {
    let code = 'accepted';
    try {
      registry.decode(subject, bytes);
    } catch (err) {
      if (!isPortalError(err))
        throw new Error(
          `untyped rejection on ${subject} for ${Buffer.from(bytes).toString('hex')}: ${String(err)}`,
          { cause: err },
        );
      code = err.code;
      if (!allowed.has(code)) throw new Error(`unexpected code ${code}`, { cause: err });
    }
    tally[code] = (tally[code] ?? 0) + 1;
  };

  test('fuzz: random bytes never crash or hang a decoder, and every rejection is a typed PORTAL_WIRE_* error', () => {
    const rand = createPrng(42);
    const tally: Record<string, number> = {};
    for (let i = 0; i < 20_000; i++) {
      const len = Math.floor(rand() * 200);
      const b = new Uint8Array(len);
      for (let j = 0; j < len; j++) b[j] = Math.floor(rand() * 256);
      const [, subject] = samples[i % samples.length];
      check(subject, b, tally);
    }
    expect(tally.PORTAL_WIRE_MALFORMED + (tally.PORTAL_WIRE_VERSION ?? 0)).toBeGreaterThan(15_000);
  });

  test('fuzz: mutated valid messages (bit flips, byte sets, cuts, splices) decode or fail typed', () => {
    const rand = createPrng(7);
    const tally: Record<string, number> = {};
    for (let i = 0; i < 30_000; i++) {
      const [, subject, base] = samples[i % samples.length];
      const b = Uint8Array.from(base);
      let out: Uint8Array = b;
      const op = Math.floor(rand() * 5);
      const at = Math.floor(rand() * b.length);
      if (op === 0) b[at] ^= 1 << Math.floor(rand() * 8);
      else if (op === 1) b[at] = Math.floor(rand() * 256);
      else if (op === 2) out = b.subarray(0, at);
      else if (op === 3) {
        const extra = Uint8Array.from({ length: 1 + Math.floor(rand() * 16) }, () =>
          Math.floor(rand() * 256),
        );
        out = Buffer.concat([b.subarray(0, at), extra, b.subarray(at)]);
      } else {
        b[at] = 0xff;
        if (at + 1 < b.length) b[at + 1] = 0xff;
        if (at + 2 < b.length) b[at + 2] = 0x7f;
      }
      check(subject, out, tally);
    }
    expect(tally.accepted).toBeGreaterThan(0);
    expect(tally.PORTAL_WIRE_MALFORMED).toBeGreaterThan(0);
  });
});
