import type { Clock } from '../common/clock.js';
import type { Logger } from '../common/logger.js';

/**
 * The actor programming model shared by the embedded host and the Dapr host.
 *
 * An actor is a class extending `Actor`. Its public async methods take at most one argument and
 * return a value; in Dapr both must be JSON-serializable (binary data travels as base64), so
 * actors are written that way on every host. One turn at a time per actor: a method call, a timer
 * callback or a reminder runs to completion before the next one starts.
 */
export interface ActorContext<S extends ActorServices = ActorServices> {
  readonly actorType: string;
  readonly actorId: string;
  /** Child logger with { actorType, actorId }. */
  readonly log: Logger;
  readonly clock: Clock;
  /** Durable key/value state of this actor; cached, written back after each turn. */
  readonly state: ActorStateManager;
  /**
   * Process-local services (bus, tick engine, executors' hooks…) the host was configured with, typed by the
   * actor class as `Actor<S>`; the composition root that builds the host builds a value of that type.
   */
  readonly services: S;
  /**
   * Registers (or replaces) a timer that invokes `method(data)` on this actor every `periodMs`
   * after `dueMs`, as its own turn. Timers are not durable: they die with the activation.
   */
  registerTimer(
    name: string,
    opts: { method: string; dueMs: number; periodMs: number; data?: unknown },
  ): Promise<void>;
  unregisterTimer(name: string): Promise<void>;
  /**
   * Registers a durable reminder: survives deactivation and host restarts (it is kept in the
   * state store) and calls `receiveReminder(name, data)`, activating the actor if needed.
   */
  registerReminder(name: string, opts: { dueMs: number; periodMs: number; data?: unknown }): Promise<void>;
  unregisterReminder(name: string): Promise<void>;
  /** A reference to another actor (or this one) to invoke methods on. */
  proxy(actorType: string, actorId: string): ActorRef;
  /**
   * Asks the host to deactivate this actor as soon as the current turn has ended (Orleans' `DeactivateOnIdle`),
   * instead of after its idle timeout: for an actor that holds nothing worth keeping in memory, such as one asked
   * about an id it has no state for. `onDeactivate` runs as usual; the next call activates it again.
   */
  deactivateOnIdle(): void;
}

/** Durable per-actor state. Values must be JSON-serializable. */
export interface ActorStateManager {
  get<T>(key: string): Promise<T | undefined>;
  set(key: string, value: unknown): Promise<void>;
  delete(key: string): Promise<void>;
  /** Writes pending changes now (the host also does this after every turn). */
  save(): Promise<void>;
  /**
   * Drops the value of `key` from the activation's cache once this turn's changes are saved, so the next `get`
   * reads the store again: for large values an actor rarely reads (a queued transfer's request). Both hosts
   * implement it (one state manager, createStateManager); optional for other implementations.
   */
  release?(key: string): void;
}

/**
 * Invokes methods on one actor by name, unchecked; each call is a turn on that actor. This is the wire-level
 * reference hosts hand out (the embedded HTTP API and tests of the hosts use it as is); code that knows the
 * actor type wraps it with `typedProxy` to get an `ActorProxy` whose calls are type-checked.
 */
export interface ActorRef {
  readonly actorType: string;
  readonly actorId: string;
  invoke(method: string, arg?: unknown): Promise<unknown>;
}

/**
 * The method names of an actor interface `M` that callers may invoke: its members that are functions of at most
 * one argument returning a promise (an actor interface is written like an Orleans grain interface:
 * `interface EdgeActorApi { snapshot(): Promise<EdgeView> }`).
 */
export type ActorMethodName<M> = {
  [K in keyof M & string]: M[K] extends (...args: infer P) => Promise<unknown>
    ? P extends [] | [unknown] | [unknown?]
      ? K
      : never
    : never;
}[keyof M & string];

/** The argument list (none, or one argument) of method `K` of actor interface `M`. */
export type ActorMethodArgs<M, K extends keyof M> = M[K] extends (...args: infer P) => Promise<unknown>
  ? P
  : never;

/** What method `K` of actor interface `M` resolves to. */
export type ActorMethodResult<M, K extends keyof M> = M[K] extends (...args: never[]) => Promise<infer R>
  ? R
  : never;

/**
 * A typed reference to one actor of interface `M`: the method name, its argument and its result are checked by
 * the compiler (the host still checks at run time that the method exists on the class).
 */
