import {
  splitSpatial,
  splitEqualArea,
  imbalance,
  assignByDeadline,
  gameFrameSubsystems,
  assignPipeline,
  renderPipelineStages,
  HybridSplitter,
  mergeTiles,
  type ComplexityMap,
  type PlannedTile,
} from '../../learning/index.js';
import { isPortalError } from '../../common/errors.js';

function mapOf(width: number, height: number, f: (x: number, y: number) => number): ComplexityMap {
  const data = new Float64Array(width * height);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data[y * width + x] = f(x, y);
  return { width, height, data };
}

/** The demo's scene: a simple sky (100) over a complex city (5000), plus a hot spot of neon signs. */
const city = mapOf(192, 108, (x, y) => (y < 40 ? 100 : 5000) + (x > 150 && y > 70 ? 20000 : 0));
const mandel = mapOf(160, 120, (px, py) => {
  const cx = -2.2 + (px / 160) * 3,
    cy = -1.2 + (py / 120) * 2.4;
  let x = 0,
    y = 0,
    i = 0;
  for (; i < 200 && x * x + y * y < 4; i++) {
    const t = x * x - y * y + cx;
    y = 2 * x * y + cy;
    x = t;
  }
  return i + 1;
});

function covers(tiles: PlannedTile[], m: ComplexityMap): boolean {
  const seen = new Uint8Array(m.width * m.height);
  for (const t of tiles)
    for (let y = t.y; y < t.y + t.height; y++)
      for (let x = t.x; x < t.x + t.width; x++) {
        if (seen[y * m.width + x]) return false;
        seen[y * m.width + x] = 1;
      }
  return seen.every((v) => v === 1);
}

