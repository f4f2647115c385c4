import { spawn } from 'node:child_process';
import path from 'node:path';
import os from 'node:os';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import {
  DEMO_PEERS,
  inPeak,
  loadPeerSet,
  parsePeerSet,
  trueFailureProb,
  trueMultiplier,
  type PeerProfile,
} from '../../cli/coord/profiles.js';
import { createKernelExecutor } from '../../cli/coord/executors.js';

const MAIN = path.resolve('dist/cli/main.js');

function runCli(
  args: string[],
  timeoutMs: number,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, PORTAL_LOG_LEVEL: 'warn' },
    });
    let stdout = '',
      stderr = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`portal ${args.join(' ')} timed out: ${stderr}`));
    }, timeoutMs);
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const peer = (over: Record<string, unknown> = {}): Record<string, unknown> => ({
  id: 'p1',
  latencyHintMs: 10,
  speed: { physics: 1 },
  ...over,
});

describe('peers files (coord-demo --peers)', () => {
  test('a bare array of peers is accepted and the defaults are filled in', () => {
    const set = parsePeerSet([peer()], 'inline');
    expect(set.peers[0]).toEqual({
      id: 'p1',
      latencyHintMs: 10,
      maxConcurrent: 4,
      speed: { physics: 1 },
      peakHours: [0, 0],
      peakFactor: 1,
      loadFactor: 0,
      overloadAt: 1_000_000,
      failProb: 0,
      baseFailProb: 0,
    });
    // the demo's mix less the kinds of job no peer runs (frames need render, audio needs audio)
    expect(set.mix).toEqual({ frame: 0, physics: 1, audio: 0 });
    expect(set.pace).toBe(2);
  });

  test.each([
    [
      'peers[0].speed.render: expected a number > 0 and ≤ 1000, got -1',
      { peers: [peer({ speed: { render: -1 } })] },
    ],
    ['peers[0].speed.gpu: unknown task type', { peers: [peer({ speed: { gpu: 1 } })] }],
    ['peers[0].speed: expected at least one task type', { peers: [peer({ speed: {} })] }],
    ['peers[0].peakHour: unknown field', { peers: [peer({ peakHour: [1, 2] })] }],
    ['peers[1].latencyHintMs: expected a number ≥ 0', { peers: [peer(), peer({ latencyHintMs: 'fast' })] }],
    [
      'peers[0].maxConcurrent: expected an integer ≥ 1 and ≤ 1024, got 2.5',
      { peers: [peer({ maxConcurrent: 2.5 })] },
    ],
    ['peers[0].peakHours: expected [from, to] hours', { peers: [peer({ peakHours: [22] })] }],
    ['peers[0].failProb: expected a number ≥ 0 and ≤ 1, got 1.5', { peers: [peer({ failProb: 1.5 })] }],
    ['peers[1].id: expected an id no other peer has, got "p1"', { peers: [peer(), peer()] }],
    ['mix.frame: expected 0, since no peer runs render tasks', { peers: [peer()], mix: { frame: 1 } }],
    ['peers: expected an array of 1–256 peer profiles', { peers: [] }],
    ['pace: expected a number ≥ 1 and ≤ 100, got 0.5', { peers: [peer()], pace: 0.5 }],
  ])('a bad peers file is refused with PORTAL_CONFIG_INVALID: "%s"', (message, json) => {
    expect(() => parsePeerSet(json, 'bad.json')).toThrow(
      expect.objectContaining({ code: 'PORTAL_CONFIG_INVALID', message: expect.stringContaining(message) }),
    );
    expect(() => parsePeerSet(json, 'bad.json')).toThrow(/^peers file bad\.json: /);
  });

  test('a file that is not JSON or cannot be read is refused naming the file', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'portal-peers-'));
    const f = path.join(dir, 'broken.json');
    await writeFile(f, '{ "peers": [');
    await expect(loadPeerSet(f)).rejects.toMatchObject({
      code: 'PORTAL_CONFIG_INVALID',
      message: expect.stringContaining(`peers file ${f}: not JSON`),
    });
    await expect(loadPeerSet(path.join(dir, 'missing.json'))).rejects.toMatchObject({
      code: 'PORTAL_CONFIG_INVALID',
      message: expect.stringContaining('--peers: cannot read'),
    });
    await rm(dir, { recursive: true, force: true });
  });

  test('peak hours with from > to wrap past midnight, and failures combine overload and random ones', () => {
    const p: PeerProfile = { ...DEMO_PEERS[2], peakHours: [22, 3], baseFailProb: 0.5 };
    expect([21, 22, 23, 0, 2, 3].map((h) => inPeak(p, h))).toEqual([false, true, true, true, true, false]);
    expect(trueMultiplier(p, 'render', 23, 0)).toBeCloseTo(1.6 * 2);
    expect(trueMultiplier(p, 'render', 12, 2)).toBeCloseTo(1.6 * (1 + 0.3 * 2));
    expect(trueFailureProb(p, 0)).toBeCloseTo(0.5);
    expect(trueFailureProb(p, 3)).toBeCloseTo(1 - 0.5 * 0.8);
    expect(() => trueMultiplier({ ...p, speed: { audio: 1 } }, 'render', 1, 0)).toThrow(
      expect.objectContaining({ code: 'PORTAL_INVALID_ARGUMENT' }),
    );
  });

  test('contention episodes: parsed with their default length, slow a task started inside one, and show in the emulated telemetry', async () => {
    const set = parsePeerSet(
      [{ id: 'vm', latencyHintMs: 5, speed: { physics: 1 }, contention: { share: 0.5, factor: 4 } }],
      'inline',
    );
    expect(set.peers[0].contention).toEqual({ share: 0.5, factor: 4, meanMs: 3000 });
    expect(trueMultiplier(set.peers[0], 'physics', 12, 0, true)).toBeCloseTo(4);
    expect(trueMultiplier(set.peers[0], 'physics', 12, 0, false)).toBeCloseTo(1);
    expect(() =>
      parsePeerSet(
        [{ id: 'vm', latencyHintMs: 5, speed: { physics: 1 }, contention: { share: 1, factor: 4 } }],
        'f.json',
      ),
    ).toThrow('peers file f.json: peers[0].contention.share: expected a number > 0 and ≤ 0.95, got 1');
    // short episodes (20 ms): the emulated CPU pressure is 1 about half of the time, else 0
    const ex = createKernelExecutor({
      profile: { ...set.peers[0], contention: { share: 0.5, factor: 4, meanMs: 20 } },
      seed: 3,
    });
    const seen: number[] = [];
    for (let i = 0; i < 100; i++) {
      seen.push(ex.resourcePressure!().cpu);
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(new Set(seen)).toEqual(new Set([0, 1]));
    const inside = seen.filter((x) => x === 1).length;
    expect(inside).toBeGreaterThan(15);
    expect(inside).toBeLessThan(85);
    expect(ex.resourcePressure!().memory).toBe(0);
  });

  test('the example workloads in examples/coord are valid peers files that differ from the demo', async () => {
    const dir = path.resolve('examples/coord');
    const files = (await readdir(dir)).filter((f) => f.endsWith('.json'));
    expect(files.length).toBeGreaterThanOrEqual(2);
    for (const f of files) {
      const set = await loadPeerSet(path.join(dir, f));
      expect(set.peers.map((p) => p.id)).not.toEqual(DEMO_PEERS.map((p) => p.id));
      expect(set.description).toBeDefined();
    }
  });
});

