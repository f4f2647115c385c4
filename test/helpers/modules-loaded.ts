import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

/**
 * Writes into `dir` the hooks that make a node process name the modules it loads on stderr, one `LOADED <url>`
 * line each, and returns the node options that install them (for argv or NODE_OPTIONS): a loader hook names
 * every ES module (and CommonJS file imported from ESM) by file URL as it loads, in every thread; and at the
 * main thread's exit, a preload names each CommonJS file in its require cache (files loaded by `require` or a
 * `createRequire`, which Node 20's loader hooks do not see) by file URL.
 */
export function writeModuleHooks(dir: string): string[] {
  const hooks = path.join(dir, 'hooks.mjs');
  writeFileSync(
    hooks,
    'export async function load(url, ctx, next) { process.stderr.write(`LOADED ${url}\\n`); return next(url, ctx); }\n',
  );
  const register = path.join(dir, 'register.mjs');
  writeFileSync(
    register,
    `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(hooks).href)});\n`,
  );
  const required = path.join(dir, 'required.cjs');
  writeFileSync(
    required,
    [
      "const { isMainThread } = require('node:worker_threads');",
      "const { pathToFileURL } = require('node:url');",
      'if (isMainThread)',
      "  process.on('exit', () => { for (const f of Object.keys(require.cache)) if (f !== __filename) process.stderr.write(`LOADED ${pathToFileURL(f).href}\\n`); });",
      '',
    ].join('\n'),
  );
  return ['--import', pathToFileURL(register).href, '--require', required];
}

/** The `LOADED` urls in a process's stderr (see writeModuleHooks), in order. */
export function loadedUrls(stderr: string): string[] {
  return stderr
    .split('\n')
    .filter((l) => l.startsWith('LOADED '))
    .map((l) => l.slice('LOADED '.length));
}

/**
 * The modules a fresh `node <args>` loads (see writeModuleHooks): ES modules in load order, then the
 * main thread's CommonJS files. `args` is what follows `node` (a script and its arguments, or `-e`). Fails the
 * test when the process exits with another status than `status` (default 0).
 */
export function modulesLoadedBy(args: string[], status = 0): string[] {
  const dir = mkdtempSync(path.join(tmpdir(), 'portal-modules-loaded-'));
  try {
    const r = spawnSync(process.execPath, [...writeModuleHooks(dir), ...args], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect({ status: r.status, stderr: r.status === status ? '' : r.stderr }).toEqual({ status, stderr: '' });
    return loadedUrls(r.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
