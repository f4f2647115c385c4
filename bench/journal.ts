/**
 * Bytes a SchedulerActor journal writes for a 1M-chunk transfer: `--chunks` chunks completed over `--saves` saves
 * (one per persistMs, 100 ms by default: 300 saves are a 30 s transfer), out of order within a window of
 * `--window` chunks as parallel fetches complete. Compared: the journal with its bitmap in pages
 * (JournalPages, only changed pages written) and with the whole bitmap inline in the journal (how it was stored
 * before), each through the file state store (bytes written to disk, snapshots, log records and blobs counted by
 * the store) and as the state values a Dapr state transaction carries (what Redis receives).
 * Run: `npm run build && node dist/bench/journal.js [--chunks 1048576] [--saves 300] [--json out.json]`.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { JournalPages } from '../actors/index.js';
import { createFileStateStore, type StateStore } from '../runtime/index.js';
import { createStateManager } from '../runtime/state-manager.js';
import { arg, xorshift } from './lib.js';

interface J {
  manifestId: string;
  state: string;
  verified: boolean;
  startedAt: number;
  bitmap: string;
}

/** Counts the bytes of the values each transaction carries (a Dapr actor state transaction's payload). */
function counting(inner: StateStore): StateStore & { bytes: number; transactions: number } {
  const c = {
    bytes: 0,
    transactions: 0,
    get: (k: string) => inner.get(k),
    keys: (p: string) => inner.keys(p),
    close: () => inner.close(),
    async transaction(ops: Parameters<StateStore['transaction']>[0]) {
      c.transactions++;
      for (const op of ops) c.bytes += op.key.length + (op.op === 'upsert' ? op.value.length : 0);
      await inner.transaction(ops);
    },
  };
  return c;
}

async function run(layout: 'pages' | 'inline', chunks: number, saves: number, window: number) {
  const dir = mkdtempSync(join(os.tmpdir(), 'portal-bench-journal-'));
  const file = createFileStateStore(dir);
  const store = counting(file);
  const state = createStateManager(store, 'SchedulerActor||bench||');
  const pages = new JournalPages<J>();
  const bitmap = new Uint8Array(Math.ceil(chunks / 8));
  const j: J = { manifestId: 'm', state: 'running', verified: false, startedAt: Date.now(), bitmap: '' };
  const rnd = xorshift(7);
  const save = async (full: boolean) => {
    j.bitmap = Buffer.from(bitmap).toString('base64');
    if (layout === 'pages') await pages.save(state, j, full);
    else await state.set('journal', j);
    await state.save();
  };
  await save(true);
  const t0 = performance.now();
  const perSave = Math.ceil(chunks / saves);
  let frontier = 0;
  for (let s = 0; s < saves; s++) {
    // the next perSave chunks complete, in random order within the window ahead of the frontier
    for (let k = 0; k < perSave && frontier < chunks; k++) {
      let c = frontier + (rnd() % Math.max(1, Math.min(window, chunks - frontier)));
      while (bitmap[c >> 3] & (1 << (c & 7))) c = c + 1 < chunks ? c + 1 : frontier;
      bitmap[c >> 3] |= 1 << (c & 7);
      while (frontier < chunks && bitmap[frontier >> 3] & (1 << (frontier & 7))) frontier++;
    }
    await save(false);
  }
  j.state = 'done';
  await save(true);
  const ms = performance.now() - t0;
  const st = file.stats();
  await file.close();
  rmSync(dir, { recursive: true, force: true });
  return {
    layout,
    chunks,
    saves,
    bitmapBytes: bitmap.length,
    diskBytes: st.bytesWritten,
    diskBytesPerSave: Math.round(st.bytesWritten / (saves + 2)),
    stateBytes: store.bytes,
    stateBytesPerSave: Math.round(store.bytes / (saves + 2)),
    snapshots: st.snapshots,
    logAppends: st.logAppends,
    blobs: st.blobs,
    ms: Math.round(ms),
  };
}

async function main(): Promise<void> {
  const chunks = Number(arg('chunks', String(1 << 20)));
  const saves = Number(arg('saves', '300'));
  const window = Number(arg('window', '4096'));
  const rows = [await run('pages', chunks, saves, window), await run('inline', chunks, saves, window)];
  console.table(rows);
  const out = arg('json', '');
  if (out) writeFileSync(out, JSON.stringify(rows, null, 2));
}

await main();
