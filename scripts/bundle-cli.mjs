// Bundles the CLI that tsc wrote (dist/cli/main.js and every module it imports from dist/) into a few files in
// dist/cli/ with esbuild, so `portal <command>` loads one entry and one chunk per lazily loaded command instead of
// ~140 separate ES modules: resolving, reading and linking each ES module costs Node 20 ~0.5–1 ms, about 0.1 s
// of CPU for `portal fetch` against a 0.25 s goal for a 1 MiB fetch (issue 15; BENCHMARKS.md, "Session 6:
// start-up of `portal fetch`"). Node 20 has no module compile cache (module.enableCompileCache is Node 22).
//
// What stays as it was:
// - dist/cli/main.js is replaced in place, so `npm start`, the `portal` bin, the benches and the tests that
//   spawn it all run the bundle; every other file tsc wrote stays, unbundled: worker threads (data plane,
//   whole-file hash, rank threads) and tests that import dist/ modules load those.
// - npm packages are not bundled: they load from node_modules as before (webgpu's native addon, undici's
//   internals that transfer/undici-lite.ts requires by path, the Dapr SDK…), except pino and the packages it
//   imports (29 CommonJS files every command loads for its logger: their resolution, reads and the ESM→CJS
//   export scan cost more than their code). Portal never starts a pino transport, the one part of pino that
//   locates files of its own (its worker, through __dirname); the bundle's `require` (banner) serves the Node
//   built-ins pino requires.
// - each `import()` stays lazy: splitting gives every dynamically imported module graph its own chunk
//   (dist/cli/portal-<name>-<hash>.js), loaded only when that command or feature runs.
// - `import.meta.url` keeps meaning the module's own file in dist/ (workers, schemas, WGSL kernels and
//   createRequire resolve next to it): each occurrence becomes that file's URL relative to the bundle's.
//
// Run after tsc (`npm run build` does both). Refuses to bundle a main.js that is already a bundle. Where
// esbuild is not installed yet (a checkout whose node_modules predates it: `npm install` adds it), it says so
// and leaves tsc's unbundled CLI, which works the same and starts slower; test/cli/bundle.test.ts fails then.
import { readFileSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outdir = path.join(root, 'dist', 'cli');
const entry = path.join(outdir, 'main.js');
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

let input;
try {
  input = readFileSync(entry, 'utf8');
} catch {
  throw new Error(`bundle-cli: ${entry} is missing: run tsc -p tsconfig.build.json first`);
}
if (input.split('\n', 3).includes(MARK))
  throw new Error(`bundle-cli: ${entry} is already a bundle: run tsc -p tsconfig.build.json first`);

// chunks of an earlier bundle
for (const f of readdirSync(outdir))
  if (f.startsWith('portal-') && /\.js(\.map)?$/.test(f)) rmSync(path.join(outdir, f));

/** Rewrites `import.meta.url` in each dist module to that module's own URL, computed from the bundle's. */
const ownMetaUrl = {
  name: 'own-import-meta-url',
  setup(build) {
    build.onLoad({ filter: /\.js$/ }, (args) => {
      const text = readFileSync(args.path, 'utf8');
      const rel = path.relative(outdir, args.path).split(path.sep).join('/');
      return {
        contents: text.replaceAll('import.meta.url', `new URL(${JSON.stringify(rel)}, import.meta.url).href`),
        loader: 'js',
        resolveDir: path.dirname(args.path),
      };
    });
  },
};

/** npm packages stay external (loaded from node_modules), except pino and the packages pino imports. */
const bundlePino = {
  name: 'bundle-pino',
  setup(build) {
    build.onResolve({ filter: /^[^./]/ }, (args) => {
      if (args.path.startsWith('node:')) return { path: args.path, external: true };
      const insidePino = args.importer.includes(`${path.sep}node_modules${path.sep}`);
      if (args.path === 'pino' || insidePino) return undefined;
      return { path: args.path, external: true };
    });
  },
};

const result = await esbuild.build({
  entryPoints: [entry],
  outdir,
  allowOverwrite: true,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  plugins: [ownMetaUrl, bundlePino],
  chunkNames: 'portal-[name]-[hash]',
  // composed with tsc's maps: a stack trace maps to the .ts sources (node --enable-source-maps)
  sourcemap: 'linked',
  banner: {
    js: `${MARK}\nimport { createRequire as __portalCreateRequire } from 'node:module';\nconst require = __portalCreateRequire(import.meta.url);`,
  },
  metafile: true,
  logLevel: 'warning',
});
const outputs = Object.keys(result.metafile.outputs).filter((f) => f.endsWith('.js'));
const inputs = Object.keys(result.metafile.inputs).length;
console.error(`bundle-cli: ${inputs} modules → ${outputs.length} files in dist/cli`);
