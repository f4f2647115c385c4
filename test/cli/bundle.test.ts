import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { createMesh, type Mesh } from '../helpers/mesh.js';
import { loadedUrls, modulesLoadedBy, writeModuleHooks } from '../helpers/modules-loaded.js';
import { PORTAL_MAIN, lastJson, runPortal } from '../helpers/portal-cli.js';
import { SMALL_TRANSFER_BYTES } from '../../node/run-transfer.js';

const DIST = `${pathToFileURL(path.resolve('dist')).href}/`;

/** Files of the CLI's ES-module bundle: the entry (cli/launch.ts), the bundle and the chunks esbuild split off. */
const CLI_BUNDLE = /^cli\/(main|portal|portal-[\w-]+)\.js$/;

/**
 * `portal fetch` of a `bytes`-long file from one edge, through the built CLI with writeModuleHooks installed:
 * expects a verified output equal to the source, and returns the modules the process loaded (every thread's ES
 * modules, the main thread's CommonJS files) as paths relative to dist/ for Portal's own and as file URLs for
 * the rest.
 */
async function fetchThroughBundle(bytes: number): Promise<{ own: string[]; others: string[] }> {
  const hooksDir = await mkdtemp(path.join(tmpdir(), 'portal-bundle-hooks-'));
  try {
    mesh = await createMesh(bytes, 2 ** 20, [{}]);
    const out = path.join(mesh.dir, 'out.bin');
    const r = await runPortal(
      ['fetch', mesh.manifestPath, '--edge', mesh.servers[0].url, '--out', out, '--json'],
      {
        env: {
          NODE_OPTIONS: writeModuleHooks(hooksDir).join(' '),
          PORTAL_CODE_CACHE_DIR: path.join(hooksDir, 'code-cache'),
        },
      },
    );
    expect(r.code).toBe(0);
    expect(lastJson(r)).toMatchObject({ verified: true, bytes });
    const [a, b] = await Promise.all([readFile(out), readFile(path.join(mesh.dir, 'source.bin'))]);
    expect(createHash('sha256').update(a).digest('hex')).toBe(createHash('sha256').update(b).digest('hex'));
    const all = loadedUrls(r.stderr);
    return {
      own: all.filter((u) => u.startsWith(DIST)).map((u) => u.slice(DIST.length)),
      others: all.filter((u) => !u.startsWith(DIST)),
    };
  } finally {
    await rm(hooksDir, { recursive: true, force: true });
  }
}

let mesh: Mesh | undefined;

