import { AsyncLocalStorage } from 'node:async_hooks';
import { createSystemClock, type Clock, type TimerHandle } from '../common/clock.js';
import { PortalError, checkArg } from '../common/errors.js';
import { createSilentLogger, type Logger } from '../common/logger.js';
import { isInvocableMethod } from './actor-methods.js';
import { Mailbox } from './mailbox.js';
import { decodeReminders, encodeReminders, type ReminderRecord } from './reminder-record.js';
import { createStateManager, type StoreOp, type TurnStateManager } from './state-manager.js';
import {
  KEY_SEPARATOR,
  REMINDERS_KEY,
  actorKeyPrefix,
  checkActorId,
  checkActorType,
  decodeActorId,
  encodeActorId,
  parseStateKey,
} from './state-keys.js';
import { checkDuration, checkReminder } from './checks.js';
import { Actor } from './types.js';
import { createHostCounters } from './host-stats.js';
import type { ActorClass, ActorContext, ActorHost, ActorRef, ActorServices, StateStore } from './types.js';

/** Options of createEmbeddedHost. */
export interface EmbeddedHostOptions {
  /** Where actor state and reminders are kept. The host does not close it. */
  readonly store: StateStore;
  /** Defaults to the system clock; pass a ManualClock to drive timers, reminders and idleness in tests. */
  readonly clock?: Clock;
  /** Parent of the per-actor child loggers; silent by default. */
  readonly logger?: Logger;
  /** Process-local services handed to every actor as `ctx.services`. */
  readonly services?: ActorServices;
  /** An actor with no turn for this long is deactivated (default 60 minutes). */
  readonly idleTimeoutMs?: number;
  /** How often idleness is checked (default 30 seconds). */
  readonly idleScanMs?: number;
  /** A caller waiting longer than this for its call rejects with PORTAL_ACTOR_TIMEOUT (default 60 seconds). */
  readonly callTimeoutMs?: number;
  /**
   * How long stop() waits for running turns and deactivations to finish (default 30 seconds; the role of Dapr's
   * `drainOngoingCallTimeout` and Orleans' deactivation timeout). Actors still busy then are abandoned without
   * `onDeactivate`: their running turn's unsaved changes are lost, and their waiting callers reject with
   * PORTAL_HOST_STOPPED.
   */
  readonly drainTimeoutMs?: number;
}

/** The in-process actor host, with the operations tests and operators need beyond ActorHost. */
export interface EmbeddedHost<S extends ActorServices = ActorServices> extends ActorHost<S> {
  readonly kind: 'embedded';
  /** Loads the reminders of every actor from the store and schedules them; call once after register(). */
  ready(): Promise<void>;
  /**
   * Ids of the actors of `actorType` that hold a reminder now (those ready() loaded, and those registered since), in
   * no particular order: after a restart, the actors a host may want to activate before it takes calls.
   */
  remindedActors(actorType: string): Promise<string[]>;
  /** Deactivates one actor now, as a turn after those already queued; a no-op when it is not active. */
  deactivate(actorType: string, actorId: string): Promise<void>;
  /** Resolves when no actor has a turn running or queued (tests use it after advancing a ManualClock). */
  settle(): Promise<void>;
}

/** The call chain of the running turn: actor keys from the outermost caller to the current actor. */
interface TurnScope {
  readonly chain: readonly string[];
  /**
   * Set by runTurn while the body of the current actor's turn runs: a reminder (un)registered then is written with
   * the turn's state, in one transaction at the turn's end (`reminders` holds the record to write).
   */
  turn?: { open: boolean; reminders?: ActorReminders };
}

interface TimerEntry {
  readonly name: string;
  readonly method: string;
  readonly periodMs: number;
  readonly data: unknown;
  handle: TimerHandle | undefined;
  /** A firing's turn is queued or running: later firings are skipped until it ends. */
  inFlight: boolean;
}

interface Activation {
  readonly instance: Actor;
  readonly state: TurnStateManager;
  readonly timers: Map<string, TimerEntry>;
}

/** Everything the host keeps per actor identity, active or not. */
interface Slot {
  readonly type: string;
  readonly id: string;
  readonly key: string;
  readonly cls: ActorClass;
  readonly log: Logger;
  readonly mailbox: Mailbox;
  activation: Activation | undefined;
  /** Set while the activation's timers must no longer fire (deactivating or gone). */
  closing: boolean;
  deactivationQueued: boolean;
  /** The actor asked to be deactivated when its current turn ends (ctx.deactivateOnIdle). */
  deactivateAfterTurn: boolean;
  lastTurnAt: number;
}

