// Bundles the CLI that tsc wrote (dist/cli/main.js and every module it imports from dist/) into a few files in
// dist/cli/ with esbuild, so `portal <command>` loads one entry and one chunk per lazily loaded command instead of
// ~140 separate ES modules: resolving, reading and linking each ES module costs Node 20 ~0.5–1 ms, about 0.1 s
// of CPU for `portal fetch` against a 0.25 s goal for a 1 MiB fetch (issue 15; BENCHMARKS.md, "Session 6:
// start-up of `portal fetch`"). Node 20 has no module compile cache (module.enableCompileCache is Node 22).
//
// Outputs: dist/cli/portal.js and its chunks (the ES-module bundle); dist/cli/portal.cjs, the same CLI as one
// CommonJS file, which `portal fetch` compiles through a V8 code cache kept in ~/.cache/portal
// (cli/code-cache.ts: about a third of a 1 MiB fetch's CPU was compiling the CLI); and dist/cli/main.js, the
// entry (cli/launch.ts), which picks one of the two.
//
// The data-plane thread's script (dist/transfer/data-worker.js) is bundled the same way into one CommonJS file,
// dist/transfer/data-worker.cjs, which the data threads load: each loads its script before its first connection
// (BENCHMARKS.md, "Session 7: undici and the data thread bundled"), and a CommonJS script spares the thread
// Node's ES-module loader: new Worker → its script's first line took a median 90 ms against 101 ms for the same
// bundle as an ES module (15 alternating starts each under chrt -r 10, load 9–10 from other work).
//
// What stays as it was:
// - dist/cli/main.js (by the entry) is replaced in place, so `npm start`, the `portal` bin, the benches and the
//   tests that spawn it run the bundles; a data plane starts dist/transfer/data-worker.cjs where it exists
//   (transfer/data-thread-prestart.ts). Every other file tsc wrote stays, unbundled: tsc's data-worker.js (what
//   a build without esbuild runs), the other worker threads (whole-file hash, rank threads) and tests that
//   import dist/ modules load those.
// - npm packages are not bundled: they load from node_modules as before (webgpu's native addon, the Dapr
//   SDK…), except pino and the packages it imports (29 CommonJS files every command loads for its logger:
//   their resolution, reads and the ESM→CJS export scan cost more than their code), and undici's modules that
//   HTTP needs (~40 CommonJS files in each thread that makes requests; undici has no dependencies): in a
//   bundle transfer/undici-bundled.ts, which imports them statically, takes the place of
//   transfer/undici-lite.ts, which requires them by path at run time. Portal never starts a pino transport, the one part of pino that
//   locates files of its own (its worker, through __dirname); the bundle's `require` (banner) serves the Node
//   built-ins pino requires.
// - each `import()` stays lazy: splitting gives every dynamically imported module graph its own chunk
//   (dist/cli/portal-<name>-<hash>.js), loaded only when that command or feature runs.
// - `import.meta.url` keeps meaning the module's own file in dist/ (workers, schemas, WGSL kernels and
//   createRequire resolve next to it): each occurrence becomes that file's URL relative to the bundle's.
//
// Run after tsc (`npm run build` does both). Refuses to bundle a file that is already a bundle. Where esbuild
// is not installed yet (a checkout whose node_modules predates it: `npm install` adds it), it says so and
// leaves tsc's unbundled CLI and worker (undici loaded by transfer/undici-lite.ts), which work the same and
// start slower; test/cli/bundle.test.ts fails then.
import { readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = path.join(root, 'dist');
const outdir = path.join(dist, 'cli');
const entry = path.join(outdir, 'main.js');
/**
 * Worker-thread scripts bundled, each into one CommonJS file beside it (no chunks): a thread loads its script and the
 * modules it imports before its first message, so each module it resolves and reads on its own delays its
 * first connection (BENCHMARKS.md, "Session 7: undici and the data thread bundled").
 */
const workerEntries = [path.join(dist, 'transfer', 'data-worker.js')];
/** The CommonJS bundle of the worker script `file` (dist/transfer/data-worker.js → data-worker.cjs). */
const workerBundle = (file) => file.replace(/\.js$/, '.cjs');
// an earlier build's worker bundle goes first: where esbuild is missing, threads run tsc's script, not a stale one
for (const file of workerEntries) rmSync(workerBundle(file), { force: true });
/** First line of a bundled main.js: tells a bundle from tsc's output. */
const MARK = '// portal CLI bundle (scripts/bundle-cli.mjs)';

let esbuild;
try {
  esbuild = await import('esbuild');
} catch (err) {
  console.error(
    `bundle-cli: esbuild cannot be loaded (${err.message.split('\n')[0]}): dist/cli stays unbundled (slower start); run npm install`,
  );
  process.exit(0);
}

for (const file of [entry, ...workerEntries]) {
  let input;
  try {
    input = readFileSync(file, 'utf8');
  } catch {
    throw new Error(`bundle-cli: ${file} is missing: run tsc -p tsconfig.build.json first`);
  }
  if (input.split('\n', 3).includes(MARK))
    throw new Error(`bundle-cli: ${file} is already a bundle: run tsc -p tsconfig.build.json first`);
}

// chunks of an earlier bundle
for (const f of readdirSync(outdir))
  if (f.startsWith('portal-') && /\.js(\.map)?$/.test(f)) rmSync(path.join(outdir, f));

/**
 * Rewrites `import.meta.url` in each dist module to that module's own URL, computed from the bundle's in `dir`
 * (`base`: the expression that holds the bundle's URL; a CommonJS bundle has no import.meta).
 */
const ownMetaUrl = (dir, base = 'import.meta.url') => ({
  name: 'own-import-meta-url',
  setup(build) {
    build.onLoad({ filter: /\.js$/ }, (args) => {
      const text = readFileSync(args.path, 'utf8');
      if (args.path.includes(`${path.sep}node_modules${path.sep}`)) return { contents: text, loader: 'js' };
      const rel = path.relative(dir, args.path).split(path.sep).join('/');
      return {
        contents: text.replaceAll('import.meta.url', `new URL(${JSON.stringify(rel)}, ${base}).href`),
        loader: 'js',
        resolveDir: path.dirname(args.path),
      };
    });
  },
});

/**
 * In a bundle, `transfer/undici-lite.js` (which requires undici's modules by path at run time) is replaced by
 * `transfer/undici-bundled.js`, which imports the same modules statically, so they are bundled too.
 */
const undiciBundled = {
  name: 'undici-bundled',
  setup(build) {
    build.onResolve({ filter: /^\.\/undici-lite\.js$/ }, (args) => ({
      path: path.join(args.resolveDir, 'undici-bundled.js'),
    }));
  },
};

/**
 * npm packages stay external (loaded from node_modules), except pino, undici's modules that
 * transfer/undici-bundled.ts imports, and the files those import.
 */
const bundledPackages = {
  name: 'bundled-packages',
  setup(build) {
    build.onResolve({ filter: /^[^./]/ }, (args) => {
      if (args.path.startsWith('node:')) return { path: args.path, external: true };
      const insidePackage = args.importer.includes(`${path.sep}node_modules${path.sep}`);
      if (args.path === 'pino' || args.path.startsWith('undici/lib/') || insidePackage) return undefined;
      return { path: args.path, external: true };
    });
  },
};

/** esbuild options shared by the CLI's bundle and the workers'. */
const common = {
  allowOverwrite: true,
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  // composed with tsc's maps: a stack trace maps to the .ts sources (node --enable-source-maps)
  sourcemap: 'linked',
  banner: {
    js: `${MARK}\nimport { createRequire as __portalCreateRequire } from 'node:module';\nconst require = __portalCreateRequire(import.meta.url);`,
  },
  metafile: true,
  logLevel: 'warning',
};

const cli = await esbuild.build({
  ...common,
  entryPoints: [{ in: entry, out: 'portal' }],
  outdir,
  splitting: true,
  plugins: [ownMetaUrl(outdir), undiciBundled, bundledPackages],
  chunkNames: 'portal-[name]-[hash]',
});
const outputs = Object.keys(cli.metafile.outputs).filter((f) => f.endsWith('.js'));
const inputs = Object.keys(cli.metafile.inputs).length;
console.error(`bundle-cli: ${inputs} modules → ${outputs.length} files in dist/cli`);
// The same CLI as one CommonJS file, for `portal fetch` through a V8 code cache (cli/code-cache.ts): Node 20
// gives an ES module no code cache, a vm.Script one. Every dynamic import() becomes a lazy require (of the
// module inlined in the file, or of an external npm package: those Portal imports dynamically — undici,
// webgpu — are CommonJS), because a vm.Script's import() is experimental in Node 20.
/**
 * Bundles `file` into the one CommonJS file `outfile`, its `import.meta.url`s relative to `dir` (see ownMetaUrl);
 * throws when an import() is left in it. Returns esbuild's result.
 */
async function bundleCommonJs(file, outfile, dir) {
  const r = await esbuild.build({
    ...common,
    entryPoints: [file],
    outfile,
    format: 'cjs',
    supported: { 'dynamic-import': false },
    plugins: [ownMetaUrl(dir, '__portalBundleUrl'), undiciBundled, bundledPackages],
    // strict, as the ES modules it is made of (esbuild's own "use strict" comes after the banner, where it is no
    // directive); a comment may come before a directive
    banner: {
      js: `${MARK}\n'use strict';\nconst __portalBundleUrl = require('node:url').pathToFileURL(__filename).href;`,
    },
  });
  for (const [out, { imports }] of Object.entries(r.metafile.outputs)) {
    const left = imports.filter((i) => i.kind === 'dynamic-import');
    if (left.length > 0)
      throw new Error(`bundle-cli: ${out} still has import() of ${left.map((i) => i.path).join(', ')}`);
  }
  return r;
}
await bundleCommonJs(entry, path.join(outdir, 'portal.cjs'), outdir);
// last: the entry (dist/cli/main.js) becomes cli/launch.ts, which picks one of the two bundles
await esbuild.build({
  ...common,
  entryPoints: [path.join(outdir, 'launch.js')],
  outfile: entry,
  plugins: [ownMetaUrl(outdir)],
});
console.error(
  'bundle-cli: dist/cli/main.js → dist/cli/portal.cjs (fetch, code-cached) or dist/cli/portal.js',
);
for (const file of workerEntries) {
  const dir = path.dirname(file);
  const out = workerBundle(file);
  const w = await bundleCommonJs(file, out, dir);
  console.error(`bundle-cli: ${Object.keys(w.metafile.inputs).length} modules → ${path.relative(root, out)}`);
}

/**
 * Escapes what is left of non-ASCII text in a bundle, as `\uXXXX`. esbuild's output is ASCII except for the
 * comments it keeps (its charset option escapes strings, regular expressions and identifiers, never comments:
 * `×`, `≥`, `—` in the JSDoc of Portal's classes). One such character makes the whole file a two-byte string
 * for V8, which Node decodes from UTF-8 before anything runs: for the 1.9 MB dist/cli/portal.cjs, read by the
 * launcher before the data thread of `portal fetch` starts, and for the data thread's own script as it boots.
 * An ASCII file is read as one-byte text (cli/code-cache.ts decodes it as latin1). The check: the file without
 * its comments (esbuild's whitespace minifier) must print the same after the escape, so no code changed; a
 * string or an untagged template means the same escaped, a regular expression or String.raw text does not and
 * fails the build (write those escaped in the source: dashboard/page.ts, cli/commands/serve.ts).
 */
async function escapeNonAscii(file) {
  const text = readFileSync(file, 'utf8');
  if (!/[^\x00-\x7f]/.test(text)) return;
  const escaped = text.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  // untagged templates printed as strings (their cooked value); a tagged one's raw text stays as written
  const code = async (s) =>
    (
      await esbuild.transform(s, {
        loader: 'js',
        minifyWhitespace: true,
        legalComments: 'none',
        supported: { 'template-literal': false },
      })
    ).code;
  if ((await code(text)) !== (await code(escaped)))
    throw new Error(`bundle-cli: ${file} has non-ASCII text outside comments: it cannot be escaped safely`);
  writeFileSync(file, escaped);
}
for (const file of [
  ...outputs.map((f) => path.resolve(f)),
  path.join(outdir, 'portal.cjs'),
  entry,
  ...workerEntries.map(workerBundle),
])
  await escapeNonAscii(file);
