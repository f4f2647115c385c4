import { createServer, type Server } from 'node:http';
import { errorTable } from '../../common/error-table.js';
import { PortalError } from '../../common/errors.js';
import { loadManifestRef } from '../../transfer/index.js';

/** The PortalError loadManifestRef rejects with for `ref`. */
const failure = async (ref: string): Promise<PortalError> => {
  const err = await loadManifestRef(ref).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PortalError);
  return err as PortalError;
};

describe('loadManifestRef: errors name manifestUrl and the cause', () => {
  let server: Server;
  let base: string;
  beforeAll(async () => {
    server = createServer((req, res) => {
      // /loop redirects to itself; /hop/N to /hop/N+1 for ever
      const hop = /^\/hop\/(\d+)$/.exec(req.url ?? '');
      const location = hop ? `/hop/${Number(hop[1]) + 1}` : '/loop';
      res.writeHead(302, { location, 'content-length': 0 }).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  test('a file:// URL with a host is a 400 naming manifestUrl and the host (was a TypeError: 500 PORTAL_INTERNAL)', async () => {
    const err = await failure('file://evil.example/etc/m.json');
    expect(err.code).toBe('PORTAL_INVALID_ARGUMENT');
    expect(errorTable[err.code].http).toBe(400);
    expect(err.message).toBe(
      'manifestUrl: a file:// URL must name a file of this host (file:///path), not one on host "evil.example"',
    );
  });

  test('a redirect loop and a redirect chain past the limit say so (was "HTTP 302")', async () => {
    const loop = await failure(`${base}/loop`);
    expect(loop.code).toBe('PORTAL_MANIFEST_INVALID');
    expect(loop.message).toBe(`manifest ${base}/loop: redirect loop (HTTP 302 back to ${base}/loop)`);
    const chain = await failure(`${base}/hop/0`);
    expect(chain.message).toBe(`manifest ${base}/hop/0: too many redirects (more than 5)`);
  });
});
