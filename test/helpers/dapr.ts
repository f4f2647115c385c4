import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { daprDefaults, daprFeatures } from '../../runtime/index.js';
import { freePort, killGroup, waitForPort } from './redis.js';

const repo = resolve(new URL('../..', import.meta.url).pathname);

/** The folder with the pinned daprd and placement binaries (scripts/dapr-runtime.sh builds them; setup runs it). */
export function daprBinaries(): string {
  try {
    return execFileSync('bash', [join(repo, 'scripts/dapr-runtime.sh'), '--print'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error('Dapr binaries are not built: run `bash scripts/dapr-runtime.sh` (or `npm run setup`) first');
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
  const child = spawn(cmd, args, { cwd: repo, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  child.stdout!.pipe(out, { end: false });
  child.stderr!.pipe(out, { end: false });
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
  const [placementPort, healthz, metrics, raft] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
  const placement = startProc(join(bin, 'placement'), [
    '--port', String(placementPort), '--healthz-port', String(healthz), '--metrics-port', String(metrics), '--enable-metrics=false',
    '--id', 'dapr-placement-0', '--initial-cluster', `dapr-placement-0=127.0.0.1:${raft}`, '--inmem-store-enabled',
    '--tls-enabled=false', '--log-level', 'warn', '--listen-address', '127.0.0.1', '--healthz-listen-address', '127.0.0.1',
  ], join(dir, 'placement.log'));
  const procs: Proc[] = [placement];
  try {
    await waitForPort(placementPort, 30_000, 'placement');
  } catch (err) {
    await placement.kill();
    throw new Error(`${(err as Error).message}\n${await placement.tail()}`);
  }
  return {
    dir, bin, resources, config, placementPort, placement, procs,
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
  readonly daprd: Proc;
  /** Kills the app and its sidecar at once (SIGKILL: a crash). */
  kill(): Promise<void>;
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

/**
 * Starts daprd and `node dist/cli/main.js serve --runtime dapr` (run `npm run build` first) on free ports and
 * waits until the sidecar reports healthy and the app printed its ready line.
 */
export async function startPortalInstance(cluster: DaprCluster, o: PortalInstanceOptions): Promise<PortalInstance> {
  const [appPort, daprHttpPort, daprGrpcPort, internalPort, metricsPort] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
  const tokens: NodeJS.ProcessEnv = {};
  if (o.apiToken) tokens.DAPR_API_TOKEN = o.apiToken;
  if (o.appApiToken) tokens.APP_API_TOKEN = o.appApiToken;
  const daprd = startProc(join(cluster.bin, 'daprd'), [
    '--app-id', daprDefaults.appId, '--app-port', String(appPort), '--app-protocol', 'http', '--app-channel-address', '127.0.0.1',
    '--dapr-http-port', String(daprHttpPort), '--dapr-grpc-port', String(daprGrpcPort), '--dapr-internal-grpc-port', String(internalPort),
    '--dapr-listen-addresses', '127.0.0.1', '--metrics-port', String(metricsPort), '--enable-metrics=false',
    '--placement-host-address', `127.0.0.1:${cluster.placementPort}`, '--scheduler-host-address', '',
    '--resources-path', cluster.resources, '--config', cluster.config, '--log-level', process.env.PORTAL_DAPRD_LOG_LEVEL ?? 'warn',
    '--dapr-graceful-shutdown-seconds', '1',
  ], join(cluster.dir, `${o.name}-daprd.log`), tokens);
  cluster.procs.push(daprd);
  const app = startProc(process.execPath, [join(repo, 'dist/cli/main.js'), 'serve', '--runtime', 'dapr', '--app-port', String(appPort),
    '--dapr-http-port', String(daprHttpPort), '--json', '--log-level', process.env.PORTAL_TEST_LOG_LEVEL ?? 'warn', ...(o.serveArgs ?? [])],
  join(cluster.dir, `${o.name}-app.log`), { ...tokens, ...o.env });
  cluster.procs.push(app);
  const instance: PortalInstance = {
    name: o.name, appPort, daprHttpPort, app, daprd,
    kill: async () => { await Promise.all([app.kill(), daprd.kill()]); },
  };
  try {
    await waitForPort(daprHttpPort, 60_000, `${o.name} daprd`);
    await waitFor(async () => (await readFile(app.log, 'utf8').catch(() => '')).includes('"type":"ready"'), 60_000, `${o.name} app ready`, () => app.child.exitCode !== null);
    await waitFor(() => daprHealthy(daprHttpPort, o.apiToken), 60_000, `${o.name} daprd healthy`);
  } catch (err) {
    const detail = `\n--- ${o.name} daprd ---\n${await daprd.tail()}\n--- ${o.name} app ---\n${await app.tail()}`;
    await instance.kill();
    throw new Error(`${(err as Error).message}${detail}`);
  }
  return instance;
}

async function daprHealthy(port: number, token?: string): Promise<boolean> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/v1.0/healthz`, { headers: token ? { 'dapr-api-token': token } : {} });
    return res.status === 204 || res.status === 200;
  } catch {
    return false;
  }
}

/** Polls `check` every 100 ms until it is true; rejects after `timeoutMs` or when `abort` says so. */
export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string, abort?: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (abort?.()) throw new Error(`${what}: the process exited`);
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** POST http://127.0.0.1:<daprHttp>/v1.0/actors/<type>/<id>/method/<m>: status and parsed body. */
export async function daprInvoke(daprHttpPort: number, type: string, id: string, method: string, body?: unknown, token?: string): Promise<{ status: number; body: unknown }> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token) headers['dapr-api-token'] = token;
  const res = await fetch(`http://127.0.0.1:${daprHttpPort}/v1.0/actors/${type}/${encodeURIComponent(id)}/method/${method}`, {
    method: 'POST', headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try { parsed = text.length ? JSON.parse(text) : undefined; } catch { /* not JSON: keep the text */ }
  return { status: res.status, body: parsed };
}
