/**
 * The parts of undici that Portal uses, named by their paths inside the undici package (its internals, not its
 * public index): `transfer/undici-lite.ts` requires them from node_modules (tsc's unbundled output, jest), and
 * `transfer/undici-bundled.ts` imports the same files statically so that esbuild copies them into the bundles
 * of `scripts/bundle-cli.mjs`. test/transfer/undici-lite.test.ts fails when an undici update moves one.
 */
export const UNDICI_LITE_MODULES = [
  'undici/lib/dispatcher/dispatcher.js',
  'undici/lib/api/index.js',
  'undici/lib/dispatcher/agent.js',
  'undici/lib/dispatcher/proxy-agent.js',
  'undici/lib/dispatcher/pool.js',
  'undici/lib/core/connect.js',
] as const;

/**
 * Gives undici's Dispatcher class its request API (`request`, `stream`, `pipeline`, `connect`, `upgrade`),
 * exactly as undici's index.js does after loading them (`Object.assign(Dispatcher.prototype, api)`); a no-op
 * when the index (or an earlier call) already did. `dispatcher` and `api` are the exports of the first two
 * UNDICI_LITE_MODULES.
 */
export function attachRequestApi(dispatcher: { prototype: object }, api: object): void {
  if (typeof (dispatcher.prototype as { request?: unknown }).request !== 'function')
    Object.assign(dispatcher.prototype, api);
}
