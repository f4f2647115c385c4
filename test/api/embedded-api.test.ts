import { jest } from '@jest/globals';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import http from 'node:http';
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { freePort } from '../../common/net.js';
import { actorApiContract } from '../../api/validate.js';
import { createTransferFixture, waitFor, type TransferFixture } from '../helpers/dapr.js';
import { makeTempDir, randomBytes } from '../transfer/fixtures.js';
import { lastJson, runPortal } from '../helpers/portal-cli.js';

// The embedded host's HTTP actor API as another team's service meets it: `portal serve --runtime embedded`
// (dist/, a real process on a free port) with a real transfer from two loopback edges. Bodies are JSON whatever
// the content type, errors are one envelope with the right status, and a transfer can be started, watched,
// cancelled, restarted and forgotten.
jest.setTimeout(120_000);

const repo = resolve(new URL('../..', import.meta.url).pathname);

let serve: ChildProcess;
let base: string;
let tmp: { dir: string; cleanup: () => Promise<void> };
let fixture: TransferFixture;

/** POST to the API with a raw body and content type; answers the status, content type and parsed body. */
async function call(
  path: string,
  body?: string,
  contentType?: string,
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
): Promise<{ status: number; type: string | null; body: any }> {
  const res = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: contentType ? { 'content-type': contentType } : {},
    body,
  });
  const text = await res.text();
  return {
    status: res.status,
    type: res.headers.get('content-type'),
    body: text.length ? JSON.parse(text) : undefined,
  };
}
const actor = (type: string, id: string, method: string): string =>
  `/v1.0/actors/${type}/${encodeURIComponent(id)}/method/${method}`;

