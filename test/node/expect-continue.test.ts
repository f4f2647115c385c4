import net from 'node:net';
import type { Server } from 'node:http';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createEmbeddedHost, createMemoryStateStore } from '../../runtime/index.js';
import { createSilentLogger } from '../../common/logger.js';
import { createEdgeServer, createManifest, type EdgeServer } from '../../transfer/index.js';
import { createPackedManifest } from '../../transfer/manifest.js';
import { binaryManifestCid, encodeBinaryManifest } from '../../transfer/manifest-binary.js';
import { serveActorApi } from '../../node/actor-api.js';
import { makeTempDir, writeRandomFile } from '../transfer/fixtures.js';

// A trial's `curl --data-binary @big.bin` (Expect: 100-continue, curl's default for a body over 1 MiB) to serve and
// to `portal edge --accept` got `100 Continue`, started the body, and saw "Broken pipe" instead of the documented
// 413: Node answered 100 Continue before any check. The checks now run first; the 100 comes only for a request that
// passed them.

/** What the server answered a request sent with `Expect: 100-continue`. */
interface Answer {
  /** Whether a `100 Continue` came before the final answer. */
  continued: boolean;
  status: number;
  body: string;
}

/**
 * Sends `head` (request line and headers, Expect and Connection: close added) and waits: on `100 Continue` it sends
 * `body`; a final answer without one is read as it is, and the body is never sent. Resolves once the server closes.
 */
function expectContinue(port: number, head: string, body: Buffer): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let text = '';
    let sent = false;
    s.on('connect', () =>
      s.write(`${head}\r\nHost: 127.0.0.1:${port}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`),
    );
    s.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      if (!sent && text.startsWith('HTTP/1.1 100 Continue\r\n\r\n')) {
        sent = true;
        s.write(body);
      }
    });
    s.on('error', () => undefined);
    s.on('close', () => {
      const continued = text.startsWith('HTTP/1.1 100 Continue\r\n\r\n');
      const final = continued ? text.slice('HTTP/1.1 100 Continue\r\n\r\n'.length) : text;
      const split = final.indexOf('\r\n\r\n');
      if (split < 0) {
        reject(new Error(`no final answer: ${JSON.stringify(text)}`));
        return;
      }
      const headers = final.slice(0, split);
      let rest = final.slice(split + 4);
      // a chunked body: its chunks' data joined
      if (/\r\ntransfer-encoding: chunked/i.test(headers)) {
        let out = '';
        for (;;) {
          const eol = rest.indexOf('\r\n');
          const size = parseInt(rest.slice(0, eol), 16);
          if (!size) break;
          out += rest.slice(eol + 2, eol + 2 + size);
          rest = rest.slice(eol + 2 + size + 2);
        }
        rest = out;
      }
      resolve({ continued, status: Number(headers.split(' ')[1]), body: rest });
    });
  });
}

/** Runs `fn` with the port of an embedded host's actor API served with `opts`; stops both after. */
async function withActorApi(
  opts: { maxBodyBytes?: number; token?: string },
  fn: (port: number) => Promise<void>,
): Promise<void> {
  const host = createEmbeddedHost({ store: createMemoryStateStore(), logger: createSilentLogger() });
  const api: Server = await serveActorApi(host, { port: 0, log: createSilentLogger(), ...opts });
  try {
    await fn((api.address() as { port: number }).port);
  } finally {
    api.closeAllConnections();
    await new Promise((resolve) => api.close(resolve));
    await host.stop();
  }
}

