/**
 * `portal fetch` run again after its run ended (finished, or failed its whole-file check), against the built CLI
 * as a real process and real loopback mirrors (test/helpers/bad-mirror.ts): a finished file still as it was is
 * "already complete" whatever the sources of the rerun, a changed one is refused unless --force, and a run that
 * failed its check does not keep the chunks it cannot verify.
 */
import { jest } from '@jest/globals';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { readFile, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { startBadMirror, type BadMirror } from '../helpers/bad-mirror.js';
import { lastJson, runPortal } from '../helpers/portal-cli.js';
import { makeTempDir, writeRandomFile } from '../transfer/fixtures.js';

// each test runs 2–7 fetch processes, ~1.5–3 s each on a loaded 2-core CI machine (49–58 s seen for one test)
jest.setTimeout(150_000);

const SIZE = 3 * 262144 + 4321;
let tmp: { dir: string; cleanup: () => Promise<void> };
let bytes: Buffer;
let sha: string;
const mirrors: BadMirror[] = [];
let n = 0;
const out = (): string => {
  const dir = path.join(tmp.dir, `out-${++n}`);
  mkdirSync(dir);
  return path.join(dir, 'file.bin');
};
const env = { PORTAL_BACKEND: 'cpu' };
const checksum = (): string[] => ['--checksum', `sha-256=${sha}`];
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

async function mirror(of = bytes, etag?: string): Promise<BadMirror> {
  const s = await startBadMirror(of, () => ({ kind: 'ok' }), etag ? { etag } : {});
  mirrors.push(s);
  return s;
}
const gets = (m: BadMirror): number =>
  m.requests.filter((q) => q.method === 'GET' && q.range !== undefined && q.range !== 'bytes=0-0').length;

beforeAll(async () => {
  tmp = await makeTempDir('cli-fetch-rerun');
  bytes = (await writeRandomFile(tmp.dir, 'src.bin', SIZE, 7)).bytes;
  sha = sha256(bytes);
});
afterAll(async () => {
  await Promise.all(mirrors.map((s) => s.close()));
  await tmp?.cleanup();
});

describe('portal fetch: a rerun of a finished fetch', () => {
  test('another mirror, the same two in another order, one of them down: "already complete", exit 0, nothing fetched', async () => {
    const a = await mirror();
    const b = await mirror();
    const o = out();
    const first = await runPortal(['fetch', a.url, '--out', o, ...checksum()], { env });
    expect(first.code).toBe(0);
    const other = await runPortal(['fetch', b.url, '--out', o, ...checksum()], { env });
    expect(other.stderr).not.toMatch(/PORTAL_TRANSFER_CONFLICT|transferId|edges\[0\]/);
    expect(other.code).toBe(0);
    expect(other.stdout).toContain(`${o}: already complete`);
    expect(other.stdout).toContain(`sha256 ${sha}`);
    expect(gets(b)).toBe(0);
    const o2 = out();
    expect((await runPortal(['fetch', a.url, b.url, '--out', o2], { env })).code).toBe(0);
    const fetched = [gets(a), gets(b)];
    const swapped = await runPortal(['fetch', b.url, a.url, '--out', o2, '--json'], { env });
    expect(swapped.code).toBe(0);
    expect(lastJson(swapped)).toMatchObject({ alreadyComplete: true, bytes: SIZE, sha256: sha });
    const down = await runPortal(['fetch', a.url, 'http://127.0.0.1:1/file.bin', '--out', o, ...checksum()], {
      env,
    });
    expect(down.code).toBe(0);
    expect(down.stdout).toContain('already complete');
    // the reruns fetched no chunk
    expect([gets(a), gets(b)]).toEqual(fetched);
    expect(await readFile(o)).toEqual(bytes);
  });

  test('the output changed since: refused naming both sha-256 (exit 2); --force fetches it again', async () => {
    const a = await mirror();
    const o = out();
    expect((await runPortal(['fetch', a.url, '--out', o, ...checksum()], { env })).code).toBe(0);
    const changed = Buffer.from(bytes);
    changed[5] ^= 0xff;
    await writeFile(o, changed);
    const refused = await runPortal(['fetch', a.url, '--out', o, ...checksum()], { env });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(`sha-256 ${sha256(changed)} now`);
    expect(refused.stderr).toContain(`sha-256 ${sha} then`);
    expect(refused.stderr).toContain('--force');
    expect(await readFile(o)).toEqual(changed);
    const forced = await runPortal(['fetch', a.url, '--out', o, ...checksum(), '--force'], { env });
    expect(forced.code).toBe(0);
    expect(await readFile(o)).toEqual(bytes);
    // gone: fetched again
    await unlink(o);
    const again = await runPortal(['fetch', a.url, '--out', o, ...checksum()], { env });
    expect(again.code).toBe(0);
    expect(await readFile(o)).toEqual(bytes);
  });
});

describe('portal fetch: a finished output of another transfer', () => {
  test('another file of the same size (or another size, or another checksum) is refused without --force, naming the file and --force; --force replaces it', async () => {
    const other = Buffer.from(bytes);
    for (let i = 0; i < other.length; i += 4096) other[i] ^= 0x5a;
    const a = await mirror();
    const b = await mirror(other);
    const o = out();
    expect((await runPortal(['fetch', `${a.origin}/f.bin`, '--out', o], { env })).code).toBe(0);
    for (const args of [
      [`${b.origin}/g.bin`],
      [`${b.origin}/g.bin`, '--checksum', `sha-256=${sha256(other)}`],
      [`${b.origin}/f.bin`, '--checksum', `sha-256=${sha256(other)}`],
    ]) {
      const r = await runPortal(['fetch', ...args, '--out', o], { env });
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`output ${o} exists: the finished download of another transfer`);
      expect(r.stderr).toContain(`--force to replace ${o}`);
      expect(r.stderr).not.toContain('discarding the journal');
      expect(await readFile(o)).toEqual(bytes);
    }
    expect(gets(b)).toBe(0);
    // the same file by its right checksum (not known at the first run): already complete, checked against it
    const same = await runPortal(['fetch', `${b.origin}/f.bin`, '--out', o, ...checksum()], { env });
    expect(same.code).toBe(0);
    expect(same.stdout).toContain(`${o}: already complete`);
    expect(same.stdout).toContain(`sha256 ${sha} as --checksum gives`);
    expect(gets(b)).toBe(0);
    const forced = await runPortal(['fetch', `${b.origin}/g.bin`, '--out', o, '--force'], { env });
    expect(forced.code).toBe(0);
    expect(await readFile(o)).toEqual(other);
  }, 240_000);
});

