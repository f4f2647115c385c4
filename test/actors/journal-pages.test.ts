/**
 * The SchedulerActor's journal with its completion bitmap in pages: a save writes the pages that changed, so the
 * bytes a save puts on disk follow the chunks completed since the last one, not the size of the transfer.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { BITMAP_PAGE_BYTES, JournalPages, bitmapPageKey } from '../../actors/journal-pages.js';
import { createFileStateStore } from '../../runtime/file-state-store.js';
import { createMemoryStateStore } from '../../runtime/memory-state-store.js';
import { createStateManager } from '../../runtime/state-manager.js';
import type { StateStore } from '../../runtime/types.js';

interface J {
  manifestId: string;
  state: string;
  bitmap: string;
}

const PREFIX = 'SchedulerActor||t1||';

/** A store that records the keys each transaction writes. */
function recording(inner: StateStore): StateStore & { written: string[][] } {
  const written: string[][] = [];
  return {
    written,
    get: (k) => inner.get(k),
    keys: (p) => inner.keys(p),
    close: () => inner.close(),
    async transaction(ops) {
      written.push(ops.map((o) => o.key.slice(PREFIX.length)));
      await inner.transaction(ops);
    },
  };
}

const setBits = (bitmap: Uint8Array, from: number, to: number): void => {
  for (let c = from; c < to; c++) bitmap[c >> 3] |= 1 << (c & 7);
};

test('journal pages: a save after chunks completed in one page writes that page alone, and the fields only when they change', async () => {
  const store = recording(createMemoryStateStore());
  const state = createStateManager(store, PREFIX);
  const pages = new JournalPages<J>();
  const bitmap = new Uint8Array(10 * BITMAP_PAGE_BYTES);
  const j: J = { manifestId: 'm', state: 'running', bitmap: Buffer.from(bitmap).toString('base64') };
  await pages.save(state, j, true);
  await state.save();
  expect(store.written[0]).toHaveLength(11); // the journal and its 10 pages
  setBits(bitmap, 3 * BITMAP_PAGE_BYTES * 8 + 5, 3 * BITMAP_PAGE_BYTES * 8 + 900);
  j.bitmap = Buffer.from(bitmap).toString('base64');
  await pages.save(state, j, false);
  await state.save();
  expect(store.written[1]).toEqual([bitmapPageKey(3)]);
  j.state = 'done';
  await pages.save(state, j, false);
  await state.save();
  expect(store.written[2]).toEqual(['journal']);
  await pages.save(state, j, false);
  expect(state.dirty).toBe(false);

  const reread = await new JournalPages<J>().load(createStateManager(store, PREFIX));
  expect(reread).toEqual(j);
  const stored = JSON.parse((await store.get(`${PREFIX}journal`))!) as Record<string, unknown>;
  expect(stored).toEqual({ manifestId: 'm', state: 'done', bitmapPages: 10 }); // no inline bitmap

  const again = createStateManager(store, PREFIX);
  const p2 = new JournalPages<J>();
  await p2.load(again);
  await p2.delete(again);
  await again.save();
  expect(await store.keys(PREFIX)).toEqual([]);
});

test('journal pages: reads a journal an earlier version stored with its bitmap inline, then stores it in pages', async () => {
  const store = createMemoryStateStore();
  const bitmap = Buffer.alloc(BITMAP_PAGE_BYTES + 10);
  setBits(bitmap, 0, 100);
  setBits(bitmap, BITMAP_PAGE_BYTES * 8, BITMAP_PAGE_BYTES * 8 + 3);
  const old: J = { manifestId: 'm', state: 'running', bitmap: bitmap.toString('base64') };
  await store.transaction([{ op: 'upsert', key: `${PREFIX}journal`, value: JSON.stringify(old) }]);
  const state = createStateManager(store, PREFIX);
  const pages = new JournalPages<J>();
  const j = (await pages.load(state))!;
  expect(j).toEqual(old);
  await pages.save(state, j, false);
  await state.save();
  expect((await store.keys(PREFIX)).sort()).toEqual(
    [`${PREFIX}journal`, `${PREFIX}${bitmapPageKey(0)}`, `${PREFIX}${bitmapPageKey(1)}`].sort(),
  );
  const back = (await new JournalPages<J>().load(createStateManager(store, PREFIX)))!;
  // pages are whole: the bitmap reads back padded with zeros to the page size
  expect(Buffer.from(back.bitmap, 'base64').subarray(0, bitmap.length)).toEqual(bitmap);
  expect(
    Buffer.from(back.bitmap, 'base64')
      .subarray(bitmap.length)
      .every((b) => b === 0),
  ).toBe(true);
});

test('journal pages: saves of a 1M-chunk transfer through the file state store write bytes proportional to the chunks completed', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'portal-journal-'));
  try {
    const store = createFileStateStore(dir);
    const chunks = 1 << 20;
    const bitmap = new Uint8Array(chunks / 8);
    const state = createStateManager(store, PREFIX);
    const pages = new JournalPages<J>();
    const j: J = { manifestId: 'm', state: 'running', bitmap: '' };
    const save = async (full: boolean) => {
      j.bitmap = Buffer.from(bitmap).toString('base64');
      await pages.save(state, j, full);
      await state.save();
    };
    await save(true);
    const first = store.stats().bytesWritten;
    const wholeBitmap = first; // what every save wrote when the bitmap was stored whole
    expect(wholeBitmap).toBeGreaterThan((chunks / 8) * 1.3);
    // 512 saves, 2048 chunks completed between two saves (a quarter page)
    const saves = 512;
    const perSave = chunks / saves;
    for (let s = 0; s < saves; s++) {
      setBits(bitmap, s * perSave, (s + 1) * perSave);
      await save(false);
    }
    j.state = 'done';
    await save(true);
    const written = store.stats().bytesWritten - first;
    // each save: about one page (1 KiB → 1.4 KB base64) plus record overhead and its share of the compactions
    expect(written / saves).toBeLessThan(5000);
    expect(written).toBeLessThan((wholeBitmap * saves) / 30);
    await store.close();
    const back = (await new JournalPages<J>().load(createStateManager(createFileStateStore(dir), PREFIX)))!;
    expect(Buffer.from(back.bitmap, 'base64').every((b) => b === 0xff)).toBe(true);
    expect(back.state).toBe('done');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
