import type { ActorStateManager } from '../runtime/types.js';

/** The state key of a SchedulerActor's journal (its completion bitmap is kept apart, in pages). */
export const JOURNAL_KEY = 'journal';

/**
 * Bytes of the completion bitmap per stored page: 8192 chunks. A save writes the pages that changed, so its
 * size follows the chunks completed since the last save, not the transfer's size (a 1M-chunk bitmap is 128 KiB,
 * 16 pages).
 */
export const BITMAP_PAGE_BYTES = 1024;

/** The state key of page `i` of the completion bitmap. */
export const bitmapPageKey = (i: number): string => `${JOURNAL_KEY}-bitmap-${i}`;

/** A journal as the actor holds it: its fields, with the completion bitmap inline (base64). */
export interface PagedJournal {
  bitmap: string;
}

/** A journal as stored: its bitmap in `bitmapPages` pages, or inline (journals written before pages). */
type StoredJournal<J> = Omit<J, 'bitmap'> & { bitmap?: string; bitmapPages?: number };

/**
 * Reads a stored journal through `get` (an actor state manager's, or a store read that parses JSON) and
 * returns it with its bitmap assembled from its pages; undefined when there is none. A missing page reads as
 * zeros (its chunks count as not complete: fetched again, never trusted).
 */
export async function readPagedJournal<J extends PagedJournal>(
  get: <T>(key: string) => Promise<T | undefined>,
): Promise<{ journal: J; pages: Buffer[] } | undefined> {
  const stored = await get<StoredJournal<J>>(JOURNAL_KEY);
  if (stored === undefined) return undefined;
  const { bitmapPages, ...rest } = stored;
  const pages: Buffer[] = [];
  if (bitmapPages === undefined) return { journal: { ...rest, bitmap: stored.bitmap ?? '' } as J, pages };
  for (let i = 0; i < bitmapPages; i++) {
    const page = await get<string>(bitmapPageKey(i));
    pages.push(page === undefined ? Buffer.alloc(BITMAP_PAGE_BYTES) : Buffer.from(page, 'base64'));
  }
  const bitmap = Buffer.concat(pages);
  return { journal: { ...rest, bitmap: bitmap.toString('base64') } as J, pages };
}

/**
 * Keeps an actor's journal in its state with the completion bitmap in fixed pages (BITMAP_PAGE_BYTES), writing
 * only what changed since the last save: the journal's other fields when they changed, and the dirty pages. All
 * of it goes into the turn's one state transaction, so a crash leaves the journal and its pages of one save.
 * `full` saves write everything (a turn whose changes were rolled back may have left a page unsaved that the
 * writer counts as saved; full saves at the transfer's end and at deactivation bound that).
 */
export class JournalPages<J extends PagedJournal> {
  /** Page contents as last written (or read), by page index. */
  private saved: Buffer[] = [];
  private savedMeta: string | undefined;

  /** Reads the journal (see readPagedJournal) and takes what it read as saved. */
  async load(state: ActorStateManager): Promise<J | undefined> {
    const got = await readPagedJournal<J>((key) => state.get(key));
    if (!got) return undefined;
    this.saved = got.pages;
    this.savedMeta =
      got.pages.length > 0 ? JSON.stringify(this.meta(got.journal, got.pages.length)) : undefined;
    return got.journal;
  }

  /** Sets the journal's changed fields and its dirty pages in `state` (written with the turn). */
  async save(state: ActorStateManager, journal: J, full: boolean): Promise<void> {
    const bitmap = Buffer.from(journal.bitmap, 'base64');
    const pages = Math.ceil(bitmap.length / BITMAP_PAGE_BYTES);
    for (let i = 0; i < pages; i++) {
      const page = Buffer.alloc(BITMAP_PAGE_BYTES);
      bitmap.copy(page, 0, i * BITMAP_PAGE_BYTES, (i + 1) * BITMAP_PAGE_BYTES);
      if (!full && this.saved[i]?.equals(page)) continue;
      await state.set(bitmapPageKey(i), page.toString('base64'));
      this.saved[i] = page;
    }
    for (let i = pages; i < this.saved.length; i++) await state.delete(bitmapPageKey(i));
    this.saved.length = pages;
    const meta = this.meta(journal, pages);
    const json = JSON.stringify(meta);
    if (full || json !== this.savedMeta) await state.set(JOURNAL_KEY, meta);
    this.savedMeta = json;
  }

  /** Deletes the journal and its pages from `state`. */
  async delete(state: ActorStateManager): Promise<void> {
    await state.delete(JOURNAL_KEY);
    for (let i = 0; i < this.saved.length; i++) await state.delete(bitmapPageKey(i));
    this.saved = [];
    this.savedMeta = undefined;
  }

  private meta(journal: J, pages: number): StoredJournal<J> {
    const { bitmap: _bitmap, ...rest } = journal;
    return { ...rest, bitmapPages: pages };
  }
}
