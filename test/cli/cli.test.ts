import { spawn } from 'node:child_process';
import path from 'node:path';
import { readFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { createInterface } from 'node:readline';
import { createMesh, type Mesh } from '../helpers/mesh.js';
import { createFileStateStore } from '../../runtime/index.js';
import { localTransferId } from '../../node/transfer-id.js';
import { readPagedJournal } from '../../actors/index.js';

const MAIN = path.resolve('dist/cli/main.js');

/** Runs the built CLI; resolves with exit code, stdout and stderr. */
function portal(
  args: string[],
  opts: { onLine?: (line: string, kill: () => void) => void; timeoutMs?: number } = {},
): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, PORTAL_LOG_LEVEL: 'warn' },
    });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`portal ${args.join(' ')} timed out`));
    }, opts.timeoutMs ?? 120_000);
    createInterface({ input: child.stdout }).on('line', (l) => {
      stdout += `${l}\n`;
      opts.onLine?.(l, () => child.kill('SIGKILL'));
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    // settled at 'close' (stdout and stderr read to their end), not a fixed 20 ms after 'exit': the pipes may still
    // hold bytes when the child exits (a loaded machine; process.exit right after its last write). 2 s after 'exit'
    // at most, for a grandchild that keeps a pipe open.
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      const done = (): void => resolve({ code, signal, stdout, stderr });
      child.once('close', done);
      setTimeout(done, 2000).unref();
    });
  });
}

