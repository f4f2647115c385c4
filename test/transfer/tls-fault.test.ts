import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { createHttpClient, probeSource, type HttpClient } from '../../transfer/index.js';
import { runPortal } from '../helpers/portal-cli.js';
import { makeTempDir } from './fixtures.js';

const run = promisify(execFile);
const BODY = Buffer.alloc(300_000, 7);

let tmp: { dir: string; cleanup: () => Promise<void> };
let certFile: string;
let plain: Server;
let secure: Server;
let plainUrl: string;
let secureOrigin: string;
const clients: HttpClient[] = [];

/** Answers Range requests with 206 and the right Content-Range. */
function handler(req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse): void {
  const m = /bytes=(\d+)-(\d+)/.exec(req.headers.range ?? '');
  if (!m) {
    res.writeHead(200, { 'content-length': String(BODY.length) });
    res.end(BODY);
    return;
  }
  const a = Number(m[1]);
  const b = Math.min(Number(m[2]), BODY.length - 1);
  res.writeHead(206, {
    'content-length': String(b - a + 1),
    'content-range': `bytes ${a}-${b}/${BODY.length}`,
  });
  res.end(BODY.subarray(a, b + 1));
}

const listen = (s: Server): Promise<number> =>
  new Promise((r) => s.listen(0, '127.0.0.1', () => r((s.address() as AddressInfo).port)));

beforeAll(async () => {
  tmp = await makeTempDir('tls-fault');
  // a self-signed certificate for "localhost" only (so 127.0.0.1 is a name it does not give)
  const keyFile = path.join(tmp.dir, 'key.pem');
  certFile = path.join(tmp.dir, 'cert.pem');
  await run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    keyFile,
    '-out',
    certFile,
    '-days',
    '2',
    '-subj',
    '/CN=localhost',
    '-addext',
    'subjectAltName=DNS:localhost',
  ]).catch((cause: unknown) => {
    // node:crypto makes keys but signs no X.509 certificate: openssl is needed (harness/tls-ca.ts uses it too)
    throw new Error('openssl is needed to make the test certificate', { cause });
  });
  plain = createHttpServer(handler);
  secure = createHttpsServer({ key: await readFile(keyFile), cert: await readFile(certFile) }, handler);
  plainUrl = `http://127.0.0.1:${await listen(plain)}/f.bin`;
  secureOrigin = `127.0.0.1:${await listen(secure)}`;
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await new Promise((r) => plain?.close(r));
  await new Promise((r) => secure?.close(r));
  await tmp?.cleanup();
});

function client(opts: Parameters<typeof createHttpClient>[0] = {}): HttpClient {
  const c = createHttpClient({ proxy: false, ...opts });
  clients.push(c);
  return c;
}

describe('TLS failures are one line naming the host, the cause and the remedy', () => {
  test('a self-signed certificate says so and names --ca, NODE_EXTRA_CA_CERTS and --insecure', async () => {
    const p = await probeSource(client(), `https://${secureOrigin}/f.bin`);
    expect(p.ok).toBe(false);
    expect(p.error).toBe(
      `TLS: DEPTH_ZERO_SELF_SIGNED_CERT: the certificate of ${secureOrigin} is self-signed, so nothing vouches for it: give --ca FILE (its PEM certificate or CA) or NODE_EXTRA_CA_CERTS=FILE to trust it, or --insecure to skip verification`,
    );
  });

  test('a certificate for another name says which names it gives', async () => {
    const p = await probeSource(client({ caFile: certFile }), `https://${secureOrigin}/f.bin`);
    expect(p.error).toBe(
      `TLS: ERR_TLS_CERT_ALTNAME_INVALID: the certificate of ${secureOrigin} is for another name (DNS:localhost), not 127.0.0.1: use a name the certificate gives, or --insecure to skip verification`,
    );
    // trusted and named right, it works: the phrase was about the name only
    const port = secureOrigin.split(':')[1];
    expect((await probeSource(client({ caFile: certFile }), `https://localhost:${port}/f.bin`)).ok).toBe(
      true,
    );
  });

  test('https:// to a plain-HTTP port says the port does not speak TLS and to use http://', async () => {
    const url = plainUrl.replace('http:', 'https:');
    const p = await probeSource(client(), url);
    expect(p.error).toMatch(
      /^TLS: ERR_SSL_[A-Z_]+: 127\.0\.0\.1:\d+ does not speak TLS on this port \(a plain-HTTP server answered the TLS handshake\): use http:\/\/ for it, or the port that serves https$/,
    );
  });

  test('http:// to an https port suggests https://', async () => {
    const p = await probeSource(client(), `http://${secureOrigin}/f.bin`);
    expect(p.ok).toBe(false);
    expect(p.error).toContain('(if this port serves https, use https://)');
  });

  test('portal fetch prints each cause on its own line, with no raw OpenSSL text', async () => {
    const out = path.join(tmp.dir, 'out.bin');
    const r = await runPortal(['fetch', plainUrl.replace('http:', 'https:'), '--out', out], {
      timeoutMs: 60_000,
    });
    expect(r.code).toBe(3);
    const line = r.stderr.split('\n').find((l) => l.includes('TLS:'));
    expect(line).toMatch(
      /does not speak TLS on this port .*use http:\/\/ for it, or the port that serves https \[PORTAL_TRANSFER_FAILED\]$/,
    );
    expect(r.stderr).not.toMatch(/SSL routines|openssl|ssl3_get_record/);
    expect(existsSync(out)).toBe(false);
  });
});
