import { jest } from '@jest/globals';
import { execFile, spawn } from 'node:child_process';
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
  type TransferFixture,
} from '../helpers/dapr.js';
import { startRedis, type TestRedis } from '../../harness/index.js';
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

describe('Go service with the Dapr Go SDK through its own daprd', () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };
  let redis: TestRedis;
  let cluster: DaprCluster;
  let sidecar: ClientSidecar;
  let client: string;
  let fixture: TransferFixture;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    tmp = await makeTempDir('go-sdk');
    const built = buildGoExample('portal-client', tmp.dir);
    redis = await startRedis();
    cluster = await startDaprCluster({ redisPort: redis.port });
    await startPortalInstance(cluster, { name: 'portal' });
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

  test('the status of a transfer that was never started is PORTAL_UNKNOWN_TRANSFER', async () => {
    const r = await runGo(client, ['status', '-id', 'never-started'], env);
    expect(r.code).toBe(2);
    expect(lastJson(r.stdout).error.code).toBe('PORTAL_UNKNOWN_TRANSFER');
  });
});
