import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { createManifest, saveManifest } from '../../transfer/index.js';
import { runPortal } from '../helpers/portal-cli.js';

// A trial's --edges-file mistakes were reported without the file, the entry or the real field: a short `holds` as
// "bitmap: expected at least 32 bits", a bad `holds` beside a missing maxParallel as "maxParallel: expected an
// integer ≥ 0", a file: URL as "url: expected an http(s) URL". Each problem now names all three, every one at once.

describe('fetch --edges-file: a wrong entry is refused naming the file, the entry and the field', () => {
  let dir: string;
  let manifestPath: string;
  let file: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'portal-edges-file-'));
    await writeFile(path.join(dir, 'f.bin'), randomBytes(10 * 65536));
    manifestPath = path.join(dir, 'f.manifest.json');
    // 10 chunks
    await saveManifest(manifestPath, await createManifest(path.join(dir, 'f.bin'), { chunkSize: 65536 }));
    file = path.join(dir, 'ef.json');
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const fetchWith = async (edges: unknown): Promise<{ code: number | null; stderr: string }> => {
    await writeFile(file, JSON.stringify(edges));
    const r = await runPortal(
      ['fetch', manifestPath, '--edges-file', file, '--out', path.join(dir, 'o.bin')],
      {
        timeoutMs: 30_000,
      },
    );
    // nothing was written beside the sources
    expect((await readdir(dir)).sort()).toEqual(['ef.json', 'f.bin', 'f.manifest.json']);
    return { code: r.code, stderr: r.stderr };
  };
  const config = { url: 'http://127.0.0.1:9', kind: 'portal', flags: 0, maxParallel: 4 };

  test('every problem of every entry, one line each: missing fields, a holds that is not base64, a file: URL, an unknown field', async () => {
    const r = await fetchWith([
      { id: 'a', config: { url: 'http://127.0.0.1:9', kind: 'portal' }, holds: '!!!' },
      { id: 'b', config: { url: 'file:///etc/passwd', kind: 'mirror', flags: 0, maxParallel: 1 } },
      // an upper-case scheme is http (RFC 3986 §3.1): no problem
      { id: 'c', config: { ...config, url: 'HTTP://127.0.0.1:9' } },
      { config: { ...config, maxParalel: 2 }, hold: 'all' },
    ]);
    expect(r).toEqual({
      code: 2,
      stderr: [
        `portal: --edges-file ${file}: edge [0] "a": config.maxParallel: is required (an integer ≥ 0)`,
        `--edges-file ${file}: edge [0] "a": holds: expected "all" or a base64 bitmap (bit i = chunk i), got "!!!"`,
        `--edges-file ${file}: edge [1] "b": config.url: expected an http(s) URL, got "file:///etc/passwd"`,
        `--edges-file ${file}: edge [3]: hold: is not a known field`,
        `--edges-file ${file}: edge [3]: id: is required`,
        `--edges-file ${file}: edge [3]: config.maxParalel: is not a known field [PORTAL_CONFIG_INVALID]`,
        '',
      ].join('\n'),
    });
  });

  test('a holds bitmap shorter than the manifest names the entry, the field, the bits it needs and the bytes it has', async () => {
    const r = await fetchWith([{ id: 'a', config, holds: 'AA==' }]);
    expect(r).toEqual({
      code: 2,
      stderr: `portal: --edges-file ${file}: edge [0] "a": holds: a base64 bitmap of at least 10 bits (2 bytes) for the manifest's 10 chunks, got 1 byte [PORTAL_CONFIG_INVALID]\n`,
    });
  });
});
