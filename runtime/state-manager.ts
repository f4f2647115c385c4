import { PortalError } from '../common/errors.js';
import type { ActorStateManager, StateStore } from './types.js';
import { checkStateKey, encodeStateValue } from './checks.js';

/** The host's view of an actor's state manager: the actor's API plus turn bookkeeping. */
export interface TurnStateManager extends ActorStateManager {
  /** True when the current turn has changes not yet written. */
  readonly dirty: boolean;
  /** Discards the changes not yet written (a failed turn). */
  rollback(): void;
  /**
   * Like `save`, with `extra` store operations (full store keys of this actor, e.g. its reminder record) written in
   * the same transaction: one commit of the store for both, atomic with respect to the actor's keys.
   */
  saveWith(extra: readonly StoreOp[]): Promise<void>;
}

/** One operation of StateStore.transaction. */
export type StoreOp = { op: 'upsert'; key: string; value: string } | { op: 'delete'; key: string };

/** What a state manager needs of a store: reads of one key and atomic batches (StateStore's, or one actor's keys in Dapr). */
export type ActorStateStore = Pick<StateStore, 'get' | 'transaction'>;

/** Marks a pending delete. */
const DELETED = null;

/**
 * Creates the per-activation state manager of the actor whose keys start with `prefix`. Values are stored as
 * JSON: `set` serializes at once (a value JSON cannot hold rejects with PORTAL_INVALID_ARGUMENT), and every
 * `get` returns a fresh copy, so mutating a value read in a turn changes nothing until it is `set` again and a
 * failed turn's rollback is exact. Keys starting with `__` are reserved for the host. Committed values are
 * cached for the life of the activation; a stored value that is not JSON rejects with PORTAL_STATE_CORRUPT.
 */
export function createStateManager(store: ActorStateStore, prefix: string): TurnStateManager {
  /** Values known to be in the store (null: known absent). */
  const committed = new Map<string, string | null>();
  /** Changes of the current turn (null: delete). */
  const pending = new Map<string, string | null>();
  /** Keys to drop from `committed` once saved (release). */
  const released = new Set<string>();

  const decode = <T>(key: string, json: string | null): T | undefined => {
    if (json === null) return undefined;
    try {
      return JSON.parse(json) as T;
    } catch (err) {
      throw new PortalError('PORTAL_STATE_CORRUPT', `state key ${prefix}${key} does not hold JSON`, {
        cause: err,
      });
    }
  };

  const save = async (extra: readonly StoreOp[]): Promise<void> => {
    if (pending.size === 0 && extra.length === 0) return;
    const batch = new Map(pending);
    const ops: StoreOp[] = [...extra];
    for (const [key, json] of batch) {
      if (committed.get(key) === json) continue; // unchanged
      ops.push(
        json === DELETED
          ? { op: 'delete', key: prefix + key }
          : { op: 'upsert', key: prefix + key, value: json },
      );
    }
    if (ops.length > 0)
      try {
        await store.transaction(ops);
      } catch (err) {
        // it may have been applied all the same (an answer lost): what the store holds under these keys is unknown
        for (const key of batch.keys()) committed.delete(key);
        throw err;
      }
    for (const [key, json] of batch) {
      committed.set(key, json);
      if (pending.get(key) === json) pending.delete(key);
    }
    for (const key of released)
      if (!pending.has(key)) {
        committed.delete(key);
        released.delete(key);
      }
  };

  return {
    get dirty() {
      return pending.size > 0;
    },

    async get<T>(key: string): Promise<T | undefined> {
      checkStateKey(key);
      const mine = pending.get(key);
      if (mine !== undefined) return decode<T>(key, mine);
      let json = committed.get(key);
      if (json === undefined) {
        json = (await store.get(prefix + key)) ?? null;
        committed.set(key, json);
        // A set() during the await wins over what was read.
        const raced = pending.get(key);
        if (raced !== undefined) return decode<T>(key, raced);
      }
      return decode<T>(key, json);
    },

    async set(key, value) {
      checkStateKey(key);
      pending.set(key, encodeStateValue(key, value));
    },

    async delete(key) {
      checkStateKey(key);
      pending.set(key, DELETED);
    },

    save: () => save([]),

    saveWith: save,

    release(key) {
      checkStateKey(key);
      if (pending.has(key)) released.add(key);
      else committed.delete(key);
    },

    rollback() {
      pending.clear();
      released.clear();
    },
  };
}