interface ReminderEntry extends ReminderRecord {
  dueAt: number;
  handle: TimerHandle | undefined;
}

/** The durable reminders of one actor, loaded from the store at most once per host. */
interface ActorReminders {
  readonly type: string;
  readonly id: string;
  readonly storeKey: string;
  readonly entries: Map<string, ReminderEntry>;
  /** Serializes the writes of this record. */
  writing: Promise<void>;
}

const MINUTE = 60_000;

/**
 * Creates an in-process actor host with Orleans/Dapr virtual-actor semantics:
 *
 * - An actor is activated by its first turn (constructed with an ActorContext, `onActivate` awaited as part of
 *   that turn) and deactivated after `idleTimeoutMs` without turns (`onDeactivate` as a final turn).
 * - One turn at a time per actor, in FIFO order: method calls, timer firings and reminders. A turn that awaits
 *   I/O holds the actor until it ends. Calls into an actor already in the current call chain (itself, or A → B
 *   → A) would deadlock and reject with PORTAL_INVALID_ARGUMENT instead: reentrancy is not supported.
 *   The one exception: a call of an active actor whose `mayInterleave(method)` says yes (a read of in-memory
 *   state, such as SchedulerActor.status) runs at once beside the turn in progress, outside the mailbox (Orleans'
 *   `[AlwaysInterleave]`), and writes no state.
 * - Arguments and results are passed by reference, not copied: actors must treat them as immutable and keep
 *   them JSON-serializable, as the Dapr host serializes them.
 * - State changes of a turn are written in one store transaction after it succeeds; a turn that throws (or
 *   whose write fails) has its unsaved changes discarded, like a rolled-back transaction, and its caller
 *   rejects with the same error. Changes the actor wrote with an explicit `state.save()` stay written.
 * - Timers and reminders fire through the Clock; a firing whose predecessor's turn has not finished is
 *   skipped. Every turn, timer turns included, counts as activity for idle deactivation. Timers die with their
 *   activation; reminders run once per due time.
 * - Every string checkActorId accepts is its own actor: activations, state keys and reminders are keyed by the
 *   id's wire form (encodeActorId), so no two ids share a key.
 * - stop() waits for running turns up to `drainTimeoutMs`, then abandons them and releases their callers.
 */