describe('Expect: 100-continue: a request refused by its headers gets its final answer, never a 100', () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };
  beforeAll(async () => {
    tmp = await makeTempDir('expect-continue');
  });
  afterAll(async () => {
    await tmp.cleanup();
  });

  test('the actor API answers 413 PORTAL_BODY_TOO_LARGE to a Content-Length over the limit without 100 Continue; a good call gets its 100 and its answer', async () => {
    await withActorApi({ maxBodyBytes: 1000 }, async (port) => {
      const big = await expectContinue(
        port,
        'POST /v1.0/actors/SchedulerActor/big/method/start HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 100000000',
        Buffer.alloc(0),
      );
      expect(big).toEqual({
        continued: false,
        status: 413,
        body: JSON.stringify({
          error: {
            code: 'PORTAL_BODY_TOO_LARGE',
            message: 'request body of 100000000 bytes is over the 1000-byte limit',
          },
        }),
      });
      const body = Buffer.from('{}');
      const good = await expectContinue(
        port,
        `POST /v1.0/actors/SchedulerActor/t1/method/status HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: ${body.length}`,
        body,
      );
      // the body was read and the call reached the host (which has no actor types registered) after its 100 Continue
      expect({ continued: good.continued, status: good.status }).toEqual({ continued: true, status: 404 });
      expect(JSON.parse(good.body)).toMatchObject({ error: { code: 'PORTAL_UNKNOWN_ACTOR_TYPE' } });
    });
  }, 15_000);

  test('the actor API with a token answers 401 PORTAL_UNAUTHORIZED without 100 Continue to a call without it', async () => {
    await withActorApi({ token: 'TOK' }, async (port) => {
      const answer = await expectContinue(
        port,
        'POST /v1.0/actors/SchedulerActor/t1/method/status HTTP/1.1\r\nContent-Length: 2',
        Buffer.from('{}'),
      );
      expect({ continued: answer.continued, status: answer.status }).toEqual({
        continued: false,
        status: 401,
      });
      expect(JSON.parse(answer.body)).toMatchObject({ error: { code: 'PORTAL_UNAUTHORIZED' } });
    });
  }, 15_000);

  test('an accepting edge answers a chunk PUT over the chunk length 413 and one without its token 401, both without 100 Continue; the right chunk gets its 100 and is stored', async () => {
    const file = await writeRandomFile(tmp.dir, 'f.bin', 2 * 65536);
    const manifest = await createManifest(file.path, { chunkSize: 65536 });
    const manifestDir = join(tmp.dir, 'manifests');
    await mkdir(manifestDir);
    let edge: EdgeServer | undefined;
    try {
      edge = await createEdgeServer({
        source: { path: join(tmp.dir, 'copy.bin'), manifest },
        holds: new Set(),
        accept: { token: 'PUTTOK' },
        manifests: { dir: manifestDir, token: 'PUTTOK', maxBytes: 1000 },
      });
      const cid = manifest.chunks[0];
      const auth = 'Authorization: Bearer PUTTOK';
      const big = await expectContinue(
        edge.port,
        `PUT /v1/chunks/${cid} HTTP/1.1\r\n${auth}\r\nContent-Length: 100000000`,
        Buffer.alloc(0),
      );
      expect(big).toEqual({
        continued: false,
        status: 413,
        body: JSON.stringify({ error: `body of 100000000 bytes; chunk ${cid} has 65536`, cid }),
      });
      const noToken = await expectContinue(
        edge.port,
        `PUT /v1/chunks/${cid} HTTP/1.1\r\nContent-Length: 65536`,
        Buffer.alloc(0),
      );
      expect(noToken).toEqual({
        continued: false,
        status: 401,
        body: JSON.stringify({ error: 'a PUT needs Authorization: Bearer <token>' }),
      });
      const good = await expectContinue(
        edge.port,
        `PUT /v1/chunks/${cid} HTTP/1.1\r\n${auth}\r\nContent-Length: 65536`,
        file.bytes.subarray(0, 65536),
      );
      expect({ continued: good.continued, status: good.status }).toEqual({ continued: true, status: 201 });
      expect(edge.stats().chunksAccepted).toBe(1);

      // a manifest PUT over --manifest-dir-max-bytes: 413 without 100 Continue
      const packed = await createPackedManifest(file.path, { chunkSize: 4096 });
      const bytes = encodeBinaryManifest(packed);
      const tooMuch = await expectContinue(
        edge.port,
        `PUT /v1/manifests/${binaryManifestCid(packed)} HTTP/1.1\r\n${auth}\r\nContent-Length: ${bytes.length}`,
        bytes,
      );
      expect({ continued: tooMuch.continued, status: tooMuch.status }).toEqual({
        continued: false,
        status: 413,
      });
      expect(JSON.parse(tooMuch.body)).toMatchObject({ code: 'PORTAL_MANIFEST_TOO_LARGE' });
    } finally {
      await edge?.close();
    }
  }, 15_000);
});
