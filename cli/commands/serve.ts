import { daprDefaults } from '../../runtime/index.js';
import { startServeNode, parseBackend, DAPR_APP_PORT_0_REASON } from '../../node/index.js';
import { cpuThreadsFromEnv, requireGpuFromEnv, streamRequireGpuFromEnv } from '../env.js';
import { PortalError } from '../../common/errors.js';
import { checkPortsFree } from '../system-errors.js';
import { createLogger } from '../../common/logger.js';
import { codeCacheDir } from '../code-cache.js';
import { resolveLogFormat } from '../../common/log-format.js';
import { backendFlag, caFlag, commonFlags, defineCommand } from '../args.js';
import { createHttpClient, setDefaultHttpClient } from '../../transfer/index.js';

/** Milliseconds in one unit of a Go duration (time.ParseDuration). */
const GO_UNITS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/**
 * Parses a Go duration (`30s`, `1500ms`, `1h30m`), the format Dapr's actor settings take, into milliseconds;
 * PORTAL_CONFIG_INVALID naming `flag` otherwise. Hand-written: ten lines, and the format is Go's, not an npm one.
 */
export function durationMs(text: string, flag: string): number {
  // µs written \u00b5s: the bundles are ASCII (scripts/bundle-cli.mjs)
  const re = /(\d+(?:\.\d+)?)(ns|us|\u00b5s|ms|s|m|h)/gy;
  let total = 0;
  let end = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    total += Number(m[1]) * GO_UNITS[m[2]];
    end = re.lastIndex;
  }
  if (text === '0') return 0;
  if (end === 0 || end !== text.length)
    throw new PortalError(
      'PORTAL_CONFIG_INVALID',
      `${flag}: expected a Go duration such as 30s, 1500ms or 1h30m, got ${JSON.stringify(text)}`,
    );
  return total;
}

