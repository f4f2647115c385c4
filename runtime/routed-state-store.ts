import type { StateStore } from './types.js';

/**
 * A StateStore that sends each actor type's keys to its own store: e.g. the scheduler's journal to
 * a durable file store beside the output file, and chatty edge estimates to memory. Keys of types
 * without a route go to `fallback`. `close()` closes every distinct store once.
 */
export function createRoutedStateStore(
  routes: Readonly<Record<string, StateStore>>,
  fallback: StateStore,
): StateStore {
  const pick = (key: string): StateStore => {
    const type = key.slice(0, key.indexOf('||'));
    return routes[type] ?? fallback;
  };
  return {
    get: (key) => pick(key).get(key),
    async transaction(ops) {
      const byStore = new Map<StateStore, Array<(typeof ops)[number]>>();
      for (const op of ops) {
        const s = pick(op.key);
        const list = byStore.get(s);
        if (list) list.push(op);
        else byStore.set(s, [op]);
      }
      for (const [s, list] of byStore) await s.transaction(list);
    },
    async keys(prefix) {
      const all = new Set<string>();
      for (const s of new Set([...Object.values(routes), fallback]))
        for (const k of await s.keys(prefix)) all.add(k);
      return [...all];
    },
    async close() {
      for (const s of new Set([...Object.values(routes), fallback])) await s.close();
    },
  };
}