describe('portal fetch: a rerun after the whole-file check failed', () => {
  const wrong = (): Buffer => {
    const w = Buffer.from(bytes);
    for (let i = 0; i < 4096; i++) w[300_000 + i] ^= 1;
    return w;
  };

  test('a mirror served the right size with altered bytes (ETag "v1"): the rerun with a good mirror fetches every chunk again and succeeds', async () => {
    const bad = await mirror(wrong(), '"v1"');
    const good = await mirror(bytes, '"v1"');
    const o = out();
    const first = await runPortal(['fetch', bad.url, '--out', o, ...checksum()], { env });
    expect(first.code).toBe(3);
    const r = await runPortal(['fetch', good.url, '--out', o, ...checksum(), '--json'], { env });
    expect(r.stderr).not.toContain('gave no strong validator');
    expect(r.stderr).toContain(
      'none of the sources whose validators vouched for them at the first run is named now',
    );
    expect(r.code).toBe(0);
    expect(lastJson(r)).toMatchObject({ verified: true, resumedChunks: 0, fetchedChunks: 4 });
    expect(gets(good)).toBe(4);
    expect(await readFile(o)).toEqual(bytes);
  });

  test('the same mirror, fixed, with the same ETag: the chunks it served before are not kept on its word; exit 0', async () => {
    let fixed = false;
    const w = wrong();
    const m = await startBadMirror(bytes, () => (fixed ? { kind: 'ok' } : { kind: 'replaced', bytes: w }), {
      etag: '"v1"',
    });
    mirrors.push(m);
    const o = out();
    expect((await runPortal(['fetch', m.url, '--out', o, ...checksum()], { env })).code).toBe(3);
    fixed = true;
    const before = gets(m);
    const r = await runPortal(['fetch', m.url, '--out', o, ...checksum(), '--json'], { env });
    expect(r.code).toBe(0);
    expect(lastJson(r)).toMatchObject({ verified: true, resumedChunks: 0, fetchedChunks: 4 });
    expect(gets(m) - before).toBe(4);
    expect(await readFile(o)).toEqual(bytes);
  });

  test('--force after a failed check starts over', async () => {
    let fixed = false;
    const w = wrong();
    const m = await startBadMirror(bytes, () => (fixed ? { kind: 'ok' } : { kind: 'replaced', bytes: w }), {
      etag: '"v1"',
    });
    mirrors.push(m);
    const o = out();
    expect((await runPortal(['fetch', m.url, '--out', o, ...checksum()], { env })).code).toBe(3);
    fixed = true;
    const r = await runPortal(['fetch', m.url, '--out', o, ...checksum(), '--force'], { env });
    expect(r.stderr).toContain('--force: discarding the journal of the failed run');
    expect(r.code).toBe(0);
    expect(await readFile(o)).toEqual(bytes);
  });
});

