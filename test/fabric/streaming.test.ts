import path from 'node:path';
import { readFile } from 'node:fs/promises';
import { createMesh, type Mesh } from '../helpers/mesh.js';
import { Pool, request } from 'undici';
import { freePort } from '../../harness/index.js';
import type { TransferRequest } from '../../actors/index.js';
import { servingFetch, startServe, json, run, type PortalProcess } from './helpers.js';

const CHUNK = 16384;
const CHUNKS = 160;

describe('streaming reads of a running transfer (portal fetch --serve)', () => {
  let mesh: Mesh | undefined;
  const procs: PortalProcess[] = [];
  afterEach(async () => {
    for (const p of procs.splice(0)) {
      p.child.kill('SIGTERM');
      await p.exit;
    }
    await mesh?.close();
    mesh = undefined;
  });

  test('a reader process (curl) gets the source bytes of a Range at the end of the file and of the whole content while the transfer runs', async () => {
    // 2 edges at 400 kB/s: the 2.5 MiB transfer takes about 3 s, in chunk order but for what readers ask
    mesh = await createMesh(CHUNKS * CHUNK, CHUNK, [
      { holds: 'all', bandwidthBytesPerSec: 400_000 },
      { holds: 'all', bandwidthBytesPerSec: 400_000 },
    ]);
    const source = await readFile(mesh.source);
    const { fetch, url } = await servingFetch(mesh, 'out.bin');
    // a Range in the last chunks: without the read they would be fetched last
    const from = (CHUNKS - 3) * CHUNK + 100;
    const to = CHUNKS * CHUNK - 1;
    // what the whole-file reader had received, and whether the fetch still ran, when the tail reader ended
    let wholeBytes = 0;
    let wholeAtTail = -1;
    let runningAtTail = false;
    const [tail, whole] = await Promise.all([
      run('curl', ['-sS', '--fail', '-r', `${from}-${to}`, url]).then((x) => {
        wholeAtTail = wholeBytes;
        runningAtTail = fetch.child.exitCode === null;
        return x;
      }),
      run('curl', ['-sS', '--fail', url], { onStdout: (d) => (wholeBytes += d.length) }),
    ]);
    expect(tail.code).toBe(0);
    expect(tail.stdout.equals(source.subarray(from, to + 1))).toBe(true);
    expect(whole.code).toBe(0);
    expect(whole.stdout.length).toBe(source.length);
    expect(whole.stdout.equals(source)).toBe(true);
    const r = await fetch.exit;
    expect(r.code).toBe(0);
    const result = json(r.stdout.split('\n').at(-1)!)!;
    expect(result.verified).toBe(true);
    // the tail was served while the transfer still ran, not after the whole reader's windows (read in turns)
    expect(runningAtTail).toBe(true);
    expect(wholeAtTail).toBeGreaterThanOrEqual(0);
    expect(wholeAtTail).toBeLessThan((CHUNKS / 4) * CHUNK);
  }, 60_000);

  test('a paced sequential reader at 80% of the edges’ summed caps, from the middle of the file, waits for no chunk after its first (read-ahead)', async () => {
    // 2 edges capped at 300 kB/s, 32 KiB chunks: the 4 MiB transfer takes ~7 s in chunk order; the reader
    // starts at the middle (chunk order reaches it after ~3.5 s) and reads one chunk per Range request at
    // 480 kB/s on one keep-alive connection, so only read-ahead can keep its chunks there before it asks
    const chunk = 32 * 1024;
    const chunks = 128;
    mesh = await createMesh(chunks * chunk, chunk, [
      { holds: 'all', bandwidthBytesPerSec: 300_000, rttMs: 5 },
      { holds: 'all', bandwidthBytesPerSec: 300_000, rttMs: 5 },
    ]);
    const source = await readFile(mesh.source);
    const { fetch, url } = await servingFetch(mesh, 'paced.bin');
    const rate = 0.8 * 600_000;
    const periodMs = (chunk / rate) * 1000;
    const client = new Pool(new URL(url).origin, { connections: 1 });
    let due = 0;
    let reads = 0;
    for (let c = chunks / 2; c < chunks; c++) {
      const wait = due - performance.now();
      if (reads > 0 && wait > 0) await new Promise((r) => setTimeout(r, wait));
      const res = await client.request({
        path: new URL(url).pathname,
        method: 'GET',
        headers: { range: `bytes=${c * chunk}-${(c + 1) * chunk - 1}` },
      });
      const body = Buffer.from(await res.body.arrayBuffer());
      expect(res.statusCode).toBe(206);
      expect(body.equals(source.subarray(c * chunk, (c + 1) * chunk))).toBe(true);
      due = (reads === 0 ? performance.now() : due) + periodMs;
      reads++;
    }
    await client.close();
    const r = await fetch.exit;
    expect(r.code).toBe(0);
    const content = fetch.lines.map(json).find((m) => m?.type === 'content');
    expect(content).toMatchObject({
      requests: chunks / 2,
      bytesServed: (chunks / 2) * chunk,
      verifyFailures: 0,
    });
    // the first read waits for its chunk's fetch (chunk order was far from it); none after it waits
    expect(content?.stalls).toBe(1);
  }, 90_000);

  test('portal serve serves a transfer it schedules at /v1/transfers/<id>/content while it runs (curl, whole content)', async () => {
    mesh = await createMesh(CHUNKS * CHUNK, CHUNK, [{ holds: 'all', bandwidthBytesPerSec: 600_000 }]);
    const source = await readFile(mesh.source);
    const port = await freePort();
    const serve = await startServe(port, mesh.dir);
    procs.push(serve);
    const id = 'st1';
    const req: TransferRequest = {
      transferId: id,
      manifest: mesh.manifest,
      output: path.join(mesh.dir, 'served.bin'),
      edges: [
        {
          id: 'o1',
          config: { url: mesh.servers[0].url, kind: 'portal', flags: 0, maxParallel: 4 },
          holds: 'all',
        },
      ],
    };
    const api = `http://127.0.0.1:${port}/v1.0/actors/SchedulerActor/${id}/method`;
    const started = await request(`${api}/start`, { method: 'POST', body: JSON.stringify(req) });
    expect(started.statusCode).toBe(200);
    expect(JSON.parse(await started.body.text())).toMatchObject({ transferId: id, state: 'running' });
    const content = `http://127.0.0.1:${port}/v1/transfers/${id}/content`;
    const mid = 70 * CHUNK + 5;
    const [part, whole] = await Promise.all([
      run('curl', ['-sS', '--fail', '-r', `${mid}-${mid + 3 * CHUNK}`, content]),
      run('curl', ['-sS', '--fail', content]),
    ]);
    expect(part.code).toBe(0);
    expect(part.stdout.equals(source.subarray(mid, mid + 3 * CHUNK + 1))).toBe(true);
    expect(whole.code).toBe(0);
    expect(whole.stdout.equals(source)).toBe(true);
    const unknown = await run('curl', [
      '-sS',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code}',
      `http://127.0.0.1:${port}/v1/transfers/nope/content`,
    ]);
    expect(unknown.stdout.toString()).toBe('404');
  }, 60_000);
});
