/**
 * Who owns an output of `portal serve`, against the built CLI as real processes and real (slow) HTTP edges: a
 * refused start keeps no actor instance; no output goes into the host's own files (its state folder).
 */
import { mkdir, readFile, readdir, symlink } from 'node:fs/promises';
import path from 'node:path';
import { createMesh, type Mesh } from '../helpers/mesh.js';
import { runPortal, startEmbeddedServe, type EmbeddedServe } from '../helpers/portal-cli.js';
import { existsSync } from 'node:fs';
import { postJson } from '../helpers/post-json.js';

type Answer = {
  status: number;
  json: { error?: { code: string; message: string } } & Record<string, unknown>;
};
const call = (url: string, body?: unknown): Promise<Answer> => postJson(url, body);

/** SchedulerActor instances from a dashboard's /metrics (portal_actor_instances). */
async function schedulerInstances(dashboard: string): Promise<number> {
  const text = await (await fetch(new URL('metrics', dashboard))).text();
  const m = /^portal_actor_instances\{[^}]*type="SchedulerActor"[^}]*\} (\d+)$/m.exec(text);
  return m ? Number(m[1]) : 0;
}

describe('portal serve: who owns an output', () => {
  let mesh: Mesh;
  const serves: EmbeddedServe[] = [];

  beforeAll(async () => {
    // 32 chunks of 16 KiB at 64 KiB/s: about 8 s, time to start something else on its output meanwhile
    mesh = await createMesh(32 * 16384, 16384, [{ holds: 'all', bandwidthBytesPerSec: 64 * 1024 }]);
  }, 60_000);
  afterAll(async () => {
    for (const s of serves) s.child.kill('SIGKILL');
    await mesh?.close();
  });

  async function serveIn(name: string, args: string[] = []): Promise<{ root: string; serve: EmbeddedServe }> {
    const root = path.join(mesh.dir, `${name}-root`);
    await mkdir(root);
    const serve = await startEmbeddedServe(['--output-root', root, ...args]);
    serves.push(serve);
    return { root, serve };
  }
  const request = (id: string, output: string, extra: Record<string, unknown> = {}) => ({
    transferId: id,
    manifest: mesh.manifest,
    output,
    edges: mesh.edges,
    ...extra,
  });

  test('every refused start (confinement, validation, conflict of manifests) leaves no SchedulerActor instance', async () => {
    const { serve } = await serveIn('refused', ['--dashboard-port', '0']);
    const start = (id: string, body: unknown) =>
      call(`${serve.base}/SchedulerActor/${id}/method/start`, body);
    expect(await schedulerInstances(serve.dashboard!)).toBe(0);
    for (let i = 0; i < 40; i++) {
      const r = await start(`out-${i}`, request(`out-${i}`, '../outside.bin'));
      expect(r.status).toBe(403);
      expect(r.json.error?.code).toBe('PORTAL_OUTPUT_OUTSIDE_ROOT');
    }
    // a manifest that is not one, a missing folder: refused as well
    const bad = await start('bad-manifest', { ...request('bad-manifest', 'b.bin'), manifest: { id: 'x' } });
    expect(bad.status).toBe(400);
    const noFolder = await start('no-folder', request('no-folder', 'missing/f.bin'));
    expect(noFolder.json.error?.code).toBe('PORTAL_OUTPUT_REFUSED');
    // a trailing separator names a folder (not the file x.bin), and a control character in the name breaks logs and
    // shells (trial L1: both were written as x.bin and "a\nb.bin")
    const slash = await start('slash', request('slash', 'x.bin/'));
    expect([slash.status, slash.json.error?.code]).toEqual([409, 'PORTAL_OUTPUT_REFUSED']);
    expect(slash.json.error?.message).toContain(
      'output x.bin/ ends with a path separator, which names a folder',
    );
    for (const name of ['a\nb.bin', 'esc\u001b[31m.bin', 'del\u007f.bin']) {
      const r = await start('control', request('control', name));
      expect([r.status, r.json.error?.code]).toEqual([409, 'PORTAL_OUTPUT_REFUSED']);
      expect(r.json.error?.message).toContain('has a control character (newline, ESC…) in its name');
      // shown escaped: no control character reaches the answer (nor the log line made of it)
      expect([...r.json.error!.message].filter((c) => c < ' ' || c === '\u007f')).toEqual([]);
    }
    expect(await readdir(path.join(mesh.dir, 'refused-root'))).toEqual([]);
    expect(await schedulerInstances(serve.dashboard!)).toBe(0);
    // a refused start of a known transfer keeps it (and its instance)
    expect((await start('kept', request('kept', 'kept.bin'))).status).toBe(200);
    const again = await start('kept', request('kept', 'other.bin'));
    expect(again.status).toBe(409);
    expect(await schedulerInstances(serve.dashboard!)).toBe(1);
    expect((await call(`${serve.base}/SchedulerActor/kept/method/status`)).json.state).toMatch(
      /running|done/,
    );
  }, 60_000);
  test('an output in the state folder under the root (serve.lock, a link to it, its partial file) is refused with 403 and the lock is kept', async () => {
    const root = path.join(mesh.dir, 'state-root');
    await mkdir(root);
    // the trial's layout: --state-dir ./state under the default --output-root . (the serve's working folder)
    const serve = await startEmbeddedServe(['--state-dir', './state'], undefined, 'cpu', root);
    serves.push(serve);
    const lockBefore = await readFile(path.join(root, 'state', 'serve.lock'), 'utf8');
    await symlink(path.join(root, 'state'), path.join(root, 'st-link'));
    for (const [i, output] of [
      'state/serve.lock',
      'st-link/serve.lock',
      'state/new.bin',
      'st-link/x',
    ].entries()) {
      const id = `st-${i}`;
      const r = await call(
        `${serve.base}/SchedulerActor/${id}/method/start`,
        request(id, output, { overwrite: true }),
      );
      expect(r.status).toBe(403);
      expect(r.json.error?.code).toBe('PORTAL_OUTPUT_OUTSIDE_ROOT');
      expect(r.json.error?.message).toContain('the state folder (--state-dir)');
    }
    // an output whose partial file or lock folder would be the host's: `state` is the folder itself
    const r = await call(
      `${serve.base}/SchedulerActor/st-x/method/start`,
      request('st-x', 'state', { overwrite: true }),
    );
    expect(r.status).toBeGreaterThanOrEqual(403);
    await new Promise((res) => setTimeout(res, 1000));
    expect(await readFile(path.join(root, 'state', 'serve.lock'), 'utf8')).toBe(lockBefore);
    expect((await readdir(path.join(root, 'state'))).filter((f) => /bin|portal|^x$/.test(f))).toEqual([]);
    // beside it, in the root, a transfer runs as before
    expect(
      (await call(`${serve.base}/SchedulerActor/fine/method/start`, request('fine', 'fine.bin'))).status,
    ).toBe(200);
  }, 60_000);
  test('a second transfer on the output a running or queued one writes is refused 409 naming it, until it ends', async () => {
    const { root, serve } = await serveIn('two', ['--max-running', '1']);
    const start = (id: string, body: unknown) =>
      call(`${serve.base}/SchedulerActor/${id}/method/start`, body);
    expect((await start('tA', request('tA', 'same.bin'))).json.state).toBe('running');
    const tB = await start('tB', request('tB', 'same.bin', { overwrite: true }));
    expect(tB.status).toBe(409);
    expect(tB.json.error?.code).toBe('PORTAL_TRANSFER_CONFLICT');
    expect(tB.json.error?.message).toContain('is being written by transfer "tA"');
    // queued ones own their output as well
    expect((await start('tC', request('tC', 'q.bin'))).json.state).toBe('queued');
    const tD = await start('tD', request('tD', 'q.bin'));
    expect(tD.status).toBe(409);
    expect(tD.json.error?.message).toContain('is being written by transfer "tC"');
    // a queued transfer writes nothing beside its output (its lock on disk waits for its admission)
    expect(existsSync(path.join(root, 'q.bin.portal'))).toBe(false);
    expect(existsSync(path.join(root, 'same.bin.portal', 'lock'))).toBe(true);
    // once tA ends (cancelled), its output is free again
    expect((await call(`${serve.base}/SchedulerActor/tA/method/cancel`)).json.state).toBe('cancelled');
    expect((await start('tB', request('tB', 'same.bin', { overwrite: true }))).status).toBe(200);
  }, 60_000);

  test('a queued transfer whose output a fetch took meanwhile fails once admitted, naming the fetch; the fetch ends verified', async () => {
    const { root, serve } = await serveIn('queued-fetch', ['--max-running', '1']);
    const start = (id: string, body: unknown) =>
      call(`${serve.base}/SchedulerActor/${id}/method/start`, body);
    expect((await start('qA', request('qA', 'a.bin'))).json.state).toBe('running');
    expect((await start('qB', request('qB', 'b.bin'))).json.state).toBe('queued');
    // a fetch of b.bin while qB waits: nothing locks it yet
    const fetching = runPortal(
      ['fetch', mesh.manifestPath, '--edge', mesh.edges[0].config.url, '--out', 'b.bin'],
      { cwd: root, timeoutMs: 60_000 },
    );
    const lock = path.join(root, 'b.bin.portal', 'lock');
    for (let i = 0; i < 200 && !existsSync(lock); i++) await new Promise((res) => setTimeout(res, 50));
    expect(existsSync(lock)).toBe(true);
    // qA ends: qB is admitted, finds the fetch's lock and fails saying so
    expect((await call(`${serve.base}/SchedulerActor/qA/method/cancel`)).json.state).toBe('cancelled');
    let st: { state?: string; error?: string } = {};
    for (let i = 0; i < 100 && st.state !== 'failed'; i++) {
      st = (await call(`${serve.base}/SchedulerActor/qB/method/status`)).json as typeof st;
      if (st.state !== 'failed') await new Promise((res) => setTimeout(res, 100));
    }
    expect(st.state).toBe('failed');
    expect(st.error).toContain('could not start once admitted');
    expect(st.error).toContain('is being written by another portal process');
    const r = await fetching;
    expect(r.code).toBe(0);
    expect((await readFile(path.join(root, 'b.bin'))).equals(await readFile(mesh.source))).toBe(true);
  }, 90_000);

  test('portal fetch --out on a file serve is writing is refused (exit 2) naming the serve, and the output of serve ends verified', async () => {
    const { root, serve } = await serveIn('fetch');
    const start = await call(`${serve.base}/SchedulerActor/tF/method/start`, request('tF', 'x.bin'));
    expect(start.json.state).toBe('running');
    const r = await runPortal(
      ['fetch', mesh.manifestPath, '--edge', mesh.edges[0].config.url, '--out', 'x.bin'],
      { cwd: root, timeoutMs: 60_000 },
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`is being written by another portal process (pid ${serve.child.pid})`);
    let st: Record<string, unknown> = {};
    for (let i = 0; i < 300 && st.state !== 'done'; i++) {
      st = (await call(`${serve.base}/SchedulerActor/tF/method/status`)).json;
      await new Promise((res) => setTimeout(res, 100));
    }
    expect(st.state).toBe('done');
    expect((await readFile(path.join(root, 'x.bin'))).equals(await readFile(mesh.source))).toBe(true);
    // the lock went with the transfer: a fetch now finds the output finished
    expect(existsSync(path.join(root, 'x.bin.portal', 'lock'))).toBe(false);
  }, 90_000);
});