describe('the built CLI is one bundle (scripts/bundle-cli.mjs, run by npm run build)', () => {
  afterEach(async () => {
    await mesh?.close();
    mesh = undefined;
  });

  test("the bundles are ASCII: V8 holds them as one-byte text, and `portal fetch`'s launcher reads the CLI without decoding UTF-8", async () => {
    const files = [
      ...(await readdir('dist/cli'))
        .filter((f) => CLI_BUNDLE.test(`cli/${f}`) || f === 'portal.cjs')
        .map((f) => path.join('dist/cli', f)),
      'dist/transfer/data-worker.cjs',
    ];
    expect(files).toEqual(expect.arrayContaining(['dist/cli/portal.cjs', 'dist/cli/main.js']));
    const nonAscii = await Promise.all(
      files.map(async (f) => ({ f, at: (await readFile(f)).findIndex((b) => b > 0x7f) })),
    );
    expect(nonAscii.filter((x) => x.at >= 0)).toEqual([]);
  });

  test("`portal fetch` loads Portal's own code and pino from dist/cli/main.js and its chunks, not from ~170 separate modules", () => {
    const all = modulesLoadedBy([PORTAL_MAIN, 'fetch', '--help']);
    const own = all.filter((u) => u.startsWith(DIST)).map((u) => u.slice(DIST.length));
    // the hook sees the CLI at all (and saw node_modules/pino/pino.js before pino was bundled)
    expect(own[0]).toBe('cli/main.js');
    expect(own.filter((f) => !CLI_BUNDLE.test(f))).toEqual([]);
    expect(all.filter((u) => /\/node_modules\/(pino|sonic-boom|thread-stream)\//.test(u))).toEqual([]);
  });

  test("a 1 MiB fetch (bytes on the main thread) runs undici from the bundle: no file of undici's from node_modules", async () => {
    const { own, others } = await fetchThroughBundle(2 ** 20);
    // a fetch compiles dist/cli/portal.cjs itself (cli/code-cache.ts): the entry is the only module loaded
    expect(own).toEqual(['cli/main.js']);
    // the hooks see CommonJS files at all (pino's were the last before it was bundled; Node's own are not files)
    expect(others.filter((u) => u.includes('/node_modules/undici/'))).toEqual([]);
  });

  test('a fetch above SMALL_TRANSFER_BYTES starts its data thread from one bundled file (undici inside) and verifies', async () => {
    const { own, others } = await fetchThroughBundle(SMALL_TRANSFER_BYTES + 2 ** 20);
    // the data thread runs dist/transfer/data-worker.cjs, a CommonJS bundle, and none of the modules tsc wrote
    // beside it (its ES-module data-worker.js included)
    expect(own).toEqual(['cli/main.js', 'transfer/data-worker.cjs']);
    expect(others.filter((u) => u.includes('/node_modules/undici/'))).toEqual([]);
    const worker = await readFile(path.resolve('dist/transfer/data-worker.cjs'), 'utf8');
    // strict, as its ES modules are: the directive right after the mark (esbuild's own comes too late to count)
    expect(worker.split('\n', 2)).toEqual(['// portal CLI bundle (scripts/bundle-cli.mjs)', "'use strict';"]);
    // undici's Agent is inside the worker's bundle, not required from node_modules when the thread starts
    expect(worker).toMatch(/^\/\/ .*node_modules\/undici\/lib\/dispatcher\/agent\.js$/m);
    expect(worker).not.toMatch(/require\(["']undici/);
  });

  // A fetch of SMALL_TRANSFER_BYTES starts its data thread before the CLI compiles (cli/launch.ts). Its cache was
  // rejected whenever the thread booted during the compile, and under load sometimes when it booted after: the
  // thread's start raised --semi-space-growth-factor=1 to 2 (cli/v8-flags.ts WITH_DATA_THREADS_MEMORY_FLAGS).
  test.each([
    ['1 MiB (bytes on the main thread)', 2 ** 20],
    [
      `${SMALL_TRANSFER_BYTES / 2 ** 20} MiB (a data thread started before the compile)`,
      SMALL_TRANSFER_BYTES,
    ],
  ])(
    '`portal fetch` of %s writes a V8 code cache of the CLI on its first run and compiles from it on the next',
    async (_what, bytes) => {
      const cacheDir = await mkdtemp(path.join(tmpdir(), 'portal-code-cache-'));
      try {
        mesh = await createMesh(bytes, 2 ** 20, [{}]);
        const run = async (n: number) => {
          const out = path.join(mesh!.dir, `out-${n}.bin`);
          const r = await runPortal(
            ['fetch', mesh!.manifestPath, '--edge', mesh!.servers[0].url, '--out', out, '--json'],
            { env: { PORTAL_CODE_CACHE_DIR: cacheDir } },
          );
          expect({ code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({ code: 0, stderr: '' });
          expect(lastJson(r)).toMatchObject({ verified: true });
        };
        const cacheFiles = async () => {
          const names = (await readdir(cacheDir)).filter((f) => f.endsWith('.v8cache'));
          return Promise.all(names.map(async (f) => ({ f, ino: (await stat(path.join(cacheDir, f))).ino })));
        };
        await run(1);
        const first = await cacheFiles();
        expect(first).toEqual([
          { f: expect.stringMatching(/^portal\.cjs-[0-9a-f]{32}\.v8cache$/), ino: expect.any(Number) },
        ]);
        // the second run accepted it: a rejected (or missing) cache would be written anew (another file by rename)
        await run(2);
        expect(await cacheFiles()).toEqual(first);
      } finally {
        await rm(cacheDir, { recursive: true, force: true });
      }
    },
  );
});