describe('portal fetch: a mistyped --checksum, corrected', () => {
  test('the rerun with the right --checksum checks the bytes kept in .portal-part against it: exit 0, nothing fetched, then "already complete"; another wrong one fetches again and says both came from --checksum', async () => {
    const a = await mirror();
    const o = out();
    const typo = `sha-256=${'1'.repeat(64)}`;
    const first = await runPortal(['fetch', a.url, '--out', o, '--checksum', typo], { env });
    expect(first.code).toBe(3);
    expect(existsSync(`${o}.portal-part`)).toBe(true);
    const fetched = gets(a);
    // another typo: the kept bytes match neither; said so, naming --checksum as the origin of both, and fetched again
    const again = await runPortal(['fetch', a.url, '--out', o, '--checksum', `sha-256=${'2'.repeat(64)}`], {
      env,
    });
    expect(again.code).toBe(3);
    expect(again.stderr).not.toContain('the sources now give');
    expect(again.stderr).toContain(
      `checked against sha-256 ${'1'.repeat(64)} (from --checksum); the bytes it kept (sha-256 ${sha}) do not match sha-256 ${'2'.repeat(64)} (from --checksum) either`,
    );
    expect(gets(a)).toBeGreaterThan(fetched);
    const before = gets(a);
    const fixed = await runPortal(['fetch', a.url, '--out', o, ...checksum()], { env });
    expect(fixed.stderr).not.toContain('PORTAL_OUTPUT_REFUSED');
    expect(fixed.code).toBe(0);
    expect(fixed.stdout).toContain(`match sha256 ${sha} as --checksum gives now; nothing fetched`);
    expect(gets(a)).toBe(before);
    expect(await readFile(o)).toEqual(bytes);
    expect(existsSync(`${o}.portal-part`)).toBe(false);
    const rerun = await runPortal(['fetch', a.url, '--out', o, ...checksum(), '--json'], { env });
    expect(rerun.code).toBe(0);
    expect(lastJson(rerun)).toMatchObject({ alreadyComplete: true, verified: true, sha256: sha });
    expect(gets(a)).toBe(before);
  }, 240_000);
});

describe('portal fetch: a Metalink whose only file hash is a sha-1', () => {
  test('a mismatch leaves nothing under the final name (the file is kept as .portal-part, exit 3); the rerun with the URL fixed succeeds', async () => {
    const w = Buffer.from(bytes);
    w[1000] ^= 1;
    const bad = await mirror(w);
    const good = await mirror();
    const sha1 = createHash('sha1').update(bytes).digest('hex');
    const dir = path.dirname(out());
    const meta = async (url: string): Promise<string> => {
      const p = path.join(dir, `${mirrors.length}.meta4`);
      await writeFile(
        p,
        `<?xml version="1.0" encoding="UTF-8"?>\n<metalink xmlns="urn:ietf:params:xml:ns:metalink"><file name="s1.bin"><size>${SIZE}</size><hash type="sha-1">${sha1}</hash><url priority="1">${url}</url></file></metalink>\n`,
      );
      return p;
    };
    const o = path.join(dir, 's1.bin');
    const first = await runPortal(['fetch', await meta(bad.url)], { env, cwd: dir });
    expect(first.code).toBe(3);
    expect(existsSync(o)).toBe(false);
    expect(first.stderr).toContain(`it is kept as ${o}.portal-part for inspection`);
    expect(await readFile(`${o}.portal-part`)).toEqual(w);
    const r = await runPortal(['fetch', await meta(good.url)], { env, cwd: dir });
    expect(r.stderr).not.toMatch(/PORTAL_TRANSFER_CONFLICT|transferId/);
    expect(r.code).toBe(0);
    expect(await readFile(o)).toEqual(bytes);
  });
});
