import path from 'node:path';
import { readFile } from 'node:fs/promises';
import { startNatsServer, type TestNatsServer } from '../../harness/index.js';
import { createMesh, type Mesh } from '../helpers/mesh.js';
import { localTransferId } from '../../node/transfer-id.js';
import { startPortal, json, type PortalProcess } from './helpers.js';

const CHUNK = 32768;
const CHUNKS = 96; // 3 MiB
const ORIGIN_RATE = 1_000_000; // 1 MB/s: alone, one fetcher needs about 3 s

let mesh: Mesh | undefined;
let nats: TestNatsServer | undefined;
const procs: PortalProcess[] = [];
afterEach(async () => {
  for (const p of procs.splice(0)) {
    p.kill();
    await p.exit;
  }
  await mesh?.close();
  await nats?.stop();
  mesh = undefined;
  nats = undefined;
});

describe('swarm: fetchers serve each other the chunks they verified (haves over NATS)', () => {
  test('3 fetch processes of one file from one capped origin take chunks from each other and all get the source bytes', async () => {
    nats = await startNatsServer();
    mesh = await createMesh(CHUNKS * CHUNK, CHUNK, [{ holds: 'all', bandwidthBytesPerSec: ORIGIN_RATE }]);
    const source = await readFile(mesh.source);
    const env = { NATS_URL: nats.url };
    const outs = [0, 1, 2].map((i) => path.join(mesh!.dir, `peer${i}.bin`));
    for (const [i, out] of outs.entries()) {
      procs.push(
        startPortal(
          [
            'fetch',
            mesh.manifestPath,
            '--edge',
            mesh.servers[0].url,
            '--out',
            out,
            '--swarm',
            '--swarm-id',
            `peer${i}`,
            '--swarm-linger',
            '3',
            '--progress-json',
          ],
          { env, timeoutMs: 60_000 },
        ),
      );
    }
    const results = await Promise.all(procs.map((p) => p.exit));
    for (const [i, r] of results.entries()) {
      expect({ peer: i, code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({
        peer: i,
        code: 0,
        stderr: '',
      });
      expect(procs[i].lines.map(json).some((m) => m?.type === 'swarm' && m.id === `peer${i}`)).toBe(true);
      expect((await readFile(outs[i])).equals(source)).toBe(true);
    }
    // without the swarm the origin serves every chunk three times; with it most chunks came from the peers
    // (1.36 × the file in a run on the 2-core dev machine; random chunk orders make the peers hold different chunks)
    const originBytes = mesh.servers[0].stats().bytesServed;
    expect(originBytes).toBeLessThan(2 * source.length);
  }, 90_000);
});

describe('fetches of one manifest on one NATS', () => {
  test('transfer ids: one manifest fetched into two outputs, or on two hosts, gets two ids without dots; a rerun gets the same', () => {
    const a = localTransferId('abc123', '/data/a.bin', 'host1');
    expect(a).toMatch(/^abc123-[0-9a-f]{12}$/);
    expect(localTransferId('abc123', '/data/b.bin', 'host1')).not.toBe(a);
    expect(localTransferId('abc123', '/data/a.bin', 'host2')).not.toBe(a);
    expect(localTransferId('abc123', '/data/./a.bin', 'host1')).toBe(a);
  });

  test('two fetch processes of one file into two outputs, both on NATS (no swarm), each end verified with the source bytes', async () => {
    // Both schedulers once used the manifest id as transfer id: each took the other's chunk reports (and
    // its executor the other's dispatches) as its own and ended with chunks never written (sha256 mismatch).
    nats = await startNatsServer();
    mesh = await createMesh(64 * CHUNK, CHUNK, [{ holds: 'all', bandwidthBytesPerSec: 2_000_000 }]);
    const source = await readFile(mesh.source);
    const outs = [0, 1].map((i) => path.join(mesh!.dir, `out${i}.bin`));
    for (const out of outs)
      procs.push(
        startPortal(['fetch', mesh.manifestPath, '--edge', mesh.servers[0].url, '--out', out, '--json'], {
          env: { NATS_URL: nats.url },
          timeoutMs: 60_000,
        }),
      );
    const results = await Promise.all(procs.map((p) => p.exit));
    for (const [i, r] of results.entries()) {
      expect({ fetch: i, code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({
        fetch: i,
        code: 0,
        stderr: '',
      });
      expect((await readFile(outs[i])).equals(source)).toBe(true);
    }
    // each fetch took every chunk from the origin itself
    expect(mesh.servers[0].stats().bytesServed).toBeGreaterThanOrEqual(2 * source.length);
  }, 90_000);
});
