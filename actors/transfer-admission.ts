import { cpus, totalmem } from 'node:os';
import { PortalError, checkArg } from '../common/errors.js';

/** What `TransferAdmission.acquire` grants: a running slot now, or a place in the queue. */
export type Admission = 'running' | 'queued';

/**
 * Where a transfer stood in a host's queue: the wall-clock time it was queued (ms) and a sequence number of this
 * process that orders the transfers queued in the same millisecond.
 */
export interface QueueRank {
  at: number;
  seq: number;
}

/** Orders two ranks, oldest first; an absent rank after every present one. */
function compareRanks(a: QueueRank | undefined, b: QueueRank | undefined): number {
  if (!a || !b) return (a ? 0 : 1) - (b ? 0 : 1);
  return a.at - b.at || a.seq - b.seq;
}

/** Settings of a host's admission control. */
export interface TransferAdmissionOptions {
  /** Transfers that may run (tick, dispatch, verify) on this host at once; ≥ 1. */
  maxRunning: number;
  /** Transfers that may wait for a slot; a start beyond it fails with PORTAL_OVERLOADED. ≥ 0. */
  maxQueued: number;
  /**
   * Called (outside the caller's turn, on a later microtask) with the id of a queued transfer that was just
   * given the slot a finished one freed: the host makes that transfer's actor run it (SchedulerActor.admit).
   * When it rejects, the slot is released again and the next queued transfer gets it.
   */
  promote: (transferId: string) => Promise<unknown>;
  /** Told when `promote` rejected (its slot was released). */
  onPromoteError?: (transferId: string, err: unknown) => void;
}

/** Counters of a host's admission control, for /metrics. */
export interface TransferAdmissionStats {
  running: number;
  queued: number;
  maxRunning: number;
  maxQueued: number;
  /** Starts refused with PORTAL_OVERLOADED since the host started. */
  rejected: number;
  /** Queued transfers that were given a slot since the host started. */
  promoted: number;
}

/** Running transfers per core of the default `maxRunning` (see defaultMaxRunning). */
export const RUNNING_PER_CORE = 8;
/** Memory the default `maxRunning` reserves per running transfer, bytes (see defaultMaxRunning). */
export const MEMORY_PER_RUNNING = 32 * 2 ** 20;
/** Queue places per running slot of the default `maxQueued`. */
export const QUEUED_PER_RUNNING = 100;

/**
 * The default number of running transfers of a host: RUNNING_PER_CORE per core, and no more than one per
 * MEMORY_PER_RUNNING of the machine's memory; at least 1. Every running transfer ticks on the one JavaScript
 * thread that also answers the actor API, so the bound follows the cores (more running transfers do not move
 * more bytes once the executor's fetch slots are full, they only add ticks, journal writes and edge calls per
 * byte: bench:load); the memory bound keeps the scheduler tables and buffers of many large transfers from
 * exhausting the host. (2 cores, 8 GiB → 16.)
 */
export function defaultMaxRunning(cores = cpus().length, memoryBytes = totalmem()): number {
  return Math.max(
    1,
    Math.min(RUNNING_PER_CORE * Math.max(1, cores), Math.floor(memoryBytes / MEMORY_PER_RUNNING)),
  );
}

/** The default queue bound for `maxRunning` running slots: QUEUED_PER_RUNNING × maxRunning. */
export function defaultMaxQueued(maxRunning: number): number {
  return QUEUED_PER_RUNNING * maxRunning;
}

/**
 * Admission control of one host process: at most `maxRunning` transfers hold a running slot; further starts wait
 * in a FIFO queue of at most `maxQueued` (state `queued`), and beyond that a start fails with PORTAL_OVERLOADED
 * (HTTP 503) so that a flood of requests is refused early instead of slowing every transfer and the actor API
 * down. When a running transfer ends (`release`), the oldest queued one gets its slot through `promote`.
 *
 * The counts are this process's: on the Dapr runtime every instance admits the transfers whose SchedulerActor it
 * hosts, with its own limits (there is no cluster-wide count). A transfer that resumes after a restart or a move
 * (`acquire(id, { resume: true })`) always runs, even above `maxRunning`: it was admitted before.
 *
 * The queue is a Map (insertion order = FIFO): acquire, release and promotion are O(1). Hand-written because it is
 * twenty lines and part of the actor semantics (who runs when), not a general-purpose queue.
 */
export class TransferAdmission {
  private readonly running = new Set<string>();
  private readonly queue = new Map<string, true>();
  /**
   * Set between hold() and open(): no queued transfer is given a slot, and the rank each recovered one was queued
   * with (acquire's `queuedAt`), by id, orders the queue at open().
   */
  private held: Map<string, QueueRank | undefined> | undefined;
  private rejected = 0;
  private promoted = 0;

