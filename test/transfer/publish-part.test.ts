/**
 * publishPart (transfer/publish-part.ts) gives a verified `<out>.portal-part` its name `<out>`. A rename replaced a
 * file another program created at `<out>` while the transfer ran; link + unlink refuses it (EEXIST) and keeps both.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { link, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { isPortalError } from '../../common/errors.js';
import { publishPart } from '../../transfer/publish-part.js';
import { makeTempDir, rejectionOf } from './fixtures.js';

let tmp: { dir: string; cleanup: () => Promise<void> };
let n = 0;
/** A new output name and its partial file holding `part-bytes`. */
async function staged(): Promise<{ out: string; part: string }> {
  const out = path.join(tmp.dir, `out-${++n}.bin`);
  const part = `${out}.portal-part`;
  await writeFile(part, 'part-bytes');
  return { out, part };
}

beforeAll(async () => {
  tmp = await makeTempDir('publish-part');
});
afterAll(async () => {
  await tmp.cleanup();
});

describe('publishPart', () => {
  test('publishes the partial file under the output name when nothing is there (one link left)', async () => {
    const { out, part } = await staged();
    expect(await publishPart(part, out, false)).toBe('link');
    expect(await readFile(out, 'utf8')).toBe('part-bytes');
    expect(existsSync(part)).toBe(false);
    expect((await stat(out)).nlink).toBe(1);
  });

  test('refuses a file that appeared at the output, naming both, and changes neither', async () => {
    const { out, part } = await staged();
    await writeFile(out, 'my precious data\n');
    const err = await rejectionOf(() => publishPart(part, out, false));
    expect(isPortalError(err, 'PORTAL_OUTPUT_REFUSED')).toBe(true);
    expect((err as Error).message).toBe(
      `output ${out} was created by another program while the transfer ran: Portal does not replace a file it did not find at the start (it was left as it is), and the finished file is kept as ${part}`,
    );
    expect(await readFile(out, 'utf8')).toBe('my precious data\n');
    expect(await readFile(part, 'utf8')).toBe('part-bytes');
  });

  test('with replace, the file at the output is replaced (a rename)', async () => {
    const { out, part } = await staged();
    await writeFile(out, 'old\n');
    expect(await publishPart(part, out, true)).toBe('rename');
    expect(await readFile(out, 'utf8')).toBe('part-bytes');
    expect(existsSync(part)).toBe(false);
  });

  test('an output that is the partial file itself (a crash between link and unlink) is published: the partial name goes', async () => {
    const { out, part } = await staged();
    await link(part, out);
    expect(await publishPart(part, out, false)).toBe('link');
    expect(await readFile(out, 'utf8')).toBe('part-bytes');
    expect(existsSync(part)).toBe(false);
    expect((await stat(out)).nlink).toBe(1);
  });

  test('an output holding the very bytes of the partial file (a run killed after it published, fetched again) is kept: the partial file goes', async () => {
    const { out, part } = await staged();
    await writeFile(out, 'part-bytes');
    const before = await stat(out);
    const sha = createHash('sha256').update('part-bytes').digest('hex');
    expect(await publishPart(part, out, false, sha)).toBe('identical');
    expect(existsSync(part)).toBe(false);
    expect((await stat(out)).ino).toBe(before.ino);
    // same size, other bytes: refused, both kept
    const other = await staged();
    await writeFile(other.out, 'PART-BYTES');
    expect(await rejectionOf(() => publishPart(other.part, other.out, false, sha))).toMatchObject({
      code: 'PORTAL_OUTPUT_REFUSED',
    });
    expect(await readFile(other.out, 'utf8')).toBe('PART-BYTES');
    expect(await readFile(other.part, 'utf8')).toBe('part-bytes');
  });
});
