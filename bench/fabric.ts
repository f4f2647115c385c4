/**
 * Data-fabric benchmarks, on loopback with real processes (`portal fetch` from dist/):
 *
 * - ttfb: time to first byte of Range reads at random offsets of a running transfer (`fetch --serve`),
 *   against one chunk's fetch time from the fastest edge (goal ≤ 2×).
 * - swarm: N fetchers of one file from one origin capped at R bytes/s with `--swarm` (haves over NATS),
 *   against one fetcher alone and N independent fetchers, in the same run: bytes the origin served and the
 *   slowest fetcher's time (goals: origin ≤ 1.5 × the file, slowest ≤ 1.5 × one alone).
 *
 * `npm run bench:fabric -- [--only ttfb|swarm] [--size-mib 64] [--fetchers 8] [--origin-rate 20000000]`
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { createInterface } from 'node:readline';
import { request } from 'undici';
import { createEdgeServer, createManifest, type EdgeServer, type Manifest } from '../transfer/index.js';
import { arg, quantile, startBenchNats } from './lib.js';

const MAIN = path.resolve('dist/cli/main.js');
const CHUNK = 256 * 1024;

interface Proc {
  lines: string[];
  line<T>(pick: (l: string) => T | undefined): Promise<T>;
  exit: Promise<number | null>;
}

function portal(args: string[], env: NodeJS.ProcessEnv = {}): Proc {
  const child = spawn(process.execPath, [MAIN, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, PORTAL_LOG_LEVEL: process.env.PORTAL_LOG_LEVEL ?? 'error', ...env },
  });
  const lines: string[] = [];
  const waiters: Array<() => void> = [];
  createInterface({ input: child.stdout }).on('line', (l) => {
    lines.push(l);
    for (const w of waiters.splice(0)) w();
  });
  const exit = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  return {
    lines,
    exit,
    line<T>(pick: (l: string) => T | undefined): Promise<T> {
      return new Promise((resolve) => {
        let seen = 0;
        const check = (): void => {
          for (; seen < lines.length; seen++) {
            const v = pick(lines[seen]);
            if (v !== undefined) return resolve(v);
          }
          waiters.push(check);
        };
        check();
      });
    },
  };
}

async function makeFile(
  dir: string,
  mib: number,
): Promise<{ source: string; manifestPath: string; m: Manifest }> {
  const source = path.join(dir, 'source.bin');
  await writeFile(source, crypto.randomBytes(mib * 1024 * 1024));
  const m = await createManifest(source, { chunkSize: CHUNK, name: 'out.bin' });
  const manifestPath = path.join(dir, 'source.manifest.json');
  await writeFile(manifestPath, JSON.stringify(m));
  return { source, manifestPath, m };
}

async function ttfb(dir: string, mib: number): Promise<void> {
  const { source, manifestPath, m } = await makeFile(dir, mib);
  const rates = [2e6, 3e6, 3e6, 4e6];
  const edges: EdgeServer[] = [];
  for (const [i, rate] of rates.entries())
    edges.push(
      await createEdgeServer({
        id: `t${i}`,
        source: { path: source, manifest: m },
        bandwidthBytesPerSec: rate,
        rttMs: 5,
      }),
    );
  // one chunk from the fastest edge, idle: the yardstick
  const t0 = performance.now();
  const one = await request(`${edges[rates.indexOf(Math.max(...rates))].url}/v1/chunks/${m.chunks[0]}`);
  await one.body.arrayBuffer();
  const chunkMs = performance.now() - t0;
  const fetch = portal([
    'fetch',
    manifestPath,
    ...edges.flatMap((e) => ['--edge', e.url]),
    '--out',
    path.join(dir, 'ttfb.bin'),
    '--serve',
    '0',
    '--progress-json',
  ]);
  const url = await fetch.line((l) => {
    const j = JSON.parse(l) as { type?: string; url?: string };
    return j.type === 'serving' ? j.url : undefined;
  });
  const times: number[] = [];
  const n = m.chunks.length;
  for (let k = 0; k < 12; k++) {
    // offsets in the second half: chunk order would fetch them last
    const c = Math.floor(n / 2 + ((k * 7919) % Math.floor(n / 2 - 1)));
    const offset = c * CHUNK + 1000;
    const s = performance.now();
    // the transfer may end before all reads: then the reads stop (the fetch process is gone)
    const res = await request(url, { headers: { range: `bytes=${offset}-${offset + 65535}` } }).catch(
      () => undefined,
    );
    if (!res) break;
    let first = 0;
    for await (const piece of res.body) {
      if (first === 0 && (piece as Buffer).length > 0) first = performance.now() - s;
    }
    times.push(first);
    if (process.env.BENCH_DEBUG) console.error('read', k, c, first);
    await new Promise((r) => setTimeout(r, 150));
  }
  await fetch.exit;
  for (const e of edges) await e.close();
  const sorted = [...times].sort((a, b) => a - b);
  console.log(
    JSON.stringify({
      bench: 'ttfb',
      fileMiB: mib,
      edgesBytesPerSec: rates,
      chunkBytes: CHUNK,
      oneChunkFastestEdgeMs: +chunkMs.toFixed(1),
      reads: times.length,
      ttfbMsP50: +quantile(sorted, 0.5).toFixed(1),
      ttfbMsMax: +sorted[sorted.length - 1].toFixed(1),
      ratioP50: +(quantile(sorted, 0.5) / chunkMs).toFixed(2),
      ratioMax: +(sorted[sorted.length - 1] / chunkMs).toFixed(2),
    }),
  );
}

async function swarm(dir: string, mib: number, fetchers: number, originRate: number): Promise<void> {
  const { source, manifestPath, m } = await makeFile(dir, mib);
  const nats = await startBenchNats();
  const run = async (label: string, count: number, swarmMode: boolean): Promise<Record<string, unknown>> => {
    const origin = await createEdgeServer({
      id: `origin-${label}`,
      source: { path: source, manifest: m },
      bandwidthBytesPerSec: originRate,
    });
    const started = performance.now();
    const procs = Array.from({ length: count }, (_, i) =>
      portal(
        [
          'fetch',
          manifestPath,
          '--edge',
          origin.url,
          '--out',
          path.join(dir, `${label}-${i}.bin`),
          '--progress-json',
          ...(swarmMode ? ['--swarm', '--swarm-id', `${label}${i}`, '--swarm-linger', '10'] : []),
        ],
        // only the swarm talks over NATS (its haves); the others move their bytes as a plain fetch does
        swarmMode ? { NATS_URL: nats.url } : {},
      ),
    );
    // a fetcher is done at its first progress line with every chunk complete (a swarm peer then lingers to
    // seed the others); one that exits first, without it, failed
    const done = await Promise.all(
      procs.map((p) =>
        Promise.race([
          p.line((l) => {
            let j: { type?: string; complete?: number; total?: number } = {};
            try {
              j = JSON.parse(l) as typeof j;
            } catch {
              // not a status line
            }
            return (j.type === 'progress' && j.complete === j.total) || j.type === 'result'
              ? performance.now() - started
              : undefined;
          }),
          p.exit.then(() => Number.NaN),
        ]),
      ),
    );
    const originBytes = origin.stats().bytesServed;
    const codes = await Promise.all(procs.map((p) => p.exit));
    await origin.close();
    const ok = done.filter((d) => !Number.isNaN(d));
    return {
      run: label,
      fetchers: count,
      failed: codes.filter((c) => c !== 0).length,
      slowestS: ok.length === count ? +(Math.max(...ok) / 1000).toFixed(2) : null,
      fastestS: ok.length > 0 ? +(Math.min(...ok) / 1000).toFixed(2) : null,
      originBytesOverFile: +(originBytes / m.fileSize).toFixed(2),
    };
  };
  const alone = await run('alone', 1, false);
  const sw = await run('swarm', fetchers, true);
  const indep = await run('independent', fetchers, false);
  await nats.stop();
  console.log(
    JSON.stringify({
      bench: 'swarm',
      fileMiB: mib,
      originBytesPerSec: originRate,
      alone,
      swarm: sw,
      independent: indep,
      slowestSwarmOverAlone: +((sw.slowestS as number) / (alone.slowestS as number)).toFixed(2),
    }),
  );
}

async function main(): Promise<void> {
  const only = arg('only', 'all');
  const mib = Number(arg('size-mib', '64'));
  const dir = await mkdtemp(path.join(os.tmpdir(), 'portal-bench-fabric-'));
  try {
    console.log(
      JSON.stringify({
        machine: `${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}`,
        node: process.version,
        date: new Date().toISOString(),
      }),
    );
    if (only === 'all' || only === 'ttfb') await ttfb(dir, mib);
    if (only === 'all' || only === 'swarm')
      await swarm(dir, mib, Number(arg('fetchers', '8')), Number(arg('origin-rate', '20000000')));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

void main();
