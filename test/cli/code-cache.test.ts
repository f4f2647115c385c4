import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { CODE_CACHES_KEPT } from '../../cli/code-cache.js';

const CODE_CACHE = pathToFileURL(path.resolve('dist/cli/code-cache.js')).href;

describe('runWithCodeCache (cli/code-cache.ts): a CommonJS script compiled through a V8 code cache', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'portal-code-cache-test-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** Runs `script` with runWithCodeCache in a fresh node (the cache is written at exit); its stdout lines. */
  const run = (
    script: string,
    key = 'k',
    cacheDir: string | null = path.join(dir, 'cache'),
    flags?: string[],
    passFlags = true,
  ): string[] => {
    const file = path.join(dir, 'script.cjs');
    writeFileSync(file, script);
    // flags: set before the compile, as cli/launch.ts does, and passed on to be set again at exit
    const setFlags = flags
      ? `const v8 = await import('node:v8'); for (const f of ${JSON.stringify(flags)}) v8.setFlagsFromString(f);`
      : '';
    const r = spawnSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `${setFlags} const { runWithCodeCache } = await import(${JSON.stringify(CODE_CACHE)}); console.log('use', runWithCodeCache(${JSON.stringify(file)}, ${cacheDir === null ? 'undefined' : JSON.stringify(cacheDir)}, ${JSON.stringify(key)}${flags && passFlags ? `, ${JSON.stringify(flags)}` : ''}));`,
      ],
      { encoding: 'utf8', timeout: 30_000 },
    );
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
    return r.stdout.trim().split('\n');
  };
  const cacheFiles = () => readdirSync(path.join(dir, 'cache')).sort();

  // a script that uses what Node gives a main module: require, module, __filename, __dirname
  const SCRIPT = [
    '#!/usr/bin/env node',
    "const os = require('node:os');",
    "console.log('script', typeof os.cpus, path(), typeof module.exports);",
    "function path() { return require('node:path').basename(__filename) + ' ' + (__dirname.length > 0); }",
    "setImmediate(() => console.log('later', typeof require('node:util').inspect));",
    '',
  ].join('\n');

  test('the first run compiles from source and writes the cache; the next compiles from it and runs the same', () => {
    expect(run(SCRIPT)).toEqual(['script function script.cjs true object', 'use none', 'later function']);
    expect(cacheFiles()).toEqual([expect.stringMatching(/^script\.cjs-[0-9a-f]{32}\.v8cache$/)]);
    expect(run(SCRIPT)).toEqual(['script function script.cjs true object', 'use used', 'later function']);
  });

  test('without a cache folder (a user without a home directory) the script runs compiled from source and nothing is written anywhere', () => {
    expect(run(SCRIPT, 'k', null)).toEqual([
      'script function script.cjs true object',
      'use none',
      'later function',
    ]);
    expect(readdirSync(dir)).toEqual(['script.cjs']);
  });

  test('codeCacheDir: PORTAL_CODE_CACHE_DIR, then XDG_CACHE_HOME/portal, then ~/.cache/portal — never the temporary directory', async () => {
    const { codeCacheDir } = await import('../../cli/code-cache.js');
    expect(codeCacheDir({ PORTAL_CODE_CACHE_DIR: '/x/y', XDG_CACHE_HOME: '/z' })).toBe('/x/y');
    expect(codeCacheDir({ XDG_CACHE_HOME: '/z' })).toBe('/z/portal');
    expect(codeCacheDir({})).toBe(path.join(homedir(), '.cache', 'portal'));
  });

  test('a script changed at the same length, or other V8 flags (key), does not take the old cache', () => {
    run(SCRIPT);
    // V8 itself checks only the length: the cache's name holds the text's digest
    const same = SCRIPT.replace("'script'", "'scrip2'");
    expect(same.length).toBe(SCRIPT.length);
    expect(run(same)).toEqual(['scrip2 function script.cjs true object', 'use none', 'later function']);
    expect(run(SCRIPT, 'other flags')[1]).toBe('use none');
    expect(cacheFiles()).toHaveLength(3);
  });

  test('a script with UTF-8 text runs as written, compiled from source and from its cache (ASCII scripts are read as latin1)', () => {
    const utf8 = `${SCRIPT}console.log('×≥—é', '\u{1F600}'.length);\n`;
    const lines = ['script function script.cjs true object', '×≥—é 2'];
    expect(run(utf8)).toEqual([...lines, 'use none', 'later function']);
    expect(run(utf8)).toEqual([...lines, 'use used', 'later function']);
  });

  // V8 raises --semi-space-growth-factor below 2 to 2 when a worker thread starts (cli/v8-flags.ts
  // WITH_DATA_THREADS_MEMORY_FLAGS), so the flags at exit differ from the compile's unless they are set again
  test('a flag that V8 changed while the script ran (a worker thread started) is set again before the cache is written, so the next run takes it', () => {
    const withWorker = [
      "const { Worker } = require('node:worker_threads');",
      "const v8 = require('node:v8');",
      'const tag = v8.cachedDataVersionTag();',
      "new Worker('0', { eval: true }).once('exit', () => console.log('flags changed', v8.cachedDataVersionTag() !== tag));",
      '',
    ].join('\n');
    const flags = ['--semi-space-growth-factor=1'];
    expect(run(withWorker, 'k', path.join(dir, 'cache'), flags)).toEqual(['use none', 'flags changed true']);
    expect(run(withWorker, 'k', path.join(dir, 'cache'), flags)).toEqual(['use used', 'flags changed true']);
    // the same without the flags passed on: the cache written at exit is one that the next run rejects
    const other = path.join(dir, 'other');
    expect(run(withWorker, 'k', other, flags, false)).toEqual(['use none', 'flags changed true']);
    expect(run(withWorker, 'k', other, flags, false)[0]).toBe('use rejected');
  });

  test('caches of earlier versions of the script beyond CODE_CACHES_KEPT are deleted when one is written', () => {
    for (let v = 0; v < CODE_CACHES_KEPT + 2; v++) run(`${SCRIPT}// version ${v}\n`);
    expect(cacheFiles()).toHaveLength(CODE_CACHES_KEPT);
    // the newest is among them: its next run compiles from it
    expect(run(`${SCRIPT}// version ${CODE_CACHES_KEPT + 1}\n`)[1]).toBe('use used');
  });

  test('a cache that V8 rejects is replaced; an unwritable cache directory only costs the compile', () => {
    run(SCRIPT);
    const [name] = cacheFiles();
    writeFileSync(path.join(dir, 'cache', name), Buffer.alloc(4096, 7));
    expect(run(SCRIPT)[1]).toBe('use rejected');
    expect(run(SCRIPT)[1]).toBe('use used');
    rmSync(path.join(dir, 'cache'), { recursive: true });
    writeFileSync(path.join(dir, 'cache'), 'a file where the directory would be');
    expect(run(SCRIPT)).toEqual(['script function script.cjs true object', 'use none', 'later function']);
  });
});
