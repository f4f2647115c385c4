/** Helpers the benchmark scripts share: flags, a seeded PRNG, quantiles, test files and timed runs of tools. */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { freePort } from '../harness/index.js';
import { toMetalink, type Manifest } from '../transfer/index.js';

/** The value after `--name` on the command line, or `fallback`. */
export function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

/** A seeded xorshift32 generator of unsigned 32-bit integers (benchmarks must be repeatable). */
export function xorshift(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

export { quantile } from '../common/quantile.js';

/** A JetStream-enabled nats-server for a benchmark: BENCH_NATS_URL when set, else a fresh one on a free port (stopped and removed by `stop`). */
export async function startBenchNats(): Promise<{ url: string; stop(): Promise<void> }> {
  if (process.env.BENCH_NATS_URL) return { url: process.env.BENCH_NATS_URL, stop: async () => undefined };
  const { startNatsServer } = await import('../harness/index.js');
  const s = await startNatsServer();
  return { url: s.url, stop: () => s.stop() };
}

/** Writes `bytes` random bytes to `path` (16 MiB at a time). */
export async function writeRandomFile(path: string, bytes: number): Promise<void> {
  const ws = createWriteStream(path);
  const block = 16 * 1024 * 1024;
  for (let done = 0; done < bytes; done += block) {
    const b = randomBytes(Math.min(block, bytes - done));
    if (!ws.write(b)) await new Promise<void>((r) => ws.once('drain', () => r()));
  }
  await new Promise<void>((res, rej) => ws.end((err?: Error | null) => (err ? rej(err) : res())));
}

/** The median of `xs` (NaN for none). */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** sha256 hex of a file, by the system's sha256sum (fast, and independent of the code measured). */
export function sha256File(path: string): string {
  return execFileSync('sha256sum', [path], { encoding: 'utf8' }).split(/\s+/)[0] ?? '';
}

/** One timed run of a tool: wall seconds and peak RSS (MB) as /usr/bin/time measured them. */
export interface TimedSample {
  tool: string;
  seconds: number;
  rssMB: number;
  /** User + system CPU seconds. */
  cpuSeconds: number;
  ok: boolean;
}

/**
 * Runs `cmd args` under /usr/bin/time without blocking this process's event loop (a benchmark may serve
 * the tool from this process); `check` decides, after a zero exit, whether the output is right.
 */
export async function runTimed(
  tool: string,
  cmd: string,
  args: string[],
  check: () => boolean | Promise<boolean>,
  onStart?: () => void,
): Promise<TimedSample> {
  const out = join(tmpdir(), `portal-bench-time-${process.pid}-${Math.random().toString(36).slice(2)}`);
  const child = spawn('/usr/bin/time', ['-f', '%e %M %U %S', '-o', out, cmd, ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  onStart?.();
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-4000)));
  const status = await new Promise<number | null>((r) => child.on('close', (code) => r(code)));
  const [e, m, u, s] = readFileSync(out, 'utf8').trim().split(/\s+/).slice(-4).map(Number);
  rmSync(out, { force: true });
  const ok = status === 0 && (await check());
  if (!ok) process.stderr.write(`${tool} failed (exit ${status}): ${stderr.slice(-2000)}\n`);
  return { tool, seconds: e, rssMB: m / 1024, cpuSeconds: u + s, ok };
}

/** Where the tools of a download benchmark write, and how to check and clear it. */
export interface DownloadTarget {
  /** The Metalink of the file's pieces and mirrors (what aria2c reads). */
  metalink: string;
  outDir: string;
  /** <outDir>/file.bin: aria2c names its output after the Metalink's file name, so every tool writes here. */
  out: string;
  /** Removes what any tool left (output, aria2c's control file, Portal's journal). */
  clean: () => void;
  /** True when the output hashes to the manifest's sha256. */
  good: () => boolean;
}

/** Writes the Metalink of `m` with `urls` as mirrors into `dir` and makes `dir/out` for the outputs. */
export function prepareDownload(dir: string, m: Manifest, urls: string[]): DownloadTarget {
  const metalink = join(dir, 'file.meta4');
  writeFileSync(
    metalink,
    toMetalink(
      m,
      urls.map((url) => ({ url })),
    ),
  );
  const outDir = join(dir, 'out');
  mkdirSync(outDir, { recursive: true });
  const out = join(outDir, 'file.bin');
  return {
    metalink,
    outDir,
    out,
    clean: () => {
      for (const f of [out, `${out}.aria2`]) rmSync(f, { force: true });
      rmSync(`${out}.portal`, { recursive: true, force: true });
    },
    good: () => sha256File(out) === m.fileSha256,
  };
}

/** aria2c's arguments for a Metalink download into `outDir`: quiet, overwriting, no preallocation, then `tuning`. */
export function aria2cArgs(t: DownloadTarget, tuning: string[]): string[] {
  return [
    '-q',
    '--allow-overwrite=true',
    '--auto-file-renaming=false',
    '--file-allocation=none',
    ...tuning,
    '-d',
    t.outDir,
    t.metalink,
  ];
}

/** `portal fetch`'s arguments (after node): the CLI script, the manifest, each URL as a mirror edge, the output. */
export function portalFetchArgs(
  cli: string,
  manifestPath: string,
  mirrorUrls: string[],
  out: string,
): string[] {
  return [
    cli,
    'fetch',
    manifestPath,
    ...mirrorUrls.flatMap((u) => ['--edge', `${u}#mirror`]),
    '--out',
    out,
    '--json',
  ];
}

/**
 * V8's used heap plus array buffers (bytes) after three forced GCs a macrotask apart; the process must run with
 * `node --expose-gc` (throws otherwise).
 */
export async function heapAfterGc(): Promise<number> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with node --expose-gc');
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setImmediate(r));
  }
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

/** A `portal serve --runtime embedded` process a bench started: the process, its API port and its ready line. */
export interface BenchServe {
  readonly child: ChildProcess;
  readonly port: number;
  /** The `{"type":"ready",…}` line it printed (maxRunning, maxQueued, …). */
  readonly ready: Record<string, unknown>;
}

/**
 * Starts `portal serve --runtime embedded` from dist/ on a free port, with `--state-dir stateDir --output-root
 * outputRoot --backend cpu --json` and `args` after them (`nodeArgs` go to node, before the script); stdout is
 * read for the ready line, stderr is inherited, `env` is added to this process's environment. Resolves once the
 * ready line came; rejects when the process exits before it.
 */
export async function startBenchServe(o: {
  stateDir: string;
  outputRoot: string;
  args?: readonly string[];
  nodeArgs?: readonly string[];
  env?: NodeJS.ProcessEnv;
}): Promise<BenchServe> {
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [
      ...(o.nodeArgs ?? []),
      fileURLToPath(new URL('../cli/main.js', import.meta.url)),
      'serve',
      '--runtime',
      'embedded',
      '--app-port',
      String(port),
      '--state-dir',
      o.stateDir,
      '--output-root',
      o.outputRoot,
      '--backend',
      'cpu',
      '--json',
      ...(o.args ?? []),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...o.env } },
  );
  const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (l) => {
      if (l.includes('"type":"ready"')) resolve(JSON.parse(l) as Record<string, unknown>);
    });
    child.once('exit', (code) => reject(new Error(`portal serve exited with ${code} before it was ready`)));
  });
  return { child, port, ready };
}
