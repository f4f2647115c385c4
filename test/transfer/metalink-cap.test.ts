import { jest } from '@jest/globals';
import { spawn } from 'node:child_process';
import { open, writeFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { isPortalError } from '../../common/errors.js';
import { METALINK_MAX_BYTES, parseMetalink, toMetalink } from '../../transfer/metalink.js';
import { lastJson, runPortal } from '../helpers/portal-cli.js';
import { makeTempDir } from './fixtures.js';

// A Metalink is validated and parsed whole, so its size is capped (METALINK_MAX_BYTES, 32 MiB) before it is parsed,
// and a file is read no further than the cap: an endless one (a FIFO, a device) is refused instead of read until
// the process runs out of memory.
jest.setTimeout(60_000);

let tmp: { dir: string; cleanup: () => Promise<void> };
beforeAll(async () => {
  tmp = await makeTempDir('metalink-cap');
});
afterAll(async () => {
  await tmp?.cleanup();
});

const small = toMetalink(
  {
    version: 1,
    id: '0123456789abcdef',
    name: 'f.bin',
    fileSize: 10,
    chunkSize: 4096,
    fileSha256: 'a'.repeat(64),
    chunks: ['b'.repeat(64)],
  },
  [{ url: 'http://127.0.0.1:1/f.bin' }],
);

test('parseMetalink refuses a document over its cap before parsing it, naming the cap; one at the cap is parsed', () => {
  const bytes = Buffer.byteLength(small);
  expect(parseMetalink(small, 'm.meta4', { maxBytes: bytes })[0].name).toBe('f.bin');
  let err: unknown;
  try {
    parseMetalink(small, 'm.meta4', { maxBytes: bytes - 1 });
  } catch (e) {
    err = e;
  }
  expect(isPortalError(err, 'PORTAL_MANIFEST_TOO_LARGE')).toBe(true);
  expect((err as Error).message).toBe(
    `m.meta4: the Metalink is larger than ${bytes - 1} bytes (METALINK_MAX_BYTES), the most Portal reads`,
  );
  // multi-byte characters count as their UTF-8 bytes
  const wide = small.replace('f.bin', 'é'.repeat(10));
  expect(() => parseMetalink(wide, 'w.meta4', { maxBytes: Buffer.byteLength(wide) - 1 })).toThrow(
    /larger than/,
  );
  expect(METALINK_MAX_BYTES).toBe(32 * 1024 * 1024);
});

test('portal fetch of a Metalink file over 32 MiB is refused before it is read (exit 2, PORTAL_MANIFEST_TOO_LARGE)', async () => {
  const big = join(tmp.dir, 'big.meta4');
  const fh = await open(big, 'w');
  await fh.write(small.slice(0, 200), 0);
  await fh.truncate(METALINK_MAX_BYTES + 1); // sparse: nothing to read but the first bytes
  await fh.close();
  const r = await runPortal(['fetch', big, '--out', join(tmp.dir, 'out.bin'), '--json']);
  expect(r.code).toBe(2);
  expect(lastJson(r).error).toEqual({
    code: 'PORTAL_MANIFEST_TOO_LARGE',
    message: `${big}: the Metalink is larger than ${METALINK_MAX_BYTES} bytes (METALINK_MAX_BYTES), the most Portal reads`,
  });
});

test('portal fetch of an endless Metalink (a FIFO fed without end) reads at most the cap and is refused', async () => {
  const fifo = join(tmp.dir, 'endless.meta4');
  execFileSync('mkfifo', [fifo]);
  // a writer that never ends: yes(1) into the FIFO, opened again for each reader (the CLI's size hint reads its
  // first bytes and closes it before the Metalink is read)
  const writer = spawn('sh', ['-c', `while :; do yes '<metalink>' > '${fifo}'; done`], {
    stdio: 'ignore',
    detached: true,
  });
  try {
    const r = await runPortal(['fetch', fifo, '--out', join(tmp.dir, 'out2.bin'), '--json'], {
      timeoutMs: 30_000,
    });
    expect(r.code).toBe(2);
    expect((lastJson(r).error as { code: string }).code).toBe('PORTAL_MANIFEST_TOO_LARGE');
  } finally {
    process.kill(-writer.pid!, 'SIGKILL'); // the loop and its yes
  }
});

test('a Metalink under the cap is still read', async () => {
  const file = join(tmp.dir, 'ok.meta4');
  await writeFile(file, small);
  // the mirror does not answer: the run gets past reading the Metalink and fails on its source (exit 3)
  const r = await runPortal(['fetch', file, '--out', join(tmp.dir, 'out3.bin'), '--json']);
  expect((lastJson(r).error as { code: string }).code).not.toMatch(/PORTAL_MANIFEST_(TOO_LARGE|INVALID)/);
});
