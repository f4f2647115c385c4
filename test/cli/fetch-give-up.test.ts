/**
 * `portal fetch` against sources that misbehave in ways curl and aria2c cope with or that a user limits, as a real
 * CLI process and real loopback HTTP servers: a load-balanced mirror whose nodes give their own ETag (If-Range
 * honoured strictly by each) is fetched whole when a checksum decides, and still refused (never mixed) without
 * one, with the real cause in the message; a source whose Retry-After is longer than its --source-budget is given
 * up at once, saying so, instead of holding its chunks until the stall timeout.
 */
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { startBadMirror, type BadMirror } from '../helpers/bad-mirror.js';
import { runPortal } from '../helpers/portal-cli.js';
import { FETCH_ENV, fetchFixture } from '../helpers/fetch-fixture.js';

const SIZE = 8 * 262144 + 999;
const env = FETCH_ENV;
const f = fetchFixture('cli-fetch-give-up', SIZE);
const out = (): string => f.out();

/**
 * Two nodes behind one address, answering in turn: the same bytes, ETag "n0" or "n1" by node, a Range request
 * whose If-Range is not the answering node's ETag gets the whole file with 200 (RFC 9110 §13.1.5).
 */
async function loadBalanced(): Promise<{ url: string; requests: number }> {
  let count = 0;
  const state = { url: '', requests: 0 };
  const server = http.createServer((req, res) => {
    const node = count++ % 2;
    state.requests = count;
    const etag = `"n${node}"`;
    const r = /^bytes=(\d+)-(\d+)?$/.exec(req.headers.range ?? '');
    const ifRange = req.headers['if-range'];
    const head = { etag, 'accept-ranges': 'bytes' };
    if (!r || (ifRange !== undefined && ifRange !== etag)) {
      res.writeHead(200, { ...head, 'content-length': String(f.bytes.length) });
      res.end(req.method === 'HEAD' ? undefined : f.bytes);
      return;
    }
    const a = Number(r[1]);
    const b = r[2] !== undefined ? Math.min(Number(r[2]), f.bytes.length - 1) : f.bytes.length - 1;
    res.writeHead(206, {
      ...head,
      'content-length': String(b - a + 1),
      'content-range': `bytes ${a}-${b}/${f.bytes.length}`,
    });
    res.end(req.method === 'HEAD' ? undefined : f.bytes.subarray(a, b + 1));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  f.closeLater(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/f.bin`;
  return state;
}

describe('portal fetch: a load-balanced mirror with a different ETag per node', () => {
  test('with the right --checksum: the hashes decide, exit 0 and the right file (as curl and aria2c get it)', async () => {
    const m = await loadBalanced();
    const o = out();
    const r = await runPortal(['fetch', m.url, '--out', o, '--checksum', `sha-256=${f.sha}`], { env });
    expect(r.stderr).not.toContain('restarting');
    expect(r.code).toBe(0);
    expect(await readFile(o)).toEqual(f.bytes);
  }, 180_000);

  test('without a checksum: versions are still never mixed (exit 3), and the message names the real cause, not a budget that did not elapse', async () => {
    const m = await loadBalanced();
    const o = out();
    const r = await runPortal(['fetch', m.url, '--out', o], { env });
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('If-Range');
    expect(r.stderr).not.toMatch(/longer than its budget/);
  }, 180_000);
});

describe('portal fetch: Retry-After longer than --source-budget', () => {
  test('the source is given up at once naming its Retry-After and the budget; exit 3 long before the stall timeout', async () => {
    const m: BadMirror = await startBadMirror(f.bytes, (_n, req) =>
      req.method === 'HEAD' || req.headers.range === 'bytes=0-0'
        ? { kind: 'ok' }
        : { kind: 'status', status: 503, retryAfter: '100000' },
    );
    f.closeLater(() => m.close());
    const o = out();
    const r = await runPortal(['fetch', m.url, '--out', o, '--source-budget', '5'], { env });
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('Retry-After 100000 s');
    expect(r.stderr).toContain(
      'asked to be retried after 100000 s (Retry-After), past its source budget of 5 s',
    );
    expect(r.stderr).not.toContain('offline');
    // before: the stall timeout (61 s)
    expect(r.ms).toBeLessThan(40_000);
  }, 180_000);
});
