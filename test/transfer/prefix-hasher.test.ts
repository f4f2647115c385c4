import { appendFile, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import {
  createPrefixHasher,
  INLINE_SLICE_BYTES,
  setPrefixHashThread,
  startPrefixHashThread,
} from '../../transfer/prefix-hasher.js';
import { makeTempDir, randomBytes } from './fixtures.js';

let tmp: { dir: string; cleanup: () => Promise<void> };
beforeAll(async () => {
  tmp = await makeTempDir('prefix-hash');
});
afterAll(async () => tmp.cleanup());

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe.each([
  ['on the hash thread', true],
  ['on the calling thread', false],
])('whole-file hash over the verified prefix, %s', (_, onThread) => {
  beforeAll(() => setPrefixHashThread(onThread));
  afterAll(() => setPrefixHashThread(true));

  test('a file hashed while it is written gives its sha256 and reads at the end only what was not yet hashed', async () => {
    const bytes = randomBytes(3 * 1024 * 1024 + 17, 5);
    const path = join(tmp.dir, `growing-${onThread}.bin`);
    const h = createPrefixHasher(path);
    await writeFile(path, bytes.subarray(0, 1024 * 1024));
    h.advance(1024 * 1024);
    await appendFile(path, bytes.subarray(1024 * 1024, 2 * 1024 * 1024 + 5));
    h.advance(2 * 1024 * 1024 + 5);
    h.advance(1000); // a smaller prefix never moves it back
    await appendFile(path, bytes.subarray(2 * 1024 * 1024 + 5));
    const d = await h.digest(bytes.length);
    expect(d.sha256).toBe(sha(bytes));
    expect(d.hashedBefore).toBe(2 * 1024 * 1024 + 5);
  });

  test('a prefix that cannot be read falls back to hashing the whole file as it is', async () => {
    const bytes = randomBytes(100_000, 6);
    const path = join(tmp.dir, `short-${onThread}.bin`);
    await writeFile(path, bytes);
    const h = createPrefixHasher(path);
    h.advance(200_000); // past the end: the hash thread records the error
    const d = await h.digest(bytes.length);
    expect(d.sha256).toBe(sha(bytes));
    expect(d.hashedBefore).toBe(0);
  });

  test('a missing file is named when the whole-file hash cannot read it', async () => {
    const h = createPrefixHasher(join(tmp.dir, 'absent.bin'));
    await expect(h.digest(10)).rejects.toMatchObject({
      code: 'PORTAL_TRANSFER_FAILED',
      message: expect.stringMatching(/absent\.bin/),
    });
  });
});

describe('whole-file hash on the calling thread', () => {
  beforeAll(() => setPrefixHashThread(false));
  afterAll(() => setPrefixHashThread(true));

  test('hashes the prefix in slices while the thread runs, so the digest reads only the rest', async () => {
    const bytes = randomBytes(5 * INLINE_SLICE_BYTES + 3, 7);
    const path = join(tmp.dir, 'inline-slices.bin');
    await writeFile(path, bytes);
    const h = createPrefixHasher(path);
    h.advance(4 * INLINE_SLICE_BYTES);
    // one slice per turn of the event loop: four turns move it over the 4 slices advanced
    for (let i = 0; i < 6; i++) await new Promise<void>((r) => setImmediate(r));
    const d = await h.digest(bytes.length);
    expect(d.sha256).toBe(sha(bytes));
    expect(d.hashedBefore).toBe(4 * INLINE_SLICE_BYTES);
  });

  test('a disposed hasher reads no more and its digest is refused', async () => {
    const path = join(tmp.dir, 'inline-disposed.bin');
    await writeFile(path, randomBytes(2 * INLINE_SLICE_BYTES, 8));
    const h = createPrefixHasher(path);
    h.advance(2 * INLINE_SLICE_BYTES);
    h.dispose();
    await expect(h.digest(2 * INLINE_SLICE_BYTES)).rejects.toMatchObject({ code: 'PORTAL_INVALID_ARGUMENT' });
  });
});

describe('starting the hash thread ahead of its first hasher', () => {
  afterEach(() => setPrefixHashThread(true));

  test('resolves true once the thread runs (again true when it already does); false when hashing stays on the calling thread', async () => {
    setPrefixHashThread(false);
    await expect(startPrefixHashThread()).resolves.toBe(false);
    setPrefixHashThread(true);
    await expect(startPrefixHashThread()).resolves.toBe(true);
    await expect(startPrefixHashThread()).resolves.toBe(true);
    // and the started thread hashes
    const tmp = await makeTempDir('portal-hash-start-');
    try {
      const file = join(tmp.dir, 'f.bin');
      const data = randomBytes(3 * 1024 * 1024 + 5);
      await writeFile(file, data);
      const h = createPrefixHasher(file);
      h.advance(data.length);
      const d = await h.digest(data.length);
      expect(d.sha256).toBe(createHash('sha256').update(data).digest('hex'));
    } finally {
      await tmp.cleanup();
    }
  });
});
