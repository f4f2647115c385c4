import { PortalError } from '../common/errors.js';
import type { StateStore } from './types.js';

/**
 * Creates an in-process StateStore backed by a Map: fast, not durable (for tests and the demo). Each
 * transaction is applied synchronously, so it is atomic; calls after `close()` reject with PORTAL_STORE_CLOSED.
 */
export function createMemoryStateStore(): StateStore {
  const data = new Map<string, string>();
  let closed = false;
  const checkOpen = (): void => {
    if (closed) throw new PortalError('PORTAL_STORE_CLOSED', 'memory state store is closed');
  };
  return {
    async get(key) {
      checkOpen();
      return data.get(key);
    },
    async transaction(ops) {
      checkOpen();
      for (const op of ops) {
        if (op.op === 'upsert') data.set(op.key, op.value);
        else data.delete(op.key);
      }
    },
    async keys(prefix) {
      checkOpen();
      const out: string[] = [];
      for (const key of data.keys()) if (key.startsWith(prefix)) out.push(key);
      return out;
    },
    async close() {
      closed = true;
    },
  };
}
