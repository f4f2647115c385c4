import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { modulesLoadedBy } from '../helpers/modules-loaded.js';

const FETCH = pathToFileURL(path.resolve('dist/cli/commands/fetch.js')).href;

/** The modules a fresh `node` loads while importing `url`: ESM (and CommonJS imported from ESM) by file URL, required CommonJS by path. */
function modulesImportedBy(url: string): string[] {
  return modulesLoadedBy([
    '--input-type=module',
    '-e',
    `await import(${JSON.stringify(url)}); const { createRequire } = await import('node:module'); for (const k of Object.keys(createRequire(import.meta.url).cache)) process.stderr.write('LOADED ' + k + '\\n');`,
  ]);
}

describe('fast start: what `portal fetch` loads before it knows its input', () => {
  test("the fetch command loads neither undici's public index nor fast-xml-parser (only a manifest URL or a Metalink needs them)", () => {
    const loaded = modulesImportedBy(FETCH);
    // the check sees the modules at all: the command and undici's own Agent are among them
    expect(loaded.some((u) => u.endsWith('/dist/cli/commands/fetch.js'))).toBe(true);
    expect(loaded.some((u) => u.endsWith('/dist/transfer/undici-lite.js'))).toBe(true);
    expect(loaded.some((u) => u.endsWith('/undici/lib/dispatcher/agent.js'))).toBe(true);
    expect(loaded.filter((u) => u.endsWith('/node_modules/undici/index.js'))).toEqual([]);
    expect(loaded.filter((u) => u.includes('/node_modules/fast-xml-parser/'))).toEqual([]);
  });
});
