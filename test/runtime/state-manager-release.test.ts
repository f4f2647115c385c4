/**
 * ActorStateManager.release on the embedded host's state manager: a released key's value leaves the activation's
 * cache once the turn's changes are saved, and the next get reads it from the store again.
 */
import { createMemoryStateStore } from '../../runtime/memory-state-store.js';
import { createStateManager } from '../../runtime/state-manager.js';
import type { StateStore } from '../../runtime/types.js';

const PREFIX = 'SchedulerActor||q1||';

/** A store that counts its reads. */
function counting(): { store: StateStore; reads: () => number } {
  const inner = createMemoryStateStore();
  let reads = 0;
  return {
    store: {
      ...inner,
      get: async (key: string) => {
        reads++;
        return inner.get(key);
      },
    },
    reads: () => reads,
  };
}

test('state manager: a key released in the turn that set it is read from the store again after the save', async () => {
  const { store, reads } = counting();
  const state = createStateManager(store, PREFIX);
  await state.set('request', { manifest: 'x'.repeat(1000) });
  await state.set('journal', { state: 'queued' });
  state.release!('request');
  await state.save();
  const before = reads();
  await state.get('journal'); // cached: no read
  expect(reads()).toBe(before);
  expect(await state.get('request')).toEqual({ manifest: 'x'.repeat(1000) });
  expect(reads()).toBe(before + 1); // released: read again
  await state.get('request');
  expect(reads()).toBe(before + 1); // and cached again until released again
  state.release!('request');
  await state.get('request');
  expect(reads()).toBe(before + 2);
});

test('state manager: a release in a turn that is rolled back is forgotten with it', async () => {
  const { store, reads } = counting();
  const state = createStateManager(store, PREFIX);
  await state.set('request', 1);
  await state.save();
  await state.set('request', 2);
  state.release!('request');
  state.rollback();
  const before = reads();
  expect(await state.get('request')).toBe(1);
  expect(reads()).toBe(before);
});
