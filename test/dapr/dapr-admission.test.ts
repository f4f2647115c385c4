import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { jest } from '@jest/globals';
import { createDaprActorClient, type DaprActorClient } from '../../runtime/index.js';
import { startRedis, type TestRedis } from '../../harness/index.js';
import type { TransferStatus } from '../../actors/index.js';
import {
  startClientSidecar,
  startDaprCluster,
  startPortalInstance,
  waitFor,
  type DaprCluster,
  type PortalInstance,
} from '../helpers/dapr.js';
import { startAdmissionSource, type AdmissionSource } from '../helpers/admission.js';

// Admission control through real Dapr: redis-server, placement, one `portal serve --runtime dapr --max-running 1
// --max-queued 1` with its daprd, and a client app's own daprd that every call goes through. Three starts: the
// first runs, the second is answered `queued`, the third is refused and the client sees Portal's
// PORTAL_OVERLOADED (inside daprd's error); the refused one keeps no actor instance; both accepted transfers
// finish verified. nginx sends each connection at most 64 KiB/s, so a transfer takes seconds and the queue holds.
jest.setTimeout(240_000);

let redis: TestRedis;
let cluster: DaprCluster;
let portal: PortalInstance;
let client: DaprActorClient;
let src: AdmissionSource;

beforeAll(async () => {
  src = await startAdmissionSource('dapr-admission', '64k');
  redis = await startRedis();
  cluster = await startDaprCluster({ redisPort: redis.port });
  portal = await startPortalInstance(cluster, {
    name: 'a',
    serveArgs: ['--max-running', '1', '--max-queued', '1', '--dashboard-port', '0'],
  });
  const sidecar = await startClientSidecar(cluster, 'admission-client');
  client = createDaprActorClient({ port: sidecar.httpPort, timeoutMs: 30_000 });
  // placement knows the host of SchedulerActor once an unknown id is answered by Portal itself
  await waitFor(
    async () => {
      try {
        await client.invoke('SchedulerActor', 'warmup', 'status');
        return false;
      } catch (err) {
        return (err as { code?: string }).code === 'PORTAL_UNKNOWN_TRANSFER';
      }
    },
    60_000,
    'SchedulerActor placement ready',
  );
}, 180_000);

afterAll(async () => {
  client?.close();
  await cluster?.stop();
  await redis?.stop();
  await src?.close();
});

const startBody = (id: string) => src.startBody(id);

test('through a client sidecar: a start beyond --max-running is queued, one beyond --max-queued is refused with PORTAL_OVERLOADED, and both accepted finish verified', async () => {
  const first = await client.invoke<TransferStatus>('SchedulerActor', 'dq-0', 'start', startBody('dq-0'));
  expect(first.state).toBe('running');
  const second = await client.invoke<TransferStatus>('SchedulerActor', 'dq-1', 'start', startBody('dq-1'));
  expect(second).toMatchObject({ state: 'queued', total: 16, complete: 0 });
  await expect(client.invoke('SchedulerActor', 'dq-2', 'start', startBody('dq-2'))).rejects.toMatchObject({
    code: 'PORTAL_OVERLOADED',
    message: expect.stringMatching(/--max-queued 1/),
  });
  // the refused start left nothing: its id is unknown and only the two accepted transfers have an instance
  await expect(client.invoke('SchedulerActor', 'dq-2', 'status')).rejects.toMatchObject({
    code: 'PORTAL_UNKNOWN_TRANSFER',
  });
  const ready = (await readFile(portal.app.log, 'utf8'))
    .split('\n')
    .find((l) => l.includes('"type":"ready"'))!;
  const metrics = await (
    await fetch(new URL('metrics', (JSON.parse(ready) as { dashboard: string }).dashboard))
  ).text();
  expect(metrics).toMatch(/^portal_actor_instances\{[^}]*type="SchedulerActor"[^}]*\} 2$/m);
  expect(metrics).toMatch(/^portal_transfers\{state="queued"\} 1$/m);

  const ended: Record<string, TransferStatus> = {};
  await waitFor(
    async () => {
      for (const id of ['dq-0', 'dq-1']) {
        const s = await client.invoke<TransferStatus>('SchedulerActor', id, 'status');
        if (s.state === 'done' || s.state === 'failed') ended[id] = s;
      }
      return Object.keys(ended).length === 2;
    },
    120_000,
    () => `both transfers end (ended: ${Object.keys(ended).join(', ')})`,
  );
  const want = src.sha256;
  for (const id of ['dq-0', 'dq-1']) {
    expect(ended[id]).toMatchObject({ state: 'done', verified: true, complete: 16 });
    const got = createHash('sha256')
      .update(await readFile(path.join(src.dir, `${id}.bin`)))
      .digest('hex');
    expect(got).toBe(want);
  }
});