describe('portal coord-demo --peers', () => {
  test('runs the three policies on the peers of a small file, sending each type only to peers that run it', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'portal-peers-'));
    const file = path.join(dir, 'two.json');
    await writeFile(
      file,
      JSON.stringify({
        description: 'a render-only peer and a physics/audio peer',
        peers: [
          { id: 'painter', latencyHintMs: 20, maxConcurrent: 2, speed: { render: 1 } },
          { id: 'cruncher', latencyHintMs: 5, speed: { physics: 1, audio: 1.5 }, baseFailProb: 0.1 },
        ],
      }),
    );
    const r = await runCli(
      ['coord-demo', '--peers', file, '--tasks', '24', '--repeats', '1', '--json'],
      110_000,
    );
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(report.peers).toEqual(['painter', 'cruncher']);
    expect(report.workload).toMatchObject({ source: file, tilesPerFrame: 1 });
    for (const p of ['heuristic', 'learned', 'oracle']) {
      const pr = report.policies[p];
      expect(pr.overall.tasks).toBe(report.tasksPerPolicy);
      expect(pr.imageVerified).toBe(true);
      const snap = pr.snapshot as { peers: Array<{ id: string; taskTypes: string[]; completed: number }> };
      expect(snap.peers.map((x) => [x.id, x.taskTypes])).toEqual([
        ['painter', ['render']],
        ['cruncher', ['physics', 'audio']],
      ]);
    }
    await rm(dir, { recursive: true, force: true });
  }, 120_000);

  test('a peers file with a bad field exits 2 and names the field', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'portal-peers-'));
    const file = path.join(dir, 'bad.json');
    await writeFile(file, JSON.stringify([{ id: 'x', latencyHintMs: 1, speed: { render: 0 } }]));
    const r = await runCli(['coord-demo', '--peers', file], 30_000);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('peers[0].speed.render: expected a number > 0');
    await rm(dir, { recursive: true, force: true });
  });
});
