import { AsyncResource } from 'node:async_hooks';
import type { Bus, Subscription } from './types.js';
import { PortalError } from '../common/errors.js';

interface Sub {
  subject: string;
  tokens: string[];
  queue?: string;
  handler: (msg: unknown, subject: string) => void | Promise<void>;
  closed: boolean;
}

/** True when `subject` matches the NATS-style `pattern` (`*` one token, `>` one or more trailing tokens). */
export function subjectMatches(pattern: string[], subject: string[]): boolean {
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i];
    if (p === '>') return subject.length > i;
    if (i >= subject.length) return false;
    if (p !== '*' && p !== subject[i]) return false;
  }
  return pattern.length === subject.length;
}

/**
 * In-process bus for the embedded default. Delivery is asynchronous (a microtask later, never inside
 * `publish`), in publish order per subscription; a queue group delivers each message to one member,
 * round-robin. A handler that throws is reported through `onError` and does not stop delivery.
 * Handlers run in the bus's own async context (where it was created), as a network client's
 * callbacks would — never inside the publisher's actor turn, so a handler may call that actor.
 */
export function createMemoryBus(opts: { onError?: (err: unknown, subject: string) => void } = {}): Bus {
  const subs: Sub[] = [];
  const scope = new AsyncResource('PortalMemoryBus');
  const rr = new Map<string, number>();
  let closed = false;
  const createdAt = Date.now();
  let closedAt: number | undefined;
  const onError =
    opts.onError ??
    ((err: unknown, subject: string) => {
      process.emitWarning(`memory bus handler for ${subject} failed: ${String(err)}`);
    });

  const deliver = (sub: Sub, msg: unknown, subject: string): void => {
    queueMicrotask(() =>
      scope.runInAsyncScope(() => {
        if (sub.closed) return;
        try {
          const r = sub.handler(msg, subject);
          if (r && typeof r.catch === 'function') r.catch((e) => onError(e, subject));
        } catch (e) {
          onError(e, subject);
        }
      }),
    );
  };

  return {
    async publish<T>(subject: string, msg: T): Promise<void> {
      if (closed) throw new PortalError('PORTAL_HOST_STOPPED', `bus closed: cannot publish to ${subject}`);
      const tokens = subject.split('.');
      const groups = new Map<string, Sub[]>();
      for (const s of subs) {
        if (s.closed || !subjectMatches(s.tokens, tokens)) continue;
        if (s.queue === undefined) deliver(s, msg, subject);
        else {
          const key = `${s.subject}\u0000${s.queue}`;
          const g = groups.get(key);
          if (g) g.push(s);
          else groups.set(key, [s]);
        }
      }
      for (const [key, members] of groups) {
        const i = (rr.get(key) ?? 0) % members.length;
        rr.set(key, i + 1);
        deliver(members[i], msg, subject);
      }
    },
    subscribe<T>(
      subject: string,
      handler: (msg: T, subject: string) => void | Promise<void>,
      o: { queue?: string } = {},
    ): Subscription {
      if (closed) throw new PortalError('PORTAL_HOST_STOPPED', `bus closed: cannot subscribe to ${subject}`);
      const sub: Sub = {
        subject,
        tokens: subject.split('.'),
        queue: o.queue,
        handler: handler as Sub['handler'],
        closed: false,
      };
      subs.push(sub);
      return {
        subject,
        unsubscribe() {
          sub.closed = true;
          const i = subs.indexOf(sub);
          if (i >= 0) subs.splice(i, 1);
        },
      };
    },
    async close(): Promise<void> {
      if (!closed) closedAt = Date.now();
      closed = true;
      for (const s of subs) s.closed = true;
      subs.length = 0;
    },
    health: () => ({
      kind: 'memory',
      state: closed ? 'closed' : 'connected',
      sinceMs: closedAt ?? createdAt,
      disconnects: 0,
      reconnects: 0,
    }),
  };
}
