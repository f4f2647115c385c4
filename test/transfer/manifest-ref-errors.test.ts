import { createServer, type Server } from 'node:http';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { createHash } from 'node:crypto';
import { errorTable } from '../../common/error-table.js';
import { PortalError } from '../../common/errors.js';
import { encodeBinaryManifest, loadManifestRef, packManifest } from '../../transfer/index.js';
import { manifestId } from '../../transfer/manifest.js';

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

describe('loadManifestRef: every network failure of the fetch is PORTAL_MANIFEST_INVALID (400) naming the URL', () => {
  // was PORTAL_INTERNAL (500) "other side closed" / "Body Timeout Error" once the headers had come
  let server: NetServer;
  let base: string;
  const sockets = new Set<Socket>();
  const json = Buffer.from(
    JSON.stringify({
      version: 1,
      id: 'abcdef0123456789',
      name: 'f.bin',
      fileSize: 10,
      chunkSize: 262144,
      chunks: [createHash('sha256').update('0123456789').digest('hex')],
      fileSha256: createHash('sha256').update('0123456789').digest('hex'),
    }),
  );
  const fileSha = createHash('sha256').update('x').digest('hex');
  const binary = encodeBinaryManifest(
    packManifest({
      version: 1,
      id: manifestId(fileSha, 262144),
      name: 'f.bin',
      fileSize: 262144 * 40,
      chunkSize: 262144,
      chunks: Array.from({ length: 40 }, (_, i) => createHash('sha256').update(String(i)).digest('hex')),
      fileSha256: fileSha,
    }),
  );
  const head = (type: string, length: number): string =>
    `HTTP/1.1 200 OK\r\ncontent-type: ${type}\r\ncontent-length: ${length}\r\n\r\n`;
  beforeAll(async () => {
    server = createNetServer((socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.once('data', (d) => {
        const path = /^GET (\S+)/.exec(d.toString())?.[1];
        if (path === '/short') {
          // a JSON body cut after 100 of its bytes
          socket.write(head('application/json', json.length));
          socket.write(json.subarray(0, 100), () => socket.destroy());
        } else if (path === '/short-binary') {
          socket.write(head('application/vnd.portal.manifest', binary.length));
          socket.write(binary.subarray(0, 300), () => socket.destroy());
        } else if (path === '/stall') {
          socket.write(head('application/json', json.length));
          socket.write(json.subarray(0, 10)); // and nothing more
        } else if (path === '/reset') {
          socket.destroy();
        } // '/silent': no answer at all
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  });

  const failed = async (ref: string): Promise<PortalError> => {
    const err = await loadManifestRef(ref, undefined, { timeoutMs: 500 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(PortalError);
    expect((err as PortalError).code).toBe('PORTAL_MANIFEST_INVALID');
    expect(errorTable[(err as PortalError).code].http).toBe(400);
    return err as PortalError;
  };

  test('a JSON body cut short: names the URL and how many bytes came', async () => {
    const err = await failed(`${base}/short`);
    expect(err.message).toMatch(
      new RegExp(`^manifest ${base}/short: the body broke after 100 bytes \\(.+\\)$`),
    );
  });

  test('a binary manifest cut short (read by the binary reader): the same', async () => {
    const err = await failed(`${base}/short-binary`);
    expect(err.message).toMatch(
      new RegExp(`^manifest ${base}/short-binary: the body broke after 300 bytes \\(.+\\)$`),
    );
  });

  test('a body that stalls: says it stalled, for how long, after how many bytes', async () => {
    const err = await failed(`${base}/stall`);
    expect(err.message).toBe(`manifest ${base}/stall: the body stalled: no bytes for 0.5 s after 10 bytes`);
  });

  test('no answer at all, a connection closed before the answer, a refused connection', async () => {
    expect((await failed(`${base}/silent`)).message).toBe(`manifest ${base}/silent: no answer within 0.5 s`);
    expect((await failed(`${base}/reset`)).message).toMatch(
      new RegExp(`^manifest ${base}/reset: the request failed \\(.+\\)$`),
    );
    const closed = createNetServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as { port: number }).port;
    await new Promise((resolve) => closed.close(resolve));
    expect((await failed(`http://127.0.0.1:${port}/m.json`)).message).toMatch(
      new RegExp(
        `^manifest http://127.0.0.1:${port}/m.json: the request failed \\(connect ECONNREFUSED .+\\)$`,
      ),
    );
  });
});
