// The architecture as a checked rule set (run by `npm run lint:deps`, part of `npm test`).
// Each top-level area may import only from the areas listed for it; the list is a layering (a DAG),
// so no import cycle between areas can pass. Module-level cycles are refused as well.
// docs/architecture.md explains the layers.
/** The library areas actors build on (everything below actors/ except harness/). */
const belowActors = [
  'common',
  'proto',
  'scheduler',
  'learning',
  'gpu',
  'engine',
  'bus',
  'stream',
  'transfer',
  'api',
  'runtime',
];
/** area → the areas it may import from (besides itself and node_modules / node: builtins). */
const layers = {
  common: [],
  proto: ['common'],
  scheduler: ['common'],
  learning: ['common'],
  gpu: ['common', 'scheduler'],
  engine: ['common', 'scheduler', 'gpu'],
  bus: ['common', 'proto'],
  stream: ['common', 'gpu', 'bus'],
  transfer: ['common', 'bus'],
  api: ['common'],
  runtime: ['common', 'api'],
  harness: ['common'],
  actors: belowActors,
  dashboard: ['common', 'api', 'runtime', 'actors'],
  node: [...belowActors, 'actors', 'dashboard'],
  cli: [...belowActors, 'actors', 'dashboard', 'node', 'harness'],
  bench: [...belowActors, 'actors', 'dashboard', 'node', 'cli', 'harness'],
};
const areas = [...Object.keys(layers), 'test'];

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'A module-level import cycle.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'unknown-area',
      severity: 'error',
      comment: 'A top-level folder with TypeScript that the layering does not list: add it to `layers`.',
      from: { pathNot: `^(${areas.join('|')})/` },
      to: {},
    },
    ...Object.entries(layers).map(([area, allowed]) => {
      const forbiddenAreas = areas.filter((a) => a !== area && !allowed.includes(a));
      return {
        name: `layer-${area}`,
        severity: 'error',
        comment: `${area}/ may import only from: ${allowed.join(', ') || '(no other area)'}.`,
        from: { path: `^${area}/` },
        to: { path: `^(${forbiddenAreas.join('|')})/` },
      };
    }),
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(node_modules|dist|coverage|\\.cache|examples)/' },
    includeOnly: '^[a-z][a-z-]*/',
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    moduleSystems: ['es6'],
  },
};
