/**
 * The state manager (both hosts') after a save whose transaction was applied but answered with an error (an answer
 * lost on the way back from daprd): what the store holds under its keys is unknown, so a later delete of them is
 * written, never skipped as a delete of a key known to be absent.
 */
import { createMemoryStateStore } from '../../runtime/memory-state-store.js';
import { createStateManager } from '../../runtime/state-manager.js';
import type { StateStore } from '../../runtime/types.js';

const PREFIX = 'SchedulerActor||t1||';

test('state manager: a delete after a save that failed but was applied removes the key from the store', async () => {
  const inner = createMemoryStateStore();
  let loseNext = false;
  const store: StateStore = {
    ...inner,
    transaction: async (ops) => {
      await inner.transaction(ops);
      if (loseNext) {
        loseNext = false;
        throw new Error('answer lost');
      }
    },
  };
  const state = createStateManager(store, PREFIX);
  expect(await state.get('request')).toBeUndefined(); // known absent
  await state.set('request', { output: 'out.bin' });
  loseNext = true;
  await expect(state.save()).rejects.toThrow('answer lost');
  state.rollback(); // the host rolls the failed turn back
  expect(await inner.get(`${PREFIX}request`)).toBe('{"output":"out.bin"}'); // applied all the same
  await state.delete('request');
  await state.save();
  expect(await inner.get(`${PREFIX}request`)).toBeUndefined();
  expect(await state.get('request')).toBeUndefined();
});
