import { join } from 'node:path';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { openChunkWriter, hashFile } from '../../transfer/index.js';
import { makeTempDir, randomBytes } from './fixtures.js';

let tmp: { dir: string; cleanup: () => Promise<void> };
beforeAll(async () => {
  tmp = await makeTempDir('writer');
});
afterAll(async () => {
  await tmp.cleanup();
});

describe('chunk writer', () => {
  test('chunk writer: preallocates the file and writes chunks at their offsets in any order', async () => {
    const p = join(tmp.dir, 'out.bin');
    const data = randomBytes(10_000, 9);
    const w = await openChunkWriter(p, { fileSize: data.length });
    expect((await stat(p)).size).toBe(10_000);
    await Promise.all([
      w.write(6000, data.subarray(6000)),
      w.write(0, data.subarray(0, 3000)),
      w.write(3000, data.subarray(3000, 6000)),
    ]);
    await w.sync();
    await w.close();
    expect((await readFile(p)).equals(data)).toBe(true);
    expect(await hashFile(p)).toBe(createHash('sha256').update(data).digest('hex'));
  });

  test('chunk writer: reopens an existing file without losing its bytes and resizes it', async () => {
    const p = join(tmp.dir, 'existing.bin');
    await writeFile(p, Buffer.from('abcdef'));
    const w = await openChunkWriter(p, { fileSize: 8 });
    await w.write(6, Buffer.from('gh'));
    await w.close();
    expect((await readFile(p)).toString()).toBe('abcdefgh');
  });

  test('chunk writer: rejects writes past the end and after close', async () => {
    const w = await openChunkWriter(join(tmp.dir, 'small.bin'), { fileSize: 4 });
    await expect(w.write(2, Buffer.from('abc'))).rejects.toMatchObject({ code: 'PORTAL_INVALID_ARGUMENT' });
    await w.close();
    await w.close();
    await expect(w.write(0, Buffer.from('a'))).rejects.toMatchObject({ code: 'PORTAL_TRANSFER_FAILED' });
  });

  test('chunk writer: an unopenable path gives PORTAL_TRANSFER_FAILED and hashFile of a missing file likewise', async () => {
    await expect(
      openChunkWriter(join(tmp.dir, 'no', 'such', 'dir.bin'), { fileSize: 1 }),
    ).rejects.toMatchObject({ code: 'PORTAL_TRANSFER_FAILED' });
    await expect(hashFile(join(tmp.dir, 'missing.bin'))).rejects.toMatchObject({
      code: 'PORTAL_TRANSFER_FAILED',
    });
    await expect(openChunkWriter(join(tmp.dir, 'x.bin'), { fileSize: -1 })).rejects.toThrow(/fileSize/);
  });

  test('chunk writer: with syncEveryBytes, starts an fdatasync in the background once that many bytes are written', async () => {
    const p = join(tmp.dir, 'synced.bin');
    const data = randomBytes(4096, 11);
    const w = await openChunkWriter(p, { fileSize: data.length, syncEveryBytes: 2048 });
    w.writeSync(0, data.subarray(0, 1024));
    expect(w.backgroundSyncs).toBe(0);
    w.writeSync(1024, data.subarray(1024, 2048));
    expect(w.backgroundSyncs).toBe(1);
    await w.write(2048, data.subarray(2048));
    await w.sync();
    await w.close();
    expect((await readFile(p)).equals(data)).toBe(true);
    // without the option a writer never syncs on its own
    const plain = await openChunkWriter(join(tmp.dir, 'plain.bin'), { fileSize: 4096 });
    plain.writeSync(0, data);
    expect(plain.backgroundSyncs).toBe(0);
    await plain.close();
    await expect(openChunkWriter(p, { fileSize: 1, syncEveryBytes: 0 })).rejects.toThrow(/syncEveryBytes/);
  });
});
