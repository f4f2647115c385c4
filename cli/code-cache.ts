import { isAscii } from 'node:buffer';
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import Module, { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import zlib from 'node:zlib';

/**
 * Caches kept per script: each build of a bundle, Node version and set of V8 flags has its own, and the oldest
 * beyond these are deleted when a new one is written (~0.9 MB each for the CLI).
 */
export const CODE_CACHES_KEPT = 4;

/** How runWithCodeCache compiled the script: from a V8 code cache, or from source (none yet, or rejected). */
export type CodeCacheUse = 'used' | 'none' | 'rejected';

/**
 * Where V8 code caches of Portal's bundles are kept: `$PORTAL_CODE_CACHE_DIR`, else `$XDG_CACHE_HOME/portal`,
 * else `~/.cache/portal` (the XDG base-directory default for per-user caches); undefined (no cache: the CLI is
 * compiled from source) for a user without a home directory. Never a shared folder such as the temporary
 * directory: V8 checks a cache only against the source's length, so a cache planted there by another user
 * would run as this user's code.
 */
export function codeCacheDir(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.PORTAL_CODE_CACHE_DIR) return env.PORTAL_CODE_CACHE_DIR;
  if (env.XDG_CACHE_HOME) return path.join(env.XDG_CACHE_HOME, 'portal');
  try {
    return path.join(os.homedir(), '.cache', 'portal');
  } catch {
    return undefined; // no home directory for this user (os.homedir throws)
  }
}

/**
 * Runs the CommonJS script `file` in this context, as Node's loader would run a main module (`require`,
 * `module`, `__filename`, `__dirname`), compiled from a V8 code cache when `dir` (undefined: none) holds one for this very script,
 * and writes one there at exit when it did not. The script must not call `import()`: Node 20 offers it to a
 * vm.Script only as an experimental feature that prints a warning (scripts/bundle-cli.mjs turns each `import()`
 * of portal.cjs into a `require`, and fails where one is left).
 *
 * Why: Node 20 has no compile cache for modules (module.enableCompileCache is Node 22), so every `portal fetch`
 * parses and compiles the CLI's code anew; a code cache (V8's `cachedData`, what Node 22's compile cache
 * stores) skips that for every function the last run compiled (BENCHMARKS.md, "Session 7: undici and the
 * data thread bundled, and a code cache for `portal fetch`").
 *
 * The cache's name follows the script's bytes, the Node version and `key` (the caller's V8 flags: V8 rejects a
 * cache made under other flags; see cacheName), because V8 itself checks only the source's length. A cache
 * that V8 rejects anyway is replaced at exit. Any failure to read or write the cache (a read-only or missing
 * directory, a concurrent writer) only costs the compile: the write is atomic (temporary file, rename) and its
 * errors are ignored. Errors of the script itself propagate as if it were run by `node file`.
 *
 * `flags` (optional): the V8 flags this process set before the compile (those `key` names). They are set again
 * at exit, just before the cache is made: V8 checks a cache against the flags it was made under, and V8 itself
 * may have changed one meanwhile (a worker thread's start raises `--semi-space-growth-factor` below 2 to 2:
 * cli/v8-flags.ts WITH_DATA_THREADS_MEMORY_FLAGS), which made every next run reject the cache and write it anew.
 */
export function runWithCodeCache(
  file: string,
  dir: string | undefined,
  key: string,
  flags: readonly string[] = [],
): CodeCacheUse {
  const bytes = readFileSync(file);
  // an ASCII script (the bundles are: scripts/bundle-cli.mjs) is one-byte text: decoded as latin1, without the
  // UTF-8 decoder's pass over the 1.9 MB bundle, which ran before the data thread could start (cli/launch.ts)
  const text = (isAscii(bytes) ? bytes.toString('latin1') : bytes.toString('utf8')).replace(/^#!.*/, '');
  const name = cacheName(bytes, `${process.version}\0${key}`);
  const cacheFile = dir === undefined ? undefined : path.join(dir, `${path.basename(file)}-${name}.v8cache`);
  let cachedData: Buffer | undefined;
  try {
    if (cacheFile) cachedData = readFileSync(cacheFile);
  } catch {
    // no cache yet (or unreadable): compile from source
  }
  const script = new vm.Script(Module.wrap(text), { filename: file, cachedData });
  const use: CodeCacheUse = !cachedData ? 'none' : script.cachedDataRejected ? 'rejected' : 'used';
  if (use !== 'used' && dir !== undefined && cacheFile !== undefined)
    process.once('exit', () => {
      try {
        for (const flag of flags) v8.setFlagsFromString(flag);
        mkdirSync(dir, { recursive: true });
        const tmp = `${cacheFile}.${process.pid}.tmp`;
        writeFileSync(tmp, script.createCachedData());
        renameSync(tmp, cacheFile);
        pruneCaches(dir, path.basename(file));
      } catch {
        // a cache is an optimisation only: the next run compiles from source again
      }
    });
  const wrapper = script.runInThisContext() as (
    exports: object,
    require: NodeRequire,
    module: { exports: object },
    filename: string,
    dirname: string,
  ) => void;
  const module = { exports: {} };
  wrapper.call(module.exports, module.exports, createRequire(file), module, file, path.dirname(file));
  return use;
}

/** zlib.crc32 (Node ≥ 20.15; undefined before). */
const crc32 = (zlib as { crc32?: (data: Uint8Array | string, value?: number) => number }).crc32;

/**
 * The name of the cache of a script of `bytes` under `meta` (Node version, V8 flags): 32 hex digits that change
 * with the script's bytes. A CRC-32 of the bytes with their length, as Node 22's own compile cache checks a
 * module's source; where zlib has no crc32 (Node < 20.15), the first half of their sha-256. Not sha-256 always:
 * `portal fetch` names its cache before its data thread starts, and OpenSSL's first use (~5–10 ms, more on a
 * loaded machine) was on that path.
 */
export function cacheName(bytes: Buffer, meta: string): string {
  if (!crc32) return createHash('sha256').update(bytes).update(`\0${meta}`).digest('hex').slice(0, 32);
  const hex = (n: number): string => n.toString(16).padStart(8, '0');
  return hex(crc32(bytes)) + hex(bytes.length) + hex(crc32(meta)) + hex(crc32(meta, crc32(bytes)));
}

/** Deletes the caches of the script `base` in `dir` beyond the CODE_CACHES_KEPT most recently written. */
function pruneCaches(dir: string, base: string): void {
  const caches = readdirSync(dir)
    .filter((f) => f.startsWith(`${base}-`) && f.endsWith('.v8cache'))
    .map((f) => ({ f, mtime: statSync(path.join(dir, f)).mtimeMs }))
    .sort((a, b) => b.mtime - a.mtime);
  for (const { f } of caches.slice(CODE_CACHES_KEPT)) rmSync(path.join(dir, f), { force: true });
}
