import path from 'node:path';
import os from 'node:os';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import {
  createCommandExecutor,
  createKernelExecutor,
  loadModuleExecutor,
  type PeerTaskInput,
} from '../../cli/coord/executors.js';
import { createPeerWorker } from '../../cli/coord/worker.js';
import { DEMO_PEERS } from '../../cli/coord/profiles.js';

const task = (over: Partial<PeerTaskInput> = {}): PeerTaskInput => ({
  taskId: 't1',
  attempt: 1,
  type: 'resize',
  work: 2,
  hour: 9,
  payload: { x: 4 },
  ...over,
});
const ctx = { backlogAtArrival: 0, queuedBehind: 0 };

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'portal-exec-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('peer executors', () => {
  test("a user's module: execute(task) gives the output, a throw fails the attempt with its message, taskTypes is read", async () => {
    const file = path.join(dir, 'exec.mjs');
    await writeFile(
      file,
      `export const taskTypes = ['resize'];
       export async function execute(t) {
         if (t.payload.x < 0) throw new Error('negative x');
         return { area: t.payload.x * t.work, id: t.taskId };
       }`,
    );
    const e = await loadModuleExecutor(file);
    expect(e.taskTypes).toEqual(['resize']);
    expect(await e.run(task(), ctx)).toEqual({ ok: true, output: { area: 8, id: 't1' } });
    expect(await e.run(task({ payload: { x: -1 } }), ctx)).toEqual({ ok: false, error: 'negative x' });
    expect((await loadModuleExecutor(file, ['other'])).taskTypes).toEqual(['other']);
  });

  test('a module that exports no function, or cannot be loaded, is refused naming it', async () => {
    const file = path.join(dir, 'nothing.mjs');
    await writeFile(file, 'export const x = 1;');
    await expect(loadModuleExecutor(file, ['a'])).rejects.toMatchObject({
      code: 'PORTAL_CONFIG_INVALID',
      message: expect.stringContaining('exports neither execute(task) nor a default function'),
    });
    await expect(loadModuleExecutor(path.join(dir, 'missing.mjs'), ['a'])).rejects.toMatchObject({
      code: 'PORTAL_CONFIG_INVALID',
      message: expect.stringContaining('--exec-module: cannot load'),
    });
  });

  test("a user's command: the task on stdin, JSON or text on stdout, a non-zero exit fails with stderr", async () => {
    const ok = createCommandExecutor(
      `${JSON.stringify(process.execPath)} -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>{const t=JSON.parse(s);console.log(JSON.stringify({twice:t.payload.x*2}))})"`,
      ['resize'],
    );
    expect(await ok.run(task(), ctx)).toEqual({ ok: true, output: { twice: 8 } });
    const text = createCommandExecutor('cat >/dev/null; echo hello', ['resize']);
    expect(await text.run(task(), ctx)).toEqual({ ok: true, output: 'hello' });
    const bad = createCommandExecutor('cat >/dev/null; echo "no GPU here" >&2; exit 3', ['resize']);
    expect(await bad.run(task(), ctx)).toEqual({ ok: false, error: 'exited 3: no GPU here' });
    const slow = createCommandExecutor('sleep 5', ['resize'], 200);
    expect(await slow.run(task(), ctx)).toEqual({ ok: false, error: 'exited on SIGKILL' });
    expect(() => createCommandExecutor('true', [])).toThrow(
      expect.objectContaining({ code: 'PORTAL_CONFIG_INVALID', message: expect.stringContaining('--types') }),
    );
  });

  test('the built-in kernels emulating a profile fail an attempt that arrives on an overloaded peer and refuse types the profile does not run', async () => {
    const unstable = DEMO_PEERS.find((p) => p.id === 'unstable')!;
    const e = createKernelExecutor({ profile: { ...unstable, failProb: 1, speed: { physics: 1 } }, pace: 1 });
    expect(e.taskTypes).toEqual(['physics']);
    const calm = await e.run(task({ type: 'physics', work: 1 }), ctx);
    expect(calm.ok).toBe(true);
    expect(calm.cpuMs).toBeGreaterThan(0);
    const over = await e.run(task({ type: 'physics', work: 1 }), { backlogAtArrival: 1, queuedBehind: 0 });
    expect(over).toMatchObject({ ok: false, error: 'unstable failed (1 tasks ahead)' });
    expect(await e.run(task({ type: 'render' }), ctx)).toEqual({
      ok: false,
      error: 'this peer does not run "render" tasks',
    });
  });

  test('a worker runs `concurrency` tasks at once, queues the rest in arrival order and reports its load', async () => {
    const release: Array<() => void> = [];
    const started: string[] = [];
    const w = createPeerWorker({
      executor: {
        name: 'held',
        taskTypes: ['x'],
        run: (t) => {
          started.push(t.taskId);
          return new Promise((r) => release.push(() => r({ ok: true, output: t.taskId })));
        },
      },
      concurrency: 2,
      maxInFlight: 4,
    });
    const answers = ['a', 'b', 'c', 'd'].map((id) => w.submit(task({ taskId: id, type: 'x' })));
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    expect(started).toEqual(['a', 'b']);
    expect(w.telemetry()).toMatchObject({ load: 4, running: 2, queued: 2 });
    while (started.length < 4 || release.length > 0) {
      release.shift()?.();
      await new Promise((r) => setImmediate(r));
    }
    const rs = await Promise.all(answers);
    expect(rs.map((r) => r.output)).toEqual(['a', 'b', 'c', 'd']);
    expect(started).toEqual(['a', 'b', 'c', 'd']);
    expect(w.telemetry()).toMatchObject({ load: 0, completed: 4, failed: 0 });
    w.close();
  });
});
