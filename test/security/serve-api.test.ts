/**
 * `portal serve`'s embedded actor API under hostile callers, against the built CLI as a real
 * process and real edge servers: outputs confined to --output-root (links resolved first, existing files
 * not overwritten), internal actor methods not callable from outside, the API token (required beyond
 * loopback, compared in constant time, never logged), a body limit that answers 413 and keeps serve up,
 * and unknown ids that create no state.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import { execFileSync } from 'node:child_process';
import { link, mkdir, readFile, readdir, stat, symlink, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { freePort } from '../../common/net.js';
import { telemetrySampleLayout } from '../../stream/index.js';
import { createMesh, type Mesh } from '../helpers/mesh.js';
import { rssBytes, runPortal, startEmbeddedServe, type EmbeddedServe } from '../helpers/portal-cli.js';

type Serve = EmbeddedServe;
const startServe = startEmbeddedServe;

async function call(
  url: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{
  status: number;
  json: { error?: { code: string; message: string } } & Record<string, unknown>;
}> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: text ? (JSON.parse(text) as never) : {} };
}

describe('portal serve: the embedded actor API against hostile callers', () => {
  let mesh: Mesh;
  let root: string;
  let serve: Serve;
  const others: Serve[] = [];

  beforeAll(async () => {
    mesh = await createMesh(16 * 16384, 16384, [{ holds: 'all' }]);
    root = path.join(mesh.dir, 'root');
    await mkdir(root);
    await mkdir(path.join(mesh.dir, 'state'));
    serve = await startServe(['--output-root', root, '--state-dir', path.join(mesh.dir, 'state')]);
  }, 60_000);
  afterAll(async () => {
    for (const s of [serve, ...others]) s?.child.kill('SIGKILL');
    await mesh?.close();
  });

  const request = (output: string, extra: Record<string, unknown> = {}) => ({
    transferId: mesh.manifest.id,
    manifest: mesh.manifest,
    output,
    edges: mesh.edges,
    ...extra,
  });
  const startUrl = () => `${serve.base}/SchedulerActor/${mesh.manifest.id}/method/start`;

  test('a start whose output lies outside --output-root is refused (403) and the file there keeps its bytes', async () => {
    const victim = path.join(mesh.dir, 'victim.bin');
    const precious = Buffer.alloc(1024 * 1024, 7);
    await writeFile(victim, precious);
    const r = await call(startUrl(), request(victim, { overwrite: true }));
    expect(r.status).toBe(403);
    expect(r.json.error?.code).toBe('PORTAL_OUTPUT_OUTSIDE_ROOT');
    const traversal = await call(
      startUrl(),
      request(path.join(root, '..', 'victim.bin'), { overwrite: true }),
    );
    expect(traversal.status).toBe(403);
    // a link inside the root that points outside is resolved before the check
    await symlink(mesh.dir, path.join(root, 'escape'));
    const viaLink = await call(
      startUrl(),
      request(path.join(root, 'escape', 'victim.bin'), { overwrite: true }),
    );
    expect(viaLink.status).toBe(403);
    expect(viaLink.json.error?.message).toMatch(/outside the output root/);
    expect((await readFile(victim)).equals(precious)).toBe(true);
  });

  test('a first start over an existing file inside the root is refused unless the request says overwrite', async () => {
    const existing = path.join(root, 'existing.bin');
    await writeFile(existing, 'keep me');
    const r = await call(startUrl(), request(existing));
    expect(r.status).toBe(409);
    expect(r.json.error?.code).toBe('PORTAL_OUTPUT_REFUSED');
    expect(await readFile(existing, 'utf8')).toBe('keep me');
  });

  test('a start whose output folder does not exist inside the root is refused (409) naming the folder, and creates nothing', async () => {
    const r = await call(startUrl(), request(path.join(root, 'sub', 'x.bin')));
    expect(r.status).toBe(409);
    expect(r.json.error?.code).toBe('PORTAL_OUTPUT_REFUSED');
    expect(r.json.error?.message).toMatch(/folder .*\/root\/sub does not exist \(serve creates no folders\)/);
    expect(existsSync(path.join(root, 'sub'))).toBe(false);
    // nothing was started: the id is still unknown
    const st = await call(`${serve.base}/SchedulerActor/${mesh.manifest.id}/method/status`);
    expect(st.json.error?.code).toBe('PORTAL_UNKNOWN_TRANSFER');
  });

  test("an output root that cannot be written to (read-only): the start is refused naming the local error, not the sources'", async () => {
    // a read-only tmpfs as the root: needs root (CAP_SYS_ADMIN) for mount, as the full-disk test of fetch does
    const ro = path.join(mesh.dir, 'ro-root');
    await mkdir(ro);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m', 'tmpfs', ro]);
    await mkdir(path.join(mesh.dir, 'state-ro'));
    const other = await startServe(['--output-root', ro, '--state-dir', path.join(mesh.dir, 'state-ro')]);
    others.push(other);
    try {
      const r = await call(
        `${other.base}/SchedulerActor/${mesh.manifest.id}/method/start`,
        request(path.join(ro, 'x.bin')),
      );
      // the start claims its output with the lock beside it (<output>.portal/lock, 1e1d064): on a read-only root
      // that fails, so the start is refused before anything runs, naming the local cause — never the sources
      expect(r.status).toBe(409);
      expect(r.json.error?.code).toBe('PORTAL_OUTPUT_REFUSED');
      expect(r.json.error?.message).toMatch(/EROFS|read-only file system/);
      expect(r.json.error?.message).not.toMatch(/cannot be served by any source/);
      const st = await call(`${other.base}/SchedulerActor/${mesh.manifest.id}/method/status`);
      expect(st.json.error?.code).toBe('PORTAL_UNKNOWN_TRANSFER');
    } finally {
      other.child.kill('SIGKILL');
      execFileSync('umount', [ro]);
    }
  }, 60_000);

  test('internal methods (reports, tick, edgeHave, configure, observe…) are refused from outside with 403', async () => {
    const id = 'some-transfer';
    for (const [type, method, arg] of [
      ['SchedulerActor', 'reports', { items: [] }],
      ['SchedulerActor', 'tick', undefined],
      ['SchedulerActor', 'edgeHave', { edgeId: 'x', manifestId: 'y', bitmap: '' }],
      // the class's internals (TypeScript-private, so present at run time) are refused the same way
      ['SchedulerActor', 'finish', undefined],
      ['SchedulerActor', 'fail', 'forged'],
      ['SchedulerActor', 'resume', undefined],
      ['SchedulerActor', 'persist', true],
      ['EdgeActor', 'configure', { url: 'http://127.0.0.1:1', kind: 'portal', flags: 0, maxParallel: 1 }],
      ['EdgeActor', 'observe', { samples: [] }],
      ['EdgeActor', 'holdOver', undefined],
    ] as const) {
      const r = await call(`${serve.base}/${type}/${id}/method/${method}`, arg);
      expect([type, method, r.status, r.json.error?.code]).toEqual([
        type,
        method,
        403,
        'PORTAL_ACTOR_METHOD_FORBIDDEN',
      ]);
    }
    // names that are no method at all are 404 (unknown transfer or method)
    const unknown = await call(`${serve.base}/SchedulerActor/${id}/method/noSuchMethod`);
    expect(unknown.status).toBe(404);
    expect(unknown.json.error?.code).toBe('PORTAL_UNKNOWN_ACTOR_METHOD');
    // and the allowed ones answer (this id was never started: 404 PORTAL_UNKNOWN_TRANSFER)
    const allowed = await call(`${serve.base}/SchedulerActor/${id}/method/status`);
    expect({ status: allowed.status, code: allowed.json.error?.code }).toEqual({
      status: 404,
      code: 'PORTAL_UNKNOWN_TRANSFER',
    });
  });

  test("a GpuStreamActor cannot be made to feed an edge's health from outside: a start naming edgeIds is 403 (as observe is), and the edge's estimates stay as its transfer left them", async () => {
    // the edge is configured and measured by a real transfer
    const edgeId = mesh.edges[0].id;
    const t = await call(startUrl().replace(mesh.manifest.id, 'edge-feed-t'), {
      ...request(path.join(root, 'edge-feed.bin')),
      transferId: 'edge-feed-t',
    });
    expect(t.status).toBe(200);
    const deadline = Date.now() + 30_000;
    let state = '';
    while (state !== 'done' && state !== 'failed' && Date.now() < deadline) {
      await new Promise((res) => setTimeout(res, 100));
      state = (await call(`${serve.base}/SchedulerActor/edge-feed-t/method/status`)).json.state as string;
    }
    expect(state).toBe('done');
    const edgeView = async () => {
      const v = (await call(`${serve.base}/EdgeActor/${edgeId}/method/snapshot`)).json;
      return { available: v.available, samples: v.samples, successRate: v.successRate };
    };
    const before = await edgeView();
    expect(before).toMatchObject({ available: true, successRate: 1 });
    // a caller that may not call EdgeActor.observe asks a stream to do it: 1000 failed chunks of edge 0 = edgeId
    const stream = `${serve.base}/GpuStreamActor/edge-feed-s/method`;
    const start = await call(`${stream}/start`, {
      kernel: { type: 'edge-telemetry', edges: 1, edgeIds: [edgeId] },
      source: 'direct',
    });
    const failures = Array.from({ length: 1000 }, () => ({
      edge: 0,
      ok: 0,
      bytes: 0,
      firstByteUs: 0,
      transferUs: 0,
    }));
    const records = Buffer.from(telemetrySampleLayout.encode(failures)).toString('base64');
    const push = await call(`${stream}/push`, { records });
    await call(`${stream}/drain`);
    expect({
      start: [start.status, start.json.error?.code],
      push: push.status,
      edge: await edgeView(),
    }).toEqual({
      start: [403, 'PORTAL_ACTOR_METHOD_FORBIDDEN'],
      push: 400, // the stream was never started
      edge: before,
    });
    expect(start.json.error?.message).toMatch(/kernel\.edgeIds .*EdgeActor\.observe/);
    // the stream itself, without edgeIds, is still everyone's: it aggregates and feeds no EdgeActor
    const plain = await call(`${stream}/start`, {
      kernel: { type: 'edge-telemetry', edges: 1 },
      source: 'direct',
    });
    expect(plain.status).toBe(200);
    expect((await call(`${stream}/push`, { records })).json).toEqual({ accepted: 1000 });
    expect((await call(`${stream}/drain`)).json.totalItemsProcessed).toBe(1000);
    expect(await edgeView()).toEqual(before);
    expect((await call(`${stream}/stop`)).status).toBe(200);
  }, 60_000);

  test('a start inside the root runs to a verified output (the allowed path still works)', async () => {
    const out = path.join(root, 'ok.bin');
    const r = await call(startUrl(), request(out));
    expect(r.status).toBe(200);
    let state = '';
    const deadline = Date.now() + 30_000;
    while (state !== 'done' && state !== 'failed' && Date.now() < deadline) {
      await new Promise((res) => setTimeout(res, 100));
      state = (await call(`${serve.base}/SchedulerActor/${mesh.manifest.id}/method/status`)).json
        .state as string;
    }
    expect(state).toBe('done');
    expect(
      createHash('sha256')
        .update(await readFile(out))
        .digest('hex'),
    ).toBe(mesh.manifest.fileSha256);
  }, 60_000);

  test('hard links planted at an output (with overwrite) and at its partial-chunk log (<out>.portal-part.partial) are replaced, never written through: the files outside the root keep their bytes', async () => {
    const victim = path.join(mesh.dir, 'victim-out.txt');
    const victim2 = path.join(mesh.dir, 'victim-partial.txt');
    await writeFile(victim, 'KEEP OUT');
    await writeFile(victim2, 'KEEP PARTIAL');
    const out = path.join(root, 'hl.bin');
    await link(victim, out);
    await link(victim2, `${out}.portal-part.partial`);
    const id = 'hardlinks-1';
    const r = await call(`${serve.base}/SchedulerActor/${id}/method/start`, {
      ...request(out, { overwrite: true }),
      transferId: id,
    });
    expect(r.status).toBe(200);
    let state = '';
    const deadline = Date.now() + 30_000;
    while (state !== 'done' && state !== 'failed' && Date.now() < deadline) {
      await new Promise((res) => setTimeout(res, 100));
      state = (await call(`${serve.base}/SchedulerActor/${id}/method/status`)).json.state as string;
    }
    expect(state).toBe('done');
    expect(await readFile(victim, 'utf8')).toBe('KEEP OUT');
    expect(await readFile(victim2, 'utf8')).toBe('KEEP PARTIAL');
    expect(
      createHash('sha256')
        .update(await readFile(out))
        .digest('hex'),
    ).toBe(mesh.manifest.fileSha256);
    expect((await stat(out)).nlink).toBe(1);
  }, 60_000);

  test('status of 300 unknown transfer ids creates no state files', async () => {
    const before = await readdir(path.join(mesh.dir, 'state'));
    for (let i = 0; i < 300; i++) await call(`${serve.base}/SchedulerActor/unknown-${i}/method/status`);
    const after = await readdir(path.join(mesh.dir, 'state'));
    expect(after.filter((f) => !before.includes(f))).toEqual([]);
  });

  test('a 1 GiB POST is answered 413 without being read, and serve stays up with its memory', async () => {
    const rss0 = rssBytes(serve.child.pid!);
    // declared: refused from the header
    const declared = await new Promise<number>((resolve, reject) => {
      const req = http.request(
        startUrl(),
        {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'content-length': String(1024 ** 3) },
        },
        (res) => {
          res.resume();
          resolve(res.statusCode!);
        },
      );
      req.on('error', reject);
      req.write('{"a":"');
    });
    expect(declared).toBe(413);
    // undeclared (chunked): refused once 64 MiB arrived; the sender sees the connection close
    let sent = 0;
    const streamed = await new Promise<number | string>((resolve) => {
      const req = http.request(
        startUrl(),
        { method: 'POST', headers: { 'content-type': 'application/json' } },
        (res) => {
          res.resume();
          resolve(res.statusCode!);
        },
      );
      req.on('error', (e) => resolve((e as NodeJS.ErrnoException).code ?? 'error'));
      const block = Buffer.alloc(1024 * 1024, 0x61);
      const pump = (): void => {
        while (sent < 1024 ** 3) {
          sent += block.length;
          if (!req.write(block)) {
            req.once('drain', pump);
            return;
          }
        }
        req.end();
      };
      req.write('{"a":"');
      pump();
    });
    expect([413, 'EPIPE', 'ECONNRESET']).toContain(streamed);
    expect(sent).toBeLessThan(1024 ** 3);
    const status = await call(`${serve.base}/SchedulerActor/${mesh.manifest.id}/method/status`);
    expect(status.status).toBe(200);
    expect(serve.child.exitCode).toBeNull();
    expect(rssBytes(serve.child.pid!) - rss0).toBeLessThan(400 * 1024 * 1024);
  }, 120_000);

  test('with --api-token every call but /healthz needs it (401 otherwise), and the token is never printed', async () => {
    const token = 'tok-SECRET-123456';
    const s = await startServe(['--output-root', root, '--api-token', token, '--log-level', 'debug']);
    others.push(s);
    const url = `${s.base}/SchedulerActor/t1/method/status`;
    expect((await call(url)).status).toBe(401);
    expect((await call(url, undefined, { authorization: 'Bearer wrong' })).json.error?.code).toBe(
      'PORTAL_UNAUTHORIZED',
    );
    // with the token the call reaches the actor: t1 was never started, so 404 PORTAL_UNKNOWN_TRANSFER
    const tokenHeaders: Array<Record<string, string>> = [
      { authorization: `Bearer ${token}` },
      { 'dapr-api-token': token },
    ];
    for (const headers of tokenHeaders) {
      const authed = await call(url, undefined, headers);
      expect({ status: authed.status, code: authed.json.error?.code }).toEqual({
        status: 404,
        code: 'PORTAL_UNKNOWN_TRANSFER',
      });
    }
    expect((await fetch(`http://127.0.0.1:${s.port}/healthz`)).status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${s.port}/readyz`)).status).toBe(200);
    expect(s.output()).not.toContain(token);
  }, 60_000);

  test('--api-host beyond loopback without a token is refused at start with exit 2', async () => {
    const r = await runPortal(
      [
        'serve',
        '--runtime',
        'embedded',
        '--app-port',
        String(await freePort()),
        '--api-host',
        '0.0.0.0',
        '--backend',
        'cpu',
      ],
      { timeoutMs: 30_000 },
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/an API token is required beyond loopback/);
  }, 60_000);

  test('--output-root that does not exist is a configuration error (exit 2)', async () => {
    const missing = path.join(mesh.dir, 'no-such-root');
    const r = await runPortal(
      [
        'serve',
        '--runtime',
        'embedded',
        '--app-port',
        String(await freePort()),
        '--output-root',
        missing,
        '--backend',
        'cpu',
      ],
      { timeoutMs: 30_000 },
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--output-root .*no-such-root: expected an existing folder/);
    expect(existsSync(missing)).toBe(false);
  }, 60_000);
});
