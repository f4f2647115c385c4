import { jest } from '@jest/globals';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startNatsServer, type TestNatsServer } from '../../harness/index.js';
import { createMesh, type Mesh } from '../helpers/mesh.js';
import { duplicateKeys } from '../helpers/json-keys.js';
import { startEmbeddedServe, type EmbeddedServe } from '../helpers/portal-cli.js';

// A real `portal serve` (embedded, NATS, dashboard, debug logs) writes each key once per pino line. Its child
// loggers bound keys their parents had: "component":"dashboard" twice in 'dashboard listening', and
// "coordinatorId":"default" twice in 'coordinator listening'. JSON.parse keeps the last, so the raw text is checked.
jest.setTimeout(90_000);

let nats: TestNatsServer;
let serve: EmbeddedServe | undefined;
let mesh: Mesh;
let out: string;

beforeAll(async () => {
  nats = await startNatsServer();
  mesh = await createMesh(256 * 1024, 64 * 1024, [{ holds: 'all' }]);
  out = await mkdtemp(path.join(os.tmpdir(), 'portal-serve-log-'));
});

afterAll(async () => {
  if (serve && serve.child.exitCode === null) {
    const exited = new Promise((r) => serve!.child.once('exit', r));
    serve.child.kill('SIGTERM');
    await exited;
  }
  await mesh?.close();
  await nats?.stop();
  await rm(out, { recursive: true, force: true });
});

test('every log line of a serve running a transfer holds each key once', async () => {
  serve = await startEmbeddedServe(['--dashboard-port', '0', '--output-root', out, '--log-level', 'debug'], {
    NATS_URL: nats.url,
  });
  const start = await fetch(`${serve.base}/SchedulerActor/log-keys/method/start`, {
    method: 'POST',
    body: JSON.stringify({
      transferId: 'log-keys',
      manifest: mesh.manifest,
      output: path.join(out, 'out.bin'),
      edges: mesh.edges,
    }),
  });
  expect(start.status).toBe(200);
  for (let i = 0; i < 200; i++) {
    const st = (await (
      await fetch(`${serve.base}/SchedulerActor/log-keys/method/status`, { method: 'POST' })
    ).json()) as { state: string };
    if (['done', 'failed', 'cancelled'].includes(st.state)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const lines = serve
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{"level"'));
  // the lines that had duplicates are there, and many more (the actors' and the executor's debug lines)
  expect(lines.some((l) => l.includes('"msg":"dashboard listening"'))).toBe(true);
  expect(lines.some((l) => l.includes('"msg":"coordinator listening"'))).toBe(true);
  expect(lines.some((l) => l.includes('"actorType":"SchedulerActor"'))).toBe(true);
  const dups = lines.map((l) => ({ keys: duplicateKeys(l), line: l })).filter((d) => d.keys.length > 0);
  expect(dups).toEqual([]);
});
