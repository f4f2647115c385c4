import { jest } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { symlink, writeFile, mkdir } from 'node:fs/promises';
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
