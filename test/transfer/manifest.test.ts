import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { link, lstat, readFile, readdir, symlink, writeFile } from 'node:fs/promises';
import {
  cidOf,
  verifyChunk,
  createManifest,
  saveManifest,
  loadManifest,
  parseManifest,
  manifestId,
  chunkCount,
  chunkRange,
  type Manifest,
} from '../../transfer/index.js';
import { PortalError } from '../../common/index.js';
import { makeTempDir, writeRandomFile, rejectionOf } from './fixtures.js';

const CHUNK = 4096;
const SIZE = 3 * CHUNK + 1000; // odd last chunk

let tmp: { dir: string; cleanup: () => Promise<void> };
let file: { path: string; bytes: Buffer };
let m: Manifest;

beforeAll(async () => {
  tmp = await makeTempDir('manifest');
  file = await writeRandomFile(tmp.dir, 'src.bin', SIZE, 7);
  m = await createManifest(file.path, { chunkSize: CHUNK });
});
afterAll(async () => {
  await tmp.cleanup();
});

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

function expectInvalid(value: unknown, field: string, code = 'PORTAL_MANIFEST_INVALID'): void {
  let err: unknown;
  try {
    parseManifest(value);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(PortalError);
  expect((err as PortalError).code).toBe(code);
  expect((err as PortalError).message).toContain(field);
}

describe('cid', () => {
  test('cid: is the sha256 hex of the bytes and verifyChunk accepts a match', () => {
    const b = Buffer.from('hello');
    expect(cidOf(b)).toBe(sha(b));
    expect(() => verifyChunk(b, sha(b))).not.toThrow();
  });

  test('cid: verifyChunk rejects altered bytes with PORTAL_CHUNK_CORRUPT', () => {
    const b = Buffer.from('hello');
    expect(() => verifyChunk(Buffer.from('hellp'), sha(b))).toThrow(
      expect.objectContaining({ code: 'PORTAL_CHUNK_CORRUPT' }),
    );
    expect(() => verifyChunk(b, 'nothex')).toThrow(
      expect.objectContaining({ code: 'PORTAL_INVALID_ARGUMENT' }),
    );
  });
});

describe('manifest', () => {
  test('manifest: creation lists one CID per chunk with a shorter last chunk', () => {
    expect(m.version).toBe(1);
    expect(m.fileSize).toBe(SIZE);
    expect(m.chunkSize).toBe(CHUNK);
    expect(m.name).toBe('src.bin');
    expect(m.fileSha256).toBe(sha(file.bytes));
    expect(m.id).toBe(sha(Buffer.from(`${m.fileSha256}:${CHUNK}`)).slice(0, 16));
    expect(m.id).toBe(manifestId(m.fileSha256, CHUNK));
    expect(chunkCount(m)).toBe(4);
    for (let i = 0; i < 4; i++) {
      const { offset, length } = chunkRange(m, i);
      expect(m.chunks[i]).toBe(sha(file.bytes.subarray(offset, offset + length)));
    }
    expect(chunkRange(m, 3)).toEqual({ offset: 3 * CHUNK, length: 1000 });
    expect(chunkRange(m, 0)).toEqual({ offset: 0, length: CHUNK });
  });

  test('manifest: chunkRange rejects an index outside the manifest', () => {
    expect(() => chunkRange(m, 4)).toThrow(expect.objectContaining({ code: 'PORTAL_UNKNOWN_CHUNK' }));
    expect(() => chunkRange(m, -1)).toThrow(/index/);
  });

  test('manifest: creation reports progress up to the file size', async () => {
    const seen: Array<[number, number]> = [];
    await createManifest(file.path, { chunkSize: CHUNK, onProgress: (d, t) => seen.push([d, t]) });
    expect(seen.length).toBeGreaterThan(0);
    expect(seen[seen.length - 1]).toEqual([SIZE, SIZE]);
    for (let i = 1; i < seen.length; i++) expect(seen[i][0]).toBeGreaterThanOrEqual(seen[i - 1][0]);
  });

  test('manifest: creation rejects a chunk size out of range naming the option', async () => {
    const err = await rejectionOf(() => createManifest(file.path, { chunkSize: 1000 }));
    expect(err).toMatchObject({ code: 'PORTAL_INVALID_ARGUMENT' });
    expect((err as Error).message).toContain('chunkSize');
  });

  test('manifest: save then load round-trips the same manifest', async () => {
    const p = join(tmp.dir, 'm.json');
    await saveManifest(p, m);
    const back = await loadManifest(p);
    expect(back).toEqual(m);
  });

  test('manifest: an empty file has no chunks and round-trips', async () => {
    const empty = await writeRandomFile(tmp.dir, 'empty.bin', 0);
    const e = await createManifest(empty.path, { chunkSize: CHUNK });
    expect(e.chunks).toEqual([]);
    const p = join(tmp.dir, 'empty.json');
    await saveManifest(p, e);
    expect(await loadManifest(p)).toEqual(e);
  });

  test('manifest: parse rejects each bad field with PORTAL_MANIFEST_INVALID naming it', () => {
    const base = { ...m, chunks: [...m.chunks] } as Record<string, unknown>;
    expectInvalid(null, 'manifest');
    expectInvalid([], 'manifest');
    expectInvalid({ ...base, version: 2 }, 'version');
    expectInvalid({ ...base, name: 5 }, 'name');
    expectInvalid({ ...base, fileSize: -1 }, 'fileSize');
    expectInvalid({ ...base, fileSize: '100' }, 'fileSize');
    expectInvalid({ ...base, fileSize: 1.5 }, 'fileSize');
    expectInvalid({ ...base, chunkSize: 1024 }, 'chunkSize');
    expectInvalid({ ...base, chunkSize: 128 * 1024 * 1024 }, 'chunkSize');
    expectInvalid({ ...base, chunkSize: 'big' }, 'chunkSize');
    expectInvalid({ ...base, fileSha256: 'zz' }, 'fileSha256');
    expectInvalid({ ...base, id: 'abc' }, 'id');
    expectInvalid({ ...base, id: '0123456789abcdef' }, 'id');
    expectInvalid({ ...base, chunks: 'x' }, 'chunks');
    expectInvalid({ ...base, chunks: m.chunks.slice(1) }, 'chunks');
    expectInvalid({ ...base, chunks: [...m.chunks.slice(0, 2), 'g'.repeat(64), m.chunks[3]] }, 'chunks[2]');
    expectInvalid({ ...base, chunks: [...m.chunks.slice(0, 3), 42] }, 'chunks[3]');
    expectInvalid('{not json', 'JSON');
  });

  test('manifest: parse accepts JSON text and uppercase hex, normalizing to lowercase', () => {
    const upper = {
      ...m,
      fileSha256: m.fileSha256.toUpperCase(),
      chunks: m.chunks.map((c) => c.toUpperCase()),
    };
    expect(parseManifest(JSON.stringify(upper))).toEqual(m);
  });

  test('manifest: too many chunks gives PORTAL_MANIFEST_TOO_LARGE on parse and create', async () => {
    expect(() => parseManifest(m, { maxChunks: 3 })).toThrow(
      expect.objectContaining({ code: 'PORTAL_MANIFEST_TOO_LARGE' }),
    );
    const err = await rejectionOf(() =>
      createManifest(file.path, { chunkSize: CHUNK, limits: { maxChunks: 2 } }),
    );
    expect(err).toMatchObject({ code: 'PORTAL_MANIFEST_TOO_LARGE' });
    expect((err as Error).message).toContain('maxChunks');
  });

  test('manifest: loading JSON over the byte limit gives PORTAL_MANIFEST_TOO_LARGE before parsing', async () => {
    const p = join(tmp.dir, 'big.json');
    await writeFile(p, 'x'.repeat(2000));
    const err = await rejectionOf(() => loadManifest(p, { maxJsonBytes: 1000 }));
    expect(err).toMatchObject({ code: 'PORTAL_MANIFEST_TOO_LARGE' });
    expect((err as Error).message).toContain('maxJsonBytes');
  });

  test('manifest: loading a missing or non-JSON file gives PORTAL_MANIFEST_INVALID', async () => {
    await expect(loadManifest(join(tmp.dir, 'nope.json'))).rejects.toMatchObject({
      code: 'PORTAL_MANIFEST_INVALID',
    });
    const p = join(tmp.dir, 'bad.json');
    await writeFile(p, '{"version":');
    await expect(loadManifest(p)).rejects.toMatchObject({ code: 'PORTAL_MANIFEST_INVALID' });
  });
});

test('saveManifest replaces a symbolic or hard link planted at its path, never writing through it', async () => {
  const victim = join(tmp.dir, 'victim-manifest.txt');
  await writeFile(victim, 'KEEP');
  const viaSymlink = join(tmp.dir, 'm-symlink.json');
  const viaHardLink = join(tmp.dir, 'm-hardlink.json');
  await symlink(victim, viaSymlink);
  await link(victim, viaHardLink);
  for (const out of [viaSymlink, viaHardLink]) {
    await saveManifest(out, m);
    const st = await lstat(out);
    expect({ out, file: st.isFile(), nlink: st.nlink }).toEqual({ out, file: true, nlink: 1 });
    expect(await loadManifest(out)).toEqual(m);
  }
  expect(await readFile(victim, 'utf8')).toBe('KEEP');
  // no temporary file is left beside it
  expect((await readdir(tmp.dir)).filter((f) => f.includes('.tmp-'))).toEqual([]);
});
