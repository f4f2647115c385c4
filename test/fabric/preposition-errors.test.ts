import path from 'node:path';
import { createServer, type Server } from 'node:http';
import { freePort } from '../../harness/index.js';
import type { TransferRequest, TransferStatus } from '../../actors/index.js';
import { createMesh, type Mesh } from '../helpers/mesh.js';
import { startPortal, json, type PortalProcess, call } from './helpers.js';

const CHUNK = 16384;
const CHUNKS = 40;

type EdgeStatus = TransferStatus & {
  edges?: Array<{
    id: string;
    failuresSinceOk: number;
    retired: boolean;
    lastError?: string;
    available: boolean;
  }>;
  failingSources?: Array<{ id: string }>;
};

async function settle(api: string, ms = 50, tries = 600): Promise<EdgeStatus> {
  let s: EdgeStatus | undefined;
  for (let i = 0; i < tries; i++) {
    s = (await call(api, 'status', { edges: true })).json as EdgeStatus;
    if (s.state === 'done' || s.state === 'failed' || s.state === 'cancelled') return s;
    await new Promise((r) => setTimeout(r, ms));
  }
  return s!;
}

describe('portal serve: pre-position PUT failures', () => {
  let mesh: Mesh | undefined;
  const procs: PortalProcess[] = [];
  const servers: Server[] = [];
  afterEach(async () => {
    for (const p of procs.splice(0)) {
      p.child.kill('SIGTERM');
      await p.exit;
    }
    for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
    await mesh?.close();
    mesh = undefined;
  });

  describe("a pre-position task: a PUT failure is the destination edge's, never the source's", () => {
    const HOST_TOKEN = 'host-secret-4f1d';
    const EDGE_TOKEN = 'edge-secret-9a7c';

    /** `portal serve` (debug logs) that sends HOST_TOKEN to `origins`, and the API of task `id` on it. */
    async function serveFor(origins: string[]): Promise<{ serve: PortalProcess; port: number }> {
      const port = await freePort();
      const serve = startPortal(['serve', '--runtime', 'embedded', '--app-port', String(port), '--json'], {
        env: {
          PORTAL_EDGE_PUT_TOKEN: HOST_TOKEN,
          PORTAL_EDGE_PUT_ORIGINS: origins.join(','),
          PORTAL_LOG_LEVEL: 'debug',
        },
      });
      procs.push(serve);
      await serve.line((l) => (json(l)?.type === 'ready' ? true : undefined));
      return { serve, port };
    }

    async function task(
      port: number,
      id: string,
      target: string,
      sourceUrl: string,
      edgeBudgetMs = 60_000,
    ): Promise<EdgeStatus> {
      const api = `http://127.0.0.1:${port}/v1.0/actors/SchedulerActor/${id}/method`;
      const req: TransferRequest = {
        transferId: id,
        manifest: mesh!.manifest,
        output: target,
        edgeBudgetMs,
        edges: [
          {
            id: 'origin',
            config: { url: sourceUrl, kind: 'portal', flags: 0, maxParallel: 4 },
            holds: 'all',
          },
        ],
        prePosition: { chunks: [[0, 9]], background: false },
      };
      const started = await call(api, 'start', req);
      expect(started).toMatchObject({ status: 200 });
      return settle(api);
    }

    /** The source of the task is untouched: no failure counted, not given up, not offline, not among the failing. */
    function sourceUntouched(s: EdgeStatus): void {
      const origin = s.edges!.find((e) => e.id === 'origin')!;
      expect(origin).toMatchObject({ failuresSinceOk: 0, retired: false, available: true });
      expect(origin.lastError).toBeUndefined();
      expect(s.failingSources).toBeUndefined();
    }

    test('an edge started with --put-token refuses the PUT (401): the task fails naming the edge and the refusal, the source is not blamed, and no token is logged', async () => {
      mesh = await createMesh(CHUNKS * CHUNK, CHUNK, [{ holds: 'all' }]);
      const target = startPortal([
        'edge',
        '--file',
        path.join(mesh.dir, 'target.bin'),
        '--manifest',
        mesh.manifestPath,
        '--accept',
        '--put-token',
        EDGE_TOKEN,
        '--json',
      ]);
      procs.push(target);
      const targetUrl = await target.line((l) => {
        const m = json(l);
        return typeof m?.url === 'string' ? m.url : undefined;
      });
      const { serve, port } = await serveFor([targetUrl]);
      const s = await task(port, 'pp401', targetUrl, mesh.servers[0].url);
      expect(s.state).toBe('failed');
      expect(s.error).toContain(
        `destination edge ${targetUrl} refused the PUT: 401 (put token missing or wrong)`,
      );
      expect(s.error).not.toMatch(/cannot be served by any source|every source/);
      sourceUntouched(s);
      // the source served its bytes (it was asked, and answered)
      expect(mesh.servers[0].stats().bytesServed).toBeGreaterThan(0);
      serve.child.kill('SIGTERM');
      const out = await serve.exit;
      expect(out.stdout + out.stderr).toContain('refused the PUT: 401');
      expect(out.stdout + out.stderr).not.toContain(HOST_TOKEN);
      expect(out.stdout + out.stderr).not.toContain(EDGE_TOKEN);
      expect(JSON.stringify(s)).not.toContain(HOST_TOKEN);
    }, 60_000);

    test('a destination without space (507), one that is unreachable, and a source that fails: each is named for what it is', async () => {
      mesh = await createMesh(CHUNKS * CHUNK, CHUNK, [{ holds: 'all' }]);
      // an edge whose disk is full answers 507 to every PUT (the body is read first)
      let puts = 0;
      const full = createServer((req, res) => {
        puts++;
        req.resume();
        req.on('end', () => {
          const text = JSON.stringify({ error: 'no space left on device' });
          res.writeHead(507, {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(text),
          });
          res.end(text);
        });
      });
      servers.push(full);
      await new Promise<void>((r) => full.listen(0, '127.0.0.1', r));
      const fullUrl = `http://127.0.0.1:${(full.address() as { port: number }).port}`;
      const deadUrl = `http://127.0.0.1:${await freePort()}`;
      const target = startPortal([
        'edge',
        '--file',
        path.join(mesh.dir, 'target2.bin'),
        '--manifest',
        mesh.manifestPath,
        '--accept',
        '--put-token',
        HOST_TOKEN,
        '--json',
      ]);
      procs.push(target);
      const targetUrl = await target.line((l) => {
        const m = json(l);
        return typeof m?.url === 'string' ? m.url : undefined;
      });
      const { serve, port } = await serveFor([fullUrl, deadUrl, targetUrl]);

      const s507 = await task(port, 'pp507', fullUrl, mesh.servers[0].url);
      expect(s507.state).toBe('failed');
      expect(s507.error).toContain(
        `destination edge ${fullUrl} refused the PUT: 507 (no space left on the edge)`,
      );
      expect(puts).toBeGreaterThan(0);
      sourceUntouched(s507);

      const sDead = await task(port, 'ppdead', deadUrl, mesh.servers[0].url);
      expect(sDead.state).toBe('failed');
      expect(sDead.error).toContain(`destination edge ${deadUrl} unreachable for the PUT`);
      sourceUntouched(sDead);

      // the source is the one that fails (nothing listens there): the task names it, and the destination is not blamed
      const deadSource = `http://127.0.0.1:${await freePort()}`;
      const sSrc = await task(port, 'ppsrc', targetUrl, deadSource, 1500);
      expect(sSrc.state).toBe('failed');
      expect(sSrc.error).not.toContain('destination');
      expect(sSrc.error).toContain(`${deadSource} (origin): unreachable`);
      const origin = sSrc.edges!.find((e) => e.id === 'origin')!;
      expect(origin.failuresSinceOk).toBeGreaterThan(0);
      // and with a live source the same destination takes the chunks: the token was right all along
      const ok = await task(port, 'ppok', targetUrl, mesh.servers[0].url);
      expect(ok).toMatchObject({ state: 'done', verified: true });
      serve.child.kill('SIGTERM');
      const out = await serve.exit;
      expect(out.stdout + out.stderr).not.toContain(HOST_TOKEN);
    }, 90_000);
  });
});
