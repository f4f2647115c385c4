/**
 * `portal fetch URL` whose file changes while it runs, against the built CLI as a real process and a real nginx
 * mirror (its own ETag, `"<mtime hex>-<size hex>"`, and If-Range handling; `limit_rate` slows it so that the file
 * can be replaced mid-run): a Range request with If-Range answered 200 (the file changed) restarts the run from
 * zero against the new version, as curl, aria2c and browsers do, naming the source and the validator (and the new
 * size); a rerun whose journal one source no longer serves (it changed, another did not) resumes from the one that
 * still serves the journal's version and leaves the changed one out, never mixing the two.
 */
import { createHash, randomBytes as random } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { readFile, rename, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { startNginx, type TestNginx } from '../../harness/nginx.js';
import { lastJson, runPortal } from '../helpers/portal-cli.js';
import { makeTempDir } from '../transfer/fixtures.js';

const SIZE = 8 * 2 ** 20; // 32 chunks of 256 KiB
const T0 = 1_700_000_000; // the first version's mtime (nginx's ETag and Last-Modified come from it)
const env = { PORTAL_BACKEND: 'cpu' };
let tmp: { dir: string; cleanup: () => Promise<void> };
let www: string;
let nginx: TestNginx;
let n = 0;
const out = (): string => {
  const dir = path.join(tmp.dir, `out-${++n}`);
  mkdirSync(dir);
  return path.join(dir, 'file.bin');
};
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
/** nginx's ETag of a file of `size` bytes last modified at `mtime` (seconds). */
const etagOf = (mtime: number, size: number): string => `"${mtime.toString(16)}-${size.toString(16)}"`;

/** Puts `bytes` at `name` under the mirror's root with mtime `mtime`, atomically (a reader keeps the old one). */
async function publish(name: string, bytes: Buffer, mtime: number): Promise<void> {
  const file = path.join(www, name);
  await writeFile(`${file}.tmp`, bytes);
  await utimes(`${file}.tmp`, mtime, mtime);
  await rename(`${file}.tmp`, file);
}

/**
 * `portal fetch <urls> --out o --progress-json`; `onChunk` runs once: when the transfer is reported started
 * (`when` 'started', before the first chunks are in), or when the first chunk is reported complete. `kill`
 * SIGKILLs the run right after it.
 */
async function fetchWhile(
  urls: string[],
  o: string,
  onChunk: () => Promise<void>,
  kill = false,
  when: 'started' | 'chunk' = 'chunk',
): Promise<Awaited<ReturnType<typeof runPortal>>> {
  let done: Promise<void> | undefined;
  const r = await runPortal(['fetch', ...urls, '--out', o, '--progress-json'], {
    env,
    timeoutMs: 110_000,
    onLine: (line, child) => {
      const j = JSON.parse(line) as { type?: string; complete?: number };
      const now = when === 'started' ? j.type === 'started' : j.type === 'progress' && (j.complete ?? 0) >= 1;
      if (done || !now) return;
      done = onChunk().then(() => {
        if (kill) child.kill('SIGKILL');
      });
    },
  });
  await done;
  return r;
}

beforeAll(async () => {
  tmp = await makeTempDir('cli-fetch-version-change');
  www = path.join(tmp.dir, 'www');
  mkdirSync(www);
  // 256 KiB/s per request: a chunk takes a second, so the file can be replaced while most are still to come
  nginx = await startNginx({ root: www, extra: 'limit_rate 256k;' });
});
afterAll(async () => {
  await nginx?.stop();
  await tmp?.cleanup();
});

describe('portal fetch URL: the file changes while it is fetched (If-Range answered 200)', () => {
  test.each([
    ['the same size', SIZE],
    ['a new size', SIZE + 300_000],
  ])(
    'a new version of %s: the run restarts from zero against it, naming the validator, and gives the new file',
    async (_, newSize) => {
      const name = `file-${newSize}.bin`;
      const url = `${nginx.httpUrl}/${name}`;
      await publish(name, random(SIZE), T0);
      const next = random(newSize);
      const o = out();
      const r = await fetchWhile([url], o, () => publish(name, next, T0 + 100));
      expect(r.stderr).toContain(
        `portal: ${url} now serves another version of the file (it answered HTTP 200 to If-Range: ${etagOf(T0, SIZE)}): the chunks kept so far are discarded; restarting from zero against the new version`,
      );
      expect(r.stderr).toContain(
        `portal: restarting from zero (restart 1 of at most 2): ${url} now serves validator ${etagOf(T0 + 100, newSize)}, ${newSize} bytes${newSize !== SIZE ? ` (the version given up had ${SIZE})` : ''}`,
      );
      expect(r.code).toBe(0);
      const got = await readFile(o);
      expect(got.length).toBe(newSize);
      expect(sha(got)).toBe(sha(next));
      const j = lastJson(r);
      expect(j.type).toBe('result');
      expect(j.bytes).toBe(newSize);
      expect(j.restartsFromZero).toBe(1);
      expect(j.versionChangedAt).toEqual([{ url, validator: etagOf(T0, SIZE) }]);
    },
    120_000,
  );

  test('two mirrors, one changes mid-run: it is given up as changed and the file comes whole from the other', async () => {
    const a = `${nginx.httpUrl}/two-a.bin`;
    const b = `${nginx.httpUrl}/two-b.bin`;
    // 64 chunks: four rounds of requests on 2 x 8 connections, the file replaced in the first
    const first = random(2 * SIZE);
    const next = random(2 * SIZE);
    await publish('two-a.bin', first, T0);
    await publish('two-b.bin', first, T0);
    const o = out();
    const r = await fetchWhile([a, b], o, () => publish('two-a.bin', next, T0 + 100), false, 'started');
    expect(r.code).toBe(0);
    expect(sha(await readFile(o))).toBe(sha(first));
    const j = lastJson(r) as { sourcesGivenUp?: { url: string; lastError: string }[] };
    expect(j.sourcesGivenUp?.map((s) => s.url)).toEqual([a]);
    expect(j.sourcesGivenUp?.[0].lastError).toContain(
      `the file changed version: the mirror answered HTTP 200 to If-Range: ${etagOf(T0, 2 * SIZE)}`,
    );
    expect(r.stderr).not.toContain('restarting from zero');
  }, 120_000);

  test('a rerun after one of two mirrors changed (same size): it resumes from the one still serving the journal version and leaves the other out', async () => {
    const a = `${nginx.httpUrl}/resume-a.bin`;
    const b = `${nginx.httpUrl}/resume-b.bin`;
    const first = random(SIZE);
    await publish('resume-a.bin', first, T0);
    await publish('resume-b.bin', first, T0);
    const o = out();
    // killed 400 ms after the first verified chunk: its journal (written every 100 ms) holds it by then, and the
    // rest of the file is seconds away (killed at once, the first chunk raced the journal's write: CI at 16:16)
    const killed = await fetchWhile([a, b], o, () => new Promise((r) => setTimeout(r, 400)), true);
    expect(killed.signal).toBe('SIGKILL');
    await publish('resume-a.bin', random(SIZE), T0 + 100);
    const r = await runPortal(['fetch', a, b, '--out', o, '--json'], { env, timeoutMs: 110_000 });
    expect(r.stderr).toContain(
      `portal: excluded ${a}: it now serves another version of the file (${etagOf(T0 + 100, SIZE)} now, ${etagOf(T0, SIZE)} at the first run) than ${b}, which the kept chunks belong to: the versions are not mixed`,
    );
    expect(r.code).toBe(0);
    // the first version, whole: not a mix of the two
    expect(sha(await readFile(o))).toBe(sha(first));
    const j = lastJson(r) as {
      resumedChunks: number;
      chunksBySource: Record<string, number>;
      excluded?: { url: string }[];
    };
    expect(j.resumedChunks).toBeGreaterThan(0);
    expect(j.excluded?.map((e) => e.url)).toEqual([a]);
    expect(r.stderr).not.toContain('starting over');
  }, 120_000);
});
