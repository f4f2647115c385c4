import { jest } from '@jest/globals';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createEdgeServer, type EdgeServer, type Manifest } from '../../transfer/index.js';
import { waitFor } from '../helpers/dapr.js';
import {
  schedulerCall,
  startEmbeddedServe,
  stopEmbeddedServe,
  type EmbeddedServe,
} from '../helpers/portal-cli.js';
import { sourceFixture } from '../transfer/fixtures.js';

// `forget` of a transfer that never finished removes its partial file (`<output>.portal-part` and its
// partial-chunk log): a trial found it left behind (unverified bytes nobody could resume, the journal gone) and the
// same start then refused with 409 'output ….portal-part already exists'. A published output stays.
// `portal serve --runtime embedded` (dist/, a real process) fetching from real loopback edges.
jest.setTimeout(120_000);

const CHUNK = 64 * 1024;

let tmp: { dir: string; cleanup: () => Promise<void> };
let manifest: Manifest;
let fast: EdgeServer;
let slow: EdgeServer;
let serve: EmbeddedServe;

beforeAll(async () => {
  const src = await sourceFixture('serve-forget-part', 12, CHUNK, 7);
  ({ tmp, manifest } = src);
  fast = await createEdgeServer({ id: 'fast', source: { path: src.path, manifest } });
  // a chunk about every 0.5 s: the transfer is still running when it is forgotten
  slow = await createEdgeServer({
    id: 'slow',
    source: { path: src.path, manifest },
    bandwidthBytesPerSec: 2 * CHUNK,
    burstBytes: CHUNK,
  });
  serve = await startEmbeddedServe(['--output-root', tmp.dir]);
});
afterAll(async () => {
  await stopEmbeddedServe(serve);
  await fast?.close();
  await slow?.close();
  await tmp?.cleanup();
});

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const call = (id: string, method: string, body?: unknown): Promise<{ status: number; body: any }> =>
  schedulerCall(serve.base, id, method, body);
const request = (id: string, output: string, edge: EdgeServer): Record<string, unknown> => ({
  transferId: id,
  manifest,
  output,
  tickMs: 50,
  edges: [{ id: edge.id, config: { url: edge.url, kind: 'portal', flags: 0, maxParallel: 1 }, holds: 'all' }],
});
// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function until(id: string, done: (s: any) => boolean, what: string): Promise<any> {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  let s: any;
  await waitFor(
    async () => done((s = (await call(id, 'status')).body)),
    60_000,
    () => `transfer ${id} ${what} (last status ${JSON.stringify(s)}; serve: ${serve.output().slice(-2000)})`,
  );
  return s;
}
const sha = async (file: string): Promise<string> =>
  createHash('sha256')
    .update(await readFile(file))
    .digest('hex');

test.each([['running'], ['cancelled']])(
  'forget of a %s transfer removes <output>.portal-part and its log; the same start then runs (was 409)',
  async (when) => {
    const id = `fp-${when}`;
    const output = join(tmp.dir, `${id}.bin`);
    const part = `${output}.portal-part`;
    expect((await call(id, 'start', request(id, output, slow))).status).toBe(200);
    await until(id, (s) => s?.complete >= 1, 'has a chunk written');
    expect(existsSync(part)).toBe(true);
    if (when === 'cancelled') {
      expect((await call(id, 'cancel')).status).toBe(200);
      await until(id, (s) => s?.state === 'cancelled', 'is cancelled');
      expect(existsSync(part)).toBe(true); // a cancel keeps it for a restart
    }
    expect((await call(id, 'forget')).body).toEqual({ transferId: id, forgotten: true });
    expect(existsSync(part)).toBe(false);
    expect(existsSync(`${part}.partial`)).toBe(false);
    expect(existsSync(output)).toBe(false);
    // the same request (no "overwrite") starts again and finishes from the fast edge
    const again = await call(id, 'start', request(id, output, fast));
    expect({ status: again.status, code: again.body?.error?.code }).toEqual({ status: 200, code: undefined });
    const s = await until(id, (x) => ['done', 'failed', 'cancelled'].includes(x?.state), 'ends');
    expect({ state: s.state, verified: s.verified }).toEqual({ state: 'done', verified: true });
    expect(await sha(output)).toBe(manifest.fileSha256);
    expect((await call(id, 'forget')).status).toBe(200);
  },
);

test('forget of a done transfer keeps its published output', async () => {
  const id = 'fp-done';
  const output = join(tmp.dir, `${id}.bin`);
  expect((await call(id, 'start', request(id, output, fast))).status).toBe(200);
  const s = await until(id, (x) => ['done', 'failed', 'cancelled'].includes(x?.state), 'ends');
  expect(s.state).toBe('done');
  expect((await call(id, 'forget')).status).toBe(200);
  expect(await sha(output)).toBe(manifest.fileSha256);
  expect(existsSync(`${output}.portal-part`)).toBe(false);
});
