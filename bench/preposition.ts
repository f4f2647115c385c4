/**
 * Pre-positioning beside an active transfer (issue 18), on loopback with real parts: one `portal serve
 * --runtime embedded` process (from dist/) schedules both; three capped origin edges and one accepting
 * target edge are real HTTP servers in this process.
 *
 * - foreground: a transfer of the file into a local output, from edges e1 and e2.
 * - pre-position task: copy the same file onto the accepting edge `target` (PUT /v1/chunks/<cid>), from e1,
 *   e2 and e3 (a mirror the foreground does not use), started first, so that it has fetches in flight on e1
 *   and e2 when the foreground transfer arrives (they are cancelled: background work takes an edge only
 *   while no foreground transfer uses or wants it).
 *
 * Runs, interleaved in one run (alone, beside, beside, alone, …, after one warm-up run alone that is not
 * counted): the foreground transfer alone, and the same with the task beside it. Prints per run and in
 * summary the foreground's completion time (startedAt → finishedAt as the host stamped them, verification
 * included), the median ratio beside/alone (goal ≤ 1.05), when the task finished relative to the
 * foreground's end, and the task's finish against the ideal finish in the capacity the foreground left idle:
 * all three edges before the foreground starts, e3 alone while it runs, all three after it ends (goal: the
 * task finishes, and near that ideal). The 1-minute load average is printed at the start and the end.
 *
 * `npm run bench:preposition -- [--size-mib 32] [--reps 3] [--rates 4000000,3000000,2000000]`
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { request } from 'undici';
import { createEdgeServer, createManifest, type EdgeServer, type Manifest } from '../transfer/index.js';
import type { TransferRequest, TransferStatus } from '../actors/index.js';
import { arg, median, startBenchServe } from './lib.js';

const CHUNK = 256 * 1024;

interface Host {
  child: ChildProcess;
  api(id: string, method: string, body?: unknown): Promise<TransferStatus>;
}

/** `portal serve --runtime embedded` on a free port, once it printed its ready line. */
async function startHost(stateDir: string, outputRoot: string): Promise<Host> {
  const { child, port } = await startBenchServe({
    stateDir,
    outputRoot,
    env: { PORTAL_LOG_LEVEL: process.env.PORTAL_LOG_LEVEL ?? 'error' },
  });
  return {
    child,
    async api(id, method, body) {
      const res = await request(
        `http://127.0.0.1:${port}/v1.0/actors/SchedulerActor/${id}/method/${method}`,
        {
          method: 'POST',
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        },
      );
      const text = await res.body.text();
      if (res.statusCode !== 200) throw new Error(`${method} ${id}: ${res.statusCode} ${text.slice(0, 300)}`);
      return JSON.parse(text) as TransferStatus;
    },
  };
}

