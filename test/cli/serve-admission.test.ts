import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { freePort } from '../../common/net.js';
import { encodeActorId } from '../../runtime/index.js';
import type { TransferStatus } from '../../actors/index.js';
import { startAdmissionSource, type AdmissionSource } from '../helpers/admission.js';

// Admission control of a real `portal serve --runtime embedded`: with --max-running 2, six transfers from a real
// nginx run two at a time, the other four answer and show state `queued` until a slot frees, and all six finish
// verified; with the queue full too, a start is refused with 503 PORTAL_OVERLOADED. nginx sends each connection
// at most 32 KiB/s, so a transfer takes about eight seconds and the queue lasts about sixteen: at 128 KiB/s (two
// seconds each) the dashboard's first poll on a loaded CI machine came after the queue had drained (a CI rehearsal
// of session 14 failed so, passing alone).

const MAIN = path.resolve('dist/cli/main.js');
let src: AdmissionSource;
let dir: string;

beforeAll(async () => {
  src = await startAdmissionSource('admission', '32k');
  dir = src.dir;
});

afterAll(async () => {
  await src?.close();
});

/** `portal serve --runtime embedded` with `args`; resolves with its port and ready line once it is ready. */
async function serve(args: string[]) {
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [
      MAIN,
      'serve',
      '--runtime',
      'embedded',
      '--app-port',
      String(port),
      '--json',
      '--output-root',
      dir,
      ...args,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PORTAL_LOG_LEVEL: 'warn', NATS_URL: '' } },
  );
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`serve not ready: ${stderr}`)), 60_000);
    createInterface({ input: child.stdout }).on('line', (l) => {
      if (!l.includes('"type":"ready"')) return;
      clearTimeout(t);
      resolve(JSON.parse(l) as Record<string, unknown>);
    });
  });
  const call = async (id: string, method: string, body?: unknown) => {
    const r = await fetch(
      `http://127.0.0.1:${port}/v1.0/actors/SchedulerActor/${encodeActorId(id)}/method/${method}`,
      {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: body === undefined ? '' : JSON.stringify(body),
      },
    );
    return { status: r.status, body: (await r.json()) as TransferStatus & { error?: { code: string } } };
  };
  const stop = async () => {
    child.kill('SIGTERM');
    await exited;
  };
  return { ready, call, stop };
}

const startBody = (id: string) => src.startBody(id);

