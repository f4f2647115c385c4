import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

/**
 * The modules a fresh `node <args>` loads, in load order: ES modules (and CommonJS imported from ESM) by file
 * URL, as a loader hook sees them. `args` is what follows `node` (a script and its arguments, or `-e`). Fails
 * the test when the process exits with another status than `status` (default 0).
 */
export function modulesLoadedBy(args: string[], status = 0): string[] {
  const dir = mkdtempSync(path.join(tmpdir(), 'portal-modules-loaded-'));
  try {
    // a loader hook that names every module it loads on stderr
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
    const r = spawnSync(process.execPath, ['--import', pathToFileURL(register).href, ...args], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect({ status: r.status, stderr: r.status === status ? '' : r.stderr }).toEqual({ status, stderr: '' });
    return r.stderr
      .split('\n')
      .filter((l) => l.startsWith('LOADED '))
      .map((l) => l.slice('LOADED '.length));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
