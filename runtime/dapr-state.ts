import type { AbstractActor } from '@dapr/dapr';
import { PortalError } from '../common/errors.js';
import type { ActorStateManager } from './types.js';

/** The Dapr host's per-activation state manager: the actor's API plus rollback of a failed turn. */
export interface DaprTurnStateManager extends ActorStateManager {
  /** Discards the cached and pending changes (a failed turn); the next read goes to the sidecar. */
  rollback(): Promise<void>;
}

type SdkStateManager = ReturnType<AbstractActor['getStateManager']>;

function checkKey(key: unknown): asserts key is string {
  if (typeof key !== 'string' || key.length === 0 || key.startsWith('__')) {
    throw new PortalError('PORTAL_INVALID_ARGUMENT', `state key: expected a non-empty string not starting with "__", got ${JSON.stringify(key)}`);
  }
}

/**
 * Adapts the JS SDK's actor state manager (change tracker over Dapr's transactional actor state API, kept in the
 * component marked `actorStateStore`) to Portal's ActorStateManager, with the embedded host's value semantics:
 * `set` checks that the value is JSON and keeps a copy, `get` returns a fresh copy, keys starting with `__` are
 * reserved. The SDK reads a stored falsy JSON value (0, false, "", null) as absent: actors keep objects.
 */
export function createDaprStateManager(sm: SdkStateManager): DaprTurnStateManager {
  return {
    async get<T>(key: string): Promise<T | undefined> {
      checkKey(key);
      const [has, value] = await sm.tryGetState(key);
      if (!has || value === null || value === undefined) return undefined;
      return JSON.parse(JSON.stringify(value)) as T;
    },
    async set(key, value) {
      checkKey(key);
      let json: string | undefined;
      try {
        json = JSON.stringify(value);
      } catch (err) {
        throw new PortalError('PORTAL_INVALID_ARGUMENT', `state value for ${key}: not JSON-serializable`, { cause: err });
      }
      if (json === undefined) {
        throw new PortalError('PORTAL_INVALID_ARGUMENT', `state value for ${key}: expected a JSON value (use delete() to remove a key), got ${typeof value}`);
      }
      await sm.setState(key, JSON.parse(json));
    },
    async delete(key) {
      checkKey(key);
      await sm.tryRemoveState(key);
    },
    async save() {
      await sm.saveState();
    },
    async rollback() {
      await sm.clearCache();
    },
  };
}
