import { PortalError, codeOf, isPortalError } from '../../common/errors.js';
import { errorTable, exitCodeFor, httpStatusFor, isPortalErrorCode } from '../../common/error-table.js';
import { defineLayout } from '../../stream/index.js';
import { BackpressureBuffer, defaultBackpressureConfig } from '../../stream/index.js';
import { ManualClock } from '../../common/clock.js';

test('the exit codes follow the README table: 2 bad usage, configuration or a missing GPU; 3 transfer failed; 4 the rest', () => {
  for (const c of [
    'PORTAL_INVALID_ARGUMENT',
    'PORTAL_CONFIG_INVALID',
    'PORTAL_MANIFEST_INVALID',
    'PORTAL_GPU_UNAVAILABLE',
  ] as const)
    expect([c, exitCodeFor(c)]).toEqual([c, 2]);
  expect(exitCodeFor('PORTAL_TRANSFER_FAILED')).toBe(3);
  expect(exitCodeFor('PORTAL_VERIFY_FAILED')).toBe(3);
  expect(exitCodeFor('PORTAL_EDGE_UNREACHABLE')).toBe(4);
  expect(exitCodeFor('PORTAL_INTERNAL')).toBe(4);
  // 0 and 1 are results, never failures
  for (const [code, d] of Object.entries(errorTable))
    expect([code, d.exit >= 2 && d.exit <= 4]).toEqual([code, true]);
});

test('HTTP statuses: a wrong request is 4xx, an unknown actor type or method 404, a failed upstream 502/504, an unavailable dependency 503, a bug 500', () => {
  expect(httpStatusFor('PORTAL_INVALID_ARGUMENT')).toBe(400);
  expect(httpStatusFor('PORTAL_UNKNOWN_ACTOR_METHOD')).toBe(404);
  expect(httpStatusFor('PORTAL_UNKNOWN_ACTOR_TYPE')).toBe(404);
  expect(httpStatusFor('PORTAL_EDGE_UNREACHABLE')).toBe(502);
  expect(httpStatusFor('PORTAL_EDGE_TIMEOUT')).toBe(504);
  expect(httpStatusFor('PORTAL_BUS_UNAVAILABLE')).toBe(503);
  expect(httpStatusFor('PORTAL_GPU_UNAVAILABLE')).toBe(503);
  expect(httpStatusFor('PORTAL_INTERNAL')).toBe(500);
  for (const [code, d] of Object.entries(errorTable))
    expect([code, d.http >= 400 && d.http <= 599]).toEqual([code, true]);
});

test('errors of the stream area are PortalErrors that isPortalError matches by code, and anything else reports PORTAL_INTERNAL', async () => {
  const layout = (() => {
    try {
      defineLayout({ name: '9bad', fields: [] });
      return undefined;
    } catch (e) {
      return e;
    }
  })();
  expect(layout).toBeInstanceOf(PortalError);
  expect(isPortalError(layout, 'PORTAL_STREAM_BAD_LAYOUT')).toBe(true);
  expect(codeOf(layout)).toBe('PORTAL_STREAM_BAD_LAYOUT');

  const buf = new BackpressureBuffer(defaultBackpressureConfig, 4, new ManualClock());
  buf.close();
  const stopped = await buf.push(new Uint8Array(4)).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isPortalError(stopped, 'PORTAL_STREAM_STOPPED')).toBe(true);

  expect(codeOf(new TypeError('boom'))).toBe('PORTAL_INTERNAL');
  expect(codeOf('a string')).toBe('PORTAL_INTERNAL');
});

test('isPortalErrorCode accepts exactly the codes of the table, so a code read off the wire is checked, not cast', () => {
  expect(isPortalErrorCode('PORTAL_GPU_UNAVAILABLE')).toBe(true);
  expect(isPortalErrorCode('PORTAL_STREAM_STOPPED')).toBe(true);
  expect(isPortalErrorCode('PORTAL_NOT_A_CODE')).toBe(false);
  expect(isPortalErrorCode('toString')).toBe(false);
  expect(isPortalErrorCode(42)).toBe(false);
});
