import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const FETCH = pathToFileURL(path.resolve('dist/cli/commands/fetch.js')).href;

/** The modules a fresh `node` loads while importing `url`: ESM (and CommonJS imported from ESM) by file URL, required CommonJS by path. */
function modulesLoadedBy(url: string): string[] {
  const dir = mkdtempSync(path.join(tmpdir(), 'portal-fast-start-'));
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
    const r = spawnSync(
      process.execPath,
      [
        '--import',
        pathToFileURL(register).href,
        '--input-type=module',
        '-e',
        `await import(${JSON.stringify(url)}); const { createRequire } = await import('node:module'); for (const k of Object.keys(createRequire(import.meta.url).cache)) process.stderr.write('LOADED ' + k + '\\n');`,
      ],
      { encoding: 'utf8', timeout: 60_000 },
    );
    expect(r.status).toBe(0);
    return r.stderr
      .split('\n')
      .filter((l) => l.startsWith('LOADED '))
      .map((l) => l.slice('LOADED '.length));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('fast start: what `portal fetch` loads before it knows its input', () => {
  test("the fetch command loads neither undici's public index nor fast-xml-parser (only a manifest URL or a Metalink needs them)", () => {
    const loaded = modulesLoadedBy(FETCH);
    // the check sees the modules at all: the command and undici's own Agent are among them
    expect(loaded.some((u) => u.endsWith('/dist/cli/commands/fetch.js'))).toBe(true);
    expect(loaded.some((u) => u.endsWith('/dist/transfer/undici-lite.js'))).toBe(true);
    expect(loaded.some((u) => u.endsWith('/undici/lib/dispatcher/agent.js'))).toBe(true);
    expect(loaded.filter((u) => u.endsWith('/node_modules/undici/index.js'))).toEqual([]);
    expect(loaded.filter((u) => u.includes('/node_modules/fast-xml-parser/'))).toEqual([]);
  });
});
