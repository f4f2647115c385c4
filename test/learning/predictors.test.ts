import {
  CompletionTimePredictor,
  FailurePredictor,
  RiskModel,
  learnedEdgeFactors,
  heuristicScore,
} from '../../learning/index.js';
import { isPortalError } from '../../common/errors.js';
import { createPrng } from '../../transfer/index.js';
import tQuantile from '@stdlib/stats-base-dists-t-quantile';

/** Standard normal from a uniform PRNG (Box–Muller). */
function gauss(rnd: () => number): number {
  return Math.sqrt(-2 * Math.log(Math.max(rnd(), 1e-12))) * Math.cos(2 * Math.PI * rnd());
}

const RATE: Record<string, Record<string, number>> = {
  fast: { render: 1, physics: 3 },
  slow: { render: 4, physics: 1.5 },
};
const hourFactor = (peer: string, h: number): number => (peer === 'slow' && h >= 18 && h < 22 ? 2.5 : 1);
const truth = (peer: string, type: string, hour: number, load: number, work: number): number =>
  RATE[peer][type] * hourFactor(peer, hour) * (1 + load) * work;

describe('learning predictors', () => {
  test('time predictor: converges to the known per-peer, per-type, hour-of-day and load effects with a calibrated interval', () => {
    const rnd = createPrng(42);
    const p = new CompletionTimePredictor();
    for (let i = 0; i < 1500; i++) {
      const peer = rnd() < 0.5 ? 'fast' : 'slow';
      const type = rnd() < 0.5 ? 'render' : 'physics';
      const hour = Math.floor(rnd() * 24);
      const load = Math.floor(rnd() * 4);
      const work = 5 + rnd() * 20;
      p.observe({
        peer,
        taskType: type,
        hour,
        load,
        work,
        ok: true,
        timeMs: truth(peer, type, hour, load, work) * Math.exp(0.1 * gauss(rnd)),
      });
    }
    let inside = 0,
      n = 0;
    for (const peer of ['fast', 'slow'])
      for (const type of ['render', 'physics'])
        for (const hour of [3, 19])
          for (const load of [0, 2]) {
            const want = truth(peer, type, hour, load, 10);
            const got = p.predict({ peer, taskType: type, hour, load, work: 10 });
            expect(got.source).toBe('model');
            expect(Math.abs(got.timeMs / want - 1)).toBeLessThan(0.1);
            expect(got.lowMs).toBeLessThan(got.timeMs);
            expect(got.highMs).toBeGreaterThan(got.timeMs);
            // the 90% interval is about ±1.645·0.1 in log space: not absurdly wide
            expect(got.highMs / got.lowMs).toBeLessThan(1.6);
            n++;
            if (want >= got.lowMs && want <= got.highMs) inside++;
          }
    expect(inside / n).toBeGreaterThanOrEqual(0.9);
  });

  test('time predictor: learns a slowdown that only the pressure telemetry explains, and old state without pressure still loads', () => {
    const rnd = createPrng(7);
    // a shared host: 3× slower whenever its telemetry says it is contended (pressure 1), at any hour and load
    const withPressure = new CompletionTimePredictor();
    const without = new CompletionTimePredictor();
    for (let i = 0; i < 400; i++) {
      const contended = rnd() < 0.4;
      const hour = Math.floor(rnd() * 24);
      const timeMs = 10 * (contended ? 3 : 1) * Math.exp(0.05 * gauss(rnd));
      const o = { peer: 'vm', taskType: 'render', hour, load: 0, work: 1, ok: true, timeMs };
      withPressure.observe({ ...o, pressure: contended ? 1 : 0 });
      without.observe(o);
    }
    const q = { peer: 'vm', taskType: 'render', hour: 5, load: 0, work: 1 };
    expect(withPressure.predict({ ...q, pressure: 0 }).timeMs).toBeGreaterThan(9);
    expect(withPressure.predict({ ...q, pressure: 0 }).timeMs).toBeLessThan(11.5);
    expect(withPressure.predict({ ...q, pressure: 1 }).timeMs).toBeGreaterThan(26);
    expect(withPressure.predict({ ...q, pressure: 1 }).timeMs).toBeLessThan(33);
    // without the feature the model can only predict something in between, for both states
    const blind = without.predict(q).timeMs;
    expect(blind).toBeGreaterThan(12);
    expect(blind).toBeLessThan(25);
    // state saved before pressure was a feature (rows of 5) loads with pressure 0
    const saved = without.toJSON();
    saved.peers.vm = saved.peers.vm.map((r) => r.slice(0, 5) as [number, number, number, number, number]);
    const restored = CompletionTimePredictor.fromJSON(saved);
    expect(restored.predict(q).timeMs).toBeCloseTo(without.predict(q).timeMs, 6);
  });

  test('time predictor: after only a few samples the 90% interval still covers about 90% of new outcomes (Student-t, not the normal)', () => {
    // 400 independent peers, 5 samples each from lognormal(σ = 0.3); then one new outcome each
    const rnd = createPrng(7);
    const p = new CompletionTimePredictor({ minPeerSamples: 3 });
    let inside = 0,
      normalInside = 0;
    for (let k = 0; k < 400; k++) {
      const peer = `p${k}`;
      for (let i = 0; i < 5; i++)
        p.observe({
          peer,
          taskType: 'x',
          hour: 9,
          load: 0,
          ok: true,
          timeMs: 100 * Math.exp(0.3 * gauss(rnd)),
        });
      const got = p.predict({ peer, taskType: 'x', hour: 9, load: 0 });
      const next = 100 * Math.exp(0.3 * gauss(rnd));
      if (next >= got.lowMs && next <= got.highMs) inside++;
      // the same centre and spread with the normal's z = 1.645 instead of t(0.95, 5 samples + 2 prior pseudo-samples)
      const half = Math.log(got.highMs / got.timeMs) * (1.645 / tQuantile(0.95, 7));
      if (Math.abs(Math.log(next / got.timeMs)) <= half) normalInside++;
    }
    expect(inside / 400).toBeGreaterThan(0.84);
    expect(inside / 400).toBeLessThan(0.97);
    expect(inside).toBeGreaterThan(normalInside);
  });

  test('time predictor: uses a heuristic before any sample, the population prior for a new peer, and is warm after 20 observations', () => {
    const p = new CompletionTimePredictor({ defaultMsPerUnit: 2 });
    expect(p.predict({ peer: 'a', taskType: 'render', hour: 0, load: 1, work: 3 })).toMatchObject({
      source: 'heuristic',
      timeMs: 12,
    });
    for (let i = 0; i < 19; i++)
      p.observe({ peer: 'a', taskType: 'render', hour: 0, load: 0, work: 1, ok: true, timeMs: 10 });
    expect(p.warm).toBe(false);
    p.observe({ peer: 'a', taskType: 'render', hour: 0, load: 0, work: 1, ok: false, timeMs: 3 });
    expect(p.warm).toBe(true);
    const prior = p.predict({ peer: 'new', taskType: 'render', hour: 5, load: 0, work: 1 });
    expect(prior.source).toBe('prior');
    expect(prior.timeMs).toBeCloseTo(10, 5);
  });

  test('time predictor: a known peer answers for a new task type from its first sample of it (exploration stays cheap)', () => {
    const p = new CompletionTimePredictor();
    for (let i = 0; i < 10; i++)
      p.observe({ peer: 'a', taskType: 'render', hour: 0, load: 0, work: 1, ok: true, timeMs: 40 });
    for (let i = 0; i < 10; i++)
      p.observe({ peer: 'b', taskType: 'physics', hour: 0, load: 0, work: 1, ok: true, timeMs: 10 });
    expect(p.predict({ peer: 'a', taskType: 'physics', hour: 0, load: 0, work: 1 }).source).toBe('prior');
    p.observe({ peer: 'a', taskType: 'physics', hour: 0, load: 0, work: 1, ok: true, timeMs: 2 });
    const own = p.predict({ peer: 'a', taskType: 'physics', hour: 0, load: 0, work: 1 });
    expect(own.source).toBe('model');
    expect(own.timeMs).toBeLessThan(10); // its own (faster) sample, not the population's physics time
    expect(p.predict({ peer: 'a', taskType: 'render', hour: 0, load: 0, work: 1 }).timeMs).toBeGreaterThan(
      20,
    );
  });

  test('time predictor: memory is bounded by the window per peer and follows a change in speed', () => {
    const p = new CompletionTimePredictor({ window: 50 });
    for (let i = 0; i < 200; i++)
      p.observe({ peer: 'a', taskType: 't', hour: 1, load: 0, ok: true, timeMs: 10 });
    for (let i = 0; i < 50; i++)
      p.observe({ peer: 'a', taskType: 't', hour: 1, load: 0, ok: true, timeMs: 40 });
    expect(p.samples('a')).toBe(50);
    expect(p.toJSON().peers.a).toHaveLength(50);
    expect(p.predict({ peer: 'a', taskType: 't', hour: 1, load: 0 }).timeMs).toBeGreaterThan(35);
  });

  test('failure predictor: learns a failure probability that rises with load, per peer', () => {
    const rnd = createPrng(7);
    const f = new FailurePredictor();
    const pTrue = (peer: string, load: number): number =>
      peer === 'unstable' ? 1 / (1 + Math.exp(-(-3 + 1.5 * load))) : 0.02;
    for (let i = 0; i < 1000; i++) {
      const peer = i % 2 === 0 ? 'unstable' : 'steady';
      const load = Math.floor(rnd() * 5);
      f.observe({ peer, taskType: 'x', hour: 0, load, ok: rnd() >= pTrue(peer, load), timeMs: 1 });
    }
    for (const load of [0, 2, 4]) {
      expect(
        Math.abs(
          f.predict({ peer: 'unstable', taskType: 'x', hour: 0, load }).probability - pTrue('unstable', load),
        ),
      ).toBeLessThan(0.1);
      expect(f.predict({ peer: 'steady', taskType: 'x', hour: 0, load }).probability).toBeLessThan(0.08);
    }
    expect(f.samples('unstable')).toBe(500);
  });

  test('risk model: scores are time / (1 − p), and state round-trips through JSON', () => {
    const m = new RiskModel();
    const rnd = createPrng(3);
    for (let i = 0; i < 300; i++) {
      const peer = i % 3 === 0 ? 'a' : 'b';
      m.observe({
        peer,
        taskType: 'render',
        hour: 10,
        load: i % 3,
        work: 2,
        ok: rnd() > (peer === 'a' ? 0.3 : 0.05),
        timeMs: peer === 'a' ? 10 : 30,
      });
    }
    const q = { peer: 'a', taskType: 'render', hour: 10, load: 1, work: 2 };
    const r = m.predict(q);
    expect(r.score).toBeCloseTo(r.time.timeMs / (1 - r.failure.probability), 6);
    const copy = RiskModel.fromJSON(JSON.parse(JSON.stringify(m.toJSON())));
    expect(copy.predict(q)).toEqual(r);
    expect(copy.warm).toBe(true);
    expect(heuristicScore(5, 2)).toBe(35);
  });

  test('risk model: fromJSON rejects something that is not a saved model with PORTAL_STATE_CORRUPT', () => {
    expect.assertions(1);
    try {
      RiskModel.fromJSON({ v: 2 } as never);
    } catch (err) {
      expect(isPortalError(err, 'PORTAL_STATE_CORRUPT')).toBe(true);
    }
  });

  test('scheduler adapter: learned time and risk become the bandwidth and health the cost model reads', () => {
    const m = new RiskModel();
    for (let i = 0; i < 100; i++) {
      m.observe({ peer: 'edge-0', taskType: 'chunk', hour: 0, load: 0, work: 1e6, ok: true, timeMs: 100 });
      m.observe({ peer: 'edge-1', taskType: 'chunk', hour: 0, load: 0, work: 1e6, ok: true, timeMs: 400 });
      m.observe({
        peer: 'edge-2',
        taskType: 'chunk',
        hour: 0,
        load: 0,
        work: 1e6,
        ok: i % 2 === 0,
        timeMs: 100,
      });
    }
    const edges = { e: 4, available: Uint8Array.of(1, 1, 1, 0), queueDepth: Uint32Array.of(0, 0, 0, 0) };
    const f = learnedEdgeFactors(m, edges, 1e6, 0);
    expect(f.timeMs[0]).toBeCloseTo(100, 0);
    expect(f.timeMs[1]).toBeCloseTo(400, 0);
    expect(f.updates[0]!.bandwidth).toBeCloseTo(1e7, -5);
    expect(f.updates[2]!.health).toBeLessThan(f.updates[0]!.health - 0.3);
    expect(f.updates[3]).toBeUndefined();
  });
  test('scheduler adapter: the risk-aware limit keeps an edge that fails under load below it, and leaves a steady one at max_parallel', () => {
    const m = new RiskModel();
    for (let i = 0; i < 800; i++) {
      const load = i % 4;
      // edge-0: fails half its fetches from the third concurrent one on; edge-1: time ∝ fetches (bandwidth shared, no RTT); edge-2: steady
      m.observe({
        peer: 'edge-0',
        taskType: 'chunk',
        hour: 0,
        load,
        work: 1e6,
        ok: !(load >= 2 && i % 8 < 5),
        timeMs: 50,
      });
      m.observe({
        peer: 'edge-1',
        taskType: 'chunk',
        hour: 0,
        load,
        work: 1e6,
        ok: true,
        timeMs: 50 * (load + 1),
      });
      m.observe({ peer: 'edge-2', taskType: 'chunk', hour: 0, load, work: 1e6, ok: true, timeMs: 50 });
    }
    const edges = { e: 4, available: Uint8Array.of(1, 1, 1, 0), queueDepth: Uint32Array.of(0, 0, 0, 0) };
    const f = learnedEdgeFactors(m, edges, 1e6, 0, { maxParallelOf: () => 4 });
    expect(f.parallel[0]).toBeLessThanOrEqual(2);
    expect(f.parallel[0]).toBeGreaterThanOrEqual(1);
    expect(f.parallel[1]).toBe(1); // more fetches only split the same bandwidth
    expect(f.parallel[2]).toBe(4);
    expect(f.parallel[3]).toBe(0);
    expect(f.updates[2]!.maxParallel).toBe(4);
    // without maxParallelOf the adapter leaves max_parallel alone
    expect(learnedEdgeFactors(m, edges, 1e6, 0).updates[0]!.maxParallel).toBeUndefined();
    expect(() =>
      learnedEdgeFactors(m, edges, 1e6, 0, { maxParallelOf: () => 4, goodputTolerance: 0 }),
    ).toThrow(/goodputTolerance/);
  });
});
