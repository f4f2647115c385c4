import { jest } from '@jest/globals';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import {
  createTransferFixture,
  startClientSidecar,
  startDaprCluster,
  startPortalInstance,
  type ClientSidecar,
  type DaprCluster,
  type PortalInstance,
  type TransferFixture,
  waitFor,
} from '../helpers/dapr.js';
import {
  freePort,
  startNatsServer,
  startRedis,
  type TestNatsServer,
  type TestRedis,
} from '../../harness/index.js';
import { makeTempDir } from '../transfer/fixtures.js';

// Clients nobody on the actor side wrote (examples/go): a Go service that drives a transfer through its OWN daprd
// with the Dapr Go SDK (gRPC InvokeActor, which daprd forwards to Portal with an empty content type), against real
// placement, daprd and Redis and `portal serve --runtime dapr`. Built with `go build` here, from the committed
// go.mod/go.sum (modules from the Go module proxy; scripts/setup.d/45-go-examples.sh downloads them).
jest.setTimeout(300_000);

const repo = resolve(new URL('../..', import.meta.url).pathname);
const examples = join(repo, 'examples/go');
const exec = promisify(execFile);

/** The Go toolchain: $GO, `go` on PATH, or /usr/local/go/bin/go. */
export function goBin(): string {
  if (process.env.GO) return process.env.GO;
  return existsSync('/usr/local/go/bin/go') ? '/usr/local/go/bin/go' : 'go';
}

/** `go build`s one of examples/go/cmd/<name> into `dir` and returns the binary's path. */
export async function buildGoExample(name: string, dir: string): Promise<string> {
  const out = join(dir, name);
  await exec(goBin(), ['build', '-o', out, `./cmd/${name}`], {
    cwd: examples,
    env: { ...process.env, GOFLAGS: '-mod=mod' },
    timeout: 240_000,
    maxBuffer: 16 * 1024 * 1024,
  });
  return out;
}

/** Runs a built example to its end: exit code and output (never rejects on a non-zero exit). */
export function runGo(
  bin: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  timeoutMs = 120_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolveRun) => {
    const child = spawn(bin, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-8000)));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolveRun({ code, stdout, stderr });
    });
  });
}

