/**
 * `portal serve --output-root`: the confinement a start checked holds at every later open of the output, against
 * the built CLI as a real process and a real (slow) edge. A folder of the output's path replaced by a symbolic link
 * to a place outside the root after the start (a cancel and a restart, a host restart) makes Portal refuse, naming
 * the path, and nothing is written outside the root.
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, rename, symlink } from 'node:fs/promises';
import path from 'node:path';
import { createMesh, type Mesh } from '../helpers/mesh.js';
import { startEmbeddedServe, type EmbeddedServe } from '../helpers/portal-cli.js';

async function call(
  url: string,
  body?: unknown,
): Promise<{
  status: number;
  json: { error?: { code: string; message: string } } & Record<string, unknown>;
}> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: text ? (JSON.parse(text) as never) : {} };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('portal serve: outputs stay confined to --output-root after the start', () => {
  let mesh: Mesh;
  const serves: EmbeddedServe[] = [];

  beforeAll(async () => {
    // 32 chunks of 16 KiB at 64 KiB/s: about 8 s, time to cancel or kill it midway
    mesh = await createMesh(32 * 16384, 16384, [{ holds: 'all', bandwidthBytesPerSec: 64 * 1024 }]);
  }, 60_000);
  afterAll(async () => {
    for (const s of serves) s.child.kill('SIGKILL');
    await mesh?.close();
  });

  /** A fresh root with the folder `d`, a folder outside it, and a serve over them. */
  async function setup(name: string): Promise<{ root: string; outside: string; state: string }> {
    const root = path.join(mesh.dir, `${name}-root`);
    const outside = path.join(mesh.dir, `${name}-outside`);
    const state = path.join(mesh.dir, `${name}-state`);
    for (const d of [root, path.join(root, 'd'), outside, state]) await mkdir(d);
    return { root, outside, state };
  }
  const request = (id: string) => ({
    transferId: id,
    manifest: mesh.manifest,
    output: 'd/x.bin',
    edges: mesh.edges,
  });
  async function waitFor(base: string, id: string, pred: (st: Record<string, unknown>) => boolean) {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const st = (await call(`${base}/SchedulerActor/${id}/method/status`)).json as Record<string, unknown>;
      if (pred(st) || Date.now() > deadline) return st;
      await sleep(100);
    }
  }

  test('a restart after a folder of the output became a link to outside the root is refused naming the path, and writes nothing there', async () => {
    const { root, outside, state } = await setup('restart');
    const serve = await startEmbeddedServe(['--output-root', root, '--state-dir', state]);
    serves.push(serve);
    const id = 'confine-restart';
    const m = (method: string) => `${serve.base}/SchedulerActor/${id}/method/${method}`;
    expect((await call(m('start'), request(id))).status).toBe(200);
    await waitFor(serve.base, id, (st) => Number(st.complete ?? 0) >= 2);
    expect((await call(m('cancel'))).json.state).toBe('cancelled');
    // the trial's steps: the real folder goes, a link to a folder outside the root takes its name
    await rename(path.join(root, 'd'), path.join(root, 'd-was'));
    await symlink(outside, path.join(root, 'd'));
    const r = await call(m('restart'));
    expect(r.status).toBe(403);
    expect(r.json.error?.code).toBe('PORTAL_OUTPUT_OUTSIDE_ROOT');
    expect(r.json.error?.message).toContain(path.join('d', 'x.bin'));
    expect(r.json.error?.message).toMatch(/is now a symbolic link where a folder was/);
    await sleep(1500); // what a restart that went ahead would have written by now
    expect(await readdir(outside)).toEqual([]);
    expect((await call(m('status'))).json.state).toBe('cancelled');
  }, 60_000);

  test('a host restart that resumes a running transfer whose folder became a link fails it naming the path, and writes nothing outside', async () => {
    const { root, outside, state } = await setup('activate');
    const first = await startEmbeddedServe(['--output-root', root, '--state-dir', state]);
    serves.push(first);
    const id = 'confine-activate';
    expect((await call(`${first.base}/SchedulerActor/${id}/method/start`, request(id))).status).toBe(200);
    await waitFor(first.base, id, (st) => Number(st.complete ?? 0) >= 2);
    first.child.kill('SIGKILL');
    await new Promise((r) => first.child.once('exit', r));
    await rename(path.join(root, 'd'), path.join(root, 'd-was'));
    await symlink(outside, path.join(root, 'd'));
    const second = await startEmbeddedServe(['--output-root', root, '--state-dir', state]);
    serves.push(second);
    const st = await waitFor(second.base, id, (s) => s.state === 'failed' || s.state === 'done');
    expect(st.state).toBe('failed');
    expect(st.error).toMatch(
      /d\/x\.bin(\.portal-part)? is no longer confined to the output root .*is now a symbolic link/,
    );
    await sleep(1000);
    expect(await readdir(outside)).toEqual([]);
    expect(existsSync(path.join(outside, 'x.bin'))).toBe(false);
  }, 60_000);
});