describe('portal CLI', () => {
  let mesh: Mesh | undefined;
  afterEach(async () => {
    await mesh?.close();
    mesh = undefined;
  });

  test('demo: runs the main job end to end (edge killed, corrupt chunks, fetcher killed and resumed) and reports JSON', async () => {
    // --backend webgpu: run the kernels on WebGPU even on a software adapter (lavapipe in CI); `auto` would keep the CPU there
    const r = await portal(
      ['demo', '--size', '24', '--chunk-size', '65536', '--json', '--backend', 'webgpu', '--no-dashboard'],
      { timeoutMs: 180_000 },
    );
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(report).toMatchObject({
      verified: true,
      bytes: 24 * 1024 * 1024,
      chunksRefetchedAfterResume: 0,
      killedEdge: 'bravo',
    });
    // setup installs lavapipe, and --backend webgpu fails rather than fall back: the demo ran its kernels on WebGPU
    expect(report.backend).toMatch(/^webgpu:/);
    for (const k of ['seconds', 'throughputBytesPerSec', 'edgeCapacityBytesPerSec', 'tickMsP50', 'tickMsP99'])
      expect(typeof report[k]).toBe('number');
    // "delta" corrupts with seed 7 and rate 0.1: the first draws corrupt, so its first chunk is served corrupt.
    // Every corrupt chunk is caught by its CID; a few may be served to the fetcher after its last progress
    // line before the SIGKILL (or to a cancelled hedge), so detected ≤ served, never above it.
    expect(report.corruptChunksServed).toBeGreaterThanOrEqual(1);
    expect(report.corruptChunksDetected).toBeGreaterThanOrEqual(1);
    expect(report.corruptChunksDetected).toBeLessThanOrEqual(report.corruptChunksServed);
    // the first corrupt chunk comes long before the endgame (no hedge to promote): it fails over to another
    // edge, as do the chunks in flight on "bravo" when it dies
    expect(report.failovers).toBeGreaterThanOrEqual(1);
    expect(report.resumedChunks).toBeGreaterThan(0);
    // bravo is dead before the kill: the resumed run gets nothing from it
    expect(report.perEdgeChunksAfterResume.bravo).toBe(0);
    expect(report.perEdgeChunks.bravo).toBe(report.perEdgeChunksBeforeKill.bravo);
  });

  test('fetch: a fetch killed with SIGKILL resumes from its journal and fetches no journaled chunk again', async () => {
    mesh = await createMesh(96 * 16384, 16384, [
      { holds: 'all', bandwidthBytesPerSec: 500_000 },
      { holds: 'all', bandwidthBytesPerSec: 500_000 },
    ]);
    const out = path.join(mesh.dir, 'out.bin');
    const edgeArgs = mesh.servers.flatMap((s) => ['--edge', s.url]);
    const first = await portal(['fetch', mesh.manifestPath, ...edgeArgs, '--out', out, '--progress-json'], {
      onLine: (l, kill) => {
        const m = JSON.parse(l);
        if (m.type === 'progress' && m.complete >= 30) kill();
      },
    });
    expect(first.signal).toBe('SIGKILL');
    const store = createFileStateStore(`${out}.portal`);
    const transferId = localTransferId(mesh.manifest.id, out);
    const { journal } = (await readPagedJournal<{ bitmap: string }>(async <T>(key: string) => {
      const raw = await store.get(`SchedulerActor||${transferId}||${key}`);
      return raw === undefined ? undefined : (JSON.parse(raw) as T);
    }))!;
    await store.close();
    const bitmap = Buffer.from(journal.bitmap, 'base64');
    let journaled = 0;
    for (let c = 0; c < 96; c++) journaled += (bitmap[c >> 3] >> (c & 7)) & 1;
    expect(journaled).toBeGreaterThan(0);
    const before = mesh.servers.reduce((n, s) => n + s.stats().requests, 0);
    const second = await portal(['fetch', mesh.manifestPath, ...edgeArgs, '--out', out, '--json']);
    expect(second.code).toBe(0);
    const result = JSON.parse(second.stdout.trim().split('\n').pop()!);
    expect(result.verified).toBe(true);
    expect(result.resumedChunks).toBeGreaterThanOrEqual(journaled);
    expect(result.fetchedChunks).toBe(96 - result.resumedChunks);
    // the second run asked the edges for their have bitmaps (2 requests), then only for chunks not journaled
    // (plus endgame duplicates and retries, which it reports)
    const requests = mesh.servers.reduce((n, s) => n + s.stats().requests, 0) - before;
    expect(requests).toBeLessThanOrEqual(2 + (96 - journaled) + result.hedges + result.failovers);
    expect(
      createHash('sha256')
        .update(await readFile(out))
        .digest('hex'),
    ).toBe(mesh.manifest.fileSha256);
  });

  test('fetch: a plain HTTP mirror (Range requests on one URL) works as an edge', async () => {
    mesh = await createMesh(20 * 8192 + 17, 8192, [{ holds: 'all' }]);
    const out = path.join(mesh.dir, 'mirror-out.bin');
    const r = await portal([
      'fetch',
      mesh.manifestPath,
      '--edge',
      `${mesh.servers[0].url}/file#mirror`,
      '--out',
      out,
      '--json',
    ]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout.trim().split('\n').pop()!).verified).toBe(true);
  });

  test('cli: bad flags and values are rejected with exit code 2 and a message naming the flag', async () => {
    const a = await portal(['fetch', 'x.json', '--bogus', '1']);
    expect(a.code).toBe(2);
    expect(a.stderr).toMatch(/--bogus/);
    const b = await portal(['demo', '--size', 'big']);
    expect(b.code).toBe(2);
    expect(b.stderr).toMatch(/--size/);
    const c = await portal(['fetch', 'x.json', '--edge', 'ftp://nope']);
    expect(c.code).toBe(2);
    expect(c.stderr).toMatch(/ftp:\/\/nope/);
    const d = await portal(['nosuch']);
    expect(d.code).toBe(2);
  });

  test('cli: a malformed manifest file is a clear typed error', async () => {
    mesh = await createMesh(8192, 4096, [{ holds: 'all' }]);
    const bad = path.join(mesh.dir, 'bad.json');
    await (await import('node:fs/promises')).writeFile(bad, JSON.stringify({ version: 1, fileSize: 'lots' }));
    const r = await portal(['fetch', bad, '--edge', mesh.servers[0].url, '--json']);
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stdout.trim()).error.code).toBe('PORTAL_MANIFEST_INVALID');
  });

  test('cli: every command answers --help', async () => {
    for (const cmd of ['demo', 'fetch', 'manifest', 'edge']) {
      const r = await portal([cmd, '--help']);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`portal ${cmd}`);
    }
  });
});
