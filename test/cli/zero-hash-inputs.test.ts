/**
 * An all-zero sha-256 given by an input is refused, never read as "no hash known" (trial 3, H3). 64 zeros are
 * NO_CID, Portal's own marker for a chunk or file without a hash: a Metalink piece hash of zeros switched that
 * piece's check off, and with all pieces zero and no file hash another file's bytes were published with exit 0.
 * Metalinks, JSON and binary manifest files, manifests by URL and a source's Digest header are checked here;
 * `--checksum` already refused zeros. Real `portal fetch` processes against a loopback mirror, and the readers.
 */
import { createHash, randomBytes } from 'node:crypto';
import { access, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startBadMirror, type BadMirror } from '../helpers/bad-mirror.js';
import { runPortal } from '../helpers/portal-cli.js';
import {
  agreeOnSources,
  createManifest,
  encodeBinaryManifest,
  loadManifest,
  loadManifestRef,
  NO_CID,
  packManifest,
  parseManifest,
  parseMetalink,
  probedManifest,
  readBinaryManifest,
  type Manifest,
} from '../../transfer/index.js';

const SIZE = 3 * 4096 + 100;
const bytes = randomBytes(SIZE);
/** What the mirror serves: other bytes of the same size (the file the Metalink names is `bytes`). */
const other = randomBytes(SIZE);
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const ZERO = '0'.repeat(64);
let dir: string;
let mirror: BadMirror;
let good: BadMirror;
let m: Manifest;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'portal-zero-hash-'));
  mirror = await startBadMirror(other);
  good = await startBadMirror(bytes);
  await writeFile(path.join(dir, 'src.bin'), bytes);
  m = await createManifest(path.join(dir, 'src.bin'), { chunkSize: 4096 });
});
afterAll(async () => {
  await mirror.close();
  await good.close();
  await rm(dir, { recursive: true, force: true });
});

const pieceHashes = (zeroAt: (i: number) => boolean): string =>
  `<pieces length="4096" type="sha-256">${Array.from({ length: Math.ceil(SIZE / 4096) }, (_, i) =>
    zeroAt(i) ? `<hash>${ZERO}</hash>` : `<hash>${sha(bytes.subarray(i * 4096, (i + 1) * 4096))}</hash>`,
  ).join('')}</pieces>`;

/** Fetches a Metalink of `url` with `inner` (hashes, pieces): exit code, stderr and whether the output exists. */
async function fetchMetalink(
  name: string,
  inner: string,
  url: string,
): Promise<{ code: number | null; stderr: string; written: boolean }> {
  const meta = path.join(dir, `${name}.meta4`);
  await writeFile(
    meta,
    `<?xml version="1.0" encoding="UTF-8"?><metalink xmlns="urn:ietf:params:xml:ns:metalink"><file name="${name}.bin"><size>${SIZE}</size>${inner}<url>${url}</url></file></metalink>`,
  );
  const out = path.join(dir, `${name}.out`);
  const r = await runPortal(['fetch', meta, '--out', out], {
    cwd: dir,
    timeoutMs: 60_000,
    env: { PORTAL_BACKEND: 'cpu' },
  });
  const written = await access(out).then(
    () => true,
    () => false,
  );
  return { code: r.code, stderr: r.stderr, written };
}

describe('zero hashes: Metalink', () => {
  test('all piece hashes zero and no file hash, mirror serving other bytes: refused before any byte is written (was exit 0 with the other bytes)', async () => {
    const r = await fetchMetalink(
      'allzero',
      pieceHashes(() => true),
      mirror.url,
    );
    expect(r.code).toBe(2);
    expect(r.written).toBe(false);
    expect(r.stderr).toContain(
      'allzero.meta4: file allzero.bin: its sha-256 <pieces> hash 0 is all zeros, which is no real sha-256',
    );
    expect(mirror.requests).toHaveLength(0);
  }, 70_000);

  test('one zero piece beside a correct file hash is refused naming that piece (was: unchecked, "verified")', async () => {
    const r = await fetchMetalink(
      'onezero',
      `<hash type="sha-256">${sha(bytes)}</hash>${pieceHashes((i) => i === 2)}`,
      good.url,
    );
    expect(r.code).toBe(2);
    expect(r.written).toBe(false);
    expect(r.stderr).toContain('file onezero.bin: its sha-256 <pieces> hash 2 is all zeros');
  }, 70_000);

  test('a zero file <hash type="sha-256"> is refused, in any case of hex', () => {
    const ns = 'urn:ietf:params:xml:ns:metalink';
    expect(() =>
      parseMetalink(
        `<metalink xmlns="${ns}"><file name="a.bin"><hash type="sha-256">${ZERO}</hash><url>http://h/a</url></file></metalink>`,
        'z.meta4',
      ),
    ).toThrow(
      expect.objectContaining({
        code: 'PORTAL_MANIFEST_INVALID',
        message: expect.stringContaining(
          'z.meta4: file a.bin: its <hash type="sha-256"> is all zeros',
        ) as unknown,
      }),
    );
    // a real hash still parses
    const [f] = parseMetalink(
      `<metalink xmlns="${ns}"><file name="a.bin"><hash type="sha-256">${sha(bytes).toUpperCase()}</hash><url>http://h/a</url></file></metalink>`,
    );
    expect(f.sha256).toBe(sha(bytes));
  });
});