/** The last stdout line of a run, parsed (a status or an error envelope: read field by field in the tests). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const lastJson = (stdout: string): Record<string, any> => JSON.parse(stdout.trim().split('\n').at(-1)!);

test('go test of examples/go (portal-client encodes ids as encodeActorId does, and answers a wrong command line or -h before it dials Dapr)', async () => {
  const r = await exec(goBin(), ['test', './cmd/portal-client/'], {
    cwd: examples,
    env: { ...process.env, GOFLAGS: '-mod=mod' },
    timeout: 240_000,
  });
  expect(r.stdout).toMatch(/^ok\s/m);
});

describe('Go service with the Dapr Go SDK through its own daprd', () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };
  let redis: TestRedis;
  let cluster: DaprCluster;
  let portal: PortalInstance;
  let sidecar: ClientSidecar;
  let client: string;
  let fixture: TransferFixture;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    tmp = await makeTempDir('go-sdk');
    const built = buildGoExample('portal-client', tmp.dir);
    redis = await startRedis();
    cluster = await startDaprCluster({ redisPort: redis.port });
    portal = await startPortalInstance(cluster, { name: 'portal', env: { PORTAL_TEST_ACTORS: '1' } });
    sidecar = await startClientSidecar(cluster, 'go-client');
    client = await built;
    env = { DAPR_GRPC_PORT: String(sidecar.grpcPort), DAPR_HTTP_PORT: String(sidecar.httpPort) };
    fixture = await createTransferFixture(tmp.dir, { transferId: 'go-sdk-1', seed: 16 });
  }, 300_000);

  afterAll(async () => {
    await fixture?.close();
    await cluster?.stop();
    await redis?.stop();
    await tmp?.cleanup();
  });

  test('starts a transfer with InvokeActor (empty content type), polls it to done and the output verifies', async () => {
    const reqFile = join(tmp.dir, 'request.json');
    await writeFile(reqFile, JSON.stringify(fixture.request));
    const r = await runGo(client, ['start', '-request', reqFile, '-watch', '-timeout', '100s'], env);
    expect({
      code: r.code,
      stderr: r.code === 0 ? '' : r.stderr,
      stdout: r.code === 0 ? '' : r.stdout,
    }).toEqual({
      code: 0,
      stderr: '',
      stdout: '',
    });
    // stdout is the answer's JSON only (a script pipes it to jq): the Dapr SDK's "dapr client initializing for" line
    // went there (trial 2, G1)
    for (const line of r.stdout.trim().split('\n')) expect(() => JSON.parse(line) as unknown).not.toThrow();
    const status = lastJson(r.stdout);
    expect(status).toMatchObject({ transferId: 'go-sdk-1', state: 'done', verified: true });
    expect(status.complete).toBe(fixture.chunks);
    expect(status.bytesDone).toBe(fixture.manifest.fileSize);
    const sha = createHash('sha256')
      .update(await readFile(fixture.output))
      .digest('hex');
    expect(sha).toBe(fixture.manifest.fileSha256);
  });

  test('a bad start comes back through daprd as the error envelope with every problem and its field path', async () => {
    const bad = { ...fixture.request, transferId: 'go-sdk-bad', tickMs: 'fast', output: '' };
    const reqFile = join(tmp.dir, 'bad.json');
    await writeFile(reqFile, JSON.stringify(bad));
    const r = await runGo(client, ['start', '-request', reqFile], env);
    expect(r.code).toBe(2);
    const { error } = lastJson(r.stdout);
    expect(error.code).toBe('PORTAL_INVALID_ARGUMENT');
    expect(error.fields).toEqual(
      expect.arrayContaining([
        { path: '/tickMs', message: 'must be number' },
        { path: '/output', message: 'must NOT have fewer than 1 characters' },
      ]),
    );
  });

  test('through daprd over HTTP, a form-typed body (curl -d) and scalars arrive as JSON', async () => {
    const url = `http://127.0.0.1:${sidecar.httpPort}/v1.0/actors/ProbeActor/p/method/echo?x=1`;
    for (const [text, value] of [
      ['5', 5],
      ['"text"', 'text'],
      ['true', true],
      ['null', null],
      ['{"a":1}', { a: 1 }],
    ] as const) {
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: text,
      });
      expect({ text, status: res.status, body: await res.json() }).toEqual({
        text,
        status: 200,
        body: { arg: value, type: value === null ? 'null' : typeof value },
      });
    }
  });

  test("through daprd, malformed JSON is Portal's envelope inside daprd's error, never HTML or a stack trace", async () => {
    const res = await fetch(`http://127.0.0.1:${sidecar.httpPort}/v1.0/actors/ProbeActor/p/method/echo`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"a":',
    });
    const text = await res.text();
    expect(text).not.toMatch(/<html|<pre>|\bat \S+ \(|node_modules/i);
    const message = (JSON.parse(text) as { message: string }).message;
    const envelope = JSON.parse(message.slice(message.indexOf('{"error":'))) as {
      error: { code: string; message: string };
    };
    expect(envelope.error.code).toBe('PORTAL_INVALID_ARGUMENT');
    expect(envelope.error.message).toMatch(/not JSON/);
  });

  test("after Portal's sidecar restarts, the finished transfer's status is its journal's, not complete: 0", async () => {
    await portal.restartDaprd();
    let r: { code: number | null; stdout: string; stderr: string } | undefined;
    await waitFor(
      async () => (r = await runGo(client, ['status', '-id', 'go-sdk-1'], env, 30_000)).code === 0,
      60_000,
      () => `status after the sidecar restart: ${r?.stdout} ${r?.stderr}`,
    );
    expect(lastJson(r!.stdout)).toMatchObject({
      state: 'done',
      verified: true,
      complete: fixture.chunks,
      bytesDone: fixture.manifest.fileSize,
    });
  });

  test('the status of a transfer that was never started is PORTAL_UNKNOWN_TRANSFER', async () => {
    const r = await runGo(client, ['status', '-id', 'never-started'], env);
    expect(r.code).toBe(2);
    expect(lastJson(r.stdout).error.code).toBe('PORTAL_UNKNOWN_TRANSFER');
  });

  test('an id with "/" and markup reaches its actor in the wire form (~base64url), not as "no actor API route"', async () => {
    // daprd decodes the path before routing: sent as it is (or %-encoded), "a/b" was two segments
    for (const id of ['a/b', '<img src=x> ü']) {
      const r = await runGo(client, ['status', '-id', id], env);
      expect({ id, code: r.code, error: lastJson(r.stdout).error }).toEqual({
        id,
        code: 2,
        error: expect.objectContaining({
          code: 'PORTAL_UNKNOWN_TRANSFER',
          message: expect.stringContaining(`transfer ${JSON.stringify(id)} is unknown`),
        }),
      });
    }
    // sent %-encoded through daprd, "a/b" still arrives split: Portal's answer names the form to send
    const res = await fetch(
      `http://127.0.0.1:${sidecar.httpPort}/v1.0/actors/SchedulerActor/a%2Fb/method/status`,
      {
        method: 'POST',
      },
    );
    // (Portal's envelope inside daprd's message, its quotes escaped twice)
    expect((await res.text()).replaceAll('\\', '')).toContain(
      'no actor API route PUT /actors/SchedulerActor/a/b/method/status; if "a/b" is one id, send it as "~YS9i"',
    );
  });
});

/** `portal serve --runtime embedded` (dist/) with `env`; resolves with its ready line, or rejects with its output. */
async function startServe(
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ child: ChildProcess; ready: Record<string, unknown>; output: () => string }> {
  const child = spawn(
    process.execPath,
    [join(repo, 'dist/cli/main.js'), 'serve', '--runtime', 'embedded', '--json', ...args],
    { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
  await waitFor(
    () => out.includes('"type":"ready"'),
    30_000,
    () => `serve ready: ${out}`,
    () => child.exitCode !== null,
  );
  const line = out.split('\n').find((l) => l.includes('"type":"ready"'))!;
  return { child, ready: JSON.parse(line) as Record<string, unknown>, output: () => out };
}

describe('Go telemetry publisher with nats.go', () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };
  let nats: TestNatsServer;
  let serve: ChildProcess | undefined;

  beforeAll(async () => {
    tmp = await makeTempDir('go-nats');
    nats = await startNatsServer();
  });

  afterAll(async () => {
    serve?.kill('SIGTERM');
    await nats?.stop();
    await tmp?.cleanup();
  });

  test('a heartbeat without a URL, then the announcement, configures the edge; malformed messages are dead-lettered and counted in /metrics', async () => {
    const [publisher, appPort] = await Promise.all([
      buildGoExample('publish-telemetry', tmp.dir),
      freePort(),
    ]);
    const s = await startServe(['--app-port', String(appPort), '--dashboard-port', '0'], {
      NATS_URL: nats.url,
    });
    serve = s.child;
    const r = await runGo(
      publisher,
      ['-edge', 'edge-go-1', '-url', 'http://127.0.0.1:18080', '-bandwidth', '8000000', '-malformed', '3'],
      { NATS_URL: nats.url },
    );
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    const snapshot = async (): Promise<{ status: number; body: Record<string, unknown> }> => {
      const res = await fetch(`http://127.0.0.1:${appPort}/v1.0/actors/EdgeActor/edge-go-1/method/snapshot`, {
        method: 'POST',
      });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    let last: { status: number; body: Record<string, unknown> } | undefined;
    await waitFor(
      async () => (last = await snapshot()).status === 200,
      20_000,
      () => `edge configured (last: ${JSON.stringify(last)}; serve: ${s.output().slice(-2000)})`,
    );
    expect(last!.body).toMatchObject({
      id: 'edge-go-1',
      url: 'http://127.0.0.1:18080',
      kind: 'portal',
      maxParallel: 6,
      available: true,
    });
    const metrics = async (): Promise<Map<string, number>> => {
      const text = await (await fetch(new URL('/metrics', String(s.ready.dashboard)))).text();
      const m = new Map<string, number>();
      for (const [, reason, v] of text.matchAll(/^portal_dead_letters_total\{reason="([^"]+)"\} (\S+)$/gm))
        m.set(reason, Number(v));
      return m;
    };
    let dead = new Map<string, number>();
    await waitFor(
      async () => [...(dead = await metrics()).values()].reduce((a, b) => a + b, 0) >= 3,
      10_000,
      () => `3 dead letters in /metrics (have ${JSON.stringify([...dead])})`,
    );
    expect(Object.fromEntries(dead)).toEqual({ PORTAL_WIRE_MALFORMED: 2, PORTAL_WIRE_VERSION: 1 });
  });

  test("a stream that overlaps the ones serve owns (the old deploy's PORTAL on portal.>) stops serve with a message naming it", async () => {
    const other = await startNatsServer();
    try {
      const nc = await connect({ servers: other.url });
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: 'PORTAL', subjects: ['portal.>'] });
      await nc.close();
      const child = spawn(
        process.execPath,
        [
          join(repo, 'dist/cli/main.js'),
          'serve',
          '--runtime',
          'embedded',
          '--app-port',
          String(await freePort()),
        ],
        { env: { ...process.env, NATS_URL: other.url }, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      const code = await new Promise<number | null>((done) => child.once('close', done));
      expect(code).toBe(2);
      expect(out).toMatch(/PORTAL_CONFIG_INVALID/);
      expect(out).toMatch(/overlap stream PORTAL\b/);
    } finally {
      await other.stop();
    }
  });
});
