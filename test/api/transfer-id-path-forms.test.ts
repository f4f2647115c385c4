import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { request } from 'undici';
import { createContentServer, type ContentSource } from '../../transfer/content-server.js';
import { createManifest, type Manifest } from '../../transfer/manifest.js';
import { encodeActorId } from '../../runtime/state-keys.js';
import type { TransferRequest, TransferStatus } from '../../actors/index.js';
import { freePort } from '../../harness/index.js';
import { createMesh, type Mesh } from '../helpers/mesh.js';
import { startServe, call, type PortalProcess } from '../fabric/helpers.js';

// One transfer id, one set of URL forms: the actor API takes an id that is not plain as "~" and the base64url of its
// UTF-8 (encodeActorId), and the content route took only the %-encoded id (a trial read `~PGlt…/content` and got
// 404 "transfer is unknown"). Both content servers (portal serve's API, fetch --serve's) now take either form; a path
// whose id spans segments (an id with "/", which daprd and proxies split before routing) says which form to send.
const ODD = '<img src=x onerror=alert(1)> a/b';
const CHUNK = 4096;

describe('content server (fetch --serve): a transfer id in either form', () => {
  let dir: string;
  let file: string;
  let manifest: Manifest;
  let bytes: Buffer;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'portal-id-forms-'));
    file = path.join(dir, 'out.bin');
    bytes = randomBytes(CHUNK * 3);
    await writeFile(file, bytes);
    manifest = await createManifest(file, { chunkSize: CHUNK });
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  test('~base64url and %-encoding both read the transfer; a split id is a 404 naming the ~ form', async () => {
    const source: ContentSource = {
      info: async () => ({ manifest, output: file, state: 'done' }),
      read: async () => ({ state: 'done', first: 0, last: 2, complete: [0, 1, 2] }),
      known: () => true,
    };
    const asked: string[] = [];
    const server = await createContentServer({
      sources: (id) => {
        asked.push(id);
        return id === ODD || id === 'plain.id' ? source : undefined;
      },
    });
    try {
      const wire = encodeActorId(ODD);
      expect(wire.startsWith('~')).toBe(true);
      for (const seg of [wire, encodeURIComponent(ODD), 'plain.id']) {
        const r = await request(`${server.url}/v1/transfers/${seg}/content`);
        expect({ seg, status: r.statusCode }).toEqual({ seg, status: 200 });
        expect(Buffer.from(await r.body.arrayBuffer()).equals(bytes)).toBe(true);
      }
      expect(asked).toEqual([ODD, ODD, 'plain.id']);
      // a "~" segment is always a wire form, as on the actor API: `~dDk` (the plain id t9 in disguise) and `~abc`
      // (no base64url of an id) are 400 saying what to send, never looked up as ids
      for (const [seg, why] of [
        [
          '~dDk',
          'it encodes "t9", a plain id, which is sent as it is: "t9". An id that itself begins with "~" is sent as "~fmREaw"',
        ],
        ['%7EdDk', 'it encodes "t9", a plain id, which is sent as it is: "t9"'],
        [
          '~abc',
          '"abc" is not the base64url (unpadded) of the UTF-8 of an id. An id that itself begins with "~" is sent as "~fmFiYw"',
        ],
      ]) {
        const r = await request(`${server.url}/v1/transfers/${seg}/content`);
        expect({ seg, status: r.statusCode }).toEqual({ seg, status: 400 });
        const body = (await r.body.json()) as { error: string; code: string };
        expect(body.code).toBe('PORTAL_INVALID_ARGUMENT');
        expect(body.error).toContain(why);
      }
      expect(asked).toEqual([ODD, ODD, 'plain.id']);
      // "a/b" sent as it is (or %2F-decoded by a proxy): two segments, no route; the answer says how to send it
      const split = await request(`${server.url}/v1/transfers/a/b/content`);
      expect(split.statusCode).toBe(404);
      expect(((await split.body.json()) as { error: string }).error).toBe(
        `no such transfer; if "a/b" is one id, send it as "~YS9i" ("~" and the base64url of its UTF-8: encodeActorId in runtime/state-keys.ts; createDaprActorClient does it): a "/" in an id, even %-encoded, becomes a path separator before the route is chosen`,
      );
    } finally {
      await server.close();
    }
  });
});

