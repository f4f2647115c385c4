import { createCodecRegistry, wire } from '../../bus/codec.js';
import { isPortalError } from '../../common/errors.js';

const subject = 'portal.preposition.t9.start';
const msg = {
  taskId: 't9',
  request: { transferId: 't9', output: 'http://127.0.0.1:1', prePosition: { chunks: [[0, 3]] } },
};

function codeOf(fn: () => unknown): string {
  try {
    fn();
    return 'accepted';
  } catch (err) {
    return isPortalError(err) ? err.code : `untyped: ${String(err)}`;
  }
}

describe('pre-position task wire format', () => {
  test('a task round-trips through the registry, its request JSON intact', () => {
    const registry = createCodecRegistry();
    expect(registry.decode(subject, registry.encode(subject, msg))).toEqual(msg);
  });

  test('a task whose id differs from the subject or from its request, or whose request is not a JSON object, is rejected with a typed error', () => {
    const registry = createCodecRegistry();
    expect(codeOf(() => registry.encode('portal.preposition.other.start', msg))).toBe(
      'PORTAL_INVALID_ARGUMENT',
    );
    const bytes = wire.prePosition.encode(msg, subject);
    expect(codeOf(() => registry.decode('portal.preposition.other.start', bytes))).toBe(
      'PORTAL_WIRE_MALFORMED',
    );
    const mismatch = wire.prePosition.encode({ taskId: 't9', request: { transferId: 'x' } }, subject);
    expect(codeOf(() => registry.decode(subject, mismatch))).toBe('PORTAL_WIRE_MALFORMED');
    expect(codeOf(() => registry.decode(subject, bytes.subarray(0, bytes.length - 3)))).toBe(
      'PORTAL_WIRE_MALFORMED',
    );
  });
});