export interface ActorProxy<M> {
  readonly actorType: string;
  readonly actorId: string;
  invoke<K extends ActorMethodName<M>>(
    method: K,
    ...args: ActorMethodArgs<M, K>
  ): Promise<ActorMethodResult<M, K>>;
}

/**
 * Wraps an untyped `ActorRef` as an `ActorProxy<M>`. The caller states that the actor behind `ref` implements
 * `M`; actor areas pair each actor type name with its interface once (actors/api.ts) so that callers never
 * choose `M` by hand.
 */
export function typedProxy<M>(ref: ActorRef): ActorProxy<M> {
  return {
    actorType: ref.actorType,
    actorId: ref.actorId,
    invoke<K extends ActorMethodName<M>>(method: K, ...args: ActorMethodArgs<M, K>) {
      // The one unchecked step of a typed call: the host returns the JSON result of `method` on an actor whose
      // class implements M (the registry in actors/api.ts pairs type names with interfaces).
      return ref.invoke(method, args[0]) as Promise<ActorMethodResult<M, K>>;
    },
  };
}

/**
 * Process-local services a host hands every actor (`ctx.services`). The runtime does not know them: each area
 * that defines actors names what its actors take in an interface of its own (actors/services.ts) and declares
 * its actors as `Actor<ThatInterface>`; the composition root builds a value of that interface for the host.
 */
export type ActorServices = object;

/** Base class of every Portal actor, typed by the services `S` it takes. The class name is the actor type (as in Dapr). */
export abstract class Actor<S extends ActorServices = ActorServices> {
  constructor(protected readonly ctx: ActorContext<S>) {}
  /** Called once per activation before the first turn. */
  async onActivate(): Promise<void> {}
  /** Called when the host deactivates the actor (idle, shutdown). */
  async onDeactivate(): Promise<void> {}
  /** Called when a durable reminder fires. */
  async receiveReminder(_name: string, _data: unknown): Promise<void> {}
  /**
   * Whether a call of `method` may run now, beside the turn in progress, instead of waiting in the mailbox for it
   * to end (Orleans' `[MayInterleave]` / `[AlwaysInterleave]`). Asked by the embedded host for calls to an active
   * actor only, synchronously, before the call is queued; default false (every call is a turn of its own). Return
   * true only for a method that reads in-memory state, writes no actor state, awaits nothing and reads every field
   * in a form that any await point of another turn leaves consistent: it then answers in microseconds while a turn
   * waits on storage or on other actors (a SchedulerActor's status while its tick awaits a durable write). The Dapr
   * host ignores it (daprd delivers one call at a time per actor).
   */
  mayInterleave(_method: string): boolean {
    return false;
  }
}

/** Constructor of an actor class. */
/**
 * Constructor of an actor class whose actors take services `S`. A class declared `Actor<SchedulerServices>` is an
 * `ActorClass<S>` exactly when a host's services `S` give it what it reads (S assignable to SchedulerServices).
 */
export type ActorClass<S extends ActorServices = ActorServices> = new (ctx: ActorContext<S>) => Actor;

/** Key/value store that actor state and reminders are kept in. */
export interface StateStore {
  get(key: string): Promise<string | undefined>;
  /** Applies all operations atomically with respect to one actor's keys. */
  transaction(
    ops: ReadonlyArray<{ op: 'upsert'; key: string; value: string } | { op: 'delete'; key: string }>,
  ): Promise<void>;
  /** Keys starting with `prefix` (used to reload reminders). */
  keys(prefix: string): Promise<string[]>;
  close(): Promise<void>;
}

/**
 * A running actor host: embedded (in-process) or Dapr, configured with services `S`. `register` is a property (not
 * a method) so that its parameter is checked strictly: a class that reads services the host lacks does not compile.
 */
export interface ActorHost<S extends ActorServices = ActorServices> {
  readonly kind: 'embedded' | 'dapr';
  readonly register: (cls: ActorClass<S>, name?: string) => void;
  proxy(actorType: string, actorId: string): ActorRef;
  /** Deactivates every actor (saving state) and stops timers/reminders. */
  stop(): Promise<void>;
  /** Counters for metrics: activations, deactivations, calls, active actors. */
  stats(): ActorHostStats;
}

export interface ActorHostStats {
  activations: number;
  deactivations: number;
  calls: number;
  active: number;
  /** Active actors (instances in memory) per actor type; types with none are absent. */
  activeByType: Record<string, number>;
  remindersFired: number;
  timersFired: number;
}
