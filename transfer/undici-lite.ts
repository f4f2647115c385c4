import { createRequire } from 'node:module';
import type * as Undici from 'undici';

const require = createRequire(import.meta.url);

/**
 * undici's Agent and EnvHttpProxyAgent, loaded from their own modules instead of undici's index.js, which also
 * loads fetch, WebSocket, EventSource, the caches and mocks (110 files against 32; about 50 ms of CPU, a
 * fifth of `portal fetch`'s start-up on the dev machine). The request API is attached to Dispatcher.prototype
 * exactly as undici's index.js does. Falls back to the package's index when its layout differs (another
 * undici major): same classes, slower start.
 */
function load(): { Agent: typeof Undici.Agent; EnvHttpProxyAgent: typeof Undici.EnvHttpProxyAgent } {
  try {
    const Dispatcher = require('undici/lib/dispatcher/dispatcher.js') as { prototype: object };
    const api = require('undici/lib/api/index.js') as object;
    if (typeof (Dispatcher.prototype as { request?: unknown }).request !== 'function')
      Object.assign(Dispatcher.prototype, api);
    const Agent = require('undici/lib/dispatcher/agent.js') as typeof Undici.Agent;
    const EnvHttpProxyAgent =
      require('undici/lib/dispatcher/env-http-proxy-agent.js') as typeof Undici.EnvHttpProxyAgent;
    if (typeof Agent === 'function' && typeof EnvHttpProxyAgent === 'function')
      return { Agent, EnvHttpProxyAgent };
  } catch {
    /* another layout: take the index */
  }
  const u = require('undici') as typeof Undici;
  return { Agent: u.Agent, EnvHttpProxyAgent: u.EnvHttpProxyAgent };
}

/** undici's Agent and EnvHttpProxyAgent classes (see load). */
export const { Agent, EnvHttpProxyAgent } = load();
