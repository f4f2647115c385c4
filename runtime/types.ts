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
export interface ActorContext {
  readonly actorType: string;
  readonly actorId: string;
  /** Child logger with { actorType, actorId }. */
  readonly log: Logger;
  readonly clock: Clock;
  /** Durable key/value state of this actor; cached, written back after each turn. */
  readonly state: ActorStateManager;
  /** Process-local services (device, executors, bus) the host was configured with. */
  readonly services: ActorServices;
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
}

/** Durable per-actor state. Values must be JSON-serializable. */
export interface ActorStateManager {
  get<T>(key: string): Promise<T | undefined>;
  set(key: string, value: unknown): Promise<void>;
  delete(key: string): Promise<void>;
  /** Writes pending changes now (the host also does this after every turn). */
  save(): Promise<void>;
}

/** Invokes methods on one actor; each call is a turn on that actor. */
export interface ActorRef {
  readonly actorType: string;
  readonly actorId: string;
  invoke<R = unknown>(method: string, arg?: unknown): Promise<R>;
}

/** Open bag of process-local services; actors look up what they need by name. */
export type ActorServices = Readonly<Record<string, unknown>>;

/** Base class of every Portal actor. The class name is the actor type (as in Dapr). */
export abstract class Actor {
  constructor(protected readonly ctx: ActorContext) {}
  /** Called once per activation before the first turn. */
  async onActivate(): Promise<void> {}
  /** Called when the host deactivates the actor (idle, shutdown). */
  async onDeactivate(): Promise<void> {}
  /** Called when a durable reminder fires. */
  async receiveReminder(_name: string, _data: unknown): Promise<void> {}
}

/** Constructor of an actor class. */
export type ActorClass<A extends Actor = Actor> = new (ctx: ActorContext) => A;

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

/** A running actor host: embedded (in-process) or Dapr. */
export interface ActorHost {
  readonly kind: 'embedded' | 'dapr';
  register(cls: ActorClass, name?: string): void;
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
  remindersFired: number;
  timersFired: number;
}
