/**
 * `portal fetch URL` without a checksum from a mirror that ignores If-Range and replaces its file mid-run (trial 3,
 * H1), against the built CLI as a real process and real loopback servers: after `swapAfter` requests the server
 * sends another version of the same size, with another ETag (or Last-Modified), in ordinary 206 answers whatever
 * If-Range asks. Each 206's validator is compared with the one the probe recorded: a different one is the source's
 * `file changed version` fault, as a 200 to If-Range is, so the output is one version, never a mix of two.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import { FETCH_ENV as env, fetchFixture, listenOnLoopback } from '../helpers/fetch-fixture.js';
import { lastJson, runPortal } from '../helpers/portal-cli.js';

const SIZE = 3 * 2 ** 20 + 4321; // 13 chunks of 256 KiB
const f = fetchFixture('cli-fetch-ifrange-ignored', SIZE);
const V2 = randomBytes(SIZE);
const LM1 = 'Tue, 01 Dec 2020 01:00:00 GMT';
const LM2 = 'Wed, 02 Dec 2020 01:00:00 GMT';
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/**
 * A mirror that ignores If-Range (as many servers, caches and proxies do): it serves the fixture's file (V1) for its
 * first `swapAfter` requests (every request counts, the probe too), then V2, always honouring Range with a 206.
 * `validator`: an ETag ("v1", then "v2") or only a Last-Modified (LM1, then LM2); `drop` sends none at all after
 * the swap (the bytes stay V1). Resolves with its URL and the If-Range headers it was sent.
 */
async function swapServer(
  swapAfter: number,
  validator: 'etag' | 'last-modified',
  drop = false,
): Promise<{ url: string; ifRange: (string | undefined)[] }> {
  let count = 0;
  const ifRange: (string | undefined)[] = [];
  const server = http.createServer((req, res) => {
    const swapped = ++count > swapAfter;
    const file = swapped && !drop ? V2 : f.bytes;
    res.setHeader('date', new Date().toUTCString());
    if (!(swapped && drop)) {
      if (validator === 'etag') res.setHeader('etag', swapped ? '"v2"' : '"v1"');
      else res.setHeader('last-modified', swapped ? LM2 : LM1);
    }
    const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
    ifRange.push(req.headers['if-range'] as string | undefined);
    if (!range) {
      res.writeHead(200, { 'content-length': file.length });
      res.end(req.method === 'HEAD' ? undefined : file);
      return;
    }
    const a = Number(range[1]);
    const b = Math.min(Number(range[2]), file.length - 1);
    res.writeHead(206, { 'content-range': `bytes ${a}-${b}/${file.length}`, 'content-length': b - a + 1 });
    res.end(file.subarray(a, b + 1));
  });
  const { port, close } = await listenOnLoopback(server);
  f.closeLater(close);
  return { url: `http://127.0.0.1:${port}/f.bin`, ifRange };
}

describe('portal fetch URL: a mirror ignoring If-Range changes version mid-run (206 answers)', () => {
  test.each([
    ['an ETag', 'etag' as const, 'ETag "v2" to If-Range: "v1"', '"v1"', '"v2"'],
    ['a Last-Modified', 'last-modified' as const, `Last-Modified ${LM2} to If-Range: ${LM1}`, LM1, LM2],
  ])(
    'one mirror, %s that changes: the 206 of the new version is refused, the run restarts from zero and gives the new version whole',
    async (_, kind, answered, was, is) => {
      const s = await swapServer(4, kind);
      const o = f.out();
      const r = await runPortal(['fetch', s.url, '--out', o, '--json'], { env, timeoutMs: 60_000 });
      expect(r.code).toBe(0);
      // one version, the new one: not V1's first chunks with V2's others
      expect(sha(await readFile(o))).toBe(sha(V2));
      expect(r.stderr).toContain(
        `portal: ${s.url} now serves another version of the file (it answered HTTP 206 with ${answered}): the chunks kept so far are discarded; restarting from zero against the new version`,
      );
      expect(r.stderr).toContain(
        `portal: restarting from zero (restart 1 of at most 2): ${s.url} now serves validator ${is}, ${SIZE} bytes`,
      );
      const j = lastJson(r);
      expect(j.restartsFromZero).toBe(1);
      expect(j.versionChangedAt).toEqual([{ url: s.url, validator: was }]);
      expect(s.ifRange).toContain(was);
    },
    70_000,
  );

  test('two mirrors, one changes (206 with ETag "v2"): it is given up as changed and the file comes whole from the other', async () => {
    const swap = await swapServer(3, 'etag');
    const ok = await swapServer(Infinity, 'etag');
    const o = f.out();
    const r = await runPortal(['fetch', swap.url, ok.url, '--out', o, '--json'], { env, timeoutMs: 60_000 });
    expect(r.code).toBe(0);
    expect(sha(await readFile(o))).toBe(f.sha);
    const j = lastJson(r) as { sourcesGivenUp?: { url: string; lastError: string }[] };
    expect(j.sourcesGivenUp?.map((x) => x.url)).toEqual([swap.url]);
    expect(j.sourcesGivenUp?.[0].lastError).toContain(
      'the file changed version: the mirror answered HTTP 206 with ETag "v2" to If-Range: "v1"',
    );
    expect(r.stderr).not.toContain('restarting from zero');
  }, 70_000);

  test('one mirror whose 206 answers stop carrying the ETag its probe gave: the run fails naming it and publishes nothing', async () => {
    const s = await swapServer(4, 'etag', true);
    const o = f.out();
    const r = await runPortal(['fetch', s.url, '--out', o, '--source-budget', '2'], {
      env,
      timeoutMs: 60_000,
    });
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(s.url);
    expect(r.stderr).toContain(
      'the file version cannot be told: the mirror answered HTTP 206 without an ETag to If-Range: "v1"',
    );
    expect(r.stderr).not.toContain('restarting from zero');
    expect(existsSync(o)).toBe(false);
  }, 70_000);
});
