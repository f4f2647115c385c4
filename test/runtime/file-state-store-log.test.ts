/**
 * The file state store's log: a transaction writes what it changes (one appended record), compaction keeps the
 * amortized cost proportional, a record cut by a crash is ignored and cut off, and only a bounded number of
 * actors stays in memory. Real files in a temporary folder, read back by fresh stores.
 */
import { appendFile, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { LOG_MIN_BYTES, createFileStateStore } from '../../runtime/file-state-store.js';

const key = (k: string, actor = 't1') => `SchedulerActor||${actor}||${k}`;

describe('file state store: log', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'portal-log-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** A store whose key `n` was set to 0, then 1 (a snapshot and one log record); the log's path. */
  const twoRecords = async (): Promise<string> => {
    const store = createFileStateStore(dir);
    await store.transaction([{ op: 'upsert', key: key('n'), value: '0' }]);
    await store.transaction([{ op: 'upsert', key: key('n'), value: '1' }]);
    await store.close();
    return path.join(
      dir,
      (await readdir(dir)).find((f) => f.endsWith('.log'))!,
    );
  };

  test('log: 500 one-page changes of a 128-page state write about one page each, not the state', async () => {
    const store = createFileStateStore(dir);
    const page = (i: number, v: number) => JSON.stringify(`${i}:${v}:`.padEnd(1400, 'A'));
    const pages = 128;
    await store.transaction(
      Array.from({ length: pages }, (_, i) => ({
        op: 'upsert' as const,
        key: key(`p${i}`),
        value: page(i, 0),
      })),
    );
    const stateBytes = store.stats().bytesWritten;
    expect(stateBytes).toBeGreaterThan(pages * 1400);
    const saves = 500;
    for (let s = 1; s <= saves; s++)
      await store.transaction([{ op: 'upsert', key: key(`p${s % pages}`), value: page(s % pages, s) }]);
    const st = store.stats();
    const perSave = (st.bytesWritten - stateBytes) / saves;
    // one record (~1.5 KB) plus its share of the compactions (a ~180 KB snapshot per ~2 × 180 KB of log)
    expect(perSave).toBeLessThan(3 * 1500);
    expect(perSave).toBeLessThan(stateBytes / 40);
    expect(st.snapshots).toBeGreaterThan(1); // the log was compacted, and kept bounded
    const logFile = (await readdir(dir)).find((f) => f.endsWith('.log'));
    if (logFile)
      expect((await stat(path.join(dir, logFile))).size).toBeLessThanOrEqual(
        Math.max(LOG_MIN_BYTES, 2 * stateBytes),
      );
    await store.close();

    const again = createFileStateStore(dir);
    for (let i = 0; i < pages; i++) {
      const last = saves - ((saves - i) % pages);
      expect(await again.get(key(`p${i}`))).toBe(page(i, last <= 0 ? 0 : last));
    }
  });

  test('log: a record cut by a crash is ignored, and cut off before the next append', async () => {
    const logFile = await twoRecords();
    const size = (await stat(logFile)).size;
    await appendFile(logFile, '0123456789abcdef torn [["u","n","2"');
    const reopened = createFileStateStore(dir);
    expect(await reopened.get(key('n'))).toBe('1');
    await reopened.transaction([{ op: 'upsert', key: key('n'), value: '3' }]);
    await reopened.transaction([{ op: 'upsert', key: key('m'), value: '4' }]);
    await reopened.close();
    expect((await stat(logFile)).size).toBeGreaterThan(size);
    const third = createFileStateStore(dir);
    expect(await third.get(key('n'))).toBe('3');
    expect(await third.get(key('m'))).toBe('4');
  });

  test('log: a record whose hash does not match ends the log', async () => {
    const logFile = await twoRecords();
    await appendFile(logFile, `${'0'.repeat(64)} [["u","n","2"]]\n`);
    expect(await createFileStateStore(dir).get(key('n'))).toBe('1');
  });

  test('log: a log left without its snapshot is ignored and removed by the next first write', async () => {
    const store = createFileStateStore(dir);
    await store.transaction([{ op: 'upsert', key: key('a'), value: '1' }]);
    await store.transaction([{ op: 'upsert', key: key('b'), value: '2' }]);
    await store.close();
    const names = await readdir(dir);
    // a removal cut short after the snapshot went and before the log did
    await rm(
      path.join(
        dir,
        names.find((f) => f.endsWith('.json'))!,
      ),
    );
    const reopened = createFileStateStore(dir);
    expect(await reopened.get(key('b'))).toBeUndefined();
    expect(await reopened.keys('')).toEqual([]);
    await reopened.transaction([{ op: 'upsert', key: key('c'), value: '3' }]);
    await reopened.transaction([{ op: 'upsert', key: key('d'), value: '4' }]);
    const third = createFileStateStore(dir);
    expect((await third.keys(key(''))).sort()).toEqual([key('c'), key('d')]);
  });

  test('log: an actor whose keys are all deleted leaves no file, and reading unknown actors creates none', async () => {
    const store = createFileStateStore(dir);
    for (let i = 0; i < 200; i++) expect(await store.get(key('journal', `unknown-${i}`))).toBeUndefined();
    expect(await readdir(dir)).toEqual([]);
    expect(store.stats().cachedActors).toBe(0);
    await store.transaction([{ op: 'upsert', key: key('a'), value: '1' }]);
    await store.transaction([{ op: 'upsert', key: key('big'), value: JSON.stringify('x'.repeat(100_000)) }]);
    await store.transaction([
      { op: 'delete', key: key('a') },
      { op: 'delete', key: key('big') },
    ]);
    expect(await readdir(dir)).toEqual([]);
  });

  test('log: an actor a read found without files is read again once written, even if a write began during that read and it left the cache', async () => {
    const store = createFileStateStore(dir, { maxCachedActors: 1 });
    expect(await store.get(key('n', 'new'))).toBeUndefined(); // remembered as having no files
    await store.transaction([{ op: 'upsert', key: key('n', 'new'), value: '1' }]);
    await store.transaction([{ op: 'upsert', key: key('n', 'other'), value: '2' }]); // evicts 'new'
    expect(await store.get(key('n', 'new'))).toBe('1');
    // a write that begins while a read finds no files
    const read = store.get(key('n', 'racer'));
    const write = store.transaction([{ op: 'upsert', key: key('n', 'racer'), value: '3' }]);
    await Promise.all([read, write]);
    await store.transaction([{ op: 'upsert', key: key('n', 'other'), value: '4' }]); // evicts 'racer'
    expect(await store.get(key('n', 'racer'))).toBe('3');
    expect(await readdir(dir)).not.toHaveLength(0);
  });

  test('log: keeps at most maxCachedActors actors in memory and reads the others back from disk', async () => {
    const store = createFileStateStore(dir, { maxCachedActors: 10 });
    for (let i = 0; i < 100; i++)
      await store.transaction([{ op: 'upsert', key: key('n', `a${i}`), value: String(i) }]);
    expect(store.stats().cachedActors).toBeLessThanOrEqual(10);
    for (let i = 0; i < 100; i++) expect(await store.get(key('n', `a${i}`))).toBe(String(i));
    expect(store.stats().cachedActors).toBeLessThanOrEqual(10);
    await store.transaction([{ op: 'upsert', key: key('n', 'a0'), value: '"again"' }]);
    expect(await createFileStateStore(dir).get(key('n', 'a0'))).toBe('"again"');
    expect((await createFileStateStore(dir).keys('')).length).toBe(100);
    expect(() => createFileStateStore(dir, { maxCachedActors: 0 })).toThrow(/maxCachedActors/);
  });

  test('log: 300 updates of one key compact several times and read back as the last one', async () => {
    await writeFile(path.join(dir, 'unrelated.txt'), 'x');
    const store = createFileStateStore(dir);
    for (let i = 0; i < 300; i++)
      await store.transaction([
        { op: 'upsert', key: key('n'), value: JSON.stringify({ i, pad: 'p'.repeat(500) }) },
      ]);
    expect(store.stats().snapshots).toBeGreaterThan(1);
    await store.close();
    expect(JSON.parse((await createFileStateStore(dir).get(key('n')))!)).toMatchObject({ i: 299 });
  });
});
