/**
 * Journal writes proportional to the change: a large value (a transfer's manifest) is stored once in a
 * content-addressed blob, and the frequent small updates (the journal's bitmap) rewrite only the small actor file.
 * Real files in a temporary folder, read back by a fresh store.
 */
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { BLOB_MIN_BYTES, createFileStateStore } from '../../runtime/file-state-store.js';

describe('file state store: large values are written once', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'portal-blobs-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('100 journal updates after a 4 MB request write small records and leave the request blob untouched', async () => {
    const store = createFileStateStore(dir);
    const request = JSON.stringify({ manifest: 'x'.repeat(4 * 1024 * 1024) });
    const key = (k: string) => `SchedulerActor||t1||${k}`;
    await store.transaction([
      { op: 'upsert', key: key('request'), value: request },
      { op: 'upsert', key: key('journal'), value: JSON.stringify({ n: 0 }) },
    ]);
    const blobs = (await readdir(dir)).filter((f) => f.endsWith('.blob'));
    expect(blobs).toHaveLength(1);
    const blob = await stat(path.join(dir, blobs[0]));
    for (let n = 1; n <= 100; n++)
      await store.transaction([{ op: 'upsert', key: key('journal'), value: JSON.stringify({ n }) }]);
    const after = await stat(path.join(dir, blobs[0]));
    expect([after.ino, after.mtimeMs]).toEqual([blob.ino, blob.mtimeMs]);
    const actorFiles = (await readdir(dir)).filter((f) => f.endsWith('.json'));
    expect(actorFiles).toHaveLength(1);
    expect((await stat(path.join(dir, actorFiles[0]))).size).toBeLessThan(1024);
    await store.close();

    const again = createFileStateStore(dir);
    expect(await again.get(key('request'))).toBe(request);
    expect(await again.get(key('journal'))).toBe(JSON.stringify({ n: 100 }));
    // a changed large value gets a new blob; the old one goes once no snapshot or log names it (compaction)
    const request2 = JSON.stringify({ manifest: 'y'.repeat(BLOB_MIN_BYTES) });
    await again.transaction([{ op: 'upsert', key: key('request'), value: request2 }]);
    expect((await readdir(dir)).filter((f) => f.endsWith('.blob'))).toHaveLength(2);
    const snapshots = again.stats().snapshots;
    for (let n = 0; again.stats().snapshots === snapshots; n++)
      await again.transaction([
        { op: 'upsert', key: key('journal'), value: JSON.stringify({ n, pad: 'p'.repeat(1000) }) },
      ]);
    const blobs2 = (await readdir(dir)).filter((f) => f.endsWith('.blob'));
    expect(blobs2).toHaveLength(1);
    expect(blobs2[0]).not.toBe(blobs[0]);
    expect(await again.get(key('request'))).toBe(request2);
    await again.close();
  });
});
