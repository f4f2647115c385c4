/**
 * Group commit of the file state store (runtime/file-state-store-wal.ts): concurrent transactions share one
 * fdatasync of the shared commit log; a commit log left by a crash is replayed into the actors' files, a torn last
 * line is ignored, an actor whose first snapshot was lost is rebuilt from its records; full segments are
 * checkpointed and removed. Real files in a temporary folder, read back by fresh stores.
 */
import { createHash } from 'node:crypto';
import { appendFile, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createFileStateStore, WRITE_BACK_CONCURRENCY } from '../../runtime/file-state-store.js';

const key = (k: string, actor = 't1') => `SchedulerActor||${actor}||${k}`;
const walFiles = async (dir: string) => (await readdir(dir)).filter((f) => /^wal-\d+\.log$/.test(f));
const walLine = (prefix: string, ops: unknown[], first: boolean): string => {
  const json = JSON.stringify([prefix, ops, first]);
  return `${createHash('sha256').update(json).digest('hex')} ${json}\n`;
};

describe('file state store: group commit', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'portal-wal-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('300 concurrent transactions on 300 actors share a few fdatasyncs, and all read back after a reopen', async () => {
    const store = createFileStateStore(dir, { groupCommit: true });
    await store.transaction([{ op: 'upsert', key: key('warm', 'w'), value: '1' }]);
    const before = store.stats().commitLog!.commits;
    await Promise.all(
      Array.from({ length: 300 }, (_, i) =>
        store.transaction([
          { op: 'upsert', key: key('request', `a${i}`), value: `r${i}` },
          { op: 'upsert', key: key('journal', `a${i}`), value: `j${i}` },
        ]),
      ),
    );
    const st = store.stats().commitLog!;
    // one commit while the first runs, then the rest together: far fewer than one per transaction
    expect(st.commits - before).toBeLessThanOrEqual(30);
    expect(st.records).toBe(301);
    await store.close();
    expect(await walFiles(dir)).toEqual([]); // close checkpoints and removes the log
    const again = createFileStateStore(dir);
    for (const i of [0, 150, 299]) {
      expect(await again.get(key('request', `a${i}`))).toBe(`r${i}`);
      expect(await again.get(key('journal', `a${i}`))).toBe(`j${i}`);
    }
  });

  test('a commit log left by a crash is replayed over the actor files; a torn last line is ignored', async () => {
    const store = createFileStateStore(dir, { groupCommit: true });
    await store.transaction([
      { op: 'upsert', key: key('n'), value: '1' },
      { op: 'upsert', key: key('gone'), value: 'x' },
    ]);
    await store.close();
    // what a crash after the commit and before the actor's files were written leaves: records only in the log
    const prefix = 'SchedulerActor||t1||';
    await writeFile(
      path.join(dir, 'wal-000000000007.log'),
      walLine(prefix, [['u', 'n', '2']], false) + walLine(prefix, [['d', 'gone']], false),
    );
    await appendFile(
      path.join(dir, 'wal-000000000007.log'),
      walLine(prefix, [['u', 'n', '3']], false).slice(0, 50),
    );
    const again = createFileStateStore(dir, { groupCommit: true });
    expect(await again.get(key('n'))).toBe('2');
    expect(await again.get(key('gone'))).toBeUndefined();
    expect(await walFiles(dir)).toEqual([]); // replayed into a durable snapshot, then removed
    await again.transaction([{ op: 'upsert', key: key('n'), value: '4' }]);
    expect(await walFiles(dir)).toEqual(['wal-000000000008.log']); // the sequence goes on after the replayed one
    await again.close();
    expect(await createFileStateStore(dir).get(key('n'))).toBe('4');
  });

  test('an actor whose first snapshot was lost or cut is rebuilt from its records in the log', async () => {
    const prefix = 'SchedulerActor||fresh||';
    const store = createFileStateStore(dir, { groupCommit: true });
    await store.transaction([{ op: 'upsert', key: key('a', 'fresh'), value: '1' }]);
    await store.transaction([{ op: 'upsert', key: key('b', 'fresh'), value: '2' }]);
    await store.close(); // the checkpoint writes the snapshot back
    // simulate a crash in the checkpoint: the log stays, the snapshot's rename reached the disk but not its bytes
    const snapshot = (await readdir(dir)).find((f) => f.endsWith('.json'))!;
    await writeFile(path.join(dir, snapshot), '{"v":1,"act');
    await writeFile(
      path.join(dir, 'wal-000000000001.log'),
      walLine(prefix, [['u', 'a', '1']], true) + walLine(prefix, [['u', 'b', '2']], false),
    );
    const again = createFileStateStore(dir);
    expect(await again.get(key('a', 'fresh'))).toBe('1');
    expect(await again.get(key('b', 'fresh'))).toBe('2');
  });

  test('a committed transaction writes no actor file: each actor is written back once, at the checkpoint', async () => {
    const store = createFileStateStore(dir, { groupCommit: true, maxCachedActors: 2 });
    for (let i = 0; i < 50; i++)
      await store.transaction([{ op: 'upsert', key: key('n', `a${i % 10}`), value: String(i) }]);
    await store.transaction([{ op: 'upsert', key: key('gone', 'd'), value: 'x' }]);
    await store.transaction([{ op: 'delete', key: key('gone', 'd') }]);
    // only the commit log is on disk; the state is read from memory, none of it evicted (cache of 2 actors)
    expect((await readdir(dir)).sort()).toEqual(['wal-000000000001.log']);
    expect(store.stats()).toMatchObject({ snapshots: 0, logAppends: 0, unwrittenActors: 11 });
    for (let a = 0; a < 10; a++) expect(await store.get(key('n', `a${a}`))).toBe(String(40 + a));
    expect(await store.get(key('gone', 'd'))).toBeUndefined();
    expect((await store.keys('SchedulerActor||')).length).toBe(10);
    await store.close();
    // one snapshot per actor that holds keys; the emptied one leaves no file
    expect(store.stats()).toMatchObject({ snapshots: 10, unwrittenActors: 0 });
    expect((await readdir(dir)).filter((f) => f.endsWith('.json'))).toHaveLength(10);
    const again = createFileStateStore(dir);
    expect(await again.get(key('n', 'a7'))).toBe('47');
    expect(await again.get(key('gone', 'd'))).toBeUndefined();
  });

  test('a read of an actor without files looks for none; one with a snapshot reads it', async () => {
    const store = createFileStateStore(dir, { groupCommit: true });
    await store.transaction([{ op: 'upsert', key: key('n', 'old'), value: '1' }]);
    await store.close();
    const again = createFileStateStore(dir, { groupCommit: true });
    for (let i = 0; i < 20; i++) expect(await again.get(key('request', `new${i}`))).toBeUndefined();
    expect(again.stats().snapshotReads).toBe(0);
    expect(await again.get(key('n', 'old'))).toBe('1');
    expect(again.stats().snapshotReads).toBe(1);
  });

  test('a cut snapshot of an actor the log did not create stays an error naming the file', async () => {
    const store = createFileStateStore(dir, { groupCommit: true });
    await store.transaction([{ op: 'upsert', key: key('a'), value: '1' }]);
    await store.close();
    const snapshot = (await readdir(dir)).find((f) => f.endsWith('.json'))!;
    await writeFile(path.join(dir, snapshot), '{"v":1,"act');
    await writeFile(
      path.join(dir, 'wal-000000000002.log'),
      walLine('SchedulerActor||t1||', [['u', 'a', '2']], false),
    );
    await expect(createFileStateStore(dir).get(key('a'))).rejects.toMatchObject({
      code: 'PORTAL_STATE_CORRUPT',
      message: expect.stringContaining(snapshot),
    });
  });

  test('full segments are checkpointed and removed while the store runs', async () => {
    const store = createFileStateStore(dir, { groupCommit: true, commitLogSegmentBytes: 4096 });
    for (let i = 0; i < 200; i++)
      await store.transaction([
        { op: 'upsert', key: key('n', `a${i % 7}`), value: `${i}-${'x'.repeat(100)}` },
      ]);
    await new Promise((r) => setTimeout(r, 200)); // checkpoints run in the background
    const st = store.stats().commitLog!;
    expect(st.checkpoints).toBeGreaterThan(3);
    expect((await walFiles(dir)).length).toBeLessThanOrEqual(2);
    await store.close();
    const again = createFileStateStore(dir);
    expect(await again.get(key('n', 'a3'))).toBe(`199-${'x'.repeat(100)}`); // 199 % 7 === 3: its last write
  });

  test('recovery writes back the actors of a crashed log several at a time; one that cannot be written keeps the log for the next open', async () => {
    expect(WRITE_BACK_CONCURRENCY).toBeGreaterThan(1);
    // what a crash leaves after 200 first transactions: records only in the log, no actor file
    const actors = Array.from({ length: 200 }, (_, i) => `r${i}`);
    await writeFile(
      path.join(dir, 'wal-000000000003.log'),
      actors.map((a) => walLine(`SchedulerActor||${a}||`, [['u', 'n', `v-${a}`]], true)).join(''),
    );
    // a folder planted where one actor's snapshot goes: its write-back fails (rename onto a non-empty folder)
    const stem = `a-${Buffer.from('SchedulerActor||r117||', 'utf8').toString('base64url')}`;
    await mkdir(path.join(dir, `${stem}.json`, 'planted'), { recursive: true });
    await expect(createFileStateStore(dir).get(key('n', 'r0'))).rejects.toThrow(`${stem}.json`);
    expect(await walFiles(dir)).toEqual(['wal-000000000003.log']); // nothing replayed is lost
    await rm(path.join(dir, `${stem}.json`), { recursive: true });
    const again = createFileStateStore(dir, { groupCommit: true });
    for (const a of actors) expect(await again.get(key('n', a))).toBe(`v-${a}`);
    expect(await walFiles(dir)).toEqual([]);
    expect((await readdir(dir)).filter((f) => f.endsWith('.json'))).toHaveLength(200);
    await again.close();
  });

  test('a checkpoint of many actors writes each back once; all read back after a reopen', async () => {
    const store = createFileStateStore(dir, { groupCommit: true, commitLogSegmentBytes: 64 * 1024 });
    for (let i = 0; i < 600; i++)
      await store.transaction([{ op: 'upsert', key: key('n', `c${i % 300}`), value: `${i}` }]);
    await store.close();
    expect(store.stats().commitLog!.checkpoints).toBeGreaterThan(1);
    expect((await readdir(dir)).filter((f) => f.endsWith('.json'))).toHaveLength(300);
    const again = createFileStateStore(dir);
    for (let a = 0; a < 300; a++) expect(await again.get(key('n', `c${a}`))).toBe(`${300 + a}`);
  });
});