describe('learning splitters', () => {
  test.each([
    ['city', city, 4],
    ['city', city, 7],
    ['mandelbrot', mandel, 4],
    ['mandelbrot', mandel, 8],
  ] as const)(
    'spatial splitter: tiles of the %s map for %s equal peers have max cost / mean ≤ 1.1 and cover it exactly',
    (_name, m, n) => {
      const tiles = splitSpatial(m, n);
      expect(tiles).toHaveLength(n);
      expect(covers(tiles, m)).toBe(true);
      expect(imbalance(tiles.map((t) => t.cost))).toBeLessThanOrEqual(1.1);
      // equal areas are far from balanced on these maps
      expect(imbalance(splitEqualArea(m, 4).map((t) => t.cost))).toBeGreaterThan(1.3);
    },
  );

  test('spatial splitter: with heterogeneous peers it balances predicted time, giving the fast peer more complexity', () => {
    const peers = [
      { id: 'rtx4090', msPerUnit: 1 },
      { id: 'rtx4070', msPerUnit: 1.6 },
      { id: 'rtx3080', msPerUnit: 1.8 },
      { id: 'rtx3070', msPerUnit: 2.5 },
    ];
    const tiles = splitSpatial(mandel, peers);
    expect(covers(tiles, mandel)).toBe(true);
    expect(imbalance(tiles.map((t) => t.predictedMs))).toBeLessThanOrEqual(1.1);
    const byPeer = Object.fromEntries(tiles.map((t) => [t.peer, t]));
    expect(byPeer.rtx4090.cost).toBeGreaterThan(2 * byPeer.rtx3070.cost);
  });

  test('spatial splitter: rejects an empty peer list and a malformed map with PORTAL_INVALID_ARGUMENT', () => {
    expect(() => splitSpatial(city, [])).toThrow(
      expect.objectContaining({ code: 'PORTAL_INVALID_ARGUMENT' }),
    );
    expect(() => splitSpatial({ width: 2, height: 2, data: [1, 2, 3] }, 1)).toThrow(
      expect.objectContaining({ code: 'PORTAL_INVALID_ARGUMENT' }),
    );
  });

  test('functional splitter: every deadline of the seed table is met on heterogeneous peers', () => {
    // ms per subsystem on each peer: cpu_beast is fastest at everything but can only do so much in 16 ms
    const times: Record<string, Record<string, number>> = {
      cpu_beast: { physics: 10, ai: 12, rendering: 9, ray_tracing: 60, audio: 5 },
      cpu_good: { physics: 14, ai: 20, rendering: 30, ray_tracing: 90, audio: 8 },
      gpu_1: { physics: 30, ai: 40, rendering: 12, ray_tracing: 45, audio: 30 },
      gpu_2_rtx: { physics: 40, ai: 40, rendering: 15, ray_tracing: 30, audio: 30 },
      cpu_audio: { physics: 50, ai: 50, rendering: 60, ray_tracing: 200, audio: 10 },
    };
    const plan = assignByDeadline(gameFrameSubsystems, Object.keys(times), (p, t) => times[p][t]);
    expect(plan.missed).toBe(0);
    for (const a of plan.assignments) expect(a.finishMs).toBeLessThanOrEqual(a.deadlineMs);
    expect(plan.assignments.map((a) => a.subsystem).sort()).toEqual([
      'ai',
      'audio',
      'physics',
      'ray_tracing',
      'rendering',
    ]);
  });

  test('functional splitter: when a deadline cannot be met it says which and keeps lateness minimal', () => {
    const plan = assignByDeadline(gameFrameSubsystems, ['only'], () => 10);
    expect(plan.missed).toBeGreaterThan(0);
    // EDF order on one peer: physics/rendering (16), audio (24), ai (32), ray tracing (100)
    expect(plan.assignments.map((a) => a.subsystem)).toEqual([
      'physics',
      'rendering',
      'audio',
      'ai',
      'ray_tracing',
    ]);
    expect(plan.assignments.filter((a) => !a.meetsDeadline).map((a) => a.subsystem)).toEqual([
      'rendering',
      'audio',
      'ai',
    ]);
  });

  test('pipeline splitter: stages go to the peers with affinity for them', () => {
    const aff: Record<string, Record<string, number>> = {
      peer_1: { geometry: 5, lighting: 20, post_process: 20 },
      peer_2: { geometry: 20, lighting: 6, post_process: 20 },
      peer_3: { geometry: 20, lighting: 20, post_process: 4 },
    };
    const plan = assignPipeline(renderPipelineStages, Object.keys(aff), (p, t) => aff[p][t]);
    expect(plan.assignments.map((a) => `${a.stage}:${a.peer}`)).toEqual([
      'geometry:peer_1',
      'lighting:peer_2',
      'post_process:peer_3',
    ]);
    expect(plan.bottleneckMs).toBe(6);
    expect(plan.latencyMs).toBe(15);
  });

  test('hybrid splitter: chooses spatial for ray tracing, functional for game frames, pipeline for rendering, and rejects unknown types', () => {
    const h = new HybridSplitter();
    const ctx = { peers: ['a', 'b', 'c'], predictMs: () => 1 };
    expect(h.split({ type: 'ray_tracing', complexity: city }, ctx).strategy).toBe('spatial');
    expect(h.split({ type: 'game_frame' }, ctx).strategy).toBe('functional');
    expect(h.split({ type: 'rendering' }, ctx).strategy).toBe('pipeline');
    expect.assertions(4);
    try {
      h.split({ type: 'weather' }, ctx);
    } catch (err) {
      expect(isPortalError(err, 'PORTAL_INVALID_ARGUMENT')).toBe(true);
    }
  });

  test('merge: tiles are merged into one image, and a missing tile leaves a hole it reports', () => {
    const tiles = splitSpatial(mandel, 4).map((t) => ({
      ...t,
      pixels: new Uint8Array(t.width * t.height).fill((t.x % 251) + 1),
    }));
    const { image, covered } = mergeTiles(mandel.width, mandel.height, tiles);
    expect(covered).toBe(mandel.width * mandel.height);
    const t = tiles[2];
    expect(image[t.y * mandel.width + t.x]).toBe((t.x % 251) + 1);
    expect(mergeTiles(mandel.width, mandel.height, tiles.slice(1)).covered).toBe(
      mandel.width * mandel.height - tiles[0].width * tiles[0].height,
    );
    expect(() =>
      mergeTiles(10, 10, [{ x: 8, y: 0, width: 4, height: 1, pixels: new Uint8Array(4) }]),
    ).toThrow(expect.objectContaining({ code: 'PORTAL_INVALID_ARGUMENT' }));
  });
});