export function createEmbeddedHost<S extends ActorServices>(
  opts: EmbeddedHostOptions & { readonly services: S },
): EmbeddedHost<S>;
/** An embedded host without services (`ctx.services` is an empty object). */
export function createEmbeddedHost(opts: EmbeddedHostOptions): EmbeddedHost<Record<never, never>>;
export function createEmbeddedHost(opts: EmbeddedHostOptions): EmbeddedHost {
  checkArg(
    typeof opts === 'object' && opts !== null && typeof opts.store === 'object' && opts.store !== null,
    'opts.store',
    'a StateStore',
  );
  const store = opts.store;
  const clock = opts.clock ?? createSystemClock();
  const log = opts.logger ?? createSilentLogger();
  const services: ActorServices = opts.services ?? Object.freeze({});
  const idleTimeoutMs = opts.idleTimeoutMs ?? 60 * MINUTE;
  const idleScanMs = opts.idleScanMs ?? 30_000;
  const callTimeoutMs = opts.callTimeoutMs ?? MINUTE;
  const drainTimeoutMs = opts.drainTimeoutMs ?? 30_000;
  checkDuration(idleTimeoutMs, 'opts.idleTimeoutMs');
  checkArg(
    Number.isFinite(idleScanMs) && idleScanMs > 0,
    'opts.idleScanMs',
    'a finite number of milliseconds > 0',
  );
  checkDuration(callTimeoutMs, 'opts.callTimeoutMs');
  checkDuration(drainTimeoutMs, 'opts.drainTimeoutMs');

  const types = new Map<string, ActorClass>();
  const slots = new Map<string, Slot>();
  const reminders = new Map<string, Promise<ActorReminders>>();
  const turnScope = new AsyncLocalStorage<TurnScope>();
  /** Callers waiting for their call's turn to end: stop() releases those the drain could not. */
  const waiting = new Set<(err: PortalError) => void>();
  const hostCounters = createHostCounters();
  const counters = hostCounters.stats;
  const countActive = hostCounters.countActive;
  let stopped = false;
  let stopping: Promise<void> | undefined;
  let loading: Promise<void> | undefined;
  let idleHandle: TimerHandle | undefined;

  const stoppedError = (): PortalError =>
    new PortalError('PORTAL_HOST_STOPPED', 'the embedded actor host is stopped');

  // ---- slots and turns -------------------------------------------------------------------------------------

  /** The actor's key in this host's maps and call chains: its type and the wire form of its id (no collisions). */
  const actorKey = (type: string, id: string): string => type + KEY_SEPARATOR + encodeActorId(id);

  const slotFor = (type: string, id: string, cls: ActorClass): Slot => {
    const key = actorKey(type, id);
    let slot = slots.get(key);
    if (!slot) {
      const childLog = log.child({ actorType: type, actorId: id });
      slot = {
        type,
        id,
        key,
        cls,
        log: childLog,
        mailbox: new Mailbox((err) => childLog.error({ err }, 'actor job failed unexpectedly')),
        activation: undefined,
        closing: false,
        deactivationQueued: false,
        deactivateAfterTurn: false,
        lastTurnAt: clock.now(),
      };
      slots.set(key, slot);
    }
    return slot;
  };

  const clearTimers = (act: Activation): void => {
    for (const t of act.timers.values()) if (t.handle) clock.clearTimeout(t.handle);
    act.timers.clear();
  };

  /** Activates the slot's actor if needed; runs inside the current turn. */
  const ensureActive = async (slot: Slot): Promise<Activation> => {
    if (slot.activation) return slot.activation;
    const state = createStateManager(store, actorKeyPrefix(slot.type, slot.id));
    const timers = new Map<string, TimerEntry>();
    let act: Activation | undefined;
    const ctx: ActorContext = {
      actorType: slot.type,
      actorId: slot.id,
      log: slot.log,
      clock,
      state,
      services,
      registerTimer: async (name, t) => registerTimer(slot, () => act, timers, name, t),
      unregisterTimer: async (name) => {
        const t = timers.get(name);
        if (t?.handle) clock.clearTimeout(t.handle);
        timers.delete(name);
      },
      registerReminder: (name, r) => registerReminder(slot, name, r),
      unregisterReminder: (name) => unregisterReminder(slot, name),
      proxy: (type, id) => proxy(type, id),
      deactivateOnIdle: () => {
        slot.deactivateAfterTurn = true;
      },
    };
    const candidate: Activation = { instance: new slot.cls(ctx), state, timers };
    act = candidate;
    slot.closing = false;
    try {
      await candidate.instance.onActivate();
    } catch (err) {
      act = undefined;
      clearTimers(candidate);
      slot.log.warn({ err }, 'actor activation failed');
      throw err;
    }
    slot.activation = candidate;
    counters.activations++;
    countActive(slot.type, 1);
    slot.log.debug('actor activated');
    return candidate;
  };

  /** Runs one turn: activate if needed, run `body`, save state on success, roll back on failure. */
  const runTurn = async <R>(
    slot: Slot,
    scope: TurnScope,
    body: (act: Activation) => Promise<R> | R,
  ): Promise<R> => {
    slot.lastTurnAt = clock.now();
    try {
      const turn: NonNullable<TurnScope['turn']> = { open: false };
      return await turnScope.run({ ...scope, turn }, async () => {
        const act = await ensureActive(slot);
        let result: R;
        try {
          turn.open = true;
          result = await body(act);
        } catch (err) {
          act.state.rollback();
          turn.open = false;
          // the reminders as they are now in memory are written on their own (as before the turn's end was theirs)
          if (turn.reminders) await persistRemindersAfterFailedTurn(slot, turn.reminders);
          throw err;
        }
        turn.open = false;
        const ar = turn.reminders;
        try {
          if (ar) await writeTurnWithReminders(act, ar);
          else if (act.state.dirty) await act.state.save();
        } catch (err) {
          act.state.rollback();
          if (ar) await persistRemindersAfterFailedTurn(slot, ar);
          throw err;
        }
        return result;
      });
    } finally {
      slot.lastTurnAt = clock.now();
      // the turn's own mailbox job ends with the deactivation it asked for; a slot whose activation failed goes
      if (slot.deactivateAfterTurn) await deactivateJob(slot)();
      else if (!slot.activation) forgetSlot(slot);
    }
  };

  /** Drops an inactive slot with nothing queued, and the actor's reminder record when it holds none. */
  const forgetSlot = (slot: Slot): void => {
    if (slot.activation || slot.mailbox.queued > 0 || slots.get(slot.key) !== slot) return;
    slots.delete(slot.key);
    const p = reminders.get(slot.key);
    if (!p) return;
    void p.then(
      async (ar) => {
        await ar.writing;
        if (ar.entries.size === 0 && reminders.get(slot.key) === p && !slots.has(slot.key))
          reminders.delete(slot.key);
      },
      () => undefined, // a failed load removes itself (remindersOf)
    );
  };

  const deactivateJob = (slot: Slot) => async (): Promise<void> => {
    slot.deactivationQueued = false;
    slot.deactivateAfterTurn = false;
    const act = slot.activation;
    if (!act) {
      forgetSlot(slot);
      return;
    }
    slot.closing = true;
    clearTimers(act);
    try {
      await turnScope.run({ chain: [slot.key] }, async () => {
        await act.instance.onDeactivate();
        if (act.state.dirty) await act.state.save();
      });
    } catch (err) {
      act.state.rollback();
      slot.log.warn({ err }, 'actor onDeactivate failed; its unsaved state changes were discarded');
    }
    slot.activation = undefined;
    counters.deactivations++;
    countActive(slot.type, -1);
    slot.log.debug('actor deactivated');
    forgetSlot(slot);
  };

  const queueDeactivation = (slot: Slot): Promise<void> => {
    slot.deactivationQueued = true;
    return new Promise((resolve) => {
      const job = deactivateJob(slot);
      slot.mailbox.post(async () => {
        try {
          await job();
        } finally {
          resolve();
        }
      });
    });
  };

  // ---- calls -----------------------------------------------------------------------------------------------

  const invoke = <R>(type: string, id: string, method: string, arg: unknown): Promise<R> => {
    if (stopped) return Promise.reject(stoppedError());
    const cls = types.get(type);
    if (!cls)
      return Promise.reject(
        new PortalError('PORTAL_UNKNOWN_ACTOR_TYPE', `no actor type ${JSON.stringify(type)} is registered`),
      );
    if (!isInvocableMethod(cls, method)) {
      return Promise.reject(
        new PortalError(
          'PORTAL_UNKNOWN_ACTOR_METHOD',
          `actor type ${type} has no invocable method ${JSON.stringify(method)}`,
        ),
      );
    }
    const key = actorKey(type, id);
    const caller = turnScope.getStore();
    if (caller?.chain.includes(key)) {
      return Promise.reject(
        new PortalError(
          'PORTAL_INVALID_ARGUMENT',
          `call to ${type}/${id}.${method} from inside a turn of the same call chain (${caller.chain.join(' -> ')}) would deadlock: reentrancy is not supported`,
        ),
      );
    }
    counters.calls++;
    const slot = slotFor(type, id, cls);
    const active = slot.activation;
    if (active && !slot.closing && active.instance.mayInterleave(method)) {
      // beside the turn in progress, not behind it (Actor.mayInterleave): no mailbox, no turn, no state save
      slot.lastTurnAt = clock.now();
      return turnScope.run({ chain: caller ? [...caller.chain, key] : [key] }, async () =>
        (active.instance as unknown as Record<string, (a: unknown) => R | Promise<R>>)[method](arg),
      );
    }
    const scope: TurnScope = { chain: caller ? [...caller.chain, key] : [key] };
    return new Promise<R>((resolve, reject) => {
      let settled = false;
      const release = (err: PortalError): void => {
        if (settled) return;
        settled = true;
        waiting.delete(release);
        clock.clearTimeout(timeout);
        reject(err);
      };
      waiting.add(release);
      const timeout = clock.setTimeout(
        () =>
          release(
            new PortalError(
              'PORTAL_ACTOR_TIMEOUT',
              `call to ${type}/${id}.${method} did not complete within ${callTimeoutMs} ms`,
            ),
          ),
        callTimeoutMs,
      );
      slot.mailbox.post(async () => {
        if (settled) {
          slot.log.warn({ method }, 'call timed out while queued; its turn is skipped');
          return;
        }
        try {
          const result = await runTurn(slot, scope, (act) =>
            (act.instance as unknown as Record<string, (a: unknown) => unknown>)[method](arg),
          );
          if (!settled) resolve(result as R);
          else slot.log.warn({ method }, 'turn completed after its caller timed out');
        } catch (err) {
          if (!settled) reject(err instanceof Error ? err : new Error(String(err)));
          else slot.log.warn({ err, method }, 'turn failed after its caller timed out');
        } finally {
          settled = true;
          waiting.delete(release);
          clock.clearTimeout(timeout);
        }
      });
    });
  };

  const proxy = (actorType: string, actorId: string): ActorRef => {
    checkActorType(actorType);
    checkActorId(actorId);
    return {
      actorType,
      actorId,
      invoke: <R = unknown>(method: string, arg?: unknown) => invoke<R>(actorType, actorId, method, arg),
    };
  };

  // ---- timers ----------------------------------------------------------------------------------------------

  const registerTimer = (
    slot: Slot,
    current: () => Activation | undefined,
    timers: Map<string, TimerEntry>,
    name: string,
    t: { method: string; dueMs: number; periodMs: number; data?: unknown },
  ): void => {
    checkArg(typeof name === 'string' && name.length > 0, 'timer name', 'a non-empty string');
    checkArg(typeof t === 'object' && t !== null, 'timer options', 'an object');
    checkDuration(t.dueMs, 'timer dueMs');
    checkDuration(t.periodMs, 'timer periodMs');
    if (!isInvocableMethod(slot.cls, t.method)) {
      throw new PortalError(
        'PORTAL_UNKNOWN_ACTOR_METHOD',
        `timer ${name}: actor type ${slot.type} has no invocable method ${JSON.stringify(t.method)}`,
      );
    }
    if (slot.closing || stopped)
      throw new PortalError(
        'PORTAL_ACTOR_DEACTIVATED',
        `timer ${name}: actor ${slot.type}/${slot.id} is deactivating`,
      );
    const old = timers.get(name);
    if (old?.handle) clock.clearTimeout(old.handle);
    const entry: TimerEntry = {
      name,
      method: t.method,
      periodMs: t.periodMs,
      data: t.data,
      handle: undefined,
      inFlight: false,
    };
    timers.set(name, entry);
    const fire = (): void => {
      entry.handle = undefined;
      if (timers.get(name) !== entry || slot.closing || stopped) return;
      if (entry.periodMs > 0) entry.handle = clock.setTimeout(fire, entry.periodMs);
      else timers.delete(name);
      if (entry.inFlight) {
        slot.log.debug({ timer: name }, 'timer skipped: previous firing still running');
        return;
      }
      entry.inFlight = true;
      slot.mailbox.post(async () => {
        try {
          const act = current();
          if (!act || slot.activation !== act || slot.closing) return;
          counters.timersFired++;
          await runTurn(slot, { chain: [slot.key] }, (a) =>
            (a.instance as unknown as Record<string, (d: unknown) => unknown>)[entry.method](entry.data),
          );
        } catch (err) {
          slot.log.warn({ err, timer: name }, 'timer turn failed');
        } finally {
          entry.inFlight = false;
        }
      });
    };
    entry.handle = clock.setTimeout(fire, t.dueMs);
  };

  // ---- reminders -------------------------------------------------------------------------------------------

  /** The record of `ar` as one store operation. */
  const reminderOp = (ar: ActorReminders): StoreOp =>
    ar.entries.size === 0
      ? { op: 'delete', key: ar.storeKey }
      : { op: 'upsert', key: ar.storeKey, value: encodeReminders(ar.entries) };

  const persistReminders = (ar: ActorReminders): Promise<void> => {
    const write = async (): Promise<void> => {
      await store.transaction([reminderOp(ar)]);
    };
    const p = ar.writing.then(write);
    ar.writing = p.catch(() => undefined); // the next write goes on; this one's error reaches its caller
    return p;
  };

  const scheduleReminder = (ar: ActorReminders, name: string, entry: ReminderEntry): void => {
    if (stopped) return;
    if (entry.handle) clock.clearTimeout(entry.handle);
    entry.handle = clock.setTimeout(
      () => fireReminder(ar, name, entry),
      Math.max(0, entry.dueAt - clock.wallNow()),
    );
  };

  const fireReminder = (ar: ActorReminders, name: string, entry: ReminderEntry): void => {
    entry.handle = undefined;
    if (stopped || ar.entries.get(name) !== entry) return;
    const cls = types.get(ar.type);
    if (!cls) {
      log.error(
        { actorType: ar.type, actorId: ar.id, reminder: name },
        'reminder for an unregistered actor type not fired; it stays stored',
      );
      return;
    }
    const slot = slotFor(ar.type, ar.id, cls);
    slot.mailbox.post(async () => {
      if (stopped || ar.entries.get(name) !== entry) return;
      counters.remindersFired++;
      try {
        await runTurn(slot, { chain: [slot.key] }, (act) => act.instance.receiveReminder(name, entry.data));
      } catch (err) {
        slot.log.warn({ err, reminder: name }, 'reminder turn failed');
      }
      if (ar.entries.get(name) !== entry) return; // unregistered or replaced during the turn
      if (entry.periodMs > 0) {
        const now = clock.wallNow();
        entry.dueAt += entry.periodMs;
        if (entry.dueAt <= now) entry.dueAt = now + entry.periodMs; // missed firings collapse into the one just run
        scheduleReminder(ar, name, entry);
      } else {
        ar.entries.delete(name);
      }
      try {
        await persistReminders(ar);
      } catch (err) {
        slot.log.error({ err, reminder: name }, 'could not store reminder after firing');
      }
    });
  };

  /** Loads (once) and schedules the stored reminders of one actor. */
  const remindersOf = (type: string, id: string): Promise<ActorReminders> => {
    const key = actorKey(type, id);
    let p = reminders.get(key);
    if (!p) {
      p = (async () => {
        const storeKey = actorKeyPrefix(type, id) + REMINDERS_KEY;
        const json = await store.get(storeKey);
        const ar: ActorReminders = { type, id, storeKey, entries: new Map(), writing: Promise.resolve() };
        if (json !== undefined) {
          for (const [name, r] of decodeReminders(storeKey, json)) {
            const entry: ReminderEntry = { ...r, handle: undefined };
            ar.entries.set(name, entry);
            scheduleReminder(ar, name, entry);
          }
        }
        return ar;
      })();
      reminders.set(key, p);
      const failed = p;
      failed.catch(() => {
        if (reminders.get(key) === failed) reminders.delete(key);
      });
    }
    return p;
  };

  /**
   * Writes the turn's state and the actor's reminder record in one transaction (one group commit of a file store,
   * not two), after any write of the record already queued; the record is encoded when its write starts.
   */
  const writeTurnWithReminders = (act: Activation, ar: ActorReminders): Promise<void> => {
    const p = ar.writing.then(() => act.state.saveWith([reminderOp(ar)]));
    ar.writing = p.catch(() => undefined);
    return p;
  };

  const persistRemindersAfterFailedTurn = async (slot: Slot, ar: ActorReminders): Promise<void> => {
    try {
      await persistReminders(ar);
    } catch (err) {
      slot.log.error({ err }, 'could not store the reminders of a failed turn');
    }
  };

  /**
   * True when the call runs in the body of a turn of `slot`'s actor: the reminder record is then written with the
   * turn's state at its end (the caller of the turn is answered after both are durable), and `ar` is noted there.
   */
  const deferToTurn = (slot: Slot, ar: ActorReminders): boolean => {
    const scope = turnScope.getStore();
    if (!scope?.turn?.open || scope.chain[scope.chain.length - 1] !== slot.key) return false;
    scope.turn.reminders = ar;
    return true;
  };

  const registerReminder = async (
    slot: Slot,
    name: string,
    r: { dueMs: number; periodMs: number; data?: unknown },
  ): Promise<void> => {
    checkReminder(name, r);
    if (stopped) throw stoppedError();
    const ar = await remindersOf(slot.type, slot.id);
    const old = ar.entries.get(name);
    if (old?.handle) clock.clearTimeout(old.handle);
    const entry: ReminderEntry = {
      dueAt: clock.wallNow() + r.dueMs,
      periodMs: r.periodMs,
      data: r.data,
      handle: undefined,
    };
    ar.entries.set(name, entry);
    if (deferToTurn(slot, ar)) {
      scheduleReminder(ar, name, entry);
      return;
    }
    await persistReminders(ar);
    if (ar.entries.get(name) === entry) scheduleReminder(ar, name, entry);
  };

  const unregisterReminder = async (slot: Slot, name: string): Promise<void> => {
    const ar = await remindersOf(slot.type, slot.id);
    const old = ar.entries.get(name);
    if (!old) return;
    if (old.handle) clock.clearTimeout(old.handle);
    ar.entries.delete(name);
    if (!deferToTurn(slot, ar)) await persistReminders(ar);
  };

  // ---- idleness --------------------------------------------------------------------------------------------

  const scanIdle = (): void => {
    idleHandle = undefined;
    if (stopped) return;
    const now = clock.now();
    for (const slot of slots.values()) {
      if (
        slot.activation &&
        !slot.deactivationQueued &&
        !slot.mailbox.busy &&
        now - slot.lastTurnAt >= idleTimeoutMs
      ) {
        slot.log.debug('actor idle; deactivating');
        void queueDeactivation(slot);
      }
    }
    idleHandle = clock.setTimeout(scanIdle, idleScanMs);
  };
  idleHandle = clock.setTimeout(scanIdle, idleScanMs);

  // ---- the host --------------------------------------------------------------------------------------------

  return {
    kind: 'embedded',

    register(cls, name = cls?.name) {
      checkArg(
        typeof cls === 'function' && cls.prototype instanceof Actor,
        'cls',
        'an actor class extending Actor',
      );
      checkActorType(name, 'actor type name');
      if (types.has(name) && types.get(name) !== cls) {
        throw new PortalError(
          'PORTAL_INVALID_ARGUMENT',
          `actor type ${name} is already registered with another class`,
        );
      }
      types.set(name, cls);
    },

    proxy,

    ready() {
      loading ??= (async () => {
        const suffix = KEY_SEPARATOR + REMINDERS_KEY;
        for (const key of await store.keys('')) {
          if (!key.endsWith(suffix)) continue;
          const parsed = parseStateKey(key);
          if (!parsed || parsed.key !== REMINDERS_KEY) continue;
          const id = decodeActorId(parsed.actorId);
          if (id === undefined) {
            log.warn({ key }, 'reminders under a key that is not in the actor id wire form were not loaded');
            continue;
          }
          await remindersOf(parsed.actorType, id);
        }
      })();
      const p = loading;
      p.catch(() => {
        if (loading === p) loading = undefined;
      });
      return p;
    },

    async remindedActors(actorType) {
      const ids: string[] = [];
      for (const p of reminders.values()) {
        const ar = await p.catch(() => undefined); // a failed load holds nothing
        if (ar?.type === actorType && ar.entries.size > 0) ids.push(ar.id);
      }
      return ids;
    },

    async deactivate(actorType, actorId) {
      checkActorType(actorType);
      checkActorId(actorId);
      const slot = slots.get(actorKey(actorType, actorId));
      if (!slot || (!slot.activation && !slot.mailbox.busy)) return;
      await queueDeactivation(slot);
    },

    async settle() {
      for (;;) {
        const busy = [...slots.values()].filter((s) => s.mailbox.busy);
        if (busy.length === 0) return;
        await Promise.all(busy.map((s) => s.mailbox.whenIdle()));
      }
    },

    stop() {
      stopping ??= (async () => {
        stopped = true;
        if (idleHandle) clock.clearTimeout(idleHandle);
        idleHandle = undefined;
        for (const p of reminders.values()) {
          const ar = await p.catch(() => undefined); // a failed load has nothing scheduled
          if (!ar) continue;
          for (const e of ar.entries.values()) if (e.handle) clock.clearTimeout(e.handle);
        }
        const drained = Promise.all([...slots.values()].map((slot) => queueDeactivation(slot)));
        let drainTimer: TimerHandle | undefined;
        const outcome = await Promise.race([
          drained.then(() => 'drained' as const),
          new Promise<'timeout'>((resolve) => {
            drainTimer = clock.setTimeout(() => resolve('timeout'), drainTimeoutMs);
          }),
        ]);
        if (drainTimer) clock.clearTimeout(drainTimer);
        if (outcome === 'timeout') {
          const busy = [...slots.values()].filter((s) => s.mailbox.busy);
          log.warn(
            {
              drainTimeoutMs,
              busy: busy.slice(0, 20).map((s) => `${s.type}/${s.id}`),
              busyCount: busy.length,
            },
            'drain timeout: actors with a turn still running were abandoned without onDeactivate',
          );
        }
        for (const release of [...waiting])
          release(
            new PortalError(
              'PORTAL_HOST_STOPPED',
              `the embedded actor host stopped: the call's turn did not end within the ${drainTimeoutMs} ms drain`,
            ),
          );
        log.debug({ deactivations: counters.deactivations, outcome }, 'embedded actor host stopped');
      })();
      return stopping;
    },

    stats() {
      return hostCounters.snapshot();
    },
  };
}
