import path from 'node:path';
import { open, readFile, rm } from 'node:fs/promises';
import { request } from 'undici';
import { freePort } from '../../harness/index.js';
import type { TransferRequest, TransferStatus } from '../../actors/index.js';
import { createMesh, type Mesh } from '../helpers/mesh.js';
import { until } from '../helpers/post-json.js';
import { startServe, type PortalProcess, call } from './helpers.js';

// A trial changed, then removed, the output of a done transfer and read its content: both answers were
// 500 PORTAL_INTERNAL ("a bug"), the removal's cause (ENOENT) only in the log. They are now PORTAL_OUTPUT_CHANGED,
// 409 for a modified file and 410 for a removed one, naming the file and the cause.

const CHUNK = 16384;
const CHUNKS = 8;

describe('portal serve: reading the content of a done transfer whose output changed', () => {
  let mesh: Mesh | undefined;
  let serve: PortalProcess | undefined;
  afterEach(async () => {
    serve?.child.kill('SIGTERM');
    await serve?.exit;
    await mesh?.close();
  });

  test('a modified output is 409 PORTAL_OUTPUT_CHANGED naming the file and the chunk; a removed one is 410 naming ENOENT', async () => {
    mesh = await createMesh(CHUNKS * CHUNK, CHUNK, [{ holds: 'all' }]);
    const port = await freePort();
    serve = await startServe(port, mesh.dir);
    const api = `http://127.0.0.1:${port}/v1.0/actors/SchedulerActor/oc1/method`;
    const output = path.join(mesh.dir, 'oc1.bin');
    const req: TransferRequest = {
      transferId: 'oc1',
      manifest: mesh.manifest,
      output,
      edges: mesh.edges,
    };
    expect((await call(api, 'start', req)).status).toBe(200);
    await until(
      'done',
      async () => (await call(api, 'status')).json as TransferStatus,
      (st) => st.state === 'done',
    );
    const content = `http://127.0.0.1:${port}/v1/transfers/oc1/content`;
    // the done output is served as it was verified
    const good = await request(content, { headers: { range: 'bytes=0-3' } });
    expect(good.statusCode).toBe(206);
    expect(Buffer.from(await good.body.arrayBuffer())).toEqual((await readFile(mesh.source)).subarray(0, 4));

    // another program writes into chunk 2
    const fh = await open(output, 'r+');
    await fh.write(Buffer.from('EVIL'), 0, 4, 2 * CHUNK + 10);
    await fh.close();
    const modified = await request(content, { headers: { range: `bytes=${2 * CHUNK}-${2 * CHUNK + 3}` } });
    expect(modified.statusCode).toBe(409);
    expect(await modified.body.json()).toEqual({
      error: {
        code: 'PORTAL_OUTPUT_CHANGED',
        message: `transfer oc1: output ${output} was modified after it was verified: it no longer matches chunk 2's CID (bytes ${2 * CHUNK}-${3 * CHUNK - 1}); start the transfer again with its request to fetch it again`,
      },
    });

    await rm(output);
    const removed = await request(content, { headers: { range: 'bytes=0-3' } });
    expect(removed.statusCode).toBe(410);
    expect(await removed.body.json()).toEqual({
      error: {
        code: 'PORTAL_OUTPUT_CHANGED',
        message: `transfer oc1: output ${output} was removed after it was verified (ENOENT); start the transfer again with its request to fetch it again`,
      },
    });
  }, 60_000);
});
