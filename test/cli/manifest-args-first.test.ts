import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { makeTempDir } from '../transfer/fixtures.js';
import { runPortal } from '../helpers/portal-cli.js';

// `portal manifest` checks --out's folder and every --url before it hashes the file: it used to hash the whole
// file first, then fail quoting a temp file (--out) or saying "urls:" (--url).

let tmp: { dir: string; cleanup: () => Promise<void> };
let file: string;
beforeAll(async () => {
  tmp = await makeTempDir('manifest-args-first');
  file = path.join(tmp.dir, 'f.bin');
  await writeFile(file, Buffer.alloc(3 * 1024 * 1024, 7));
});
afterAll(async () => {
  await tmp?.cleanup();
});

test('--out in a missing folder is refused naming --out, before any hashing', async () => {
  const out = path.join(tmp.dir, 'nonexistent', 'm.json');
  const r = await runPortal(['manifest', file, '--out', out]);
  expect(r.code).toBe(2);
  expect(r.stderr).toBe(
    `portal: --out ${out}: the folder ${path.dirname(out)} does not exist or is not a folder [PORTAL_CONFIG_INVALID]\n`,
  );
});

test('--metalink --url javascript:… is refused naming --url, before any hashing', async () => {
  const r = await runPortal(['manifest', file, '--metalink', '--url', 'javascript:alert(1)']);
  expect(r.code).toBe(2);
  expect(r.stderr).toBe(
    'portal: --url "javascript:alert(1)": expected an http(s):// URL [PORTAL_CONFIG_INVALID]\n',
  );
});
