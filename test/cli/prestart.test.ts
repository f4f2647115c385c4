import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fetchSizeHint, fetchStartsDataThreads, prestartLocalDataThreads } from '../../cli/prestart.js';
import {
  discardPrestartedDataThreads,
  LOCAL_DATA_THREADS,
  prestartedDataThreadCount,
  SMALL_TRANSFER_BYTES,
} from '../../transfer/data-thread-prestart.js';
import { createManifest, saveManifest, toMetalink } from '../../transfer/index.js';
import { makeTempDir, writeRandomFile } from '../transfer/fixtures.js';

let tmp: { dir: string; cleanup: () => Promise<void> };
let small: string;
let large: string;
let meta4: string;

beforeAll(async () => {
  tmp = await makeTempDir('prestart-cli');
  const f = await writeRandomFile(tmp.dir, 'one.bin', 2 ** 20, 3);
  const m = await createManifest(f.path, { chunkSize: 2 ** 20 });
  small = join(tmp.dir, 'small.manifest.json');
  await saveManifest(small, m);
  // the same chunk 40 times: a manifest of a 40 MiB file (only its size matters here)
  const big = { ...m, fileSize: 40 * 2 ** 20, chunks: new Array<string>(40).fill(m.chunks[0]) };
  large = join(tmp.dir, 'large.manifest.json');
  await saveManifest(large, big);
  meta4 = join(tmp.dir, 'large.meta4');
  await writeFile(meta4, toMetalink(big, [{ url: 'http://127.0.0.1:9/one.bin' }]));
});
afterEach(() => discardPrestartedDataThreads());
afterAll(() => tmp.cleanup());

describe('portal fetch starts its data threads first thing, for a transfer big enough to use them', () => {
  test('the size hint comes from a manifest or a Metalink argument, wherever it stands among the flags', () => {
    expect(fetchSizeHint([small, '--out', 'x.bin'])).toBe(2 ** 20);
    expect(fetchSizeHint(['--out', join(tmp.dir, 'missing.bin'), large, '--json'])).toBe(40 * 2 ** 20);
    expect(fetchSizeHint([meta4])).toBe(40 * 2 ** 20);
  });

  test('URLs alone, or files that name no size, give no hint', () => {
    expect(fetchSizeHint(['http://127.0.0.1:9/a.bin', 'https://127.0.0.1:9/b.bin'])).toBeUndefined();
    expect(fetchSizeHint([join(tmp.dir, 'one.bin'), join(tmp.dir, 'missing.json')])).toBeUndefined();
  });

  test(`threads start for a manifest of at least SMALL_TRANSFER_BYTES (${SMALL_TRANSFER_BYTES} B), not for a smaller one, not for --help, not without a hint`, () => {
    expect(fetchStartsDataThreads([small, '--edge', 'http://127.0.0.1:9/one.bin#mirror'])).toBe(false);
    expect(fetchStartsDataThreads(['http://127.0.0.1:9/one.bin'])).toBe(false);
    expect(fetchStartsDataThreads([large, '--help'])).toBe(false);
    expect(fetchStartsDataThreads([large, '-h'])).toBe(false);
    expect(fetchStartsDataThreads([large, '--edge', 'http://127.0.0.1:9/one.bin#mirror'])).toBe(true);
    expect(fetchStartsDataThreads(['--json', meta4])).toBe(true);
    expect(prestartedDataThreadCount()).toBe(0);
    prestartLocalDataThreads();
    expect(prestartedDataThreadCount()).toBe(LOCAL_DATA_THREADS);
    // once: a second call (cli/main.ts after the launcher) starts none
    prestartLocalDataThreads();
    expect(prestartedDataThreadCount()).toBe(LOCAL_DATA_THREADS);
  });
});
