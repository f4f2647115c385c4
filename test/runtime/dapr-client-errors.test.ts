import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createDaprActorClient, errorFromResponse } from '../../runtime/dapr-client.js';

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

// daprd cuts calls that race an idle deactivation with 500 "actor lock is closed" (seen in CI against daprd 1.16 in
// dapr-semantics' repeating-reminder test). A one-module test of the client's answer to it, against an HTTP server
// standing in for daprd that answers `closedFor` calls that way, then 200.
describe('a call cut by a closing activation', () => {
  const closed = JSON.stringify({
    errorCode: 'ERR_ACTOR_INVOKE_METHOD',
    message:
      'error invoke actor method: Put "http://127.0.0.1:44087/actors/ProbeActor/repeat/method/remindCount": actor lock is closed',
  });
  async function sidecar(
    closedFor: number,
    answer = closed,
  ): Promise<{ port: number; calls: () => number; close: () => Promise<void> }> {
    let calls = 0;
    const server = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        calls++;
        if (calls <= closedFor) res.writeHead(500, { 'content-type': 'application/json' }).end(answer);
        else res.writeHead(200, { 'content-type': 'application/json' }).end('"ran"');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return {
      port: (server.address() as AddressInfo).port,
      calls: () => calls,
      close: () => new Promise<void>((r) => server.close(() => r())),
    };
  }

  test('is sent again, and answers once the actor is activated again', async () => {
    const d = await sidecar(2);
    const client = createDaprActorClient({ port: d.port });
    try {
      await expect(client.invoke('ProbeActor', 'repeat', 'remindCount', { name: 'every' })).resolves.toBe(
        'ran',
      );
      expect(d.calls()).toBe(3);
    } finally {
      client.close();
      await d.close();
    }
  });

  test('gives up after 3 more tries with PORTAL_HOST_UNAVAILABLE naming the cause', async () => {
    const d = await sidecar(100);
    const client = createDaprActorClient({ port: d.port });
    try {
      await expect(client.invoke('ProbeActor', 'repeat', 'remindCount')).rejects.toMatchObject({
        code: 'PORTAL_HOST_UNAVAILABLE',
        message: expect.stringContaining('actor lock is closed'),
      });
      expect(d.calls()).toBe(4);
    } finally {
      client.close();
      await d.close();
    }
  });

  test('other 500s are not sent again', async () => {
    const d = await sidecar(
      100,
      JSON.stringify({ errorCode: 'ERR_ACTOR_INVOKE_METHOD', message: 'error invoke actor method: boom' }),
    );
    const client = createDaprActorClient({ port: d.port });
    try {
      await expect(client.invoke('ProbeActor', 'x', 'noop')).rejects.toMatchObject({
        code: 'PORTAL_HOST_UNAVAILABLE',
      });
      expect(d.calls()).toBe(1);
    } finally {
      client.close();
      await d.close();
    }
  });
});
