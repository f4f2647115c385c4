import http from 'node:http';
import path from 'node:path';
import {
  createDaprHost,
  createEmbeddedHost,
  createFileStateStore,
  createMemoryStateStore,
  createRoutedStateStore,
  daprDefaults,
  ProbeActor,
  type ActorHost,
} from '../../runtime/index.js';
import { createBusFromEnv, natsOptionsFromEnv, type Bus } from '../../bus/index.js';
import { createNatsStreamTransport } from '../../stream/index.js';
import { createExecutor, type Executor } from '../../transfer/index.js';
import { createTickEngine } from '../../engine/index.js';
import { parseBackend } from '../run-transfer.js';
import { cpuThreadsFromEnv, requireGpuFromEnv, streamRequireGpuFromEnv } from '../env.js';
import { createDashboard } from '../../dashboard/index.js';
import {
  SchedulerActor,
  EdgeActor,
  GpuWorkerActor,
  GpuStreamActor,
  gpuStreamMetricsSource,
  routeEdgeEvents,
  type PortalServices,
} from '../../actors/index.js';
import { registerStreamMetrics } from '../../stream/index.js';
import { PortalError, codeOf, isPortalError } from '../../common/errors.js';
import { httpStatusFor } from '../../common/error-table.js';
import { createLogger, type Logger } from '../../common/logger.js';
import { commonFlags, type CommandSpec } from '../args.js';
import { probeEdge } from '../probe.js';

/** The report subject's transfer id (`portal.transfer.<id>.report`), or undefined for other subjects. */
function reportTransferId(subject: string): string | undefined {
  const m = /^portal\.transfer\.([^.]+)\.report$/.exec(subject);
  return m?.[1];
}

/**
 * The bus actors on this instance see: the in-process bus, where a SchedulerActor subscribing to its transfer's
 * reports also attaches this instance's executor to that transfer (and unsubscribing detaches it). So every
 * transfer is executed by the instance its scheduler is active on; when the scheduler moves (rebalancing, a
 * crash), the executor of its new instance takes over. A cluster-wide bus (NATS) replaces this later.
 */
export function createExecutorAttachingBus(bus: Bus, executor: Executor, log: Logger): Bus {
  return {
    publish: (subject, msg) => bus.publish(subject, msg),
    subscribe(subject, handler, opts) {
      const transferId = reportTransferId(subject);
      if (transferId) executor.attach(transferId);
      const sub = bus.subscribe(subject, handler, opts);
      if (!transferId) return sub;
      return {
        subject: sub.subject,
        unsubscribe() {
          sub.unsubscribe();
          executor
            .detach(transferId)
            .catch((err: unknown) => log.warn({ err, transferId }, 'executor detach failed'));
        },
      };
    },
    close: () => bus.close(),
  };
}

/**
 * Serves the embedded host's actors over HTTP with the shape of Dapr's actor API
 * (`POST /v1.0/actors/<type>/<id>/method/<method>`), so clients talk to either runtime the same way.
 */