describe('portal serve: the content route takes the actor API wire form of a transfer id', () => {
  let mesh: Mesh | undefined;
  let serve: PortalProcess | undefined;
  afterAll(async () => {
    serve?.child.kill('SIGTERM');
    await serve?.exit;
    await mesh?.close();
  });

  test('a transfer started as ~base64url is read at /v1/transfers/~…/content and %-encoded alike; an unknown ~ id is 404 naming the decoded id', async () => {
    mesh = await createMesh(8 * CHUNK, CHUNK, [{}]);
    const port = await freePort();
    serve = await startServe(port, mesh.dir);
    const wire = encodeActorId(ODD);
    const api = `http://127.0.0.1:${port}/v1.0/actors/SchedulerActor/${wire}/method`;
    const req: TransferRequest = {
      transferId: ODD,
      manifest: mesh.manifest,
      output: path.join(mesh.dir, 'odd.bin'),
      edges: [
        {
          id: 'e0',
          config: { url: mesh.servers[0].url, kind: 'portal', flags: 0, maxParallel: 4 },
          holds: 'all',
        },
      ],
    };
    expect(await call(api, 'start', req)).toMatchObject({ status: 200 });
    for (let i = 0; i < 400; i++) {
      if (((await call(api, 'status')).json as TransferStatus).state === 'done') break;
      await new Promise((r) => setTimeout(r, 25));
    }
    const file = await readFile(mesh.source);
    const base = `http://127.0.0.1:${port}/v1/transfers`;
    for (const seg of [wire, encodeURIComponent(ODD)]) {
      const r = await request(`${base}/${seg}/content`);
      expect({ seg, status: r.statusCode }).toEqual({ seg, status: 200 });
      expect(Buffer.from(await r.body.arrayBuffer()).equals(file)).toBe(true);
    }
    const unknown = await request(`${base}/${encodeActorId('no such <id>')}/content`);
    expect(unknown.statusCode).toBe(404);
    expect(((await unknown.body.json()) as { error: { message: string } }).error.message).toContain(
      'transfer "no such <id>" is unknown',
    );
    // the "~" form of a plain id: 400 explaining the canonical form on the content route, as on the actor API
    const disguised = Buffer.from('e0', 'utf8').toString('base64url');
    const content = await request(`${base}/~${disguised}/content`);
    expect(content.statusCode).toBe(400);
    expect(await content.body.json()).toEqual({
      error: {
        code: 'PORTAL_INVALID_ARGUMENT',
        message: `transfer id "~${disguised}" is refused: "~" begins an encoded id (the actor API's wire form: "~" and the base64url of the id's UTF-8, only for an id that is not plain letters, digits, "_", "-" and "."), and it encodes "e0", a plain id, which is sent as it is: "e0". An id that itself begins with "~" is sent as "${encodeActorId(`~${disguised}`)}"`,
      },
    });
    const actor = await call(
      `http://127.0.0.1:${port}/v1.0/actors/SchedulerActor/~${disguised}/method`,
      'status',
    );
    expect(actor.status).toBe(400);
    expect(actor.json).toMatchObject({ error: { code: 'PORTAL_INVALID_ARGUMENT' } });
    // an id with "/" sent as it is: no route, and the answer names the form to send
    const split = await request(`http://127.0.0.1:${port}/v1.0/actors/SchedulerActor/a/b/method/status`, {
      method: 'POST',
    });
    expect(split.statusCode).toBe(404);
    expect(((await split.body.json()) as { error: { message: string } }).error.message).toContain(
      'if "a/b" is one id, send it as "~YS9i"',
    );
  });
});
