import { errorFromResponse } from '../../runtime/dapr-client.js';

// daprd's refusals of an actor call, as daprd 1.16.5 answered them in test/dapr/dapr-semantics.test.ts,
// map to what they are instead of PORTAL_HOST_STOPPED. (A unit test of the mapping alone; the real answers are
// checked against a running daprd there.)
const invoke = (message: string): string => JSON.stringify({ errorCode: 'ERR_ACTOR_INVOKE_METHOD', message });
const codeOf = (status: number, text: string): string | undefined =>
  (errorFromResponse('ProbeActor/x.noop', status, text) as { code?: string }).code;

test('daprd refusals map to unknown method, unknown type, bad argument, host unavailable and timeout', () => {
  expect(
    codeOf(
      500,
      invoke('error invoke actor method: actor method not found: actors/ProbeActor/a/b/method/noop'),
    ),
  ).toBe('PORTAL_UNKNOWN_ACTOR_METHOD');
  expect(
    codeOf(
      500,
      invoke(
        'error invoke actor method: parse "http://127.0.0.1:34143/actors/ProbeActor/a\\nb/method/noop": net/url: invalid control character in URL',
      ),
    ),
  ).toBe('PORTAL_INVALID_ARGUMENT');
  expect(
    codeOf(
      500,
      invoke(
        'error invoke actor method: failed to lookup actor: api error: code = FailedPrecondition desc = did not find address for actor',
      ),
    ),
  ).toBe('PORTAL_UNKNOWN_ACTOR_TYPE');
  expect(
    codeOf(
      404,
      JSON.stringify({
        errorCode: 'ERR_DIRECT_INVOKE',
        message: 'failed getting app id either from the URL path or the header dapr-app-id',
      }),
    ),
  ).toBe('PORTAL_INVALID_ARGUMENT');
  expect(
    codeOf(
      500,
      invoke('error invoke actor method: error from actor service: (400) <!DOCTYPE html><pre>SyntaxError'),
    ),
  ).toBe('PORTAL_INVALID_ARGUMENT');
  expect(
    codeOf(500, invoke('error invoke actor method: rpc error: code = Unavailable desc = connection refused')),
  ).toBe('PORTAL_HOST_UNAVAILABLE');
  expect(codeOf(500, invoke('error invoke actor method: context deadline exceeded'))).toBe(
    'PORTAL_ACTOR_TIMEOUT',
  );
  expect(codeOf(401, JSON.stringify({ errorCode: 'ERR_UNAUTHORIZED', message: 'bad token' }))).toBe(
    'PORTAL_CONFIG_INVALID',
  );
  expect(codeOf(503, 'no JSON at all')).toBe('PORTAL_HOST_UNAVAILABLE');
});

test("an actor's own error travels back with its code, also wrapped in daprd's message", () => {
  const body = JSON.stringify({ error: { code: 'PORTAL_UNKNOWN_ACTOR_METHOD', message: 'no method nope' } });
  expect(errorFromResponse('T/x.nope', 400, body)).toMatchObject({
    code: 'PORTAL_UNKNOWN_ACTOR_METHOD',
    message: 'no method nope',
  });
  expect(
    errorFromResponse(
      'T/x.nope',
      500,
      invoke(`error invoke actor method: error from actor service: (400) ${body}`),
    ),
  ).toMatchObject({ code: 'PORTAL_UNKNOWN_ACTOR_METHOD' });
});
