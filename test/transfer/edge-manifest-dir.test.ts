import { jest } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { mkdir, readdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createPackedManifest, saveManifest, unpackManifest } from '../../transfer/manifest.js';
import { binaryManifestCid, encodeBinaryManifest } from '../../transfer/manifest-binary.js';
import { PORTAL_MAIN } from '../helpers/portal-cli.js';
import { makeTempDir, randomBytes } from './fixtures.js';

// `portal edge --manifest-dir` as a peer meets it (a real process): what it serves from the folder and what it
// lets a peer store there.
jest.setTimeout(60_000);

let tmp: { dir: string; cleanup: () => Promise<void> };
const edges: ChildProcess[] = [];

beforeAll(async () => {
  tmp = await makeTempDir('edge-manifest-dir');
});

afterAll(async () => {
  for (const e of edges) if (e.exitCode === null) e.kill('SIGKILL');
  await tmp?.cleanup();
});

/** A binary manifest of a random file of `size` bytes: its bytes and content id. */
async function binaryManifest(
  name: string,
  size: number,
  seed: number,
): Promise<{ bytes: Buffer; cid: string }> {
  const file = join(tmp.dir, name);
  await writeFile(file, randomBytes(size, seed));
  const packed = await createPackedManifest(file, { chunkSize: 4096 });
  return { bytes: encodeBinaryManifest(packed), cid: binaryManifestCid(packed) };
}

/** Starts `portal edge` serving a small file with `--manifest-dir <dir>` and more flags; answers its URL. */
async function startEdge(dir: string, more: string[] = []): Promise<string> {
  const file = join(tmp.dir, 'served.bin');
  await writeFile(file, randomBytes(8192, 99));
  const manifest = join(tmp.dir, 'served.manifest.json');
  await saveManifest(manifest, unpackManifest(await createPackedManifest(file, { chunkSize: 4096 })));
  const edge = spawn(
    process.execPath,
    [PORTAL_MAIN, 'edge', '--file', file, '--manifest', manifest, '--manifest-dir', dir, '--json', ...more],
    { env: { ...process.env, NATS_URL: '' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  edges.push(edge);
  let out = '';
  edge.stderr.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((resolve, reject) => {
    edge.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /"url":"([^"]+)"/.exec(out);
      if (m) resolve(m[1]);
    });
    edge.once('exit', (c) => reject(new Error(`edge exited ${c}: ${out}`)));
  });
}

test('a symbolic link planted at a stored manifest name is not served (404), and a PUT replaces it', async () => {
  const dir = join(tmp.dir, 'links');
  await mkdir(dir);
  const secret = join(tmp.dir, 'secret.txt');
  await writeFile(secret, 'SECRET-BYTES');
  const m = await binaryManifest('l.bin', 20_000, 1);
  await symlink(secret, join(dir, `${m.cid}.pcm`));
  const url = await startEdge(dir);
  const got = await fetch(`${url}/v1/manifests/${m.cid}`);
  const text = await got.text();
  expect(got.status).toBe(404);
  expect(text).not.toContain('SECRET');
  expect((await fetch(`${url}/v1/manifests/${m.cid}`, { method: 'HEAD' })).status).toBe(404);
  // the link is no stored manifest: a PUT of the real one is stored over it, and then served
  const put = await fetch(`${url}/v1/manifests/${m.cid}`, { method: 'PUT', body: m.bytes });
  expect(put.status).toBe(201);
  const back = await fetch(`${url}/v1/manifests/${m.cid}`);
  expect(Buffer.from(await back.arrayBuffer()).equals(m.bytes)).toBe(true);
});

/**
 * PUTs `bytes` as manifest `cid`, with their Content-Length; `chunked`: without one (Transfer-Encoding: chunked);
 * `chunked-head`: so, but only their first 100 bytes are sent; a number: that Content-Length, of which only the
 * first 100 bytes are sent (what is not sent, the answer must not wait for).
 */