test('serve --max-running 2: six transfers run two at a time, four wait in state queued, and all six finish verified', async () => {
  const host = await serve(['--max-running', '2', '--max-queued', '4', '--dashboard-port', '0']);
  try {
    expect(host.ready).toMatchObject({ maxRunning: 2, maxQueued: 4 });
    const ids = Array.from({ length: 6 }, (_, i) => `adm-${i}`);
    const started: string[] = [];
    for (const id of ids) {
      const r = await host.call(id, 'start', startBody(id));
      expect(r.status).toBe(200);
      started.push(r.body.state);
    }
    expect(started).toEqual(['running', 'running', 'queued', 'queued', 'queued', 'queued']);
    // a queued transfer says so in its status (the summary leaves the edge views out unless asked)
    const queued = await host.call('adm-5', 'status');
    expect(queued.body).toMatchObject({ state: 'queued', complete: 0, inFlight: 0, total: 16 });
    expect(queued.body.edges).toBeUndefined();
    const detailed = await host.call('adm-0', 'status', { edges: true });
    expect(detailed.body.edges).toHaveLength(1);
    // every slot and every queue place is taken: the next start is refused, and nothing of it is kept
    const refused = await host.call('adm-6', 'start', startBody('adm-6'));
    expect(refused.status).toBe(503);
    expect(refused.body.error?.code).toBe('PORTAL_OVERLOADED');
    expect((await host.call('adm-6', 'status')).status).toBe(404);
    const metrics = await (await fetch(new URL('metrics', host.ready.dashboard as string))).text();
    expect(metrics).toMatch(/portal_transfers\{state="queued"\} 4/);
    expect(metrics).toMatch(/portal_transfers\{state="running"\} 2/);
    expect(metrics).toMatch(/portal_transfers_rejected_total 1/);
    // the dashboard lists and counts the queued ones (they have no scheduler to poll yet) beside the running ones
    let state: { counts: Record<string, number>; queued: { total: number; ids: string[] } } | undefined;
    // (the dashboard polls every 500 ms and the two running transfers end within seconds, promoting the queued ones
    // in order: the first snapshot that saw the queue lists what was still waiting then, a tail of the four)
    // (up to 30 s: on a loaded machine the dashboard's first poll may come seconds after the starts; the queue lasts
    // about sixteen seconds of transfer time, whatever the load)
    const until = Date.now() + 30_000;
    for (let i = 0; Date.now() < until && !(state && state.queued.total > 0); i++) {
      if (i) await new Promise((r) => setTimeout(r, 50));
      state = (await (
        await fetch(new URL('api/state', host.ready.dashboard as string))
      ).json()) as typeof state;
    }
    const waiting = state!.queued;
    expect(waiting.total).toBeGreaterThan(0);
    expect(waiting.ids).toEqual(['adm-2', 'adm-3', 'adm-4', 'adm-5'].slice(4 - waiting.total));
    expect(state!.counts.queued).toBe(waiting.total);

    // poll until every transfer ended: never more than two run at once, and each queued one ran
    // (seeded with the state each start answered: a queued one may be promoted before the first poll below)
    const seen = new Map<string, Set<string>>(ids.map((id, i) => [id, new Set<string>([started[i]])]));
    let last: TransferStatus[] = [];
    const deadline = Date.now() + 90_000;
    for (;;) {
      last = await Promise.all(ids.map(async (id) => (await host.call(id, 'status')).body));
      last.forEach((s, i) => seen.get(ids[i])!.add(s.state));
      expect(last.filter((s) => s.state === 'running' || s.state === 'verifying').length).toBeLessThanOrEqual(
        2,
      );
      if (last.every((s) => s.state === 'done' || s.state === 'failed')) break;
      if (Date.now() > deadline) throw new Error(`not done: ${JSON.stringify(last.map((s) => s.state))}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    for (const s of last) expect(s).toMatchObject({ state: 'done', verified: true, complete: 16 });
    for (const id of ids.slice(2)) expect(seen.get(id)!.has('queued')).toBe(true);
    const want = src.sha256;
    for (const id of ids)
      expect(
        createHash('sha256')
          .update(await readFile(path.join(dir, `${id}.bin`)))
          .digest('hex'),
      ).toBe(want);
    const after = await (await fetch(new URL('metrics', host.ready.dashboard as string))).text();
    expect(after).toMatch(/portal_transfers\{state="queued"\} 0/);
    expect(after).toMatch(/portal_transfers\{state="running"\} 0/);
    expect(after).toMatch(/portal_transfers_promoted_total 4/);
  } finally {
    await host.stop();
  }
}, 150_000);

test('serve --max-queued 1: a start beyond the slots and the queue answers 503 PORTAL_OVERLOADED; a cancelled queued transfer frees its place', async () => {
  const host = await serve(['--max-running', '1', '--max-queued', '1']);
  try {
    expect((await host.call('ovl-0', 'start', startBody('ovl-0'))).body.state).toBe('running');
    expect((await host.call('ovl-1', 'start', startBody('ovl-1'))).body.state).toBe('queued');
    const refused = await host.call('ovl-2', 'start', startBody('ovl-2'));
    expect(refused).toMatchObject({ status: 503, body: { error: { code: 'PORTAL_OVERLOADED' } } });
    expect(refused.body.error).toMatchObject({ message: expect.stringMatching(/--max-queued 1/) });
    // cancelling the queued one frees its place: the refused start now queues
    expect((await host.call('ovl-1', 'cancel')).body.state).toBe('cancelled');
    expect((await host.call('ovl-2', 'start', startBody('ovl-2'))).body.state).toBe('queued');
    await host.call('ovl-0', 'cancel');
    // the running slot went to ovl-2
    const deadline = Date.now() + 30_000;
    while ((await host.call('ovl-2', 'status')).body.state === 'queued') {
      if (Date.now() > deadline) throw new Error('ovl-2 was never admitted');
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(['running', 'verifying', 'done']).toContain((await host.call('ovl-2', 'status')).body.state);
    expect((await host.call('ovl-1', 'status')).body.state).toBe('cancelled');
    // cancelled while it waited (so its manifest was not in memory): a restart reads it again and queues it
    const again = await host.call('ovl-1', 'restart');
    expect(again.status).toBe(200);
    expect(['queued', 'running']).toContain(again.body.state);
    expect(again.body.total).toBe(16);
  } finally {
    await host.stop();
  }
}, 90_000);

test('serve: a refused start keeps no actor instance and writes no state; 50 refusals leave the instance count as it was', async () => {
  // an edge that accepts connections and never answers: the running transfer and the queued one stay put
  const { createServer } = await import('node:net');
  const sockets = new Set<import('node:net').Socket>();
  const silent = createServer((s) => sockets.add(s));
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const silentPort = (silent.address() as import('node:net').AddressInfo).port;
  const stateDir = await mkdtemp(path.join(tmpdir(), 'portal-admission-state-'));
  const host = await serve([
    '--max-running',
    '1',
    '--max-queued',
    '1',
    '--dashboard-port',
    '0',
    '--state-dir',
    stateDir,
  ]);
  const body = (id: string) => ({
    ...startBody(id),
    edges: [
      {
        id: 'silent',
        config: { url: `http://127.0.0.1:${silentPort}/src.bin`, kind: 'mirror', flags: 0, maxParallel: 1 },
        holds: 'all',
      },
    ],
  });
  const instances = async (): Promise<number> => {
    const text = await (await fetch(new URL('metrics', host.ready.dashboard as string))).text();
    const m = /portal_actor_instances\{host="embedded",type="SchedulerActor"\} (\d+)/.exec(text);
    return m ? Number(m[1]) : 0;
  };
  try {
    expect((await host.call('keep-0', 'start', body('keep-0'))).body.state).toBe('running');
    expect((await host.call('keep-1', 'start', body('keep-1'))).body.state).toBe('queued');
    expect(await instances()).toBe(2);
    // the actors with files (`.json` snapshot, `.log` of later writes) and the commit log: a running transfer's own
    // later writes may add its `.log`, a refused start must add no actor
    const stateFiles = async (): Promise<string[]> => [
      ...new Set((await readdir(stateDir)).map((f) => f.replace(/\.(json|log)$/, ''))),
    ];
    const filesBefore = (await stateFiles()).sort();
    const refused = await Promise.all(
      Array.from({ length: 50 }, (_, i) => host.call(`refused-${i}`, 'start', body(`refused-${i}`))),
    );
    for (const r of refused)
      expect(r).toMatchObject({ status: 503, body: { error: { code: 'PORTAL_OVERLOADED' } } });
    expect(await instances()).toBe(2);
    expect((await stateFiles()).sort()).toEqual(filesBefore);
    expect((await host.call('refused-0', 'status')).status).toBe(404);
  } finally {
    await host.stop();
    for (const s of sockets) s.destroy();
    silent.close();
    await rm(stateDir, { recursive: true, force: true });
  }
}, 90_000);
