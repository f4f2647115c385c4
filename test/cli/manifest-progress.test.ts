import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { formatBytes } from '../../cli/progress.js';
import { makeTempDir } from '../transfer/fixtures.js';
import { runPortal } from '../helpers/portal-cli.js';

// `portal manifest`'s progress bar (stderr, plain lines off a terminal) counts the file's bytes: its last line
// ends with the file's size. It was a bar of total 1 fed fractions, so the last line ended with "1 B".

let tmp: { dir: string; cleanup: () => Promise<void> };
beforeAll(async () => {
  tmp = await makeTempDir('manifest-progress');
});
afterAll(async () => {
  await tmp?.cleanup();
});

test.each([
  [1000, '1000 B/1000 B'],
  [3 * 1024 * 1024 + 5, '3.0 MiB/3.0 MiB'],
])('the last progress line of a %i-byte file ends with its size', async (size, figure) => {
  const file = path.join(tmp.dir, `f-${size}.bin`);
  await writeFile(file, Buffer.alloc(size, 7));
  const r = await runPortal(['manifest', file, '--out', `${file}.manifest.json`]);
  expect(r.code).toBe(0);
  const lines = r.stderr.split('\n').filter((l) => l.startsWith('hashing'));
  const last = lines[lines.length - 1];
  expect(last).toMatch(/100\.0% /);
  expect(last.endsWith(` ${figure}`)).toBe(true);
  expect(figure.endsWith(formatBytes(size))).toBe(true);
});
