import path from 'node:path';
import { readFile } from 'node:fs/promises';
import { freePort } from '../../harness/index.js';
import type { TransferRequest, TransferStatus } from '../../actors/index.js';
import { createMesh, type Mesh } from '../helpers/mesh.js';
import { startServe, type PortalProcess, call } from './helpers.js';

const CHUNK = 16384;

type EdgeStatus = TransferStatus & {
  edges?: Array<{ id: string; failuresSinceOk: number; retired: boolean; available: boolean }>;
};

describe('portal serve: a source dead from the start', () => {
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

  test.each([
    ['holdings given, 4 + 4 fetches at once', 40, 4, 4, true],
    [
      'holdings asked of each source (/v1/have), the dead one allowed 8 fetches at once, the live one 1',
      100,
      8,
      1,
      false,
    ],
  ] as const)(
    'its chunks go to the live source at once: every chunk comes from the live one, the dead one is tried a few times and not given up (its budget is not waited out) — %s',
    async (_, chunks, deadParallel, liveParallel, holds) => {
      mesh = await createMesh(chunks * CHUNK, CHUNK, [{ holds: 'all' }]);
      const source = await readFile(mesh.source);
      const deadPort = await freePort(); // nothing listens there: every connection is refused
      const port = await freePort();
      procs.push(await startServe(port, mesh.dir));
      const api = `http://127.0.0.1:${port}/v1.0/actors/SchedulerActor/dead1/method`;
      const output = path.join(mesh.dir, 'dead1.bin');
      const req: TransferRequest = {
        transferId: 'dead1',
        manifest: mesh.manifest,
        output,
        edgeBudgetMs: 60_000,
        edges: [
          {
            id: 'dead',
            config: {
              url: `http://127.0.0.1:${deadPort}`,
              kind: 'portal',
              flags: 0,
              maxParallel: deadParallel,
            },
            ...(holds ? { holds: 'all' } : {}),
          },
          {
            id: 'live',
            config: { url: mesh.servers[0].url, kind: 'portal', flags: 0, maxParallel: liveParallel },
            ...(holds ? { holds: 'all' } : {}),
          },
        ],
      };
      expect(await call(api, 'start', req)).toMatchObject({ status: 200 });
      let s: EdgeStatus | undefined;
      for (let i = 0; i < 2400; i++) {
        s = (await call(api, 'status', { edges: true })).json as EdgeStatus;
        // until it ends: a status call reads the transfer beside its turn, so `verifying` shows as well
        if (['done', 'failed', 'cancelled'].includes(s.state)) break;
        await new Promise((r) => setTimeout(r, 25));
      }
      expect(s).toMatchObject({ state: 'done', verified: true });
      expect((await readFile(output)).equals(source)).toBe(true);
      const dead = s!.edges!.find((e) => e.id === 'dead')!;
      // done while the dead source's 60 s budget still ran: it was not given up, so it was not waited out
      expect(dead.retired).toBe(false);
      expect(s!.chunksByEdge).toEqual({ dead: 0, live: chunks });
      // a few refused attempts, not one per chunk: its chunks moved to the live source once it failed
      expect(dead.failuresSinceOk).toBeGreaterThan(0);
      expect(dead.failuresSinceOk).toBeLessThanOrEqual(2 * deadParallel);
      expect(s!.counters.failures).toBeLessThanOrEqual(2 * deadParallel);
    },
    120_000,
  );
});
