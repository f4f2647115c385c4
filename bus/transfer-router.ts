import { subjects, subjectTokenId, type Bus, type Subscription } from './types.js';
import { subjectMatches } from './memory-bus.js';

type Handler = (msg: unknown, subject: string) => void | Promise<void>;

/** A bus view that feeds every transfer's dispatch from one wildcard subscription (see createAllTransfersBus). */
export interface AllTransfersBus extends Bus {
  /** Resolves once the wildcard subscription receives messages. */
  readonly ready: Promise<void>;
}

/**
 * For an executor that serves every transfer (`portal executor --all`): returns a Bus whose subscriptions to
 * `portal.transfer.<id>.dispatch` are served by ONE queue subscription to `portal.transfer.*.dispatch` on
 * `bus` (group `queue`). The first batch of a transfer nobody attached yet calls `onNewTransfer(id)` (the id its
 * subject token encodes, subjectTokenId) — which
 * should attach the executor, subscribing through this view — and is then delivered to it; the handler's
 * promise is returned, so the NATS bus acks after it. Everything else passes through to `bus`.
 */
export function createAllTransfersBus(
  bus: Bus,
  onNewTransfer: (transferId: string) => void,
  queue = 'executors',
): AllTransfersBus {
  const local = new Map<string, Set<Handler>>();
  const dispatchPattern = subjects.allDispatch.split('.');
  const wildcard = bus.subscribe<unknown>(
    subjects.allDispatch,
    (msg, subject) => {
      const token = subject.split('.')[2];
      if (!local.get(token)?.size) {
        const id = subjectTokenId(token);
        if (id === undefined) return; // not a token subjects.dispatch makes: no transfer has this id
        onNewTransfer(id);
      }
      const hs = local.get(token);
      if (!hs?.size) return;
      return Promise.all([...hs].map(async (h) => h(msg, subject))).then(() => undefined);
    },
    { queue },
  );
  return {
    ready: wildcard.ready ?? Promise.resolve(),
    publish: (subject, msg) => bus.publish(subject, msg),
    subscribe<T>(
      subject: string,
      handler: (msg: T, subject: string) => void | Promise<void>,
      o?: { queue?: string },
    ): Subscription {
      const t = subject.split('.');
      if (!subjectMatches(dispatchPattern, t) || t[2] === '*') return bus.subscribe(subject, handler, o);
      const token = t[2];
      const set = local.get(token) ?? new Set<Handler>();
      local.set(token, set);
      const h = handler as Handler;
      set.add(h);
      return {
        subject,
        ready: wildcard.ready,
        unsubscribe() {
          set.delete(h);
        },
      };
    },
    async close() {
      wildcard.unsubscribe();
    },
  };
}
