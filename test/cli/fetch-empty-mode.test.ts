/**
 * A 0-byte output of `portal fetch` gets the mode every other output gets (0644 less the umask): no chunk is written,
 * so the file is created when the transfer flushes it, and that open made it 0600. The built CLI as a real process,
 * real loopback mirrors (test/helpers/bad-mirror.ts).
 */
import { statSync } from 'node:fs';
import path from 'node:path';
import { startBadMirror, type BadMirror } from '../helpers/bad-mirror.js';
import { runPortal } from '../helpers/portal-cli.js';
import { makeTempDir } from '../transfer/fixtures.js';

let tmp: { dir: string; cleanup: () => Promise<void> };
const mirrors: BadMirror[] = [];
beforeAll(async () => {
  tmp = await makeTempDir('cli-fetch-empty-mode');
});
afterAll(async () => {
  await Promise.all(mirrors.map((m) => m.close()));
  await tmp?.cleanup();
});

test('a 0-byte output has the same mode as a non-empty one (0644 & ~umask)', async () => {
  const modes: number[] = [];
  for (const bytes of [Buffer.alloc(0), Buffer.alloc(300_000, 7)]) {
    const m = await startBadMirror(bytes);
    mirrors.push(m);
    const out = path.join(tmp.dir, `out-${bytes.length}.bin`);
    const r = await runPortal(['fetch', m.url, '--out', out], { env: { PORTAL_BACKEND: 'cpu' } });
    expect(r.code).toBe(0);
    expect(statSync(out).size).toBe(bytes.length);
    modes.push(statSync(out).mode & 0o777);
  }
  const umask = process.umask();
  expect(modes).toEqual([0o644 & ~umask, 0o644 & ~umask]);
});
