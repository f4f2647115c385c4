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
