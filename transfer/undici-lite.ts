import { createRequire } from 'node:module';
import type * as Undici from 'undici';
import { attachRequestApi, UNDICI_LITE_MODULES } from './undici-parts.js';

export { UNDICI_LITE_MODULES } from './undici-parts.js';

const require = createRequire(import.meta.url);

/**
 * undici's Agent, ProxyAgent and Pool, loaded from their own modules instead of undici's index.js, which also
 * loads fetch, WebSocket, EventSource, the caches and mocks (110 files against 53). Measured on the 2-core dev
 * machine (BENCHMARKS.md, "The data plane"): the index costs ~0.1 s more CPU and ~8 MB more RSS than these
 * modules, in every thread that loads it (the main thread and each data thread), against a 0.25 s goal for a
 * 1 MiB fetch. The request API is attached to Dispatcher.prototype exactly as undici's index.js does.
 * These paths are undici's internals: test/transfer/undici-lite.test.ts fails when an undici update moves
 * them, and at run time a layout that differs falls back to the package's index (same classes, slower
 * start), with `lite` false.
 *
 * This module serves tsc's unbundled output (and jest). The bundles that `npm run build` writes (the CLI, the
 * data thread) import `transfer/undici-bundled.ts` in its place, which has esbuild copy the same modules in.
 */
function load(): {
  Agent: typeof Undici.Agent;
  ProxyAgent: typeof Undici.ProxyAgent;
  Pool: typeof Undici.Pool;
  buildConnector: typeof Undici.buildConnector;
  lite: boolean;
} {
  try {
    const [dispatcherPath, apiPath, agentPath, proxyPath, poolPath, connectPath] = UNDICI_LITE_MODULES;
    attachRequestApi(require(dispatcherPath) as { prototype: object }, require(apiPath) as object);
    const Agent = require(agentPath) as typeof Undici.Agent;
    const ProxyAgent = require(proxyPath) as typeof Undici.ProxyAgent;
    const Pool = require(poolPath) as typeof Undici.Pool;
    const buildConnector = require(connectPath) as typeof Undici.buildConnector;
    if (
      typeof Agent === 'function' &&
      typeof ProxyAgent === 'function' &&
      typeof Pool === 'function' &&
      typeof buildConnector === 'function'
    )
      return { Agent, ProxyAgent, Pool, buildConnector, lite: true };
  } catch {
    // another layout (an undici update): the public index below serves the same classes
  }
  const u = require('undici') as typeof Undici;
  return {
    Agent: u.Agent,
    ProxyAgent: u.ProxyAgent,
    Pool: u.Pool,
    buildConnector: u.buildConnector,
    lite: false,
  };
}

const loaded = load();

/** undici's Agent, ProxyAgent and Pool classes, and its buildConnector (see load). */
export const { Agent, ProxyAgent, Pool, buildConnector } = loaded;
/** True when the classes came from undici's own modules, false when from its index (the fallback). */
export const UNDICI_LITE = loaded.lite;