function serveEmbeddedApi(host: ActorHost, port: number, log: Logger): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const m = /^\/v1\.0\/actors\/([^/]+)\/([^/]+)\/method\/([^/?]+)$/.exec(req.url ?? '');
    if (req.url === '/healthz' || req.url === '/v1.0/healthz') {
      res.writeHead(204).end();
      return;
    }
    if (!m || (req.method !== 'POST' && req.method !== 'PUT')) {
      res.writeHead(404).end();
      return;
    }
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      const text = Buffer.concat(parts).toString('utf8');
      let arg: unknown;
      try {
        arg = text.length ? JSON.parse(text) : undefined;
      } catch {
        res
          .writeHead(httpStatusFor('PORTAL_INVALID_ARGUMENT'), { 'content-type': 'application/json' })
          .end(JSON.stringify({ error: { code: 'PORTAL_INVALID_ARGUMENT', message: 'body is not JSON' } }));
        return;
      }
      let ref;
      try {
        ref = host.proxy(decodeURIComponent(m[1]), decodeURIComponent(m[2]));
      } catch (err) {
        const code = isPortalError(err) ? err.code : 'PORTAL_INVALID_ARGUMENT';
        res
          .writeHead(httpStatusFor(code), { 'content-type': 'application/json' })
          .end(JSON.stringify({ error: { code, message: (err as Error).message } }));
        return;
      }
      ref.invoke(decodeURIComponent(m[3]), arg).then(
        (r) => {
          if (r === undefined) res.writeHead(200).end();
          else res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(r));
        },
        (err: unknown) => {
          const code = codeOf(err);
          const status = httpStatusFor(code);
          if (status >= 500) log.warn({ err }, 'actor call failed');
          res
            .writeHead(status, { 'content-type': 'application/json' })
            .end(
              JSON.stringify({ error: { code, message: err instanceof Error ? err.message : String(err) } }),
            );
        },
      );
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

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
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy;
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
export const serveCommand: CommandSpec = {
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
      help: 'port daprd calls the actors on (dapr), or the actor HTTP API port (embedded)',
      default: daprDefaults.appPort,
      env: 'APP_PORT',
      min: 1,
      max: 65535,
    },
    { name: 'dapr-host', type: 'string', help: 'daprd host', default: '127.0.0.1', env: 'DAPR_HOST' },
    {
      name: 'dapr-http-port',
      type: 'number',
      help: "daprd's HTTP API port",
      default: daprDefaults.daprHttpPort,
      env: 'DAPR_HTTP_PORT',
      min: 1,
      max: 65535,
    },
    {
      name: 'dapr-api-token',
      type: 'string',
      help: 'token daprd requires on its API (its DAPR_API_TOKEN)',
      env: 'DAPR_API_TOKEN',
    },
    {
      name: 'app-api-token',
      type: 'string',
      help: 'token daprd sends to this app (its APP_API_TOKEN)',
      env: 'APP_API_TOKEN',
    },
    {
      name: 'actor-idle-timeout',
      type: 'string',
      help: 'Dapr deactivates actors idle this long (Go duration)',
      default: '60m',
      env: 'PORTAL_ACTOR_IDLE_TIMEOUT',
    },
    {
      name: 'actor-scan-interval',
      type: 'string',
      help: 'how often Dapr looks for idle actors (Go duration)',
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
      name: 'state-dir',
      type: 'string',
      help: 'embedded: folder of the durable actor state (default: in memory)',
      env: 'PORTAL_STATE_DIR',
    },
    {
      name: 'concurrency',
      type: 'number',
      help: 'chunk fetches this instance runs at once',
      default: 128,
      min: 1,
      max: 4096,
    },
    {
      name: 'dashboard-port',
      type: 'number',
      help: 'serve the live dashboard and /metrics on this port (-1 = off, 0 = any free port)',
      default: -1,
      min: -1,
      max: 65535,
      env: 'PORTAL_DASHBOARD_PORT',
    },
    {
      name: 'dashboard-host',
      type: 'string',
      help: 'interface the dashboard listens on (it has no authentication: loopback unless you put a proxy in front)',
      default: '127.0.0.1',
      env: 'PORTAL_DASHBOARD_HOST',
    },
    {
      name: 'backend',
      type: 'string',
      help: 'tick engine: auto (WebGPU when an adapter exists), webgpu or cpu',
      default: 'auto',
      env: 'PORTAL_BACKEND',
    },
    ...commonFlags,
  ],
  async run({ flags }) {
    const runtime = flags.runtime as string;
    if (runtime !== 'dapr' && runtime !== 'embedded')
      throw new PortalError(
        'PORTAL_CONFIG_INVALID',
        `--runtime: expected dapr or embedded, got ${JSON.stringify(runtime)}`,
      );
    const logger = createLogger({ level: flags['log-level'] as string });
    const appPort = flags['app-port'] as number;
    const drainTimeoutMs = durationMs(flags['drain-timeout'] as string, '--drain-timeout');
    // in-process bus, or NATS when NATS_URL is set (then `portal executor` processes can share the work)
    const bus0 = await createBusFromEnv({ logger, name: `portal-serve-${process.pid}` });
    const executor = createExecutor({
      bus: bus0,
      id: `executor-${process.pid}`,
      concurrency: flags.concurrency as number,
      logger: logger.child({ component: 'executor' }),
    });
    const bus = createExecutorAttachingBus(bus0, executor, logger);
    const backend = parseBackend(flags.backend as string);
    const engine = await createTickEngine({
      prefer: backend,
      requireGpu: backend === 'webgpu' || requireGpuFromEnv(),
      cpuThreads: cpuThreadsFromEnv(),
      logger,
    });
    const transfers = new Set<string>();
    // GpuStreamActors pull their input from JetStream when NATS is configured, else take pushed records
    const nats = natsOptionsFromEnv(process.env);
    const streamTransport = nats
      ? await createNatsStreamTransport({ ...nats, name: `portal-stream-${process.pid}`, logger })
      : undefined;
    const services: PortalServices = {
      bus,
      tickEngine: engine,
      probeEdge,
      transferRegistry: transfers,
      streamRequireGpu: streamRequireGpuFromEnv(),
      ...(streamTransport ? { streamTransport } : {}),
    };
    const testActors = process.env[daprDefaults.testActorsEnv] === '1';

    let host: ActorHost;
    let closeExtra: () => Promise<void>;
    if (runtime === 'dapr') {
      const dapr = createDaprHost({
        appPort,
        daprHost: flags['dapr-host'] as string,
        daprHttpPort: flags['dapr-http-port'] as number,
        daprApiToken: flags['dapr-api-token'] as string | undefined,
        appApiToken: flags['app-api-token'] as string | undefined,
        actorIdleTimeout: flags['actor-idle-timeout'] as string,
        actorScanInterval: flags['actor-scan-interval'] as string,
        drainOngoingCallTimeout: flags['drain-timeout'] as string,
        drainTimeoutMs,
        localTurns: flags['local-turns'] as boolean,
        services,
        logger,
        callTimeoutMs: 120_000,
      });
      host = dapr;
      for (const cls of [SchedulerActor, EdgeActor, GpuWorkerActor, GpuStreamActor]) dapr.register(cls);
      if (testActors) dapr.register(ProbeActor);
      await dapr.start();
      closeExtra = async () => {};
    } else {
      const stateDir = flags['state-dir'] as string | undefined;
      const store = stateDir ? createFileStateStore(path.resolve(stateDir)) : createMemoryStateStore();
      const embedded = createEmbeddedHost({
        store: createRoutedStateStore({}, store),
        services,
        logger,
        callTimeoutMs: 120_000,
        drainTimeoutMs,
      });
      for (const cls of [SchedulerActor, EdgeActor, GpuWorkerActor, GpuStreamActor]) embedded.register(cls);
      if (testActors) embedded.register(ProbeActor);
      await embedded.ready();
      host = embedded;
      const api = await serveEmbeddedApi(embedded, appPort, logger);
      closeExtra = async () => {
        await new Promise<void>((r) => {
          api.close(() => r());
          api.closeAllConnections(); // the host has answered every call by now (or released it at the drain timeout)
        });
        await store.close();
      };
    }
    const edgeEvents = routeEdgeEvents(bus0, host, logger.child({ component: 'edge-events' }));
    const dashPort = flags['dashboard-port'] as number;
    // the transfers whose SchedulerActor is active on this instance (Dapr places actors across instances)
    const dash =
      dashPort >= 0
        ? await createDashboard({
            host,
            transfers: () => [...transfers],
            logger: logger.child({ component: 'dashboard' }),
            port: dashPort,
            hostname: flags['dashboard-host'] as string,
            engineStats: () => engine.stats(),
          })
        : undefined;
    if (dash) registerStreamMetrics(dash.metrics, gpuStreamMetricsSource);
    const ready = {
      runtime,
      appPort,
      pid: process.pid,
      testActors,
      backend: engine.backend,
      dashboard: dash?.url,
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
    await dash?.close();
    edgeEvents.close();
    await executor.close();
    await host.stop();
    await streamTransport?.close();
    await closeExtra();
    await bus.close();
    await engine.close();
    setTimeout(() => {
      logger.info('stopped; exiting although an abandoned turn still holds the event loop');
      process.exit();
    }, 250).unref();
    return 0;
  },
};
