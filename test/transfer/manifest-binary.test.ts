import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { readFile, writeFile } from 'node:fs/promises';
import {
  BINARY_MANIFEST_HEADER_BYTES,
  BINARY_MANIFEST_MAGIC,
  BINARY_MANIFEST_MEDIA_TYPE,
  CidTable,
  binaryManifestCid,
  createManifest,
  createPackedManifest,
  decodeBinaryManifest,
  encodeBinaryManifest,
  fetchManifestByCid,
  loadBinaryManifest,
  loadManifestRef,
  packManifest,
  readBinaryManifest,
  saveBinaryManifest,
  saveManifest,
  unpackManifest,
  type Manifest,
  type PackedManifest,
} from '../../transfer/index.js';
import { PortalError } from '../../common/index.js';
import { makeTempDir, writeRandomFile, rejectionOf } from './fixtures.js';

const CHUNK = 4096;
const SIZE = 5 * CHUNK + 123;

let tmp: { dir: string; cleanup: () => Promise<void> };
let m: Manifest;
let packed: PackedManifest;
let bytes: Buffer;

beforeAll(async () => {
  tmp = await makeTempDir('manifest-bin');
  const file = await writeRandomFile(tmp.dir, 'src.bin', SIZE, 3);
  m = await createManifest(file.path, { chunkSize: CHUNK, name: 'sröc.bin' });
  packed = packManifest(m);
  bytes = encodeBinaryManifest(packed);
});
afterAll(async () => {
  await tmp.cleanup();
});

async function problem(b: Uint8Array | Uint8Array[], maxChunks?: number): Promise<PortalError> {
  const err = await rejectionOf(() =>
    readBinaryManifest(Array.isArray(b) ? b : [b], maxChunks === undefined ? {} : { maxChunks }),
  );
  expect(err).toBeInstanceOf(PortalError);
  return err as PortalError;
}

