import { link, readFile, symlink, writeFile } from 'node:fs/promises';
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

// trial finding: `portal manifest F --out F` (and --metalink) replaced the data file with its own manifest, exit 0
describe('--out that is the input file itself is refused (exit 2), the data left whole', () => {
  const data = Buffer.alloc(300_000, 9);
  const fresh = async (name: string) => {
    const f = path.join(tmp.dir, name);
    await writeFile(f, data);
    return f;
  };
  const expectRefused = async (args: string[], f: string) => {
    const r = await runPortal(['manifest', f, ...args]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/is .* itself: writing the manifest there would overwrite the data/);
    expect((await readFile(f)).equals(data)).toBe(true);
  };
  test('the same path', async () => {
    const f = await fresh('same.iso');
    await expectRefused(['--out', f], f);
  });
  test('the same path with --metalink, written another way (./dir/../name)', async () => {
    const f = await fresh('same-ml.iso');
    await expectRefused(
      [
        '--metalink',
        '--url',
        'http://x/same-ml.iso',
        '--out',
        path.join(tmp.dir, '..', path.basename(tmp.dir), 'same-ml.iso'),
      ],
      f,
    );
  });
  test('a symbolic link to it', async () => {
    const f = await fresh('sym.iso');
    await symlink(f, path.join(tmp.dir, 'sym-link.json'));
    await expectRefused(['--out', path.join(tmp.dir, 'sym-link.json')], f);
  });
  test('a hard link to it', async () => {
    const f = await fresh('hard.iso');
    await link(f, path.join(tmp.dir, 'hard-link.json'));
    await expectRefused(['--out', path.join(tmp.dir, 'hard-link.json')], f);
  });
  test('another file is still written', async () => {
    const f = await fresh('other.iso');
    const r = await runPortal(['manifest', f, '--out', path.join(tmp.dir, 'other.json')]);
    expect(r.code).toBe(0);
    expect((await readFile(f)).equals(data)).toBe(true);
  });
});
