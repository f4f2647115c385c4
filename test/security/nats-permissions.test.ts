/**
 * Forged NATS messages against a real nats-server running the shipped configuration
 * (deploy/nats/nats-server.conf: one user per role, subject permissions), a real `portal executor
 * --all` process confined to an output root, and a real `portal fetch` on the NATS bus:
 * - the roles' permissions are enough for a whole transfer (scheduler + executor users);
 * - a telemetry publisher (edge user) cannot publish dispatch batches or chunk reports: the server
 *   refuses them, the executor writes nothing and fetches nothing, subscribers see nothing;
 * - an executor user cannot publish dispatch batches either;
 * - a dispatch that does get through (from the scheduler user) for a path outside the executor's
 *   output root writes nothing there — the control that shows the executor would otherwise obey.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, mkdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createCodecRegistry } from '../../bus/codec.js';
import { createNatsBus, type NatsBus } from '../../bus/nats-bus.js';
import { subjects } from '../../bus/types.js';
import type { ChunkReport, DispatchBatch, EdgeTelemetryEvent } from '../../common/vocabulary.js';
import { createSilentLogger } from '../../common/logger.js';
import { chunkRange } from '../../transfer/index.js';
import { startNatsServer, type TestNatsServer } from '../../harness/index.js';
import { createMesh, type Mesh } from '../helpers/mesh.js';
import { PORTAL_MAIN, lastJson, runPortal } from '../helpers/portal-cli.js';

const PASSWORDS = {
  PORTAL_NATS_SCHEDULER_PASSWORD: 'sched-pw',
  PORTAL_NATS_EXECUTOR_PASSWORD: 'exec-pw',
  PORTAL_NATS_EDGE_PASSWORD: 'edge-pw',
  PORTAL_NATS_PRODUCER_PASSWORD: 'prod-pw',
};
const codecs = createCodecRegistry();
const logger = createSilentLogger();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A raw NATS connection as `user`, collecting the permission errors the server sends it. */
async function rawClient(
  url: string,
  user: string,
  pass: string,
): Promise<{ nc: NatsConnection; errors: string[] }> {
  const nc = await connect({ servers: url, user, pass, name: `raw-${user}` });
  const errors: string[] = [];
  void (async () => {
    for await (const s of nc.status())
      if (s.type === 'error') errors.push(String((s as { error?: unknown }).error));
  })();
  return { nc, errors };
}

/** The request count of the mesh's first edge once it has not moved for 500 ms (at most 10 s). */
async function quietRequestCount(mesh: Mesh): Promise<number> {
  let last = mesh.servers[0].stats().requests;
  for (const until = Date.now() + 10_000; Date.now() < until;) {
    await sleep(500);
    const now = mesh.servers[0].stats().requests;
    if (now === last) return now;
    last = now;
  }
  throw new Error(`edge 0 still receiving requests after 10 s (${last})`);
}

