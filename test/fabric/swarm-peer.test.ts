import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { request } from 'undici';
import { createManifest, chunkRange, decodeHaveBitmap, type Manifest } from '../../transfer/index.js';
import { createMemoryBus, subjects, type Bus } from '../../bus/index.js';
import { createSilentLogger, type ChunkReport } from '../../common/index.js';
import { startSwarmPeer, type SwarmPeer } from '../../node/swarm.js';
import { makeTempDir, writeRandomFile } from '../transfer/fixtures.js';

const CHUNK = 64 * 1024;
const SIZE = 6 * CHUNK;

let tmp: { dir: string; cleanup: () => Promise<void> };
let src: { path: string; bytes: Buffer };
let m: Manifest;
let peer: SwarmPeer | undefined;
const buses: Bus[] = [];

beforeAll(async () => {
  tmp = await makeTempDir('swarm-peer');
  src = await writeRandomFile(tmp.dir, 'src.bin', SIZE, 11);
  m = await createManifest(src.path, { chunkSize: CHUNK });
});
afterEach(async () => {
  await peer?.close();
  peer = undefined;
  for (const b of buses.splice(0)) await b.close();
});
afterAll(() => tmp.cleanup());

async function held(p: SwarmPeer): Promise<number[]> {
  const res = await request(`${p.edge.url}/v1/have/${m.id}`);
  const j = (await res.body.json()) as { bitmap: string; chunks: number };
  return decodeHaveBitmap(j.bitmap, j.chunks);
}

function report(chunk: number, ok: boolean): ChunkReport {
  return {
    transferId: 't1',
    chunk,
    attempt: 0,
    edgeIndex: 0,
    ok,
    bytes: ok ? CHUNK : 0,
    firstByteMs: 1,
    transferMs: 2,
    executorId: 'x',
    ...(ok ? {} : { reason: 'corrupt' as const }),
  };
}

async function start(output: string, extra: Partial<Parameters<typeof startSwarmPeer>[0]> = {}) {
  const nodeBus = createMemoryBus();
  const fabricBus = createMemoryBus();
  buses.push(nodeBus, fabricBus);
  peer = await startSwarmPeer({
    id: 'sp',
    manifest: m,
    output,
    transferId: 't1',
    nodeBus,
    fabricBus,
    logger: createSilentLogger(),
    ...extra,
  });
  return { nodeBus, peer };
}

describe('swarm peer: what it holds and serves', () => {
  test("an ok report is the executor's verification: the chunk is held at once, without reading it back; a failed one is not", async () => {
    // the output holds zeros (the executor's write is what the report vouches for): the old read-back refused them
    const { nodeBus, peer: p } = await start(join(tmp.dir, 'out1.bin'));
    await nodeBus.publish(subjects.report('t1'), report(2, true));
    await nodeBus.publish(subjects.report('t1'), report(4, false));
    await nodeBus.publish(subjects.report('other'), report(5, true));
    await new Promise((r) => setTimeout(r, 20));
    expect(await held(p)).toEqual([2]);
  });

  test('chunks verified before the peer started (verifiedBefore) are held from the start', async () => {
    const { peer: p } = await start(join(tmp.dir, 'out2.bin'), { verifiedBefore: [0, 3] });
    expect(await held(p)).toEqual([0, 3]);
  });

  test('a resumed output (scanExisting) holds only the chunks whose bytes match their CID', async () => {
    const out = join(tmp.dir, 'out3.bin');
    const bytes = Buffer.alloc(SIZE);
    const r = chunkRange(m, 1);
    src.bytes.copy(bytes, r.offset, r.offset, r.offset + r.length);
    await writeFile(out, bytes);
    const { peer: p } = await start(out, { scanExisting: true });
    expect(await held(p)).toEqual([1]);
  });
});