beforeAll(async () => {
  tmp = await makeTempDir('embedded-api');
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  serve = spawn(
    process.execPath,
    [
      join(repo, 'dist/cli/main.js'),
      'serve',
      '--runtime',
      'embedded',
      '--app-port',
      String(port),
      '--output-root',
      tmp.dir,
      '--json',
    ],
    { env: { ...process.env, PORTAL_TEST_ACTORS: '1', NATS_URL: '' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  serve.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  serve.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  await waitFor(
    () => out.includes('"type":"ready"'),
    30_000,
    () => `serve ready: ${out}`,
    () => serve.exitCode !== null,
  );
  fixture = await createTransferFixture(tmp.dir, { transferId: 'emb-1', seed: 7 });
});

afterAll(async () => {
  // serve stops its actors (journals written) before the folder goes
  if (serve && serve.exitCode === null) {
    const exited = new Promise((r) => serve.once('exit', r));
    serve.kill('SIGTERM');
    await exited;
  }
  await fixture?.close();
  await tmp?.cleanup();
});

describe('embedded actor API: bodies', () => {
  test.each([
    ['no content type', undefined],
    ['a form content type (curl -d)', 'application/x-www-form-urlencoded'],
    ['text/plain', 'text/plain'],
    ['application/json', 'application/json'],
  ])('a body with %s is read as JSON, scalars included', async (_, type) => {
    for (const [text, value, jsType] of [
      ['5', 5, 'number'],
      ['"text"', 'text', 'string'],
      ['true', true, 'boolean'],
      ['null', null, 'null'],
      ['{"a":[1,2]}', { a: [1, 2] }, 'object'],
    ] as const) {
      const r = await call(actor('ProbeActor', 'p', 'echo'), text, type);
      expect({ text, status: r.status, body: r.body }).toEqual({
        text,
        status: 200,
        body: { arg: value, type: jsType },
      });
    }
    const none = await call(actor('ProbeActor', 'p', 'echo'), undefined, type);
    expect(none.body).toEqual({ arg: '(none)', type: 'undefined' });
  });

  test('a query string after the method is accepted', async () => {
    const r = await call(`${actor('ProbeActor', 'p', 'echo')}?trace=1&x=y`, '7');
    expect(r).toMatchObject({ status: 200, body: { arg: 7 } });
  });

  test('malformed JSON is a 400 envelope naming the parser error, never HTML or a stack', async () => {
    const r = await call(actor('ProbeActor', 'p', 'echo'), '{"a":', 'application/json');
    expect(r.status).toBe(400);
    expect(r.type).toMatch(/^application\/json/);
    expect(r.body.error.code).toBe('PORTAL_INVALID_ARGUMENT');
    expect(r.body.error.message).toMatch(/not JSON/);
    expect(JSON.stringify(r.body)).not.toMatch(/<html|\s+at |\/dist\//i);
  });

  test('unknown routes, types and methods are 404 envelopes', async () => {
    expect((await call('/nope')).body.error.code).toBe('PORTAL_UNKNOWN_ACTOR_METHOD');
    const type = await call(actor('NoSuchActor', 'x', 'status'));
    expect(type).toMatchObject({ status: 404, body: { error: { code: 'PORTAL_UNKNOWN_ACTOR_TYPE' } } });
    const method = await call(actor('SchedulerActor', 'x', 'launch'));
    expect(method).toMatchObject({ status: 404, body: { error: { code: 'PORTAL_UNKNOWN_ACTOR_METHOD' } } });
  });
});

describe('embedded actor API: transfer lifecycle', () => {
  test('status, cancel, restart and forget of an id never started are 404 PORTAL_UNKNOWN_TRANSFER', async () => {
    for (const m of ['status', 'cancel', 'restart', 'forget']) {
      const r = await call(actor('SchedulerActor', 'never-started', m));
      expect({ m, status: r.status, code: r.body?.error?.code }).toEqual({
        m,
        status: 404,
        code: 'PORTAL_UNKNOWN_TRANSFER',
      });
    }
  });

  test('a failed start ("tickMs":"fast") leaves nothing, and the corrected start on the same id runs', async () => {
    const bad = await call(
      actor('SchedulerActor', 'emb-1', 'start'),
      JSON.stringify({ ...fixture.request, tickMs: 'fast', edges: [{ id: 'e', config: { url: 'x' } }] }),
    );
    expect(bad.status).toBe(400);
    expect(bad.body.error.fields).toEqual(
      expect.arrayContaining([
        { path: '/tickMs', message: 'must be number' },
        { path: '/edges/0/config/url', message: 'must match pattern "^[Hh][Tt][Tt][Pp][Ss]?://"' },
        { path: '/edges/0/config/kind', message: 'is required' },
      ]),
    );
    expect((await call(actor('SchedulerActor', 'emb-1', 'status'))).status).toBe(404);
    const ok = await call(actor('SchedulerActor', 'emb-1', 'start'), JSON.stringify(fixture.request));
    expect(ok).toMatchObject({ status: 200, body: { transferId: 'emb-1', state: 'running' } });
  });

  test('a start of more than 1024 edges is refused naming the cap; an error lists at most 100 problems and counts the rest', async () => {
    const edge = (i: number) => ({
      id: `e${i}`,
      config: { url: `http://127.0.0.1:${1 + i}`, kind: 'mirror', flags: 0, maxParallel: 4 },
    });
    const many = await call(
      actor('SchedulerActor', 'emb-cap', 'start'),
      JSON.stringify({
        ...fixture.request,
        transferId: 'emb-cap',
        edges: Array.from({ length: 1025 }, (_, i) => edge(i)),
      }),
    );
    expect(many.status).toBe(400);
    expect(many.body.error.fields).toEqual([
      { path: '/edges', message: 'must NOT have more than 1024 items' },
    ]);
    // 1000 bad edges: 3000 problems in a body of ~2000 values (old code: all 3000 in the answer)
    const bad = await call(
      actor('SchedulerActor', 'emb-cap', 'start'),
      JSON.stringify({
        ...fixture.request,
        transferId: 'emb-cap',
        edges: Array.from({ length: 1000 }, () => ({ a: 'b' })),
      }),
    );
    expect(bad.status).toBe(400);
    expect(bad.body.error.fields).toHaveLength(101);
    expect(bad.body.error.fields[100]).toEqual({
      path: '',
      message: 'and 2900 more problems (at most 100 are listed)',
    });
    expect((await call(actor('SchedulerActor', 'emb-cap', 'status'))).status).toBe(404);
  });

  test('a running transfer is cancelled, refuses a second restart only while running, restarts and finishes verified', async () => {
    const id = 'emb-1';
    await waitFor(
      async () => (await call(actor('SchedulerActor', id, 'status'))).body.complete >= 8,
      30_000,
      'some chunks complete',
    );
    const conflict = await call(actor('SchedulerActor', id, 'restart'));
    expect(conflict).toMatchObject({ status: 409, body: { error: { code: 'PORTAL_TRANSFER_CONFLICT' } } });
    const cancelled = await call(actor('SchedulerActor', id, 'cancel'));
    expect(cancelled).toMatchObject({ status: 200, body: { state: 'cancelled' } });
    const restarted = await call(actor('SchedulerActor', id, 'restart'));
    expect(restarted.status).toBe(200);
    expect(restarted.body.state).toBe('running');
    expect(restarted.body.resumedChunks).toBeGreaterThanOrEqual(8);
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    let s: any;
    await waitFor(
      async () =>
        ['done', 'failed'].includes((s = (await call(actor('SchedulerActor', id, 'status'))).body).state),
      60_000,
      'transfer ends',
    );
    expect(s).toMatchObject({ state: 'done', verified: true, complete: fixture.chunks });
    // the answers match their schemas in api/schemas (what other languages generate their types from)
    const contract = actorApiContract();
    expect(contract.responseProblems('SchedulerActor', 'status', s)).toEqual([]);
    expect(contract.responseProblems('SchedulerActor', 'cancel', cancelled.body)).toEqual([]);
    expect(contract.responseProblems('SchedulerActor', 'restart', restarted.body)).toEqual([]);
    const edge = await call(actor('EdgeActor', fixture.request.edges[0].id, 'snapshot'));
    expect(edge.status).toBe(200);
    expect(contract.responseProblems('EdgeActor', 'snapshot', edge.body)).toEqual([]);
    const sha = createHash('sha256')
      .update(await readFile(fixture.output))
      .digest('hex');
    expect(sha).toBe(fixture.manifest.fileSha256);
    expect((await call(actor('SchedulerActor', id, 'restart'))).status).toBe(409);
  });

  test('forget removes the transfer: its status is 404 afterwards and the id can be started again', async () => {
    const r = await call(actor('SchedulerActor', 'emb-1', 'forget'));
    expect(r).toMatchObject({ status: 200, body: { transferId: 'emb-1', forgotten: true } });
    expect((await call(actor('SchedulerActor', 'emb-1', 'status'))).body.error.code).toBe(
      'PORTAL_UNKNOWN_TRANSFER',
    );
  });
});

describe('embedded actor API: manifest by reference', () => {
  test('a start with a manifestUrl (http) instead of the manifest runs to a verified output; a path works too', async () => {
    const f = await createTransferFixture(tmp.dir, { transferId: 'emb-ref', seed: 11 });
    const manifestJson = JSON.stringify(f.manifest);
    const server = http.createServer((req, res) => {
      if (req.url === '/m.json') res.writeHead(200, { 'content-type': 'application/json' }).end(manifestJson);
      else res.writeHead(404).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    try {
      const { manifest: _inline, ...rest } = f.request;
      const request = { ...rest, output: join(tmp.dir, 'out-ref.bin') };
      const manifestUrl = `http://127.0.0.1:${(server.address() as { port: number }).port}/m.json`;
      const body = JSON.stringify({ ...request, manifestUrl });
      expect(body.length).toBeLessThan(manifestJson.length); // the start body no longer carries the chunk list
      const started = await call(actor('SchedulerActor', 'emb-ref', 'start'), body);
      expect(started).toMatchObject({ status: 200, body: { state: 'running', total: f.chunks } });
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      let s: any;
      await waitFor(
        async () =>
          ['done', 'failed'].includes(
            (s = (await call(actor('SchedulerActor', 'emb-ref', 'status'))).body).state,
          ),
        60_000,
        'transfer by reference ends',
      );
      expect(s).toMatchObject({ state: 'done', verified: true, complete: f.chunks });
      // a missing manifest is a 400 naming the reference, and leaves nothing
      const missing = await call(
        actor('SchedulerActor', 'emb-ref-2', 'start'),
        JSON.stringify({ ...request, transferId: 'emb-ref-2', manifestUrl: `${manifestUrl}.nope` }),
      );
      expect(missing).toMatchObject({ status: 400, body: { error: { code: 'PORTAL_MANIFEST_INVALID' } } });
      expect(missing.body.error.message).toMatch(/HTTP 404/);
      expect((await call(actor('SchedulerActor', 'emb-ref-2', 'status'))).status).toBe(404);
      // an absolute path on the host
      const path = join(tmp.dir, 'm.json');
      await writeFile(path, manifestJson);
      const byPath = await call(
        actor('SchedulerActor', 'emb-ref-3', 'start'),
        JSON.stringify({
          ...request,
          transferId: 'emb-ref-3',
          output: join(tmp.dir, 'out3.bin'),
          manifestUrl: path,
        }),
      );
      expect(byPath).toMatchObject({ status: 200, body: { state: 'running', total: f.chunks } });
      expect((await call(actor('SchedulerActor', 'emb-ref-3', 'forget'))).status).toBe(200);
    } finally {
      server.closeAllConnections();
      server.close();
      await f.close();
    }
  });
});

describe('embedded actor API: a manifestUrl JSON is read no further than its cap', () => {
  test('an answer declaring more than MAX_JSON_MANIFEST_BYTES, and one sending an endless body, are refused naming the cap', async () => {
    const { MAX_JSON_MANIFEST_BYTES } = await import('../../transfer/manifest.js');
    expect(MAX_JSON_MANIFEST_BYTES).toBe(536_870_888); // the string limit binds (65,536 + 50M × 75 is 3.75 GB)
    const f = await createTransferFixture(tmp.dir, { transferId: 'emb-cap', seed: 12 });
    let sent = 0;
    const piece = Buffer.alloc(1 << 20, 0x30); // '0' digits inside an unterminated CID string
    const server = http.createServer((req, res) => {
      if (req.url === '/declared.json') {
        // a length past the cap: refused before its body is read
        res.writeHead(200, {
          'content-type': 'application/json',
          'content-length': MAX_JSON_MANIFEST_BYTES + 1,
        });
        res.write('{"chunks":["');
        return;
      }
      // an endless chunked body
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"chunks":["');
      const more = (): void => {
        while (!res.destroyed && res.write(piece)) sent += piece.length;
        if (!res.destroyed) res.once('drain', more);
      };
      res.on('close', () => res.off('drain', more));
      more();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    try {
      const { manifest: _inline, ...rest } = f.request;
      const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
      const cap = `past the cap of ${MAX_JSON_MANIFEST_BYTES} bytes of JSON`;
      const start = (id: string, file: string): ReturnType<typeof call> =>
        call(
          actor('SchedulerActor', id, 'start'),
          JSON.stringify({
            ...rest,
            transferId: id,
            output: join(tmp.dir, `${id}.bin`),
            manifestUrl: `${url}/${file}`,
          }),
        );
      const declared = await start('emb-cap-1', 'declared.json');
      expect(declared.status).toBe(413);
      expect(declared.body.error.code).toBe('PORTAL_MANIFEST_TOO_LARGE');
      expect(declared.body.error.message).toContain(
        `its Content-Length of ${MAX_JSON_MANIFEST_BYTES + 1} bytes is ${cap}`,
      );
      const endless = await start('emb-cap-2', 'endless.json');
      expect(endless.status).toBe(413);
      expect(endless.body.error.message).toContain(`its body went ${cap}`);
      // it stopped reading at the cap (plus what the sockets' buffers held), not at the old 4 GiB
      expect(sent).toBeLessThan(MAX_JSON_MANIFEST_BYTES + 64 * 2 ** 20);
      expect((await call(actor('SchedulerActor', 'emb-cap-2', 'status'))).status).toBe(404);
    } finally {
      server.closeAllConnections();
      server.close();
      await f.close();
    }
  }, 120_000);
});

describe('embedded actor API: a manifestUrl is read only from the manifest root', () => {
  test('a local file outside the root (directly, by file:// or through a link), a device, a FIFO or a folder is refused with 400, and no byte of it comes back', async () => {
    const f = await createTransferFixture(tmp.dir, { transferId: 'emb-mroot', seed: 13 });
    try {
      const { manifest: _inline, ...rest } = f.request;
      await symlink('/etc/passwd', join(tmp.dir, 'passwd-link.json'));
      await mkdir(join(tmp.dir, 'a-folder.json'));
      execFileSync('mkfifo', [join(tmp.dir, 'fifo.json')]);
      const cases: Array<[string, string, RegExp]> = [
        ['/etc/passwd', 'PORTAL_INVALID_ARGUMENT', /outside this host's manifest root/],
        ['file:///etc/passwd', 'PORTAL_INVALID_ARGUMENT', /outside this host's manifest root/],
        ['/proc/self/environ', 'PORTAL_INVALID_ARGUMENT', /outside this host's manifest root/],
        ['/dev/zero', 'PORTAL_INVALID_ARGUMENT', /outside this host's manifest root/],
        [join(tmp.dir, 'passwd-link.json'), 'PORTAL_INVALID_ARGUMENT', /outside this host's manifest root/],
        [join(tmp.dir, 'a-folder.json'), 'PORTAL_MANIFEST_INVALID', /not a regular file/],
        [join(tmp.dir, 'fifo.json'), 'PORTAL_MANIFEST_INVALID', /not a regular file/],
      ];
      const passwd = await readFile('/etc/passwd', 'utf8');
      for (const [i, [manifestUrl, code, message]] of cases.entries()) {
        const id = `emb-mroot-${i}`;
        const r = await call(
          actor('SchedulerActor', id, 'start'),
          JSON.stringify({ ...rest, transferId: id, output: join(tmp.dir, `${id}.bin`), manifestUrl }),
        );
        expect({ manifestUrl, status: r.status, code: r.body?.error?.code }).toEqual({
          manifestUrl,
          status: 400,
          code,
        });
        expect(r.body.error.message).toMatch(message);
        expect(r.body.error.message).not.toContain(passwd.slice(0, 8));
      }
      // a file in the root that is not JSON: the error says so without quoting it
      await writeFile(join(tmp.dir, 'secret.json'), 'TOPSECRET-not-json');
      const r = await call(
        actor('SchedulerActor', 'emb-mroot-x', 'start'),
        JSON.stringify({
          ...rest,
          transferId: 'emb-mroot-x',
          output: join(tmp.dir, 'x.bin'),
          manifestUrl: join(tmp.dir, 'secret.json'),
        }),
      );
      expect(r).toMatchObject({ status: 400, body: { error: { code: 'PORTAL_MANIFEST_INVALID' } } });
      expect(r.body.error.message).toMatch(/not valid JSON/);
      expect(r.body.error.message).not.toContain('TOPSECRET');
    } finally {
      await f.close();
    }
  });
});

describe('embedded actor API: manifest by content id from a real portal edge', () => {
  test('portal manifest --binary prints the id a portal edge serves; a start by manifestCid runs to a verified output', async () => {
    const dir = join(tmp.dir, 'by-cid');
    await mkdir(dir, { recursive: true });
    const src = join(dir, 'src.bin');
    await writeFile(src, randomBytes(1024 * 1024 + 777, 5));
    const made = await runPortal(['manifest', src, '--binary', '--chunk-size', '65536', '--json']);
    expect(made.code).toBe(0);
    const {
      manifestCid,
      manifest: manifestPath,
      chunks,
      fileSha256,
    } = lastJson(made) as {
      manifestCid: string;
      manifest: string;
      chunks: number;
      fileSha256: string;
    };
    expect(manifestPath).toBe(`${src}.manifest.bin`);
    const bin = await readFile(manifestPath);
    expect(manifestCid).toBe(createHash('sha256').update(bin).digest('hex'));
    expect(bin.length).toBe(72 + 'src.bin'.length + chunks * 32);

    const store = join(dir, 'manifests');
    const edge = spawn(
      process.execPath,
      [
        join(repo, 'dist/cli/main.js'),
        'edge',
        '--file',
        src,
        '--manifest',
        manifestPath,
        '--manifest-dir',
        store,
        '--put-token',
        'tok',
        '--json',
      ],
      { env: { ...process.env, NATS_URL: '' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    edge.stdout.on('data', (d: Buffer) => (out += d.toString()));
    edge.stderr.on('data', (d: Buffer) => (out += d.toString()));
    try {
      await waitFor(
        () => out.includes('"url"'),
        30_000,
        () => `edge ready: ${out}`,
        () => edge.exitCode !== null,
      );
      const info = JSON.parse(out.trim().split('\n')[0]) as { url: string; manifestCid: string };
      expect(info.manifestCid).toBe(manifestCid);
      const got = await fetch(`${info.url}/v1/manifests/${manifestCid}`);
      expect(got.headers.get('content-type')).toBe('application/vnd.portal.manifest');
      expect(Buffer.from(await got.arrayBuffer()).equals(bin)).toBe(true);

      // PUT: another manifest of the same file is kept only with the token and only under its own id
      const other = await runPortal([
        'manifest',
        src,
        '--binary',
        '--chunk-size',
        '131072',
        '--out',
        join(dir, 'o.bin'),
        '--json',
      ]);
      const otherCid = (lastJson(other) as { manifestCid: string }).manifestCid;
      const otherBytes = await readFile(join(dir, 'o.bin'));
      const put = (cid: string, body: Uint8Array, token = 'tok'): Promise<Response> =>
        fetch(`${info.url}/v1/manifests/${cid}`, {
          method: 'PUT',
          headers: { authorization: `Bearer ${token}` },
          body,
        });
      expect((await put(otherCid, otherBytes, 'wrong')).status).toBe(401);
      const wrongId = await put(
        manifestCid.replace(/^./, (c) => (c === '0' ? '1' : '0')),
        otherBytes,
      );
      expect(wrongId.status).toBe(422);
      expect(((await wrongId.json()) as { error: string }).error).toMatch(/does not hash to the manifest id/);
      const truncated = await put(otherCid, otherBytes.subarray(0, otherBytes.length - 10));
      expect(truncated.status).toBe(422);
      expect(((await truncated.json()) as { error: string }).error).toMatch(/truncated/);
      expect((await fetch(`${info.url}/v1/manifests/${otherCid}`)).status).toBe(404);
      expect((await put(otherCid, otherBytes)).status).toBe(201);
      const back = await fetch(`${info.url}/v1/manifests/${otherCid}`);
      expect(Buffer.from(await back.arrayBuffer()).equals(otherBytes)).toBe(true);

      // start by content id: the scheduler fetches the manifest from the request's portal edge
      const id = 'emb-cid';
      const body = {
        transferId: id,
        manifestCid,
        output: join(tmp.dir, 'out-cid.bin'),
        tickMs: 20,
        edges: [
          {
            id: 'cid-edge',
            config: { url: info.url, kind: 'portal', flags: 0, maxParallel: 4 },
            holds: 'all',
          },
        ],
      };
      const started = await call(actor('SchedulerActor', id, 'start'), JSON.stringify(body));
      expect(started).toMatchObject({ status: 200, body: { state: 'running', total: chunks } });
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      let s: any;
      await waitFor(
        async () =>
          ['done', 'failed'].includes((s = (await call(actor('SchedulerActor', id, 'status'))).body).state),
        60_000,
        'transfer by manifestCid ends',
      );
      expect(s).toMatchObject({ state: 'done', verified: true, complete: chunks });
      expect(
        createHash('sha256')
          .update(await readFile(body.output))
          .digest('hex'),
      ).toBe(fileSha256);
      // an id no edge serves is a 400 naming the edge's answer, and leaves nothing
      const unknown = await call(
        actor('SchedulerActor', 'emb-cid-2', 'start'),
        JSON.stringify({
          ...body,
          transferId: 'emb-cid-2',
          manifestCid: 'ab'.repeat(32),
          output: join(tmp.dir, 'x.bin'),
        }),
      );
      expect(unknown).toMatchObject({ status: 400, body: { error: { code: 'PORTAL_MANIFEST_INVALID' } } });
      expect(unknown.body.error.message).toMatch(/served by none of the 1 edge\(s\): .*HTTP 404/);
      expect((await call(actor('SchedulerActor', 'emb-cid-2', 'status'))).status).toBe(404);
      expect((await call(actor('SchedulerActor', id, 'forget'))).status).toBe(200);
    } finally {
      const exited = new Promise((r) => edge.once('exit', r));
      edge.kill('SIGTERM');
      await exited;
    }
  });
});