describe('binary manifest', () => {
  test('encodes to a 72-byte header, the name, then 32 bytes per chunk, and decodes to the same manifest', async () => {
    const name = Buffer.from('sröc.bin', 'utf8');
    expect(bytes.length).toBe(BINARY_MANIFEST_HEADER_BYTES + name.length + 6 * 32);
    expect(bytes.subarray(0, 8).equals(BINARY_MANIFEST_MAGIC)).toBe(true);
    expect(bytes.readUInt32BE(12)).toBe(CHUNK);
    expect(Number(bytes.readBigUInt64BE(16))).toBe(SIZE);
    expect(Number(bytes.readBigUInt64BE(24))).toBe(6);
    // the chunk hashes are the raw sha-256 of each chunk, in order
    expect(bytes.subarray(bytes.length - 32).toString('hex')).toBe(m.chunks[5]);
    const read = await decodeBinaryManifest(bytes);
    expect(unpackManifest(read.manifest)).toEqual(m);
    expect(read.cid).toBe(createHash('sha256').update(bytes).digest('hex'));
    expect(read.cid).toBe(binaryManifestCid(packed));
    expect(read.bytes).toBe(bytes.length);
  });

  test('decodes the same whatever way the stream splits its bytes (one byte at a time included)', async () => {
    const oneByOne = [...bytes].map((b) => Uint8Array.of(b));
    expect(unpackManifest((await readBinaryManifest(oneByOne)).manifest)).toEqual(m);
    const uneven = [bytes.subarray(0, 5), bytes.subarray(5, 80), bytes.subarray(80, 81), bytes.subarray(81)];
    expect((await readBinaryManifest(uneven)).cid).toBe(binaryManifestCid(packed));
  });

  test('a manifest of an empty file has no chunk hashes and round-trips', async () => {
    const empty: PackedManifest = { ...packed, fileSize: 0, cids: new CidTable(new Uint8Array(0)) };
    const b = encodeBinaryManifest(empty);
    expect(b.length).toBe(BINARY_MANIFEST_HEADER_BYTES + Buffer.byteLength(packed.name));
    expect((await decodeBinaryManifest(b)).manifest.cids.count).toBe(0);
  });

  test('save and load by file stream; createPackedManifest equals the packed JSON manifest', async () => {
    const path = join(tmp.dir, 'm.pcm');
    const cid = await saveBinaryManifest(path, packed);
    expect((await readFile(path)).equals(bytes)).toBe(true);
    const read = await loadBinaryManifest(path);
    expect(read.cid).toBe(cid);
    expect(Buffer.from(read.manifest.cids.bytes).equals(Buffer.from(packed.cids.bytes))).toBe(true);
    const direct = await createPackedManifest(join(tmp.dir, 'src.bin'), {
      chunkSize: CHUNK,
      name: 'sröc.bin',
    });
    expect(encodeBinaryManifest(direct).equals(bytes)).toBe(true);
  });

  test('a manifest that cannot be written is PORTAL_MANIFEST_INVALID naming the path, in either form', async () => {
    const nowhere = join(tmp.dir, 'no-such-dir', 'm.bin');
    for (const save of [() => saveBinaryManifest(nowhere, packed), () => saveManifest(nowhere, m)]) {
      const err = (await rejectionOf(save)) as PortalError;
      expect(err.code).toBe('PORTAL_MANIFEST_INVALID');
      expect(err.message).toMatch(/cannot write manifest to .*no-such-dir.*ENOENT/);
    }
  });

  test('bad magic is refused on the first bytes, naming the magic', async () => {
    const json = Buffer.from('{"version":1,"id":"0123456789abcdef"}');
    const err = await problem(json);
    expect(err.code).toBe('PORTAL_MANIFEST_INVALID');
    expect(err.message).toMatch(/bad magic 7b2276657273696f.*not a Portal binary manifest/);
    // a text-mode copy that turned CR LF into LF breaks the magic too
    const crlf = Buffer.concat([bytes.subarray(0, 4), bytes.subarray(5)]);
    expect((await problem(crlf)).message).toMatch(/bad magic/);
  });

  test('a truncated manifest is refused naming how many bytes and chunk hashes arrived', async () => {
    const cut = bytes.subarray(0, bytes.length - 40);
    const err = await problem(cut);
    expect(err.code).toBe('PORTAL_MANIFEST_INVALID');
    expect(err.message).toMatch(
      new RegExp(`truncated: ${cut.length} of ${bytes.length} bytes \\(4 of 6 chunk hashes\\)`),
    );
    expect((await problem(bytes.subarray(0, 30))).message).toMatch(
      /truncated: 30 bytes, the header alone needs 72/,
    );
    expect((await problem(bytes.subarray(0, 0))).message).toMatch(/truncated: 0 bytes/);
  });

  test('bytes after the last chunk hash are refused', async () => {
    const err = await problem(Buffer.concat([bytes, Buffer.alloc(1)]));
    expect(err.message).toMatch(/more bytes than its 6 chunks need/);
  });

  test('a chunk count that does not match the file size is refused naming both', async () => {
    const b = Buffer.from(bytes);
    b.writeBigUInt64BE(7n, 24);
    const err = await problem(b);
    expect(err.code).toBe('PORTAL_MANIFEST_INVALID');
    expect(err.message).toMatch(/wrong chunk count 7: a file of 20603 bytes in chunks of 4096 has 6/);
  });

  test('an unknown version, a chunk size out of range, a wrong id and a non-UTF-8 name are refused', async () => {
    const v = Buffer.from(bytes);
    v.writeUInt16BE(2, 8);
    expect((await problem(v)).message).toMatch(/version 2 is not supported/);
    const cs = Buffer.from(bytes);
    cs.writeUInt32BE(100, 12);
    expect((await problem(cs)).message).toMatch(/chunk size 100: expected 4096\.\.67108864/);
    const id = Buffer.from(bytes);
    id[32] ^= 0xff;
    expect((await problem(id)).message).toMatch(/id [0-9a-f]{16} does not match the file sha-256/);
    const name = Buffer.from(bytes);
    name[BINARY_MANIFEST_HEADER_BYTES] = 0xff;
    expect((await problem(name)).message).toMatch(/name is not UTF-8/);
  });

  test('more chunks than the limit is PORTAL_MANIFEST_TOO_LARGE before the table is allocated', async () => {
    const err = await problem(bytes.subarray(0, BINARY_MANIFEST_HEADER_BYTES), 5);
    expect(err.code).toBe('PORTAL_MANIFEST_TOO_LARGE');
    expect(err.message).toMatch(/6 chunks exceed the limit of 5/);
  });

  test('the packed table costs 32 bytes per chunk and makes hex only on demand', () => {
    expect(packed.cids.byteLength).toBe(6 * 32);
    expect(packed.cids.bytes.buffer.byteLength).toBe(6 * 32);
    expect(packed.cids.hex(2)).toBe(m.chunks[2]);
    expect(packed.cids.matches(2, Buffer.from(m.chunks[2], 'hex'))).toBe(true);
    expect(packed.cids.matches(2, Buffer.from(m.chunks[3], 'hex'))).toBe(false);
    expect(() => packed.cids.hex(6)).toThrow(expect.objectContaining({ code: 'PORTAL_UNKNOWN_CHUNK' }));
    expect(() => CidTable.fromHex(['zz'])).toThrow(/chunks\[0\]: expected 64 hex characters/);
  });
});

