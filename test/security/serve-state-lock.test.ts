/**
 * `portal serve --state-dir S` holds S's lock while it runs (S/serve.lock with its pid): a second serve on S is
 * refused at start instead of replaying and deleting the running one's write-ahead log; a lock whose process is
 * gone (SIGKILL) is taken over. Real serve processes, a real (slow) edge.
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { freePort } from '../../common/net.js';
import { createMesh, type Mesh } from '../helpers/mesh.js';
import { runPortal, startEmbeddedServe, type EmbeddedServe } from '../helpers/portal-cli.js';
import { postJson } from '../helpers/post-json.js';

const post = postJson;

describe('portal serve: one process per --state-dir', () => {
  let mesh: Mesh;
  const serves: EmbeddedServe[] = [];

  beforeAll(async () => {
    // 32 chunks of 16 KiB at 32 KiB/s: the transfer is still running while the second serve tries
    mesh = await createMesh(32 * 16384, 16384, [{ holds: 'all', bandwidthBytesPerSec: 32 * 1024 }]);
  }, 60_000);
  afterAll(async () => {
    for (const s of serves) s.child.kill('SIGKILL');
    await mesh?.close();
  });

  test('a second serve on a running one’s state dir exits 2 naming the folder and the pid, and the acknowledged transfer survives', async () => {
    const root = path.join(mesh.dir, 'root');
    const state = path.join(mesh.dir, 'state');
    await mkdir(root);
    const first = await startEmbeddedServe(['--output-root', root, '--state-dir', state]);
    serves.push(first);
    const id = 'state-lock-1';
    const status = (s: EmbeddedServe) => post(`${s.base}/SchedulerActor/${id}/method/status`);
    const started = await post(`${first.base}/SchedulerActor/${id}/method/start`, {
      transferId: id,
      manifest: mesh.manifest,
      output: 'x.bin',
      edges: mesh.edges,
    });
    expect(started.status).toBe(200);

    const second = await runPortal(
      [
        'serve',
        '--runtime',
        'embedded',
        '--app-port',
        String(await freePort()),
        '--backend',
        'cpu',
        '--json',
        '--output-root',
        root,
        '--state-dir',
        state,
      ],
      // the old code started beside it: stop it once it says ready, so the test fails instead of hanging
      { timeoutMs: 30_000, onLine: (l, child) => l.includes('"ready"') && child.kill('SIGTERM') },
    );
    expect(second.code).toBe(2);
    expect(second.stderr).toContain('[PORTAL_STATE_LOCKED]');
    expect(second.stderr).toContain(
      `--state-dir ${state} is in use by another portal serve (pid ${first.child.pid})`,
    );

    // the first one still has its transfer
    expect((await status(first)).json.state).toMatch(/running|verifying|done/);

    // its process gone (SIGKILL: the lock file stays), the next serve takes the lock over and resumes the transfer
    first.child.kill('SIGKILL');
    await new Promise((r) => first.child.once('exit', r));
    const third = await startEmbeddedServe(['--output-root', root, '--state-dir', state]);
    serves.push(third);
    const st = await status(third);
    expect(st.status).toBe(200);
    expect(st.json.state).toMatch(/running|verifying|done/);
  }, 90_000);
});
