import { randomBytes } from 'node:crypto';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import http from 'node:http';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  createDaprActorClient,
  daprDefaults,
  daprFeatures,
  type DaprActorClient,
} from '../../runtime/index.js';
import { createEdgeServer, createManifest, type EdgeServer, type Manifest } from '../../transfer/index.js';
import type { TransferRequest, TransferStatus } from '../../actors/index.js';
import { actorProxy, refsOf } from '../../actors/api.js';
import { readPagedJournal } from '../../actors/journal-pages.js';
import { makeTempDir, writeRandomFile } from '../transfer/fixtures.js';
import { freePort, killGroup, startRedis, waitForPort, type TestRedis } from '../../harness/index.js';

const repo = resolve(new URL('../..', import.meta.url).pathname);

/** The folder with the pinned daprd and placement binaries (scripts/dapr-runtime.sh builds them; setup runs it). */
export function daprBinaries(): string {
  try {
    return execFileSync('bash', [join(repo, 'scripts/dapr-runtime.sh'), '--print'], {
      encoding: 'utf8',
    }).trim();
  } catch {
    throw new Error(
      'Dapr binaries are not built: run `bash scripts/dapr-runtime.sh` (or `npm run setup`) first',
    );
  }
}

/** A process this helper started (its own process group), with its output in a log file. */
export interface Proc {
  readonly child: ChildProcess;
  readonly log: string;
  /** The last lines of its log (for failure messages). */
  tail(lines?: number): Promise<string>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

function startProc(cmd: string, args: string[], log: string, env: NodeJS.ProcessEnv = {}): Proc {
  const out = createWriteStream(log, { flags: 'a' });
  const child = spawn(cmd, args, {
    cwd: repo,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  child.stdout.pipe(out, { end: false });
  child.stderr.pipe(out, { end: false });
  child.once('error', (err) => out.write(`spawn error: ${err.message}\n`));
  return {
    child,
    log,
    async tail(lines = 30) {
      const text = await readFile(log, 'utf8').catch(() => '');
      return text.split('\n').slice(-lines).join('\n');
    },
    kill: (signal = 'SIGKILL') => killGroup(child, signal),
  };
}

/** A temp folder for one Dapr test cluster: logs, component and configuration files. */
export interface DaprCluster {
  readonly dir: string;
  readonly bin: string;
  readonly resources: string;
  readonly config: string;
  readonly placementPort: number;
  readonly placement: Proc;
  /** Every process started through this cluster (stop() kills them all). */
  readonly procs: Proc[];
  /** PORTAL_INTERNAL_TOKEN of every instance: their own actor calls carry it (portal serve --internal-token). */
  readonly internalToken: string;
  stop(): Promise<void>;
}

/** The Redis actor state store and the Dapr Configuration a test cluster uses (same names as deploy/). */
export function componentYaml(redisPort: number): string {
  return `apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: ${daprDefaults.stateStore}
spec:
  type: state.redis
  version: v1
  metadata:
    - name: redisHost
      value: "127.0.0.1:${redisPort}"
    - name: redisPassword
      value: ""
    - name: actorStateStore
      value: "true"
`;
}

export function configurationYaml(): string {
  return `apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: ${daprDefaults.configuration}
spec:
  features:
${daprFeatures.map((f) => `    - name: ${f.name}\n      enabled: ${f.enabled}`).join('\n')}
`;
}

/** Starts placement (on free ports, its own healthz port) with a Redis state store component for daprd. */
export async function startDaprCluster(opts: { redisPort: number }): Promise<DaprCluster> {
  const bin = daprBinaries();
  const dir = await mkdtemp(join(tmpdir(), 'portal-dapr-'));
  const resources = join(dir, 'resources');
  await mkdir(resources);
  await writeFile(join(resources, 'statestore.yaml'), componentYaml(opts.redisPort));
  const config = join(dir, 'config.yaml');
  await writeFile(config, configurationYaml());
  const [placementPort, healthz, metrics, raft] = await Promise.all([
    freePort(),
    freePort(),
    freePort(),
    freePort(),
  ]);
  const placement = startProc(
    join(bin, 'placement'),
    [
      '--port',
      String(placementPort),
      '--healthz-port',
      String(healthz),
      '--metrics-port',
      String(metrics),
      '--enable-metrics=false',
      '--id',
      'dapr-placement-0',
      '--initial-cluster',
      `dapr-placement-0=127.0.0.1:${raft}`,
      '--inmem-store-enabled',
      '--tls-enabled=false',
      '--log-level',
      'warn',
      '--listen-address',
      '127.0.0.1',
      '--healthz-listen-address',
      '127.0.0.1',
    ],
    join(dir, 'placement.log'),
  );
  const procs: Proc[] = [placement];
  try {
    await waitForPort(placementPort, 30_000, 'placement');
  } catch (err) {
    await placement.kill();
    throw new Error(`${(err as Error).message}\n${await placement.tail()}`, { cause: err });
  }
  return {
    dir,
    bin,
    resources,
    config,
    placementPort,
    placement,
    procs,
    internalToken: randomBytes(24).toString('base64url'),
    async stop() {
      await Promise.all(procs.map((p) => p.kill()));
      if (process.env.PORTAL_KEEP_DAPR_LOGS !== '1') await rm(dir, { recursive: true, force: true });
    },
  };
}

/** One Portal instance: `portal serve --runtime dapr` plus its daprd. */
export interface PortalInstance {
  readonly name: string;
  readonly appPort: number;
  readonly daprHttpPort: number;
  readonly app: Proc;
  /** The running sidecar (a new Proc after restartDaprd). */
  readonly daprd: Proc;
  /** Kills the app and its sidecar at once (SIGKILL: a crash). */
  kill(): Promise<void>;
  /**
   * Starts a new daprd for this app with the same app id, ports, configuration and tokens (after the old one was
   * killed: `instance.daprd.kill()`), and waits until it reports healthy. Its log goes on in the same file.
   */
  restartDaprd(): Promise<void>;
}

/** Options of startPortalInstance. */
export interface PortalInstanceOptions {
  name: string;
  env?: NodeJS.ProcessEnv;
  apiToken?: string;
  appApiToken?: string;
  /** Extra `portal serve` flags. */
  serveArgs?: string[];
}

/** daprd's flags after the app's own: its ports on loopback, the cluster's placement, resources and config. */
function sidecarArgs(
  cluster: DaprCluster,
  p: { httpPort: number; grpcPort: number; internalPort: number; metricsPort: number },
): string[] {
  return [
    '--dapr-http-port',
    String(p.httpPort),
    '--dapr-grpc-port',
    String(p.grpcPort),
    '--dapr-internal-grpc-port',
    String(p.internalPort),
    '--dapr-listen-addresses',
    '127.0.0.1',
    '--metrics-port',
    String(p.metricsPort),
    '--enable-metrics=false',
    '--placement-host-address',
    `127.0.0.1:${cluster.placementPort}`,
    '--scheduler-host-address',
    '',
    '--resources-path',
    cluster.resources,
    '--config',
    cluster.config,
    '--log-level',
    process.env.PORTAL_DAPRD_LOG_LEVEL ?? 'warn',
    '--dapr-graceful-shutdown-seconds',
    '1',
  ];
}

/**
 * Starts daprd and `node dist/cli/main.js serve --runtime dapr` (run `npm run build` first) on free ports and
 * waits until the sidecar reports healthy and the app printed its ready line.
 */
export async function startPortalInstance(
  cluster: DaprCluster,
  o: PortalInstanceOptions,
): Promise<PortalInstance> {
  const [appPort, daprHttpPort, daprGrpcPort, internalPort, metricsPort] = await Promise.all([
    freePort(),
    freePort(),
    freePort(),
    freePort(),
    freePort(),
  ]);
  const tokens: NodeJS.ProcessEnv = {};
  if (o.apiToken) tokens.DAPR_API_TOKEN = o.apiToken;
  if (o.appApiToken) tokens.APP_API_TOKEN = o.appApiToken;
  const startDaprd = (): Proc => {
    const proc = startProc(
      join(cluster.bin, 'daprd'),
      [
        '--app-id',
        daprDefaults.appId,
        '--app-port',
        String(appPort),
        '--app-protocol',
        'http',
        '--app-channel-address',
        '127.0.0.1',
        ...sidecarArgs(cluster, {
          httpPort: daprHttpPort,
          grpcPort: daprGrpcPort,
          internalPort,
          metricsPort,
        }),
      ],
      join(cluster.dir, `${o.name}-daprd.log`),
      tokens,
    );
    cluster.procs.push(proc);
    return proc;
  };
  let daprd = startDaprd();
  const app = startProc(
    process.execPath,
    [
      join(repo, 'dist/cli/main.js'),
      'serve',
      '--runtime',
      'dapr',
      '--app-port',
      String(appPort),
      '--dapr-http-port',
      String(daprHttpPort),
      '--json',
      '--log-level',
      process.env.PORTAL_TEST_LOG_LEVEL ?? 'warn',
      // the tests' outputs live in temporary folders
      '--output-root',
      tmpdir(),
      ...(o.serveArgs ?? []),
    ],
    join(cluster.dir, `${o.name}-app.log`),
    { ...tokens, PORTAL_INTERNAL_TOKEN: cluster.internalToken, ...o.env },
  );
  cluster.procs.push(app);
  const sidecarUp = async (): Promise<void> => {
    await waitForPort(daprHttpPort, 60_000, `${o.name} daprd`);
    await waitFor(
      () => daprHealthy(daprHttpPort, o.apiToken),
      60_000,
      `${o.name} daprd healthy`,
      () => daprd.child.exitCode !== null,
    );
  };
  const instance: PortalInstance = {
    name: o.name,
    appPort,
    daprHttpPort,
    app,
    get daprd() {
      return daprd;
    },
    kill: async () => {
      await Promise.all([app.kill(), daprd.kill()]);
    },
    async restartDaprd() {
      await daprd.kill();
      daprd = startDaprd();
      try {
        await sidecarUp();
      } catch (err) {
        throw new Error(`${(err as Error).message}\n--- ${o.name} daprd ---\n${await daprd.tail()}`, {
          cause: err,
        });
      }
    },
  };
  try {
    await waitFor(
      async () => (await readFile(app.log, 'utf8').catch(() => '')).includes('"type":"ready"'),
      60_000,
      `${o.name} app ready`,
      () => app.child.exitCode !== null,
    );
    await sidecarUp();
  } catch (err) {
    const detail = `\n--- ${o.name} daprd ---\n${await daprd.tail()}\n--- ${o.name} app ---\n${await app.tail()}`;
    await instance.kill();
    throw new Error(`${(err as Error).message}${detail}`, { cause: err });
  }
  return instance;
}

/** A daprd of another app (a client service): it hosts no actors and calls Portal's through placement. */
export interface ClientSidecar {
  readonly appId: string;
  readonly httpPort: number;
  readonly grpcPort: number;
  readonly daprd: Proc;
}

/**
 * Starts a daprd for a client app `appId` (no app port: it only calls actors) in `cluster`, on free ports, and waits
 * until it reports healthy. It is killed with the cluster.
 */
export async function startClientSidecar(cluster: DaprCluster, appId: string): Promise<ClientSidecar> {
  const [httpPort, grpcPort, internalPort, metricsPort] = await Promise.all([
    freePort(),
    freePort(),
    freePort(),
    freePort(),
  ]);
  const daprd = startProc(
    join(cluster.bin, 'daprd'),
    ['--app-id', appId, ...sidecarArgs(cluster, { httpPort, grpcPort, internalPort, metricsPort })],
    join(cluster.dir, `${appId}-daprd.log`),
  );
  cluster.procs.push(daprd);
  try {
    await waitForPort(httpPort, 60_000, `${appId} daprd`);
    await waitFor(
      () => daprHealthy(httpPort),
      60_000,
      `${appId} daprd healthy`,
      () => daprd.child.exitCode !== null,
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${await daprd.tail()}`, { cause: err });
  }
  return { appId, httpPort, grpcPort, daprd };
}

async function daprHealthy(port: number, token?: string): Promise<boolean> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/v1.0/healthz`, {
      headers: token ? { 'dapr-api-token': token } : {},
    });
    return res.status === 204 || res.status === 200;
  } catch {
    return false;
  }
}

/** Polls `check` every 100 ms until it is true; rejects after `timeoutMs` or when `abort` says so. */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string | (() => string),
  abort?: () => boolean,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const name = () => (typeof what === 'string' ? what : what());
  for (;;) {
    if (await check()) return;
    if (abort?.()) throw new Error(`${name()}: the process exited`);
    if (Date.now() > deadline) throw new Error(`${name()}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** POST http://127.0.0.1:<daprHttp>/v1.0/actors/<type>/<id>/method/<m>: status and parsed body. */
export async function daprInvoke(
  daprHttpPort: number,
  type: string,
  id: string,
  method: string,
  body?: unknown,
  token?: string,
): Promise<{ status: number; body: unknown }> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token) headers['dapr-api-token'] = token;
  const res = await fetch(
    `http://127.0.0.1:${daprHttpPort}/v1.0/actors/${type}/${encodeURIComponent(id)}/method/${method}`,
    {
      method: 'POST',
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    },
  );
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text.length ? JSON.parse(text) : undefined;
  } catch {
    /* not JSON: keep the text */
  }
  return { status: res.status, body: parsed };
}

/** GET /v1.0/metadata: how many actors of `type` the sidecar has active (0 when it cannot be reached). */
export async function activeActors(daprHttpPort: number, type: string): Promise<number> {
  try {
    const res = await fetch(`http://127.0.0.1:${daprHttpPort}/v1.0/metadata`);
    const meta = (await res.json()) as { actors?: Array<{ type: string; count: number }> };
    return meta.actors?.find((x) => x.type === type)?.count ?? 0;
  } catch {
    return 0;
  }
}

/** Counts chunk requests per chunk index in front of an edge (a logging pass-through proxy). */
export interface CountingProxy {
  url: string;
  log: Array<{ chunk: number; at: number }>;
  close(): Promise<void>;
}

export function countingProxy(target: EdgeServer, manifest: Manifest): Promise<CountingProxy> {
  const index = new Map(manifest.chunks.map((cid, i) => [cid, i]));
  const log: CountingProxy['log'] = [];
  const agent = new http.Agent({ keepAlive: true });
  const server = http.createServer((req, res) => {
    const m = /^\/v1\/chunks\/([^/?]+)/.exec(req.url ?? '');
    if (m && index.has(m[1])) log.push({ chunk: index.get(m[1])!, at: Date.now() });
    const up = http.request(
      {
        host: '127.0.0.1',
        port: target.port,
        path: req.url,
        method: req.method,
        headers: req.headers,
        agent,
      },
      (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      },
    );
    up.on('error', () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    req.pipe(up);
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({
        url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
        log,
        close: () =>
          new Promise((r) => {
            agent.destroy();
            server.closeAllConnections();
            server.close(() => r());
          }),
      }),
    ),
  );
}

/** The chunk indexes set in a base64 completion bitmap (a SchedulerActor journal's). */
export function bitsOf(base64: string): Set<number> {
  const out = new Set<number>();
  const b = Buffer.from(base64, 'base64');
  for (let i = 0; i < b.length * 8; i++) if ((b[i >>> 3] >>> (i & 7)) & 1) out.add(i);
  return out;
}

/**
 * A 6 MiB random file served by two loopback edges at 300 KiB/s each (about 10 s in all), each behind a counting
 * proxy, and the request of a SchedulerActor transfer of it into `dir`.
 */
export interface TransferFixture {
  readonly manifest: Manifest;
  readonly chunks: number;
  readonly output: string;
  readonly request: TransferRequest;
  readonly proxies: CountingProxy[];
  /** Requests to the edges after `at` (ms since the epoch). */
  fetchedAfter(at: number): CountingProxy['log'];
  close(): Promise<void>;
}

export async function createTransferFixture(
  dir: string,
  o: { transferId: string; seed: number },
): Promise<TransferFixture> {
  const src = await writeRandomFile(dir, 'source.bin', 6 * 1024 * 1024, o.seed);
  const manifest = await createManifest(src.path, { chunkSize: 128 * 1024 });
  const edges: EdgeServer[] = [];
  const proxies: CountingProxy[] = [];
  for (let i = 0; i < 2; i++) {
    const e = await createEdgeServer({
      id: `edge-${i}`,
      source: { path: src.path, manifest },
      bandwidthBytesPerSec: 300 * 1024,
    });
    edges.push(e);
    proxies.push(await countingProxy(e, manifest));
  }
  const output = join(dir, 'out.bin');
  const request: TransferRequest = {
    transferId: o.transferId,
    manifest,
    output,
    tickMs: 50,
    edges: proxies.map((p, i) => ({
      id: `${o.transferId}-edge-${i}`,
      config: { url: p.url, kind: 'portal' as const, flags: 0, maxParallel: 4 },
      holds: 'all' as const,
    })),
  };
  return {
    manifest,
    chunks: manifest.chunks.length,
    output,
    request,
    proxies,
    fetchedAfter: (at) => proxies.flatMap((p) => p.log).filter((r) => r.at > at),
    async close() {
      await Promise.all(proxies.map((p) => p.close()));
      await Promise.all(edges.map((e) => e.close()));
    },
  };
}

/** A client per instance, through its sidecar. */
export function daprClients(instances: PortalInstance[]): DaprActorClient[] {
  return instances.map((inst) => createDaprActorClient({ port: inst.daprHttpPort, timeoutMs: 30_000 }));
}

/**
 * Starts the fixture's transfer through `client`, waits until `fraction` of its chunks are complete and finds the
 * instance hosting its SchedulerActor (placement decides).
 */
export async function startTransferUntil(
  client: DaprActorClient,
  instances: PortalInstance[],
  f: TransferFixture,
  fraction: number,
): Promise<{ status: TransferStatus; host: number }> {
  const id = f.request.transferId;
  const scheduler = actorProxy(refsOf(client), 'SchedulerActor', id);
  const started = await scheduler.invoke('start', f.request);
  if (started.state !== 'running')
    throw new Error(`transfer ${id} did not start: ${JSON.stringify(started)}`);
  let status = started;
  await waitFor(
    async () => {
      status = await scheduler.invoke('status');
      return status.complete >= Math.ceil(f.chunks * fraction);
    },
    60_000,
    `${fraction} of the chunks`,
  );
  const counts = await Promise.all(instances.map((i) => activeActors(i.daprHttpPort, 'SchedulerActor')));
  return { status, host: counts.indexOf(1) };
}

/** The SchedulerActor journal as the state store holds it now (Dapr's key layout: <appId>||<type>||<id>||<key>). */
export async function readJournal(
  redis: TestRedis,
  transferId: string,
): Promise<{ state: string; journaled: Set<number> }> {
  const got = await readPagedJournal<{ bitmap: string; state: string }>(async <T>(key: string) => {
    const raw = await redis.cli(
      'HGET',
      `${daprDefaults.appId}||SchedulerActor||${transferId}||${key}`,
      'data',
    );
    return raw.trim() === '' ? undefined : (JSON.parse(raw) as T);
  });
  if (!got) throw new Error(`transfer ${transferId} has no journal in the state store`);
  return { state: got.journal.state, journaled: bitsOf(got.journal.bitmap) };
}

/** Polls the transfer's status through `client` (calls may fail while actors move) until it is done or failed. */
export async function waitForTransferEnd(
  client: DaprActorClient,
  transferId: string,
  timeoutMs: number,
  what: string,
): Promise<TransferStatus> {
  let status: TransferStatus | undefined;
  await waitFor(
    async () => {
      try {
        status = await actorProxy(refsOf(client), 'SchedulerActor', transferId).invoke('status');
      } catch {
        return false;
      }
      return status.state === 'done' || status.state === 'failed';
    },
    timeoutMs,
    () =>
      `${what} (last status: ${JSON.stringify(status && { state: status.state, complete: status.complete, total: status.total })})`,
  );
  return status!;
}

/** Redis, placement and two Portal instances (a, b) with a client through each sidecar, and a temp folder. */
export interface DaprTestBed {
  readonly dir: string;
  readonly redis: TestRedis;
  readonly cluster: DaprCluster;
  readonly instances: PortalInstance[];
  readonly clients: DaprActorClient[];
  /** Stops every process it started and removes its files. */
  stop(): Promise<void>;
}

export async function startDaprTestBed(
  name: string,
  o: Omit<PortalInstanceOptions, 'name'> = {},
): Promise<DaprTestBed> {
  const tmp = await makeTempDir(name);
  const redis = await startRedis();
  let cluster: DaprCluster | undefined;
  const stop = async () => {
    await cluster?.stop();
    await redis.stop();
    await tmp.cleanup();
  };
  try {
    cluster = await startDaprCluster({ redisPort: redis.port });
    const c = cluster;
    const instances = await Promise.all(['a', 'b'].map((n) => startPortalInstance(c, { ...o, name: n })));
    const clients = daprClients(instances);
    return {
      dir: tmp.dir,
      redis,
      cluster: c,
      instances,
      clients,
      async stop() {
        for (const client of clients) client.close();
        await stop();
      },
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