  constructor(private readonly opts: TransferAdmissionOptions) {
    checkArg(Number.isInteger(opts.maxRunning) && opts.maxRunning >= 1, 'maxRunning', 'an integer ≥ 1');
    checkArg(Number.isInteger(opts.maxQueued) && opts.maxQueued >= 0, 'maxQueued', 'an integer ≥ 0');
  }

  /**
   * A slot for `transferId`: 'running' when it holds one already or one is free, else 'queued' (appended to the
   * queue, or where it already waits). `resume`: the transfer ran before (a reactivation): it runs at once, and
   * one that was queued is queued again whatever the bound. Throws PORTAL_OVERLOADED when the queue is full.
   */
  acquire(
    transferId: string,
    opts: { resume?: boolean; wasQueued?: boolean; queuedAt?: QueueRank } = {},
  ): Admission {
    if (this.running.has(transferId)) return 'running';
    if (this.queue.has(transferId)) return 'queued';
    if (opts.resume || (!this.held && this.running.size < this.opts.maxRunning && this.queue.size === 0)) {
      this.running.add(transferId);
      return 'running';
    }
    if (!opts.wasQueued) this.checkRoom(transferId);
    this.queue.set(transferId, true);
    if (this.held && opts.wasQueued) this.held.set(transferId, opts.queuedAt);
    return 'queued';
  }

  /**
   * Holds the queue while a host recovers its transfers (after a restart, before it takes calls): until open(),
   * acquire queues every transfer that does not resume (`wasQueued` ones with the rank they were first queued with),
   * and no queued transfer is promoted, so the order in which their actors happen to be activated decides nothing.
   */
  hold(): void {
    this.held ??= new Map();
  }

  /**
   * Ends hold(): the transfers queued again meanwhile are put back in the order they were first queued (their
   * `queuedAt` rank; one without a rank after those with one, in the order it came), ahead of any queued otherwise,
   * and free slots are given to the oldest (first in, first out).
   */
  open(): void {
    const held = this.held;
    if (!held) return;
    this.held = undefined;
    const recovered = [...held.entries()].filter(([id]) => this.queue.has(id));
    recovered.sort(([, a], [, b]) => compareRanks(a, b));
    const rest = [...this.queue.keys()].filter((id) => !held.has(id));
    this.queue.clear();
    for (const [id] of recovered) this.queue.set(id, true);
    for (const id of rest) this.queue.set(id, true);
    this.fill();
  }

  /**
   * Throws PORTAL_OVERLOADED (and counts the refusal) when a new start of `transferId` would be refused now:
   * it holds no slot or place, and every running slot and queue place is taken. Changes nothing otherwise, so a
   * host can refuse a start before it parses its manifest or writes anything.
   */
  checkRoom(transferId: string): void {
    if (this.running.has(transferId) || this.queue.has(transferId)) return;
    if (this.running.size < this.opts.maxRunning && this.queue.size === 0) return;
    if (this.queue.size < this.opts.maxQueued) return;
    this.rejected++;
    throw new PortalError(
      'PORTAL_OVERLOADED',
      `transfer ${JSON.stringify(transferId)} refused: this host runs ${this.running.size} transfers (--max-running ${this.opts.maxRunning}) and ${this.queue.size} wait (--max-queued ${this.opts.maxQueued}); try again later`,
    );
  }

  /**
   * `transferId` ended, was cancelled or forgotten: its slot (or queue place) is freed, and while slots are free
   * the oldest queued transfers are promoted. Releasing an id that holds nothing does nothing.
   */
  release(transferId: string): void {
    if (this.queue.delete(transferId)) return;
    if (!this.running.delete(transferId)) return;
    this.fill();
  }

  /** Where `transferId` stands here: 'running', 'queued', or undefined when it holds nothing. */
  stateOf(transferId: string): Admission | undefined {
    return this.running.has(transferId) ? 'running' : this.queue.has(transferId) ? 'queued' : undefined;
  }

  /** The ids waiting for a slot, oldest first (the next one promoted first). */
  queuedIds(): string[] {
    return [...this.queue.keys()];
  }

  /** Counts for /metrics. */
  stats(): TransferAdmissionStats {
    return {
      running: this.running.size,
      queued: this.queue.size,
      maxRunning: this.opts.maxRunning,
      maxQueued: this.opts.maxQueued,
      rejected: this.rejected,
      promoted: this.promoted,
    };
  }

  private fill(): void {
    if (this.held) return;
    while (this.running.size < this.opts.maxRunning && this.queue.size > 0) {
      const next = this.queue.keys().next().value as string;
      this.queue.delete(next);
      this.running.add(next);
      this.promoted++;
      // not inside the releasing actor's turn: the promoted actor's call is a turn of its own
      queueMicrotask(() => {
        this.opts.promote(next).catch((err: unknown) => {
          this.opts.onPromoteError?.(next, err);
          this.release(next);
        });
      });
    }
  }
}