describe('manifest by reference, either form', () => {
  let server: Server;
  let base: string;
  beforeAll(async () => {
    const json = join(tmp.dir, 'ref.json');
    await saveManifest(json, m);
    const jsonBytes = await readFile(json);
    server = createServer((req, res) => {
      if (req.url === '/m.pcm') res.writeHead(200, { 'content-type': BINARY_MANIFEST_MEDIA_TYPE }).end(bytes);
      // binary bytes under a generic type: detected by the magic
      else if (req.url === '/m.bin')
        res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(bytes);
      else if (req.url === '/m.json')
        res.writeHead(200, { 'content-type': 'application/json' }).end(jsonBytes);
      else if (req.url === '/cut.pcm')
        res.writeHead(200, { 'content-type': BINARY_MANIFEST_MEDIA_TYPE }).end(bytes.subarray(0, 100));
      else if (req.url === `/v1/manifests/${binaryManifestCid(packed)}`) res.writeHead(200).end(bytes);
      else if (req.url?.startsWith('/v1/manifests/'))
        res.writeHead(200).end(bytes); // the wrong bytes for any other id
      else res.writeHead(404).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  afterAll(async () => {
    await new Promise((r) => server.close(r));
  });

  test('manifestUrl loads binary by content-type or magic, JSON otherwise, files by magic', async () => {
    for (const url of [`${base}/m.pcm`, `${base}/m.bin`, `${base}/m.json`]) {
      const got = await loadManifestRef(url);
      expect(unpackManifest(got)).toEqual(m);
    }
    const path = join(tmp.dir, 'ref.pcm');
    await writeFile(path, bytes);
    expect(unpackManifest(await loadManifestRef(path))).toEqual(m);
    expect(unpackManifest(await loadManifestRef(`file://${join(tmp.dir, 'ref.json')}`))).toEqual(m);
  });

  test('a truncated binary manifest by URL is PORTAL_MANIFEST_INVALID naming the URL and the cause', async () => {
    const err = (await rejectionOf(() => loadManifestRef(`${base}/cut.pcm`))) as PortalError;
    expect(err.code).toBe('PORTAL_MANIFEST_INVALID');
    expect(err.message).toMatch(/truncated: 100 of \d+ bytes .*\/cut\.pcm/);
  });

  test('by content id: bytes of another id are skipped, and every edge failure is named', async () => {
    const cid = binaryManifestCid(packed);
    expect(unpackManifest(await fetchManifestByCid(cid, ['http://127.0.0.1:1', base]))).toEqual(m);
    const other = 'ab'.repeat(32);
    const err = (await rejectionOf(() => fetchManifestByCid(other, [base]))) as PortalError;
    expect(err.code).toBe('PORTAL_MANIFEST_INVALID');
    expect(err.message).toMatch(new RegExp(`its bytes hash to ${cid}, not the requested id`));
    expect(((await rejectionOf(() => fetchManifestByCid('nope', [base]))) as PortalError).code).toBe(
      'PORTAL_INVALID_ARGUMENT',
    );
  });
});
