import path from 'node:path';
import { readFile } from 'node:fs/promises';
import { startNatsServer, type TestNatsServer } from '../../harness/index.js';
import { createMesh, type Mesh } from '../helpers/mesh.js';
import { localTransferId } from '../../node/transfer-id.js';
import { startPortal, type PortalProcess } from './helpers.js';

const CHUNK = 32768;
const CHUNKS = 64; // 2 MiB
const ORIGIN_RATE = 2_000_000;

describe('fetches of one manifest on one NATS', () => {
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
    mesh = await createMesh(CHUNKS * CHUNK, CHUNK, [{ holds: 'all', bandwidthBytesPerSec: ORIGIN_RATE }]);
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
