/**
 * Credentials in NATS_URL (`nats://user:pass@host:port`, as nats.go and the nats CLI take them) against real
 * nats-server processes that require a login, with real `portal serve` processes: they were dropped (the server
 * answered "Authorization Violation") while NATS_USER/NATS_PASSWORD worked.
 */
import path from 'node:path';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { startNatsServer, type TestNatsServer } from '../../harness/index.js';
import { startEmbeddedServe, type EmbeddedServe } from '../helpers/portal-cli.js';

const servers: TestNatsServer[] = [];
const serves: EmbeddedServe[] = [];
let tmp: string;

beforeAll(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'portal-nats-url-'));
});
afterEach(async () => {
  for (const s of serves.splice(0)) if (s.child.exitCode === null) s.child.kill('SIGKILL');
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

const nats = async (config: string) => {
  const s = await startNatsServer({ config });
  servers.push(s);
  return s;
};
/** `portal serve --runtime embedded` with `env`: its ready line, or how it failed. */
const serve = async (env: NodeJS.ProcessEnv): Promise<{ ready: boolean; output: string }> => {
  const state = await mkdtemp(path.join(tmp, 'state-'));
  try {
    const s = await startEmbeddedServe(['--state-dir', state, '--output-root', tmp], {
      PORTAL_LOG_LEVEL: 'info',
      NATS_USER: undefined,
      NATS_PASSWORD: undefined,
      NATS_TOKEN: undefined,
      ...env,
    });
    serves.push(s);
    return { ready: true, output: s.output() };
  } catch (err) {
    return { ready: false, output: (err as Error).message };
  }
};
const withUserinfo = (url: string, userinfo: string) => url.replace('nats://', `nats://${userinfo}@`);

describe('NATS_URL with userinfo', () => {
  const config = 'authorization { user: nuser, password: "NATS-PW-1", timeout: 10 }\n';

  test('nats://user:password@host logs in; the password appears in no output', async () => {
    const s = await nats(config);
    const r = await serve({ NATS_URL: withUserinfo(s.url, 'nuser:NATS-PW-1') });
    expect(r.output).not.toContain('NATS-PW-1');
    expect(r.ready).toBe(true);
  }, 60_000);

  test('a wrong password in the URL is refused, and the message does not show it', async () => {
    const s = await nats(config);
    const r = await serve({ NATS_URL: withUserinfo(s.url, 'nuser:WRONG-PW-2') });
    expect(r.ready).toBe(false);
    expect(r.output).toMatch(/refused the credentials/);
    expect(r.output).not.toContain('WRONG-PW-2');
  }, 60_000);

  test('NATS_USER/NATS_PASSWORD win over the URL', async () => {
    const s = await nats(config);
    const r = await serve({
      NATS_URL: withUserinfo(s.url, 'nuser:WRONG-PW-3'),
      NATS_USER: 'nuser',
      NATS_PASSWORD: 'NATS-PW-1',
    });
    expect(r.ready).toBe(true);
  }, 60_000);

  test('nats://token@host (a user part alone) is a token', async () => {
    const s = await nats('authorization { token: "T0KEN-4", timeout: 10 }\n');
    const r = await serve({ NATS_URL: withUserinfo(s.url, 'T0KEN-4') });
    expect(r.output).not.toContain('T0KEN-4');
    expect(r.ready).toBe(true);
  }, 60_000);
});
