import path from 'node:path';
import { readFile } from 'node:fs/promises';
import { startNatsServer, type TestNatsServer } from '../../harness/index.js';
import { createMesh, type Mesh } from '../helpers/mesh.js';
import { startPortal, json, type PortalProcess } from './helpers.js';

const CHUNK = 32768;
const CHUNKS = 96; // 3 MiB
const ORIGIN_RATE = 1_000_000; // 1 MB/s: alone, one fetcher needs about 3 s

describe('swarm: fetchers serve each other the chunks they verified (haves over NATS)', () => {
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
