#!/usr/bin/env node
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { codeCacheDir, runWithCodeCache } from './code-cache.js';
import {
  BASELINE_WASM_FLAGS,
  DATA_THREAD_FLAGS,
  fetchMemoryFlags,
  takesFetchMemoryFlags,
  useBaselineWasm,
  useDataThreadFlags,
  useFetchMemoryFlags,
} from './v8-flags.js';
import { fetchStartsDataThreads, prestartLocalDataThreads } from './prestart.js';

/**
 * The `portal` entry that `scripts/bundle-cli.mjs` writes to dist/cli/main.js (tsc's own main.js is the entry
 * where nothing was bundled). `portal fetch` runs the CLI's CommonJS bundle (dist/cli/portal.cjs) through a V8
 * code cache (cli/code-cache.ts): a fetch is short, so compiling the CLI's code is a large part of it. Every
 * other command imports the ES-module bundle (dist/cli/portal.js and its lazily loaded chunks). Both bundles
 * are built from the same modules by the same esbuild run, and behave the same.
 *
 * The V8 flags the CLI sets (cli/v8-flags.ts) are set here first, before the bundle is compiled, because V8
 * accepts a code cache only under the flags it was made with; cli/main.ts sets them again (a no-op). The data
 * threads of a fetch that has them (cli/prestart.ts) start next, before the compile, so that they boot while the
 * CLI compiles and loads: their start changes no flag (see WITH_DATA_THREADS_MEMORY_FLAGS).
 */
const here = path.dirname(fileURLToPath(import.meta.url));
const [command, ...rest] = process.argv.slice(2);
const cjs = path.join(here, 'portal.cjs');
if (command === 'fetch' && existsSync(cjs)) {
  useBaselineWasm();
  // whether or not this fetch starts a data thread, the flags at exit (when the code cache is written) are those
  // of the compile: see DATA_THREAD_FLAGS
  useDataThreadFlags();
  const threads = fetchStartsDataThreads(rest);
  const small = takesFetchMemoryFlags(command, rest);
  if (small) useFetchMemoryFlags(threads);
  if (threads) prestartLocalDataThreads();
  const flags = [...BASELINE_WASM_FLAGS, ...DATA_THREAD_FLAGS, ...(small ? fetchMemoryFlags(threads) : [])];
  runWithCodeCache(cjs, codeCacheDir(), flags.join(' '), flags);
} else {
  await import(pathToFileURL(path.join(here, 'portal.js')).href);
}
