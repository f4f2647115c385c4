import { mkdtemp, rm, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes, createHash } from 'node:crypto';
import { createManifest, saveManifest, type Manifest } from '../../transfer/index.js';
import { decodeHaveBitmap } from '../../transfer/have-bitmap.js';
import { runPortal, type PortalRun } from '../helpers/portal-cli.js';

const CHUNK = 65536;
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

describe('portal edge: hash check of --file at start (real processes)', () => {
  let dir: string;
  let data: Buffer;
  let manifest: Manifest;
  let manifestPath: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'portal-edge-hc-'));
    data = randomBytes(4 * CHUNK);
    await writeFile(path.join(dir, 'f.bin'), data);
    manifest = await createManifest(path.join(dir, 'f.bin'), { chunkSize: CHUNK });
    manifestPath = path.join(dir, 'f.manifest.json');
    await saveManifest(manifestPath, manifest);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** Starts `portal edge --json <args>`, runs `probe` against its URL, stops it with SIGTERM. */
  const withEdge = async (args: string[], probe: (url: string) => Promise<void>): Promise<PortalRun> => {
    let failure: Error | undefined;
    const r = await runPortal(['edge', '--manifest', manifestPath, '--json', ...args], {
      timeoutMs: 60_000,
      onLine: (line, child) => {
        const { url } = JSON.parse(line) as { url: string };
        probe(url)
          .catch((err: unknown) => (failure = err instanceof Error ? err : new Error(String(err))))
          .finally(() => child.kill('SIGTERM'));
      },
    });
    if (failure) throw failure;
    return r;
  };

  test('a file of the right size but other bytes is refused at start, naming --file and the mismatch', async () => {
    const zero = path.join(dir, 'zero.bin');
    await writeFile(zero, Buffer.alloc(4 * CHUNK));
    const r = await runPortal(['edge', '--file', zero, '--manifest', manifestPath], { timeoutMs: 60_000 });
    expect(r.code).toBe(4);
    expect(r.stderr).toContain(`--file ${zero}: none of its 4 chunks matches --manifest ${manifestPath}`);
    expect(r.stderr).toContain(`chunk 0 hashes to ${sha(Buffer.alloc(CHUNK))}`);
    expect(r.stderr).toContain('[PORTAL_MANIFEST_MISMATCH]');
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  test('a partly filled --accept file advertises and serves only its verified chunks; the rest are 404 until PUT', async () => {
    const part = path.join(dir, 'part.bin');
    const bytes = Buffer.from(data);
    bytes.fill(0, 2 * CHUNK, 3 * CHUNK); // chunk 2 never arrived: zeros, as in a sparse file
    await writeFile(part, bytes);
    const r = await withEdge(['--file', part, '--accept'], async (url) => {
      const have = (await (await fetch(`${url}/v1/have/${manifest.id}`)).json()) as { bitmap: string };
      expect(decodeHaveBitmap(have.bitmap, 4)).toEqual([0, 1, 3]);
      const missing = await fetch(`${url}/v1/chunks/${manifest.chunks[2]}`);
      expect(missing.status).toBe(404);
      await missing.arrayBuffer();
      const ok = await fetch(`${url}/v1/chunks/${manifest.chunks[1]}`);
      expect(ok.status).toBe(200);
      expect(sha(new Uint8Array(await ok.arrayBuffer()))).toBe(manifest.chunks[1]);
      const put = await fetch(`${url}/v1/chunks/${manifest.chunks[2]}`, {
        method: 'PUT',
        body: data.subarray(2 * CHUNK, 3 * CHUNK),
      });
      expect(put.status).toBe(201);
      const now = await fetch(`${url}/v1/chunks/${manifest.chunks[2]}`);
      expect(sha(new Uint8Array(await now.arrayBuffer()))).toBe(manifest.chunks[2]);
    });
    expect(r.stderr).toContain(
      `--file ${part}: 3 of 4 chunks match --manifest ${manifestPath}; serving only those`,
    );
    expect(await readFile(part)).toEqual(data);
  });

  test('a wrong-size --file and a missing one are named by their flag', async () => {
    const big = path.join(dir, 'big.bin');
    await writeFile(big, Buffer.alloc(5 * CHUNK));
    const wrong = await runPortal(['edge', '--file', big, '--manifest', manifestPath], { timeoutMs: 60_000 });
    expect(wrong.code).toBe(4);
    expect(wrong.stderr).toContain(
      `--file ${big} has ${5 * CHUNK} bytes; --manifest ${manifestPath} (${manifest.id}) says ${4 * CHUNK}`,
    );
    const none = path.join(dir, 'nonexist.bin');
    const missing = await runPortal(['edge', '--file', none, '--manifest', manifestPath], {
      timeoutMs: 60_000,
    });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain(`--file ${none}: cannot open it (no such file)`);
    for (const r of [wrong, missing]) expect(r.stderr).not.toMatch(/opts\.source|\n\s+at /);
  });
});