/**
 * Serves `body` as `type` on a loopback server and expects loadManifestRef of its URL to be refused with
 * PORTAL_MANIFEST_INVALID containing `message`; true once it was.
 */
async function refusedByUrl(type: string, body: Buffer | string, message: string): Promise<boolean> {
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': type });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/m`;
    await expect(loadManifestRef(url)).rejects.toMatchObject({
      code: 'PORTAL_MANIFEST_INVALID',
      message: expect.stringContaining(message) as unknown,
    });
    return true;
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}

describe('zero hashes: manifests', () => {
  test('a JSON manifest file with a zero chunk CID or a zero fileSha256 is refused naming the file and the field', async () => {
    const chunkZero = path.join(dir, 'chunk-zero.json');
    await writeFile(
      chunkZero,
      JSON.stringify({ ...m, chunks: m.chunks.map((c, i) => (i === 1 ? ZERO : c)) }),
    );
    await expect(loadManifest(chunkZero)).rejects.toMatchObject({
      code: 'PORTAL_MANIFEST_INVALID',
      message: `manifest ${chunkZero}: chunks[1] is all zeros, which is no real sha-256 (Portal reads it as "no hash known" and would check nothing)`,
    });
    const fileZero = path.join(dir, 'file-zero.json');
    await writeFile(fileZero, JSON.stringify({ ...m, fileSha256: ZERO }));
    await expect(loadManifest(fileZero)).rejects.toMatchObject({
      code: 'PORTAL_MANIFEST_INVALID',
      message: expect.stringContaining(`manifest ${fileZero}: fileSha256 is all zeros`) as unknown,
    });
    // portal fetch of that manifest file: exit 2, nothing written
    const out = path.join(dir, 'fetched.bin');
    const r = await runPortal(['fetch', chunkZero, '--edge', `${good.url}#mirror`, '--out', out], {
      cwd: dir,
      timeoutMs: 60_000,
      env: { PORTAL_BACKEND: 'cpu' },
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('chunks[1] is all zeros');
    await expect(access(out)).rejects.toThrow();
  }, 70_000);

  test('a binary manifest with a zero chunk CID is refused from a file and from a URL; its own reader may allow it', async () => {
    const packed = packManifest({ ...m, chunks: m.chunks.map((c, i) => (i === 3 ? ZERO : c)) });
    const bin = encodeBinaryManifest(packed);
    const file = path.join(dir, 'zero.pcm');
    await writeFile(file, bin);
    await expect(loadManifestRef(file)).rejects.toMatchObject({
      code: 'PORTAL_MANIFEST_INVALID',
      message: expect.stringContaining(`manifest ${file}: the CID of chunk 3 is all zeros`) as unknown,
    });
    await expect(
      refusedByUrl('application/vnd.portal.manifest', bin, 'the CID of chunk 3 is all zeros'),
    ).resolves.toBe(true);
    // an edge's own manifest of sources without hashes (Portal built it) still reads, with its NO_CID kept
    const read = await readBinaryManifest([bin], { allowUnknownHashes: true });
    expect(read.manifest.cids.isUnknown(3)).toBe(true);
    // a JSON manifest by URL is refused as well
    await expect(
      refusedByUrl('application/json', JSON.stringify({ ...m, fileSha256: ZERO }), 'fileSha256 is all zeros'),
    ).resolves.toBe(true);
  });

  test("Portal's own manifest of sources without hashes (NO_CID) still validates inline, as journals and requests hold it", () => {
    const own = probedManifest({ name: 'f.bin', size: SIZE, chunkSize: 4096, identity: 'http://h/f.bin' });
    expect(own.chunks.every((c) => c === NO_CID)).toBe(true);
    expect(parseManifest(own)).toEqual(own);
  });
});

describe('zero hashes: Digest header', () => {
  test('a source whose Digest is all zeros is excluded naming why, and gives no checksum', () => {
    const probe = (url: string, sha256?: string) => ({
      url,
      ok: true as const,
      size: 100,
      duplicates: [],
      ...(sha256 ? { sha256 } : {}),
    });
    const r = agreeOnSources([probe('http://a/f', ZERO), probe('http://b/f')]);
    expect(r.sha256).toBeUndefined();
    expect(r.agreed.map((p) => p.url)).toEqual(['http://b/f']);
    expect(r.excluded).toEqual([
      {
        url: 'http://a/f',
        why: 'its Digest header gives an all-zero sha-256, which is no real hash (Portal would check nothing)',
      },
    ]);
  });

  test('portal fetch of a mirror sending Digest: SHA-256=<zeros> beside a good one excludes it and fetches from the other', async () => {
    const liar = await startBadMirror(other, () => ({ kind: 'ok' }), {
      headers: { digest: `sha-256=${Buffer.alloc(32).toString('base64')}` },
    });
    try {
      const out = path.join(dir, 'digest.bin');
      const r = await runPortal(['fetch', liar.url, good.url, '--out', out], {
        cwd: dir,
        timeoutMs: 60_000,
        env: { PORTAL_BACKEND: 'cpu' },
      });
      expect(r.stderr).toContain('its Digest header gives an all-zero sha-256');
      expect(r.code).toBe(0);
      expect((await readFile(out)).equals(bytes)).toBe(true);
    } finally {
      await liar.close();
    }
  }, 70_000);
});
