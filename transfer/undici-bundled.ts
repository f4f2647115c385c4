import DispatcherClass from 'undici/lib/dispatcher/dispatcher.js';
import api from 'undici/lib/api/index.js';
import AgentClass from 'undici/lib/dispatcher/agent.js';
import ProxyAgentClass from 'undici/lib/dispatcher/proxy-agent.js';
import PoolClass from 'undici/lib/dispatcher/pool.js';
import buildConnectorFn from 'undici/lib/core/connect.js';
import { attachRequestApi } from './undici-parts.js';

export { UNDICI_LITE_MODULES } from './undici-parts.js';

/**
 * What `transfer/undici-lite.ts` exports, from the same undici modules (UNDICI_LITE_MODULES) imported
 * statically, so that esbuild copies them into a bundle. `scripts/bundle-cli.mjs` puts this module in place of
 * undici-lite in the bundles it writes (the CLI and the data thread): a thread then evaluates undici from its
 * bundle instead of resolving, reading and compiling its ~40 CommonJS files from node_modules one by one (a 1
 * MiB `portal fetch` loads them on its main thread, a data thread on its own; BENCHMARKS.md, "Session 7:
 * undici and the data thread bundled"). When undici moves these files the bundle fails to build, and
 * test/transfer/undici-lite.test.ts fails.
 */
attachRequestApi(DispatcherClass, api);

/** undici's Agent class (undici's index exports the same). */
export const Agent = AgentClass;
/** undici's ProxyAgent class (undici's index exports the same). */
export const ProxyAgent = ProxyAgentClass;
/** undici's Pool class (undici's index exports the same). */
export const Pool = PoolClass;
/** undici's buildConnector (undici's index exports the same). */
export const buildConnector = buildConnectorFn;
/** Always true here: the classes come from undici's own modules (see undici-lite.ts for the fallback). */
export const UNDICI_LITE = true;