describe('NATS with the shipped permissions (deploy/nats/nats-server.conf)', () => {
  let server: TestNatsServer;
  let mesh: Mesh;
  let root: string;
  let executor: ChildProcess | undefined;
  /** What the executor wrote on stderr (its pino records, at debug). */
  let executorLog = '';
  const conns: NatsConnection[] = [];
  const buses: NatsBus[] = [];

  beforeAll(async () => {
    // the shipped file as it is, its $PORTAL_NATS_*_PASSWORD references filled in (a deployment sets them
    // in nats-server's environment; the launcher does not pass one)
    let config = await readFile('deploy/nats/nats-server.conf', 'utf8');
    for (const [name, pw] of Object.entries(PASSWORDS))
      config = config.replaceAll(`$${name}`, JSON.stringify(pw));
    server = await startNatsServer({ config });
    // the scheduler role creates the streams (as `portal serve` or the deploy's stream job does); executors may not
    const setup = await createNatsBus({
      servers: server.url,
      user: 'portal-scheduler',
      pass: PASSWORDS.PORTAL_NATS_SCHEDULER_PASSWORD,
      name: 'setup',
      logger,
    });
    await setup.close();
    mesh = await createMesh(40 * 16384, 16384, [{ holds: 'all' }]);
    root = path.join(mesh.dir, 'root');
    await mkdir(root);
    executor = spawn(
      process.execPath,
      [
        PORTAL_MAIN,
        'executor',
        '--nats',
        server.url,
        '--all',
        '--output-root',
        root,
        '--nats-user',
        'portal-executor',
        '--nats-password',
        PASSWORDS.PORTAL_NATS_EXECUTOR_PASSWORD,
        '--log-level',
        'debug',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    executor.stderr!.on('data', (d: Buffer) => (executorLog += d.toString()));
    await new Promise<void>((resolve, reject) => {
      createInterface({ input: executor!.stdout! }).on('line', (l) => {
        if (l.includes('"ready"')) resolve();
      });
      executor!.once('exit', (c) => reject(new Error(`executor exited ${c}: ${executorLog.slice(-4000)}`)));
    });
  }, 60_000);

  afterAll(async () => {
    executor?.kill('SIGKILL');
    for (const b of buses) await b.close();
    for (const c of conns) await c.close().catch(() => undefined);
    await mesh?.close();
    await server?.stop();
  });

  /** A dispatch batch of chunk 0 of the mesh file, written to `output`. */
  function forgedDispatch(transferId: string, output: string): DispatchBatch {
    const { offset, length } = chunkRange(mesh.manifest, 0);
    return {
      transferId,
      output,
      fileSize: mesh.manifest.fileSize,
      items: [
        {
          chunk: 0,
          attempt: 1,
          edgeIndex: 0,
          edgeUrl: mesh.servers[0].url,
          edgeKind: 'portal',
          cid: mesh.manifest.chunks[0],
          offset,
          length,
          timeoutMs: 5000,
        },
      ],
    };
  }

  test('a scheduler user and an executor user run a whole transfer with only their permissions', async () => {
    const out = path.join(root, 'ok.bin');
    const r = await runPortal(
      ['fetch', mesh.manifestPath, '--edge', mesh.servers[0].url, '--out', out, '--json'],
      {
        env: {
          NATS_URL: server.url,
          NATS_USER: 'portal-scheduler',
          NATS_PASSWORD: PASSWORDS.PORTAL_NATS_SCHEDULER_PASSWORD,
        },
      },
    );
    expect(r.code).toBe(0);
    expect(lastJson(r).verified).toBe(true);
  }, 60_000);

  test('a telemetry publisher can publish telemetry but not dispatch batches or chunk reports', async () => {
    const watcher = await createNatsBus({
      servers: server.url,
      user: 'portal-scheduler',
      pass: PASSWORDS.PORTAL_NATS_SCHEDULER_PASSWORD,
      name: 'watcher',
      logger,
    });
    buses.push(watcher);
    const telemetry: EdgeTelemetryEvent[] = [];
    const reports: ChunkReport[] = [];
    const transferId = 'forged1';
    await watcher.subscribe<EdgeTelemetryEvent>(subjects.allEdgeTelemetry, (t) => {
      telemetry.push(t);
    }).ready;
    await watcher.subscribe<ChunkReport>(subjects.report(transferId), (r) => {
      reports.push(r);
    }).ready;

    const edge = await rawClient(server.url, 'portal-edge', PASSWORDS.PORTAL_NATS_EDGE_PASSWORD);
    conns.push(edge.nc);
    const t: EdgeTelemetryEvent = {
      edgeId: 'e1',
      sentAtMs: 1,
      online: true,
      bandwidth: [],
      rtt: [],
      url: 'http://127.0.0.1:1',
    };
    edge.nc.publish(subjects.edgeTelemetry('e1'), codecs.encode(subjects.edgeTelemetry('e1'), t));

    // The previous test's `portal executor --all` may still be working through dispatches it took from the
    // queue before that transfer ended (seen under CI load: 20 late requests); count from a quiet edge.
    const before = await quietRequestCount(mesh);
    const target = path.join(root, 'forged-by-edge.bin');
    const dispatch = forgedDispatch(transferId, target);
    edge.nc.publish(subjects.dispatch(transferId), codecs.encode(subjects.dispatch(transferId), dispatch));
    const report: ChunkReport = {
      transferId,
      chunk: 0,
      attempt: 1,
      edgeIndex: 0,
      ok: true,
      bytes: 16384,
      firstByteMs: 1,
      transferMs: 1,
      executorId: 'forger',
    };
    edge.nc.publish(subjects.report(transferId), codecs.encode(subjects.report(transferId), report));
    await edge.nc.flush();
    await sleep(2000);

    expect(telemetry.map((x) => x.edgeId)).toContain('e1');
    expect(edge.errors.join('\n')).toMatch(
      /Permissions Violation for Publish to "portal\.transfer\.forged1\.dispatch"/,
    );
    expect(edge.errors.join('\n')).toMatch(
      /Permissions Violation for Publish to "portal\.transfer\.forged1\.report"/,
    );
    expect(reports).toEqual([]);
    expect(existsSync(target)).toBe(false);
    expect(mesh.servers[0].stats().requests).toBe(before);
  }, 30_000);

  test('an executor user cannot publish dispatch batches', async () => {
    const ex = await rawClient(server.url, 'portal-executor', PASSWORDS.PORTAL_NATS_EXECUTOR_PASSWORD);
    conns.push(ex.nc);
    const target = path.join(root, 'forged-by-executor.bin');
    ex.nc.publish(
      subjects.dispatch('forged2'),
      codecs.encode(subjects.dispatch('forged2'), forgedDispatch('forged2', target)),
    );
    await ex.nc.flush();
    await sleep(1500);
    expect(ex.errors.join('\n')).toMatch(
      /Permissions Violation for Publish to "portal\.transfer\.forged2\.dispatch"/,
    );
    expect(existsSync(target)).toBe(false);
  }, 30_000);

  test('a dispatch that gets through is obeyed inside the output root and skipped outside it (no fetch, no write, no report: left to the executors that can serve it)', async () => {
    const sched = await createNatsBus({
      servers: server.url,
      user: 'portal-scheduler',
      pass: PASSWORDS.PORTAL_NATS_SCHEDULER_PASSWORD,
      name: 'sched-test',
      logger,
    });
    buses.push(sched);
    const reports: ChunkReport[] = [];
    await sched.subscribe<ChunkReport>(subjects.report('inside'), (r) => {
      reports.push(r);
    }).ready;
    await sched.subscribe<ChunkReport>(subjects.report('outside'), (r) => {
      reports.push(r);
    }).ready;
    const inside = path.join(root, 'inside.bin');
    const outside = path.join(mesh.dir, 'outside.bin');
    const escape = path.join(root, '..', 'escape.bin');
    await sched.publish(subjects.dispatch('inside'), forgedDispatch('inside', inside));
    await sched.publish(subjects.dispatch('outside'), forgedDispatch('outside', outside));
    await sched.publish(subjects.dispatch('outside'), {
      ...forgedDispatch('outside', escape),
      items: [{ ...forgedDispatch('outside', escape).items[0], attempt: 2 }],
    });
    const skipped = (): Record<string, unknown>[] =>
      executorLog
        .split('\n')
        .filter((l) => l.includes('dispatch skipped'))
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .filter((r) => r.transferId === 'outside');
    const deadline = Date.now() + 15_000;
    while ((reports.length < 1 || skipped().length < 2) && Date.now() < deadline) await sleep(50);
    expect(reports.find((r) => r.transferId === 'inside')).toMatchObject({ ok: true });
    expect(skipped().map((r) => r.reason)).toEqual([
      expect.stringMatching(/outside the output root/),
      expect.stringMatching(/outside the output root/),
    ]);
    await sleep(200); // a report would follow its decision at once
    expect(reports.filter((r) => r.transferId === 'outside')).toEqual([]);
    expect(existsSync(inside)).toBe(true);
    expect(existsSync(outside)).toBe(false);
    expect(existsSync(path.join(mesh.dir, 'escape.bin'))).toBe(false);
  }, 30_000);
});
