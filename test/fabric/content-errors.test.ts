import path from 'node:path';
import { createServer, type Server } from 'node:http';
import { readFile } from 'node:fs/promises';
import { request } from 'undici';
import { freePort } from '../../harness/index.js';
import { chunkRange } from '../../transfer/index.js';
import type { TransferRequest, TransferStatus } from '../../actors/index.js';
import { createMesh, type Mesh } from '../helpers/mesh.js';
import { startServe, type PortalProcess, call } from './helpers.js';

const CHUNK = 16384;
const CHUNKS = 24;
/** The chunk the gated source holds back, then refuses. */
const GATED = 5;

async function until(api: string, ok: (s: TransferStatus) => boolean): Promise<TransferStatus> {
  let s: TransferStatus | undefined;
  for (let i = 0; i < 600; i++) {
    s = (await call(api, 'status')).json as TransferStatus;
    if (ok(s)) return s;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`status never matched: ${JSON.stringify(s)}`);
}

describe('portal serve: reading the content of a transfer that failed, was cancelled or is unknown', () => {
  let mesh: Mesh | undefined;
  const procs: PortalProcess[] = [];
  const servers: Server[] = [];
  afterEach(async () => {
    for (const p of procs.splice(0)) {
      p.child.kill('SIGTERM');
      await p.exit;
    }
    for (const s of servers.splice(0)) {
      s.closeAllConnections();
      await new Promise((r) => s.close(r));
    }
    await mesh?.close();
    mesh = undefined;
  });

  test('a status and a JSON error naming the cause before any byte; a transfer failing while a body streams cuts it short of its Content-Length, and the log says so', async () => {
    mesh = await createMesh(CHUNKS * CHUNK, CHUNK, [{ holds: [] }]);
    const file = await readFile(mesh.source);
    const m = mesh.manifest;
    // a real HTTP source of the chunks by CID that holds chunk GATED back until `open()`, then refuses it (404)
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const source = createServer((req, res) => {
      const cid = (req.url ?? '').split('/v1/chunks/')[1];
      const c = m.chunks.indexOf(cid);
      const answer = (): void => {
        if (c < 0 || c === GATED) {
          res.writeHead(404, { 'content-length': 0 }).end();
          return;
        }
        const r = chunkRange(m, c);
        res.writeHead(200, { 'content-length': r.length }).end(file.subarray(r.offset, r.offset + r.length));
      };
      if (c === GATED) void gate.then(answer);
      else answer();
    });
    servers.push(source);
    await new Promise<void>((r) => source.listen(0, '127.0.0.1', r));
    const sourceUrl = `http://127.0.0.1:${(source.address() as { port: number }).port}`;
    const port = await freePort();
    const serve = await startServe(port, mesh.dir);
    procs.push(serve);
    const actors = `http://127.0.0.1:${port}/v1.0/actors/SchedulerActor`;
    const content = (id: string): string => `http://127.0.0.1:${port}/v1/transfers/${id}/content`;
    const start = async (id: string, url: string): Promise<string> => {
      const req: TransferRequest = {
        transferId: id,
        manifest: m,
        output: path.join(mesh!.dir, `${id}.bin`),
        edgeBudgetMs: 1000,
        edges: [{ id: 'src', config: { url, kind: 'portal', flags: 0, maxParallel: 4 }, holds: 'all' }],
      };
      expect(await call(`${actors}/${id}/method`, 'start', req)).toMatchObject({ status: 200 });
      return `${actors}/${id}/method`;
    };

    // unknown: 404
    const unknown = await request(content('nope'));
    expect(unknown.statusCode).toBe(404);
    expect(JSON.stringify(await unknown.body.json())).toContain('nope');

    // failed (its only source refuses every chunk): 409 naming the failure
    const failedApi = await start('cf-failed', mesh.servers[0].url);
    const failed = await until(failedApi, (s) => s.state === 'failed');
    const r409 = await request(content('cf-failed'));
    expect(r409.statusCode).toBe(409);
    const e409 = (await r409.body.json()) as { error: { code: string; message: string } };
    expect(e409.error).toEqual({
      code: 'PORTAL_TRANSFER_FAILED',
      message: `transfer cf-failed is failed: ${failed.error}`,
    });

    // a running transfer (chunk GATED held back by its source) ...
    const api = await start('cf-mid', sourceUrl);
    await until(api, (s) => s.complete === CHUNKS - 1);
    // ... read from its start: the chunks before GATED arrive, then the read waits for GATED
    const whole = await request(content('cf-mid'));
    expect(whole.statusCode).toBe(200);
    expect(whole.headers['content-length']).toBe(String(CHUNKS * CHUNK));
    const got: Buffer[] = [];
    let n = 0;
    const it = whole.body[Symbol.asyncIterator]();
    while (n < GATED * CHUNK) {
      const { value } = (await it.next()) as { value: Buffer };
      got.push(value);
      n += value.length;
    }
    expect(Buffer.concat(got).equals(file.subarray(0, GATED * CHUNK))).toBe(true);
    // ... and read at GATED: no byte can go out yet, so no status either
    const atGated = request(content('cf-mid'), { headers: { range: `bytes=${GATED * CHUNK}-` } });
    await new Promise((r) => setTimeout(r, 200));
    // the source refuses GATED: the transfer fails
    open();
    const midFailed = await until(api, (s) => s.state === 'failed');
    // the read that had no byte yet is answered with the status and why
    const early = await atGated;
    expect(early.statusCode).toBe(409);
    const eEarly = (await early.body.json()) as { error: { code: string; message: string } };
    expect(eEarly.error.message).toBe(`transfer cf-mid is failed: ${midFailed.error}`);
    // the read that had bytes ends in an error, short of its Content-Length, never as a clean short body
    let cut: unknown;
    try {
      for (let r = await it.next(); !r.done; r = await it.next()) n += (r.value as Buffer).length;
    } catch (err) {
      cut = err;
    }
    expect(cut).toBeInstanceOf(Error);
    expect(n).toBeLessThan(CHUNKS * CHUNK);

    // cancelled: 409 naming it
    const hang = createServer(() => undefined); // a source that never answers: the transfer runs until cancelled
    servers.push(hang);
    await new Promise<void>((r) => hang.listen(0, '127.0.0.1', r));
    const cancelApi = await start(
      'cf-cancel',
      `http://127.0.0.1:${(hang.address() as { port: number }).port}`,
    );
    expect((await call(cancelApi, 'cancel')).json).toMatchObject({ state: 'cancelled' });
    const r409c = await request(content('cf-cancel'));
    expect(r409c.statusCode).toBe(409);
    expect(await r409c.body.json()).toEqual({
      error: { code: 'PORTAL_CANCELLED', message: 'transfer cf-cancel is cancelled' },
    });

    serve.child.kill('SIGTERM');
    const out = await serve.exit;
    // the log names the cut read: which transfer, how far it got, and why
    expect(out.stdout + out.stderr).toMatch(
      new RegExp(
        `content read of transfer cf-mid cut after ${GATED * CHUNK} of ${CHUNKS * CHUNK} bytes: transfer cf-mid is failed`,
      ),
    );
  }, 90_000);
});
