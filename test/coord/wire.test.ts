import { wire, jetStreamOf } from '../../bus/codec.js';
import { subjects } from '../../bus/types.js';
import { pb } from '../../proto/index.js';

const task = {
  coordinatorId: 'c1',
  peerId: 'gpu-1',
  taskId: 'frame-7/tile-2',
  attempt: 12,
  type: 'render',
  work: 3.5,
  hour: 23,
  payload: { view: { cx: -0.75 }, x: 0, y: 90 },
  sentAtMs: 1_700_000_000_000,
};

describe('the coordinator wire messages (PeerTask, PeerResult, PeerHeartbeat, CoordSubmit, CoordOutcome)', () => {
  test('each message survives encode and decode, JSON payloads and outputs included', () => {
    const t = wire.peerTask;
    expect(t.decode(t.encode(task, subjects.peerTask('gpu-1')), subjects.peerTask('gpu-1'))).toEqual(task);
    const result = {
      coordinatorId: 'c1',
      peerId: 'gpu-1',
      taskId: 'x',
      attempt: 3,
      ok: true,
      output: { pixels: 'AAE=', checksum: 12 },
      serviceMs: 41.5,
      pressure: 0.25,
      sentAtMs: 5,
    };
    const r = wire.peerResult;
    expect(r.decode(r.encode(result, subjects.coordResult('c1')), subjects.coordResult('c1'))).toEqual(
      result,
    );
    const failed = { ...result, ok: false, output: undefined, error: 'overloaded' };
    expect(r.decode(r.encode(failed, subjects.coordResult('c1')), subjects.coordResult('c1'))).toEqual({
      coordinatorId: 'c1',
      peerId: 'gpu-1',
      taskId: 'x',
      attempt: 3,
      ok: false,
      error: 'overloaded',
      serviceMs: 41.5,
      pressure: 0.25,
      sentAtMs: 5,
    });
    const hb = {
      peerId: 'gpu-1',
      taskTypes: ['render', 'physics'],
      maxInFlight: 4,
      concurrency: 2,
      latencyHintMs: 30,
      load: 3,
      running: 2,
      queued: 1,
      pressure: 0.5,
      cpuPressure: 0.5,
      memoryPressure: 0.2,
      intervalMs: 1000,
      leaving: false,
      seq: 9,
      sentAtMs: 7,
      completed: 100,
      failed: 2,
    };
    const h = wire.peerHeartbeat;
    expect(h.decode(h.encode(hb, subjects.peerHeartbeat('gpu-1')), subjects.peerHeartbeat('gpu-1'))).toEqual(
      hb,
    );
    const submit = {
      coordinatorId: 'c1',
      submitter: 'billing',
      tasks: [
        { id: 'a', type: 'resize', work: 2, payload: [1, 2], pin: 'box-7' },
        { id: 'b', type: 'resize', work: 1 },
      ],
    };
    const s = wire.coordSubmit;
    expect(s.decode(s.encode(submit, subjects.coordSubmit('c1')), subjects.coordSubmit('c1'))).toEqual(
      submit,
    );
    const outcome = {
      coordinatorId: 'c1',
      taskId: 'a',
      type: 'resize',
      ok: true,
      peer: 'box-7',
      attempts: 2,
      failures: 1,
      latencyMs: 88,
      output: 'done',
    };
    const o = wire.coordOutcome;
    expect(o.decode(o.encode(outcome, subjects.coordOutcome('c1')), subjects.coordOutcome('c1'))).toEqual(
      outcome,
    );
  });

  test('tasks, results, submissions and outcomes travel on JetStream (stream PORTAL_COORD), heartbeats on core NATS', () => {
    expect(jetStreamOf(subjects.peerTask('a'))).toBe('PORTAL_COORD');
    expect(jetStreamOf(subjects.coordResult('a'))).toBe('PORTAL_COORD');
    expect(jetStreamOf(subjects.coordSubmit('a'))).toBe('PORTAL_COORD');
    expect(jetStreamOf(subjects.coordOutcome('*'))).toBe('PORTAL_COORD');
    expect(jetStreamOf(subjects.peerHeartbeat('a'))).toBeUndefined();
    expect(jetStreamOf(subjects.allPeerHeartbeats)).toBeUndefined();
  });

  test('encoding refuses a bad field with PORTAL_INVALID_ARGUMENT naming it', () => {
    const bad = (f: () => unknown, message: string): void =>
      expect(f).toThrow(
        expect.objectContaining({
          code: 'PORTAL_INVALID_ARGUMENT',
          message: expect.stringContaining(message),
        }),
      );
    bad(
      () => wire.peerTask.encode({ ...task, work: 0 }, subjects.peerTask('gpu-1')),
      'work: expected a number > 0',
    );
    bad(
      () => wire.peerTask.encode({ ...task, hour: 24 }, subjects.peerTask('gpu-1')),
      'hour: expected an integer in [0, 23]',
    );
    bad(() => wire.peerTask.encode({ ...task, peerId: 'gpu.1' }, '*'), 'peerId: expected an id');
    bad(
      () => wire.peerTask.encode(task, subjects.peerTask('other')),
      'peerId: expected the subject\'s id "other"',
    );
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    bad(
      () => wire.peerTask.encode({ ...task, payload: cyclic }, subjects.peerTask('gpu-1')),
      'payload: not JSON-serializable',
    );
    bad(
      () =>
        wire.coordSubmit.encode(
          { coordinatorId: 'c1', submitter: '', tasks: [] },
          subjects.coordSubmit('c1'),
        ),
      'tasks: expected a non-empty array',
    );
  });

  test('decoding refuses malformed messages with PORTAL_WIRE_MALFORMED (what a reader dead-letters)', () => {
    const malformed = (f: () => unknown, message: string): void =>
      expect(f).toThrow(
        expect.objectContaining({ code: 'PORTAL_WIRE_MALFORMED', message: expect.stringContaining(message) }),
      );
    const subject = subjects.coordResult('c1');
    malformed(
      () => wire.peerResult.decode(new Uint8Array([0x0a, 0xff, 0xff, 0x01]), subject),
      'not a valid protobuf message',
    );
    const enc = (o: object): Uint8Array => pb.PeerResult.encode(o).finish();
    malformed(
      () =>
        wire.peerResult.decode(
          enc({ version: 1, coordinatorId: 'c2', peerId: 'p', taskId: 't', attempt: 1 }),
          subject,
        ),
      'coordinatorId "c2" differs from the subject\'s "c1"',
    );
    malformed(
      () =>
        wire.peerResult.decode(enc({ version: 1, coordinatorId: 'c1', peerId: 'p', taskId: 't' }), subject),
      'attempt missing',
    );
    malformed(
      () =>
        wire.peerResult.decode(
          enc({
            version: 1,
            coordinatorId: 'c1',
            peerId: 'p',
            taskId: 't',
            attempt: 1,
            ok: true,
            outputJson: new TextEncoder().encode('{nope'),
          }),
          subject,
        ),
      'outputJson is not UTF-8 JSON',
    );
    malformed(
      () =>
        wire.peerResult.decode(
          enc({ version: 1, coordinatorId: 'c1', peerId: 'p', taskId: 't', attempt: 1, pressure: 3 }),
          subject,
        ),
      'pressure above 1',
    );
    expect(() =>
      wire.peerResult.decode(enc({ coordinatorId: 'c1', peerId: 'p', taskId: 't', attempt: 1 }), subject),
    ).toThrow(expect.objectContaining({ code: 'PORTAL_WIRE_VERSION' }));
    malformed(
      () =>
        wire.peerHeartbeat.decode(
          pb.PeerHeartbeat.encode({
            version: 1,
            peerId: 'p',
            taskTypes: [],
            maxInFlight: 1,
            concurrency: 1,
            intervalMs: 10,
          }).finish(),
          subjects.peerHeartbeat('p'),
        ),
      'taskTypes empty',
    );
  });
});
