import v8 from 'node:v8';

/**
 * V8 flags the CLI sets before anything compiles WebAssembly: WebAssembly stays on Liftoff, V8's baseline
 * compiler, and is never recompiled by TurboFan. The one WebAssembly module Portal runs is undici's HTTP parser
 * (llhttp), whose work per response is the header bytes and O(1) per body read, so optimised code buys
 * nothing measurable; TurboFan's recompilation of its large state-machine function cost ~35 MB of peak RSS
 * and ~0.05–0.1 s of CPU in every process and data thread that loaded undici (a 1 MiB `portal fetch`: peak
 * RSS 100 → 66 MB; BENCHMARKS.md, "The data plane"). Both flags are V8's own tiering switches
 * (`node --v8-options`): without dynamic tiering and without tier-up, Liftoff code is final.
 */
export const BASELINE_WASM_FLAGS = ['--no-wasm-dynamic-tiering', '--no-wasm-tier-up'] as const;

/**
 * Sets BASELINE_WASM_FLAGS for this process and the worker threads it starts afterwards (V8's flags are
 * process-wide). Call it before undici loads: V8 reads these flags when a module is compiled, so modules
 * compiled earlier keep their tiering. Never throws (a V8 that rejects a flag ignores it).
 */
export function useBaselineWasm(): void {
  for (const flag of BASELINE_WASM_FLAGS) v8.setFlagsFromString(flag);
}

/**
 * The V8 flag a data thread sets at its start (transfer/data-worker.ts: `--expose-gc`, to collect its young
 * generation every few MiB received). V8's flags are process-wide and part of the hash a code cache is checked
 * against, so a flag set while `portal fetch` runs made the code cache written at its exit (cli/code-cache.ts)
 * one that the next fetch's start, without the flag, rejected: every fetch that started a data thread (≥ 16 MiB)
 * compiled the CLI from source and wrote an 0.8 MB cache at its exit (~25 ms after the output's rename, seen
 * with strace on the throttled-mirrors bench). Setting it before the compile keeps the flags equal at both ends.
 */
export const DATA_THREAD_FLAGS = ['--expose-gc'] as const;

/**
 * Sets DATA_THREAD_FLAGS for this process before the CLI bundle is compiled (cli/launch.ts). It only lets a
 * context created afterwards see `gc`; the main thread's own context never does. Never throws.
 */
export function useDataThreadFlags(): void {
  for (const flag of DATA_THREAD_FLAGS) v8.setFlagsFromString(flag);
}

/**
 * V8 flags for `portal fetch` alone, which runs one transfer and exits, so memory matters more than a host's
 * throughput:
 * - `--semi-space-growth-factor=1`: the main thread's young generation stays at its initial size (V8 reads the
 *   growth factor each time it would grow the new space; 1 keeps it where it is). A fetch's main thread
 *   allocates little once started, yet module loading grew its semi-spaces to 8 MiB each; kept small, a
 *   512 MiB fetch ran 27 young collections on its main thread instead of 14 and peaked 4–8 MB lower.
 * - `--optimize-for-size` ("favor memory size over execution speed"): V8 grows the old generation by its
 *   smallest factor, so a fetch's main thread collects garbage promoted early before it piles up: 2–3 MB lower
 *   peak at the same CPU time (3 pairs of 512 MiB fetches, 5 pairs of 1 MiB fetches).
 * Measured in BENCHMARKS.md, "The data plane". Not for `portal serve`: a thread that allocates fast collects far
 * more often with them (a synthetic allocation loop: 656 scavenges instead of 53 with the growth factor alone).
 *
 * A fetch with data threads takes only WITH_DATA_THREADS_MEMORY_FLAGS: see there.
 */
export const FETCH_MEMORY_FLAGS = ['--semi-space-growth-factor=1', '--optimize-for-size'] as const;

/**
 * FETCH_MEMORY_FLAGS without `--semi-space-growth-factor=1`, for a fetch that starts data threads. V8 raises a
 * growth factor below 2 to 2 whenever an isolate configures its heap, which a worker thread's start does: after
 * `new Worker(…)`, v8.cachedDataVersionTag() is that of `--semi-space-growth-factor=2` (Node 20.20). So the flag
 * did not last past the data thread's start anyway, and while it was set, its reset changed the flags a code cache
 * is checked against at a moment the thread's boot decides: with the thread started before the compile
 * (cli/launch.ts), `portal fetch`'s code cache was rejected by 5 of 5 fetches of 32 MiB after the first, and used
 * by 5 of 5 with the flag left out (load 9–10); with the thread started after the compile, it was rejected under
 * load now and then (a CI rehearsal of session 9).
 */
export const WITH_DATA_THREADS_MEMORY_FLAGS = ['--optimize-for-size'] as const;

/**
 * Whether `portal <command> <args…>` takes FETCH_MEMORY_FLAGS: `fetch`, except a swarm member (`--swarm`), which
 * serves the file to its peers from its main thread as fast as it receives it, and so allocates as fast as a host
 * does: at 8 members × 64 MiB on 2 cores, members without these flags used a median 20.8 CPU s against 26.2 with
 * them (6 alternating pairs at load 10–28, lower in 5; BENCHMARKS.md, issue 18, session 6). `args` are the command's own
 * arguments, before parsing (a flag's value equal to `--swarm` is not told apart; none takes one).
 */
export function takesFetchMemoryFlags(command: string, args: readonly string[]): boolean {
  return command === 'fetch' && !args.includes('--swarm');
}

/**
 * The memory flags of a fetch: FETCH_MEMORY_FLAGS, or WITH_DATA_THREADS_MEMORY_FLAGS when `withDataThreads`
 * (it starts data threads first thing: cli/prestart.ts fetchStartsDataThreads).
 */
export function fetchMemoryFlags(withDataThreads: boolean): readonly string[] {
  return withDataThreads ? WITH_DATA_THREADS_MEMORY_FLAGS : FETCH_MEMORY_FLAGS;
}

/**
 * Sets fetchMemoryFlags(withDataThreads) for this process; call it before the command's modules load and before
 * its data threads start. Never throws.
 */
export function useFetchMemoryFlags(withDataThreads: boolean): void {
  for (const flag of fetchMemoryFlags(withDataThreads)) v8.setFlagsFromString(flag);
}