function rawPut(
  url: string,
  cid: string,
  bytes: Buffer,
  length?: number | 'chunked' | 'chunked-head',
): Promise<{ status: number; body: { error?: string; code?: string; stored?: boolean } }> {
  const u = new URL(`${url}/v1/manifests/${cid}`);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: u.hostname,
        port: u.port,
        path: u.pathname,
        method: 'PUT',
        headers:
          length === undefined
            ? { 'content-length': bytes.length }
            : typeof length === 'string'
              ? { 'transfer-encoding': 'chunked' }
              : { 'content-length': length },
      },
      (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) as never }));
      },
    );
    req.on('error', reject);
    if (length === undefined || length === 'chunked') req.end(bytes);
    else req.write(bytes.subarray(0, 100));
  });
}

test('a peer stores at most --manifest-dir-max-files manifests (507 past it), counted again after a restart', async () => {
  const dir = join(tmp.dir, 'count');
  const ms = await Promise.all([1, 2, 3].map((i) => binaryManifest(`c${i}.bin`, 5000 * i, 10 + i)));
  const url = await startEdge(dir, ['--manifest-dir-max-files', '2']);
  expect((await rawPut(url, ms[0].cid, ms[0].bytes)).status).toBe(201);
  expect((await rawPut(url, ms[1].cid, ms[1].bytes)).status).toBe(201);
  const third = await rawPut(url, ms[2].cid, ms[2].bytes);
  expect(third).toEqual({
    status: 507,
    body: {
      error: 'this edge keeps at most 2 manifests (--manifest-dir-max-files) and holds 2',
      code: 'PORTAL_MANIFEST_TOO_LARGE',
    },
  });
  expect((await readdir(dir)).sort()).toEqual([`${ms[0].cid}.pcm`, `${ms[1].cid}.pcm`].sort());
  // one already held is answered as before
  expect((await rawPut(url, ms[0].cid, ms[0].bytes)).body.stored).toBe(false);
  // a new edge process on the same folder counts what it holds
  const again = await startEdge(dir, ['--manifest-dir-max-files', '2']);
  expect((await rawPut(again, ms[2].cid, ms[2].bytes)).status).toBe(507);
});

test('a PUT that would take the folder past --manifest-dir-max-bytes is a 413 naming the cap, before its body is read', async () => {
  const dir = join(tmp.dir, 'bytes');
  const a = await binaryManifest('b1.bin', 4096 * 40, 21); // 40 chunks: 72 + 6 + 1280 bytes
  const b = await binaryManifest('b2.bin', 4096 * 20, 22); // 20 chunks: 718 bytes
  const big = await binaryManifest('b3.bin', 4096 * 200, 23);
  const cap = a.bytes.length + 1000;
  const url = await startEdge(dir, ['--manifest-dir-max-bytes', String(cap)]);
  expect((await rawPut(url, a.cid, a.bytes)).status).toBe(201);
  const left = cap - a.bytes.length;
  const quota = `over the ${left} bytes left of this edge's manifest quota of ${cap} bytes (--manifest-dir-max-bytes)`;
  // declared: refused on its Content-Length, while the client still has 2 GB to send
  const declared = await rawPut(url, b.cid, b.bytes, 2_000_000_000);
  expect(declared).toEqual({
    status: 413,
    body: { error: `the manifest (2000000000 bytes) is ${quota}`, code: 'PORTAL_MANIFEST_TOO_LARGE' },
  });
  // chunked (no Content-Length): its header's chunk count is over what is left, refused before the table is made
  const counted = await rawPut(url, big.cid, big.bytes, 'chunked-head');
  expect(counted.status).toBe(413);
  expect(counted.body.error).toContain(`the manifest (its header's chunk count) is ${quota}`);
  // chunked, its header within what is left, but more bytes than that: refused as they come
  const streamed = await rawPut(url, b.cid, Buffer.concat([b.bytes, Buffer.alloc(400)]), 'chunked');
  expect(streamed.status).toBe(413);
  expect(streamed.body.error).toContain(`the manifest (more than ${left} bytes) is ${quota}`);
  // what fits is still stored
  expect((await rawPut(url, b.cid, b.bytes, 'chunked')).status).toBe(201);
  // nothing else kept, no temporary file left
  expect((await readdir(dir)).sort()).toEqual([`${a.cid}.pcm`, `${b.cid}.pcm`].sort());
});
