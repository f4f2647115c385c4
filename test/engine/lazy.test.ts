import { createLazyTickEngine, type TickEngine } from '../../engine/index.js';
import type { ChunkScheduler } from '../../scheduler/index.js';

function fake(backend: string, log: string[]): TickEngine {
  const st = { backend, ticks: 0, lastTickMs: 0, totalTickMs: 0, fallbacks: 0 };
  return {
    backend,
    runTick(s) {
      log.push(`${backend}:${s.chunks.n}`);
      st.ticks++;
      return {} as ReturnType<TickEngine['runTick']>;
    },
    stats: () => ({ ...st }),
    close: async () => void log.push(`close ${backend}`),
  };
}
const sched = (n: number) => ({ chunks: { n } }) as unknown as ChunkScheduler;

describe('createLazyTickEngine (fast start for --backend auto)', () => {
  test('opens the GPU engine only for the first transfer of minChunks chunks or more', async () => {
    const log: string[] = [];
    let opened = 0;
    const e = createLazyTickEngine({
      small: fake('cpu', log),
      minChunks: 100,
      open: async () => {
        opened++;
        return fake('webgpu:test', log);
      },
    });
    await e.runTick(sched(10), 0);
    await e.runTick(sched(99), 0);
    expect(opened).toBe(0);
    expect(e.backend).toBe('cpu');
    expect(await e.prepare!(100)).toEqual({ sharedMemory: false });
    await e.runTick(sched(100), 0);
    await e.runTick(sched(5), 0);
    expect(opened).toBe(1);
    expect(log).toEqual(['cpu:10', 'cpu:99', 'webgpu:test:100', 'cpu:5']);
    expect(e.stats().ticks).toBe(4);
    await e.close();
    expect(log.slice(-2)).toEqual(['close webgpu:test', 'close cpu']);
  });

  test('a CPU engine from open (no adapter, a software one) is closed and the small engine ticks everything', async () => {
    const log: string[] = [];
    const e = createLazyTickEngine({
      small: fake('cpu', log),
      minChunks: 1,
      open: async () => fake('cpu:8 threads', log),
    });
    await e.runTick(sched(5), 0);
    expect(log).toEqual(['close cpu:8 threads', 'cpu:5']);
    const failing = createLazyTickEngine({
      small: fake('cpu', log),
      minChunks: 1,
      open: () => Promise.reject(new Error('no adapter')),
    });
    await failing.runTick(sched(5), 0);
    expect(failing.backend).toBe('cpu');
  });
});
