import type { AbstractActor } from '@dapr/dapr';
import type { ActorStateManager } from './types.js';

/** The Dapr host's per-activation state manager: the actor's API plus rollback of a failed turn. */
export interface DaprTurnStateManager extends ActorStateManager {
  /** Discards the cached and pending changes (a failed turn); the next read goes to the sidecar. */
  rollback(): Promise<void>;
}

import { checkStateKey, encodeStateValue } from './checks.js';
import { encodeWireName } from './state-keys.js';

type SdkStateManager = ReturnType<AbstractActor['getStateManager']>;

/**
 * Adapts the JS SDK's actor state manager (change tracker over Dapr's transactional actor state API, kept in the
 * component marked `actorStateStore`) to Portal's ActorStateManager, with the embedded host's value semantics:
 * `set` checks that the value is JSON and keeps a copy, `get` returns a fresh copy, keys starting with `__` are
 * reserved. The SDK reads a stored falsy JSON value (0, false, "", null) as absent: actors keep objects.
 * Keys travel in their wire form (encodeWireName): the SDK puts a key unescaped into the URL of daprd's state
 * API, where `/`, `?`, `#` or `%` in a key would read another key; plain keys (`counter`, `journal`) are unchanged.
 */
export function createDaprStateManager(sm: SdkStateManager): DaprTurnStateManager {
  return {
    async get<T>(key: string): Promise<T | undefined> {
      checkStateKey(key);
      const [has, value] = await sm.tryGetState(encodeWireName(key));
      if (!has || value === null || value === undefined) return undefined;
      return JSON.parse(JSON.stringify(value)) as T;
    },
    async set(key, value) {
      checkStateKey(key);
      await sm.setState(encodeWireName(key), JSON.parse(encodeStateValue(key, value)));
    },
    async delete(key) {
      checkStateKey(key);
      await sm.tryRemoveState(encodeWireName(key));
    },
    async save() {
      await sm.saveState();
    },
    async rollback() {
      await sm.clearCache();
    },
  };
}
