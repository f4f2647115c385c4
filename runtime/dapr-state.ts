import type { DaprActorClient } from './dapr-client.js';
import type { ActorStateStore } from './state-manager.js';

/**
 * One actor's keys in Dapr's actor state store (the component marked `actorStateStore`), read and written through
 * daprd's actor state API: what the Dapr host's per-activation state manager (createStateManager, the embedded
 * host's) runs on, so both hosts have one set of state semantics (a turn's changes in one transaction, deletes
 * always written, exact rollback, `release`). Keys are the actor's own (no prefix) and travel in their wire form
 * (DaprActorClient.getState); values are JSON text. Failures reject with the client's PortalError.
 *
 * The JS SDK's actor state manager is not used: its change tracker asks daprd whether a key exists by the `length`
 * of the value it read back, which an object or a number has not, so a delete of such a key that the tracker had
 * not read in the activation (after a rolled-back turn emptied it) was dropped as a delete of nothing (trial F1:
 * a forget after a refused restart left the transfer's request and journal in the store).
 */
export function createDaprActorStore(
  client: Pick<DaprActorClient, 'getState' | 'stateTransaction'>,
  actorType: string,
  actorId: string,
): ActorStateStore {
  return {
    get: (key) => client.getState(actorType, actorId, key),
    transaction: (ops) => client.stateTransaction(actorType, actorId, ops),
  };
}
