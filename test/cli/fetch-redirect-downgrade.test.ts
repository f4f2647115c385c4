/**
 * A redirect from https: to http: (trial 3, H6), against the built CLI as a real process, a real node:https server
 * (a certificate from a private CA, given with --ca) that redirects every request to a real node:http server
 * holding the file: refused by default, naming both URLs, so the bytes never travel unprotected unasked; followed
 * with --allow-downgrade.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import { makeTestCa, type TestCa } from '../../harness/tls-ca.js';
import { FETCH_ENV as env, fetchFixture, listenOnLoopback } from '../helpers/fetch-fixture.js';
import { lastJson, runPortal } from '../helpers/portal-cli.js';

const SIZE = 300_000;
const f = fetchFixture('cli-fetch-redirect-downgrade', SIZE);
let ca: TestCa;
let plainUrl: string;
let secureUrl: string;

beforeAll(async () => {
  ca = await makeTestCa();
  f.closeLater(() => ca.cleanup());
  // the file, over plain HTTP, with Range
  const plain = http.createServer((req, res) => {
    const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
    if (!range) return void res.writeHead(200, { 'content-length': SIZE }).end(f.bytes);
    const a = Number(range[1]);
    const b = Math.min(Number(range[2]), SIZE - 1);
    res.writeHead(206, { 'content-range': `bytes ${a}-${b}/${SIZE}`, 'content-length': b - a + 1 });
    res.end(f.bytes.subarray(a, b + 1));
  });
  const p = await listenOnLoopback(plain);
  f.closeLater(p.close);
  plainUrl = `http://127.0.0.1:${p.port}/f.bin`;
  // every https request is sent on to the plain one
  const secure = https.createServer(
    { cert: await readFile(ca.certFile), key: await readFile(ca.keyFile) },
    (_req, res) => void res.writeHead(302, { location: plainUrl, 'content-length': 0 }).end(),
  );
  const s = await listenOnLoopback(secure);
  f.closeLater(s.close);
  secureUrl = `https://127.0.0.1:${s.port}/f.bin`;
});

describe('portal fetch: a redirect from https to http', () => {
  test('is refused by default, naming both URLs and the flag that allows it; no file is written', async () => {
    const o = f.out();
    const r = await runPortal(['fetch', secureUrl, '--out', o, '--ca', ca.caFile], {
      env,
      timeoutMs: 60_000,
    });
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(
      `HTTP 302 redirect from ${secureUrl} to ${plainUrl} refused: it downgrades https to http, where the bytes travel unprotected (give --allow-downgrade to follow it)`,
    );
    expect(existsSync(o)).toBe(false);
  }, 70_000);

  test('is followed with --allow-downgrade, and the file arrives whole', async () => {
    const o = f.out();
    const r = await runPortal(
      ['fetch', secureUrl, '--out', o, '--ca', ca.caFile, '--allow-downgrade', '--json'],
      {
        env,
        timeoutMs: 60_000,
      },
    );
    expect(r.code).toBe(0);
    expect(
      createHash('sha256')
        .update(await readFile(o))
        .digest('hex'),
    ).toBe(f.sha);
    expect(lastJson(r).bytes).toBe(SIZE);
  }, 70_000);
});
