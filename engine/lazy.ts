import type { Logger } from '../common/logger.js';
import type { ChunkScheduler } from '../scheduler/scheduler.js';
import type { TickEngine, TickEngineStats } from './tick-engine.js';

/** Options of createLazyTickEngine. */
export interface LazyTickEngineOptions {
  /** The engine every transfer below `minChunks` chunks ticks on (a CPU engine); also the fallback of `open`. */
  small: TickEngine;
  /** Transfers of at least this many chunks tick on the engine `open` gives (opened on the first one). */
  minChunks: number;
  /**
   * Opens the engine for large transfers (WebGPU when an adapter exists). Called at most once, when the first
   * transfer of `minChunks` chunks or more is prepared or ticked; when it rejects, or gives an engine that is not
   * a GPU engine (a CPU fallback), large transfers tick on `small` too.
   */
  open: () => Promise<TickEngine>;
  logger?: Logger;
}

/**
 * A TickEngine that opens a GPU only when a transfer can profit from it (issue 15's fast start, for `portal serve`
 * and `portal fetch` with `--backend auto`): transfers below `minChunks` chunks tick on `small`, and the engine of
 * `open` (which loads Dawn and requests an adapter) is created on the first larger one. A host that only ever runs
 * small transfers never loads the `webgpu` module. `prepare(chunks)` opens it before a scheduler's tables are
 * created, so that `sharedMemory` can be asked for the engine that will tick them.
 */
export function createLazyTickEngine(o: LazyTickEngineOptions): TickEngine {
  let large: TickEngine | undefined;
  let opening: Promise<TickEngine | undefined> | undefined;
  let closed = false;
  const open = (): Promise<TickEngine | undefined> =>
    (opening ??= o.open().then(
      async (e) => {
        // a CPU engine from a fallback (no adapter, a software one): the small engine ticks large transfers as well
        if (closed || !e.backend.startsWith('webgpu')) {
          await e.close();
          return undefined;
        }
        large = e;
        return e;
      },
      (err: unknown) => {
        o.logger?.warn({ err }, 'tick engine: the GPU engine did not open; large transfers tick on the CPU');
        return undefined;
      },
    ));
  const engineFor = (chunks: number): TickEngine =>
    chunks >= o.minChunks && large !== undefined ? large : o.small;
  return {
    get backend() {
      return (large ?? o.small).backend;
    },
    get sharedMemory() {
      return o.small.sharedMemory;
    },
    async prepare(chunks: number): Promise<{ sharedMemory: boolean }> {
      if (chunks >= o.minChunks) await open();
      return { sharedMemory: engineFor(chunks).sharedMemory === true };
    },
    async runTick(scheduler: ChunkScheduler, now: number) {
      const n = scheduler.chunks.n;
      if (n >= o.minChunks && opening === undefined) await open();
      return engineFor(n).runTick(scheduler, now);
    },
    stats(): TickEngineStats {
      const s = o.small.stats();
      if (!large) return s;
      const l = large.stats();
      return {
        ...l,
        ticks: l.ticks + s.ticks,
        totalTickMs: l.totalTickMs + s.totalTickMs,
        fallbacks: l.fallbacks + s.fallbacks,
      };
    },
    async close() {
      closed = true;
      await opening;
      await large?.close();
      await o.small.close();
    },
  };
}
