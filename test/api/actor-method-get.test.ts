import { startEmbeddedServe, type EmbeddedServe } from '../helpers/portal-cli.js';

// A GET on /v1.0/actors/<type>/<id>/method/<method> answered 404 PORTAL_UNKNOWN_ACTOR_METHOD "no actor API route
// GET", as if the URL were wrong. The URL is right and the method is not: 405 with Allow. (daprd also routes GET;
// this API does not, since its browser guard checks only POST/PUT, and a cross-site GET must not cancel a transfer.)

let serve: EmbeddedServe | undefined;
afterAll(() => {
  serve?.child.kill('SIGTERM');
});

test('GET or DELETE on an actor method route of the embedded API is 405 with Allow: POST, PUT', async () => {
  serve = await startEmbeddedServe([]);
  const url = `${serve.base}/SchedulerActor/no-such-transfer/method/cancel`;
  for (const method of ['GET', 'DELETE']) {
    const r = await fetch(url, { method });
    expect(r.status).toBe(405);
    expect(r.headers.get('allow')).toBe('POST, PUT');
    const body = (await r.json()) as { error: { message: string } };
    expect(body.error.message).toContain('an actor method is called with POST (or PUT) on this API');
  }
}, 60_000);
