import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { freePort } from '../../harness/index.js';
import { httpStatusFor } from '../../common/error-table.js';
import type { PortalErrorCode } from '../../common/errors.js';

const MAIN = path.resolve('dist/cli/main.js');
let child: ChildProcess | undefined;
let base = '';

beforeAll(async () => {
  const port = await freePort();
  child = spawn(
    process.execPath,
    [MAIN, 'serve', '--runtime', 'embedded', '--app-port', String(port), '--json'],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, PORTAL_LOG_LEVEL: 'warn' },
    },
  );
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('portal serve did not get ready in 30 s')), 30_000);
    child!.once('exit', (code) => reject(new Error(`portal serve exited with ${code}`)));
    createInterface({ input: child!.stdout! }).on('line', (l) => {
      if (l.includes('"ready"')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  base = `http://127.0.0.1:${port}/v1.0/actors`;
}, 40_000);

afterAll(async () => {
  if (!child || child.exitCode !== null) return;
  const exited = new Promise((r) => child!.once('exit', r));
  child.kill('SIGTERM');
  await exited;
});

async function call(url: string, body?: string): Promise<{ status: number; code: string | undefined }> {
  const r = await fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
  const text = await r.text();
  const code = text ? (JSON.parse(text) as { error?: { code?: string } }).error?.code : undefined;
  return { status: r.status, code };
}

test('the embedded actor API answers a failed call with the status the error table gives its code', async () => {
  const unknownType = await call(`${base}/NoSuchActor/a/method/status`);
  expect(unknownType).toEqual({ status: 404, code: 'PORTAL_UNKNOWN_ACTOR_TYPE' });

  const unknownMethod = await call(`${base}/SchedulerActor/a/method/noSuchMethod`);
  expect(unknownMethod).toEqual({ status: 404, code: 'PORTAL_UNKNOWN_ACTOR_METHOD' });

  const notJson = await call(`${base}/SchedulerActor/a/method/status`, '{not json');
  expect(notJson).toEqual({ status: 400, code: 'PORTAL_INVALID_ARGUMENT' });

  for (const r of [unknownType, unknownMethod, notJson])
    expect(r.status).toBe(httpStatusFor(r.code as PortalErrorCode));
});