/** `portal serve`: hosts Portal's actors until SIGINT/SIGTERM, behind a Dapr sidecar or embedded. */
export const serveCommand = defineCommand({
  name: 'serve',
  summary: 'host the actors (SchedulerActor, EdgeActor, GpuWorkerActor) behind a Dapr sidecar or embedded',
  usage: 'portal serve [--runtime dapr|embedded] [--app-port N] [--dapr-http-port N] [--state-dir DIR]',
  flags: [
    {
      name: 'runtime',
      type: 'string',
      help: 'dapr (sidecar, placement, actor state store) or embedded (one process)',
      default: 'dapr',
      env: 'PORTAL_RUNTIME',
    },
    {
      name: 'app-port',
      type: 'number',
      integer: true,
      help: 'port daprd calls the actors on (dapr), or the actor HTTP API port (embedded; 0 = any free port)',
      default: daprDefaults.appPort,
      env: 'APP_PORT',
      min: 0,
      max: 65535,
    },
    { name: 'dapr-host', type: 'string', help: 'daprd host', default: '127.0.0.1', env: 'DAPR_HOST' },
    {
      name: 'dapr-http-port',
      type: 'number',
      integer: true,
      help: "daprd's HTTP API port",
      default: daprDefaults.daprHttpPort,
      env: 'DAPR_HTTP_PORT',
      min: 1,
      max: 65535,
    },
    {
      name: 'dapr-api-token',
      type: 'string',
      secret: true,
      help: 'token daprd requires on its API (its DAPR_API_TOKEN)',
      env: 'DAPR_API_TOKEN',
    },
    {
      name: 'app-api-token',
      type: 'string',
      secret: true,
      help: 'token daprd sends to this app (its APP_API_TOKEN)',
      env: 'APP_API_TOKEN',
    },
    {
      name: 'actor-idle-timeout',
      type: 'string',
      help: 'actors idle this long are deactivated: state saved, instance released (Go duration; both runtimes)',
      default: '60m',
      env: 'PORTAL_ACTOR_IDLE_TIMEOUT',
    },
    {
      name: 'actor-scan-interval',
      type: 'string',
      help: 'how often idle actors are looked for (Go duration; both runtimes)',
      default: '30s',
      env: 'PORTAL_ACTOR_SCAN_INTERVAL',
    },
    {
      name: 'drain-timeout',
      type: 'string',
      help: 'on SIGTERM, how long running actor turns may take before the process exits anyway (e.g. 30s, 1500ms)',
      default: '30s',
      env: 'PORTAL_DRAIN_TIMEOUT',
    },
    {
      name: 'local-turns',
      type: 'boolean',
      help: "also queue each actor's turns in-process (Dapr's lock already serializes them)",
      default: true,
      env: 'PORTAL_DAPR_LOCAL_TURNS',
    },
    {
      name: 'coordinator',
      type: 'string',
      help: 'id of the learned coordinator (CoordinatorActor) this node serves to peers and clients over NATS (docs/coord-service.md)',
      default: 'default',
      env: 'PORTAL_COORDINATOR',
    },
    {
      name: 'state-dir',
      type: 'string',
      help: 'embedded: folder of the durable actor state (default: in memory)',
      env: 'PORTAL_STATE_DIR',
    },
    {
      name: 'concurrency',
      type: 'number',
      integer: true,
      help: 'chunk fetches this instance runs at once',
      default: 128,
      min: 1,
      max: 4096,
    },
    {
      name: 'dashboard-port',
      type: 'number',
      integer: true,
      help: 'serve the live dashboard and /metrics on this port (-1 = off, 0 = any free port)',
      default: -1,
      min: -1,
      max: 65535,
      env: 'PORTAL_DASHBOARD_PORT',
    },
    {
      name: 'output-root',
      type: 'string',
      help: 'folder every transfer output must resolve inside (links resolved first); others are refused',
      default: '.',
      env: 'PORTAL_OUTPUT_ROOT',
    },
    {
      name: 'manifest-root',
      type: 'string',
      help: "folder a start's manifestUrl may name a local file in (links resolved first; default: the output root); 'none': http(s) URLs only",
      env: 'PORTAL_MANIFEST_ROOT',
    },
    {
      name: 'api-host',
      type: 'string',
      help: 'embedded: interface the actor API listens on (beyond loopback --api-token is required)',
      default: '127.0.0.1',
      env: 'PORTAL_API_HOST',
    },
    {
      name: 'api-token',
      type: 'string',
      secret: true,
      help: 'embedded: bearer token every actor API call must carry (authorization: Bearer, or dapr-api-token)',
      env: 'PORTAL_API_TOKEN',
    },
    {
      name: 'internal-token',
      type: 'string',
      secret: true,
      help: "dapr: token the instances' own actor calls carry (the same on every instance; default from --app-api-token)",
      env: 'PORTAL_INTERNAL_TOKEN',
    },
    {
      name: 'max-body',
      type: 'number',
      integer: true,
      help: 'embedded: largest actor API request body in bytes (413 above it)',
      default: 64 * 1024 * 1024,
      min: 1024,
      max: 1024 ** 3,
      env: 'PORTAL_MAX_BODY',
    },
    {
      name: 'max-edges',
      type: 'number',
      integer: true,
      help: 'edges tracked from bus events at most; heartbeats of edges nothing here knows give their slot to new edges, and events of further edges are dropped and counted',
      default: 10_000,
      min: 1,
      max: 10_000_000,
      env: 'PORTAL_MAX_EDGES',
    },
    {
      name: 'max-running',
      type: 'number',
      integer: true,
      help: 'transfers that run at once on this process; further starts wait in state queued (default: 8 per core, at most one per 32 MiB of memory)',
      min: 1,
      max: 1_000_000,
      env: 'PORTAL_MAX_RUNNING',
    },
    {
      name: 'max-queued',
      type: 'number',
      integer: true,
      help: 'transfers that may wait for a running slot; beyond it start answers 503 PORTAL_OVERLOADED (default: 100 × --max-running)',
      min: 0,
      max: 100_000_000,
      env: 'PORTAL_MAX_QUEUED',
    },
    {
      name: 'dashboard-host',
      type: 'string',
      help: "interface the dashboard listens on (it has no authentication: loopback unless you put a proxy in front; a Host name other than localhost and this machine's must be listed in PORTAL_ALLOWED_HOSTS)",
      default: '127.0.0.1',
      env: 'PORTAL_DASHBOARD_HOST',
    },
    caFlag,
    backendFlag,
    ...commonFlags,
  ],
  async run({ flags }) {
    const runtime = flags.runtime;
    if (runtime !== 'dapr' && runtime !== 'embedded')
      throw new PortalError(
        'PORTAL_CONFIG_INVALID',
        `--runtime: expected dapr or embedded, got ${JSON.stringify(runtime)}`,
      );
    const logger = createLogger({
      level: flags['log-level'],
      format: resolveLogFormat(flags['log-format'], 'json'),
    });
    // the executors' HTTP client (probes, chunk fetches, the data workers' options) trusts --ca too
    if (flags.ca) setDefaultHttpClient(createHttpClient({ caFile: flags.ca }));
    if (runtime === 'dapr' && flags['app-port'] === 0)
      throw new PortalError(
        'PORTAL_CONFIG_INVALID',
        `--app-port 0 (any free port) cannot be used with --runtime dapr: ${DAPR_APP_PORT_0_REASON}`,
      );
    const drainTimeoutMs = durationMs(flags['drain-timeout'], '--drain-timeout');
    const testActors = process.env[daprDefaults.testActorsEnv] === '1';
    const dashPort = flags['dashboard-port'];
    // the ports to listen on are checked before anything starts (the GPU, whose driver may print warnings first,
    // the state folder, daprd): a busy one is one line naming its flag, exit 2. The Dapr app server binds loopback.
    await checkPortsFree([
      {
        flag: 'app-port',
        port: flags['app-port'],
        host: runtime === 'embedded' ? flags['api-host'] : '127.0.0.1',
      },
      { flag: 'dashboard-port', port: dashPort >= 0 ? dashPort : undefined, host: flags['dashboard-host'] },
    ]);
    const node = await startServeNode({
      runtime,
      appPort: flags['app-port'],
      dapr: {
        daprHost: flags['dapr-host'],
        daprHttpPort: flags['dapr-http-port'],
        daprApiToken: flags['dapr-api-token'],
        appApiToken: flags['app-api-token'],
        actorIdleTimeout: flags['actor-idle-timeout'],
        actorScanInterval: flags['actor-scan-interval'],
        drainOngoingCallTimeout: flags['drain-timeout'],
        localTurns: flags['local-turns'],
      },
      stateDir: flags['state-dir'],
      // the CLI's V8 code caches: bytes written there would run as Portal's code at the next start
      hostOwnedPaths: ((dir) => (dir ? [{ path: dir, what: 'the code cache folder' }] : []))(codeCacheDir()),
      concurrency: flags.concurrency,
      drainTimeoutMs,
      idleTimeoutMs: durationMs(flags['actor-idle-timeout'], '--actor-idle-timeout'),
      idleScanMs: durationMs(flags['actor-scan-interval'], '--actor-scan-interval'),
      dashboardPort: dashPort >= 0 ? dashPort : undefined,
      dashboardHost: flags['dashboard-host'],
      maxEdges: flags['max-edges'],
      maxRunning: flags['max-running'],
      maxQueued: flags['max-queued'],
      outputRoot: flags['output-root'],
      manifestRoot: flags['manifest-root'],
      apiHost: flags['api-host'],
      apiToken: flags['api-token'],
      internalToken: flags['internal-token'],
      maxBodyBytes: flags['max-body'],
      testActors,
      backend: parseBackend(flags.backend),
      requireGpu: requireGpuFromEnv(),
      cpuThreads: cpuThreadsFromEnv(),
      streamRequireGpu: streamRequireGpuFromEnv(),
      coordinatorId: flags.coordinator,
      logger,
    });
    // the port chosen for --app-port 0 (embedded), where the ready line says it
    const appPort = node.appPort;
    const ready = {
      runtime,
      appPort,
      pid: process.pid,
      testActors,
      backend: node.engine.backend,
      dashboard: node.dashboardUrl,
      maxRunning: node.admission.stats().maxRunning,
      maxQueued: node.admission.stats().maxQueued,
      dataThreads: node.threads.data,
      hashThread: node.threads.hash,
    };
    if (flags.json) process.stdout.write(`${JSON.stringify({ type: 'ready', ...ready })}\n`);
    else process.stdout.write(`portal serve: ${runtime} actor host ready on port ${appPort}\n`);

    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    // The drain is bounded: the host answers (or releases) every call within drainTimeoutMs. A turn that never
    // ends, or a timer it left, must not keep the process alive after that: exit once the cleanup below is done,
    // and at the latest 5 s after the drain timeout should the cleanup itself hang.
    setTimeout(() => {
      logger.warn({ drainTimeoutMs }, 'shutdown did not finish within the drain timeout + 5 s; exiting');
      process.exit(1);
    }, drainTimeoutMs + 5000).unref();
    await node.close();
    setTimeout(() => {
      logger.info('stopped; exiting although an abandoned turn still holds the event loop');
      process.exit();
    }, 250).unref();
    return 0;
  },
});