/** Polls status until the transfer ends; throws unless it ended done and verified. */
async function waitDone(host: Host, id: string): Promise<TransferStatus> {
  for (;;) {
    const s = await host.api(id, 'status');
    if (s.state === 'done' && s.verified && s.finishedAt !== undefined) return s;
    if (s.state === 'failed' || s.state === 'cancelled')
      throw new Error(`${id} ended ${s.state}: ${s.error}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const edgeRef = (e: EdgeServer) => ({
  id: e.id,
  config: { url: e.url, kind: 'portal' as const, flags: 0, maxParallel: 4 },
  holds: 'all' as const,
});

/**
 * The task's ideal end (ms after its start `b0`) in the capacity the foreground leaves idle: all edges'
 * caps `all` (bytes/s) until the foreground starts at `f0`, the unused mirror's cap `spare` until it ends
 * at `f1`, all of them after; `bytes` to move.
 */
export function idealIdleEndMs(bytes: number, all: number, spare: number, f0: number, f1: number): number {
  const before = (Math.max(0, f0) * all) / 1000;
  if (before >= bytes) return (bytes / all) * 1000;
  const during = ((f1 - f0) * spare) / 1000;
  if (before + during >= bytes) return f0 + ((bytes - before) / spare) * 1000;
  return f1 + ((bytes - before - during) / all) * 1000;
}

async function main(): Promise<void> {
  const mib = Number(arg('size-mib', '32'));
  const reps = Number(arg('reps', '3'));
  const rates = arg('rates', '4000000,3000000,2000000').split(',').map(Number);
  if (rates.length !== 3 || rates.some((r) => !(r > 0))) throw new Error('--rates: three positive bytes/s');
  const dir = await mkdtemp(path.join(os.tmpdir(), 'portal-bench-preposition-'));
  const load = () => os.loadavg().map((x) => +x.toFixed(2));
  console.log(
    JSON.stringify({
      machine: `${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}`,
      node: process.version,
      date: new Date().toISOString(),
      loadAvgStart: load(),
    }),
  );
  const source = path.join(dir, 'source.bin');
  await writeFile(source, crypto.randomBytes(mib * 1024 * 1024));
  const m: Manifest = await createManifest(source, { chunkSize: CHUNK, name: 'out.bin' });
  const edges = await Promise.all(
    rates.map((rate, i) =>
      createEdgeServer({
        id: `e${i + 1}`,
        source: { path: source, manifest: m },
        bandwidthBytesPerSec: rate,
        rttMs: 5,
      }),
    ),
  );
  const host = await startHost(path.join(dir, 'state'), dir);
  const rows: Array<Record<string, number | string>> = [];
  try {
    let n = 0;
    const foreground = (k: number): TransferRequest => ({
      transferId: `fg${k}`,
      manifest: m,
      output: path.join(dir, `fg${k}.bin`),
      edges: [edgeRef(edges[0]), edgeRef(edges[1])],
    });
    const alone = async (): Promise<Record<string, number | string>> => {
      const req = foreground(++n);
      await host.api(req.transferId, 'start', req);
      const s = await waitDone(host, req.transferId);
      await rm(req.output, { force: true });
      return { run: 'alone', fgMs: s.finishedAt! - s.startedAt };
    };
    const beside = async (): Promise<Record<string, number | string>> => {
      const k = ++n;
      const target = await createEdgeServer({
        id: `target${k}`,
        source: { path: path.join(dir, `target${k}.bin`), manifest: m },
        holds: new Set(),
        accept: {},
      });
      const pp: TransferRequest = {
        transferId: `pp${k}`,
        manifest: m,
        output: target.url,
        edges: edges.map(edgeRef),
        prePosition: {},
      };
      await host.api(pp.transferId, 'start', pp);
      // the foreground arrives while the task has fetches in flight on e1 and e2
      for (;;) {
        const s = await host.api(pp.transferId, 'status');
        if (s.complete >= 2) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      const req = foreground(k);
      await host.api(req.transferId, 'start', req);
      const fg = await waitDone(host, req.transferId);
      const bg = await waitDone(host, pp.transferId);
      const held = target.holdings();
      await target.close();
      await rm(req.output, { force: true });
      await rm(path.join(dir, `target${k}.bin`), { force: true });
      if (held !== 'all' && held.size !== m.chunks.length)
        throw new Error(`the target holds ${held.size} of ${m.chunks.length} chunks`);
      const all = rates.reduce((a, b) => a + b, 0);
      const f0 = fg.startedAt - bg.startedAt;
      const f1 = fg.finishedAt! - bg.startedAt;
      const ideal = idealIdleEndMs(m.fileSize, all, rates[2], f0, f1);
      const bgEnd = bg.finishedAt! - bg.startedAt;
      return {
        run: 'beside',
        fgMs: fg.finishedAt! - fg.startedAt,
        ppEndAfterFgEndMs: bg.finishedAt! - fg.finishedAt!,
        ppMs: bgEnd,
        ppIdealIdleMs: Math.round(ideal),
        ppOverIdeal: +(bgEnd / ideal).toFixed(2),
        ppChunksPerEdge: bg.perEdgeChunks.join('/'),
        ppPreempted: bg.counters.preempted,
      };
    };
    await alone(); // warm-up: the edges' estimates and the host's code paths, not counted
    for (let r = 0; r < reps; r++) {
      // ABBA order, so a drift in the machine's load falls on both arms
      const order = r % 2 === 0 ? [alone, beside] : [beside, alone];
      for (const f of order) {
        const row = await f();
        row.load1 = load()[0];
        rows.push(row);
        console.log(JSON.stringify(row));
      }
    }
  } finally {
    host.child.kill('SIGTERM');
    await new Promise((r) => host.child.once('exit', r));
    for (const e of edges) await e.close();
    await rm(dir, { recursive: true, force: true });
  }
  const a = rows.filter((r) => r.run === 'alone').map((r) => r.fgMs as number);
  const b = rows.filter((r) => r.run === 'beside');
  const ideal = (m.fileSize / (rates[0] + rates[1])) * 1000;
  console.log(
    JSON.stringify({
      bench: 'preposition',
      fileMiB: mib,
      chunkBytes: CHUNK,
      edgesBytesPerSec: rates,
      fgIdealMs: Math.round(ideal),
      fgAloneMsMedian: Math.round(median(a)),
      fgBesideMsMedian: Math.round(median(b.map((r) => r.fgMs as number))),
      besideOverAlone: +(median(b.map((r) => r.fgMs as number)) / median(a)).toFixed(3),
      ppEndAfterFgEndMsMedian: Math.round(median(b.map((r) => r.ppEndAfterFgEndMs as number))),
      ppOverIdealMedian: +median(b.map((r) => r.ppOverIdeal as number)).toFixed(2),
      loadAvgEnd: load(),
    }),
  );
}

void main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
