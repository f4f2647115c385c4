import { PortalError } from '../common/errors.js';
import type { TransferStatus } from './types.js';

/** A transfer's state, as TransferStatus has it. */
export type TransferState = TransferStatus['state'];

/** The states a list may be filtered by. */
export const TRANSFER_STATES: readonly TransferState[] = [
  'queued',
  'running',
  'verifying',
  'done',
  'failed',
  'cancelled',
];

/** One transfer of a list page (`GET /v1/transfers`). */
export interface TransferListEntry {
  transferId: string;
  state: TransferState;
  /** Bytes verified so far, and the file's size (0 while a queued transfer's manifest is not read). */
  bytesDone: number;
  fileSize: number;
  /** The file it is published as (a path on the host), or the accepting edge's URL, credentials redacted. */
  output: string;
  /** Wall-clock ms of the first start, and of the end (done, failed, cancelled) when it ended. */
  createdAt: number;
  finishedAt?: number;
}

/** What the index keeps of a transfer: its state (for filters) and its entry, read only for the page. */
export interface TransferIndexRow {
  state(): TransferState;
  entry(): TransferListEntry;
}

/** A page of the list. `next`: the `after` of the next page, absent on the last. */
export interface TransferListPage {
  transfers: TransferListEntry[];
  next?: string;
}

/** Largest and default page of TransferIndex.page. */
export const MAX_LIST_LIMIT = 1000;
export const DEFAULT_LIST_LIMIT = 100;

/**
 * The transfers this process hosts, for `GET /v1/transfers` (aria2's tellActive / tellWaiting / tellStopped in one
 * paged call). A SchedulerActor adds its transfer when it owns one (a start, an activation that loaded it), with
 * a row reading its live fields; at its deactivation the row is replaced by a snapshot; `forget` removes it.
 * Ordered by transfer id (UTF-16 code units, as JavaScript compares strings), a stable order: a page starts after
 * the id the previous one ended with, whatever was added or removed meanwhile. A page costs a binary search plus
 * the rows it looks at: only the entries it returns are built (never the whole list), and with a state filter the
 * rows of other states are skipped by their state alone.
 */
export class TransferIndex {
  private readonly rows = new Map<string, TransferIndexRow>();
  /** The revision of each row: the value of `sets` when it was set (freeze keeps it). */
  private readonly revisions = new Map<string, number>();
  /** Rows set so far, over all ids: a revision is never given twice, even to an id forgotten and started again. */
  private sets = 0;
  /** The ids of `rows`, sorted. */
  private readonly ids: string[] = [];

  get size(): number {
    return this.rows.size;
  }

  /** Adds transfer `id` (or replaces its row), with a new revision. */
  set(id: string, row: TransferIndexRow): void {
    if (!this.rows.has(id)) this.ids.splice(this.lowerBound(id), 0, id);
    this.rows.set(id, row);
    this.revisions.set(id, ++this.sets);
  }

  /**
   * The revision of `id`'s row (undefined when it has none): a number that changes at every `set` (a
   * SchedulerActor sets its row at each start, restart and activation, so at every way out of a finished state)
   * and never comes back, not even for an id forgotten and started again. The dashboard polls a finished transfer
   * again only when it changed.
   */
  revision(id: string): number | undefined {
    return this.revisions.get(id);
  }

  /** The ids of every transfer listed, in id order (what `page` walks through), whatever their state. */
  listedIds(): readonly string[] {
    return [...this.ids];
  }

  /** The state of `id`'s row as the list shows it (undefined when it has none). */
  stateOf(id: string): TransferState | undefined {
    return this.rows.get(id)?.state();
  }

  /** Replaces the live row of `id` by a snapshot of it (its actor is deactivated: the row would read nothing). */
  freeze(id: string): void {
    const row = this.rows.get(id);
    if (!row) return;
    const e = row.entry();
    this.rows.set(id, { state: () => e.state, entry: () => e });
  }

  delete(id: string): void {
    if (!this.rows.delete(id)) return;
    this.revisions.delete(id);
    const i = this.lowerBound(id);
    if (this.ids[i] === id) this.ids.splice(i, 1);
  }

  /**
   * Up to `limit` transfers (default DEFAULT_LIST_LIMIT; an integer in [1, MAX_LIST_LIMIT], else
   * PORTAL_INVALID_ARGUMENT) whose id sorts after `after` (absent: from the first), in one of `states` (absent: any).
   */
  page(o: { states?: readonly TransferState[]; limit?: number; after?: string } = {}): TransferListPage {
    const limit = o.limit ?? DEFAULT_LIST_LIMIT;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIST_LIMIT)
      throw new PortalError(
        'PORTAL_INVALID_ARGUMENT',
        `limit: expected an integer in [1, ${MAX_LIST_LIMIT}], got ${String(limit)}`,
      );
    const wanted = o.states && o.states.length > 0 ? new Set(o.states) : undefined;
    let i = o.after === undefined ? 0 : this.upperBound(o.after);
    const transfers: TransferListEntry[] = [];
    for (; i < this.ids.length && transfers.length < limit; i++) {
      const row = this.rows.get(this.ids[i])!;
      if (wanted && !wanted.has(row.state())) continue;
      transfers.push(row.entry());
    }
    // more may follow: the next page starts after the last id returned
    const more = transfers.length === limit && i < this.ids.length;
    return more ? { transfers, next: transfers[transfers.length - 1].transferId } : { transfers };
  }

  /** Index of the first id ≥ `id`. */
  private lowerBound(id: string): number {
    let lo = 0;
    let hi = this.ids.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.ids[mid] < id) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Index of the first id > `id`. */
  private upperBound(id: string): number {
    const i = this.lowerBound(id);
    return this.ids[i] === id ? i + 1 : i;
  }
}

/**
 * Parses the `state` of a list query: one state or several, comma-separated; PORTAL_INVALID_ARGUMENT naming an
 * unknown one and the states there are.
 */
export function parseListStates(text: string): TransferState[] {
  return text.split(',').map((s) => {
    if (!(TRANSFER_STATES as readonly string[]).includes(s))
      throw new PortalError(
        'PORTAL_INVALID_ARGUMENT',
        `state: unknown state ${JSON.stringify(s)} (states: ${TRANSFER_STATES.join(', ')})`,
      );
    return s as TransferState;
  });
}
