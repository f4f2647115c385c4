/**
 * Actor invocation benchmark: calls/s and p50/p99 latency of a no-op actor method (ProbeActor.noop) and of a
 * state-reading call (ProbeActor.info; SchedulerActor.status of a never-started id is a 404) through Dapr (client -> daprd HTTP API ->
 * placement-routed -> this process's Dapr host -> Redis-backed actor state), beside the embedded host (in-process
 * proxy) in the same run. Starts its own redis-server, placement and daprd on free ports (binaries from
 * scripts/dapr-runtime.sh). Run: `npm run bench:actors [-- --calls 2000 --concurrency 32 --json out.json]`.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join, resolve } from 'node:path';
import {
  createDaprActorClient,
  createDaprHost,
  createEmbeddedHost,
  createMemoryStateStore,
  daprDefaults,
  daprFeatures,
  ProbeActor,
  type ActorRef,
} from '../runtime/index.js';
import { SchedulerActor, EdgeActor, type PortalServices } from '../actors/index.js';
import { createMemoryBus } from '../bus/index.js';
import { createCpuTickEngine } from '../engine/index.js';
import { freePort } from '../common/net.js';
import { quantile } from '../common/quantile.js';
import { startRedis, waitForPort, type TestRedis } from '../harness/index.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

interface Row {
  host: 'dapr' | 'embedded';
  call: string;
  mode: string;
  calls: number;
  callsPerSec: number;
  p50Ms: number;
  p99Ms: number;
}

/** Sequential calls (latency) and `concurrency` callers on distinct actors (throughput). */
async function measure(
  host: Row['host'],
  call: string,
  refs: (i: number) => ActorRef,
  method: string,
  calls: number,
  concurrency: number,
): Promise<Row[]> {
  const warm = refs(0);
  for (let i = 0; i < 50; i++) await warm.invoke(method);
  const lat: number[] = [];
  let t0 = performance.now();
  for (let i = 0; i < calls; i++) {
    const s = performance.now();
    await warm.invoke(method);
    lat.push(performance.now() - s);
  }
  const seqSecs = (performance.now() - t0) / 1000;
  const rows: Row[] = [
    {
      host,
      call,
      mode: 'sequential',
      calls,
      callsPerSec: calls / seqSecs,
      p50Ms: quantile(lat, 0.5),
      p99Ms: quantile(lat, 0.99),
    },
  ];
  for (let w = 0; w < concurrency; w++) await refs(w).invoke(method); // activate
  const clat: number[] = [];
  let next = 0;
  t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async (_, w) => {
      const ref = refs(w);
      while (next++ < calls) {
        const s = performance.now();
        await ref.invoke(method);
        clat.push(performance.now() - s);
      }
    }),
  );
  const conSecs = (performance.now() - t0) / 1000;
  rows.push({
    host,
    call,
    mode: `${concurrency} concurrent`,
    calls,
    callsPerSec: calls / conSecs,
    p50Ms: quantile(clat, 0.5),
    p99Ms: quantile(clat, 0.99),
  });
  return rows;
}

async function main(): Promise<void> {
  const calls = Number(arg('calls', '2000'));
  const concurrency = Number(arg('concurrency', '32'));
  const repo = resolve(new URL('../..', import.meta.url).pathname);
  const bin = execFileSync('bash', [join(repo, 'scripts/dapr-runtime.sh')], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  }).trim();
  const dir = mkdtempSync(join(os.tmpdir(), 'portal-bench-actors-'));
  const procs: ChildProcess[] = [];
  const start = (cmd: string, args: string[]): void => {
    procs.push(spawn(cmd, args, { stdio: 'ignore', detached: true }));
  };
  const bus = createMemoryBus();
  const tickEngine = createCpuTickEngine();
  const services: PortalServices = { bus, tickEngine };
  let dapr: ReturnType<typeof createDaprHost> | undefined;
  let redis: TestRedis | undefined;
  try {
    const [placementPort, ph, pm, raft, appPort, httpPort, grpcPort, intPort, metPort] = await Promise.all(
      Array.from({ length: 9 }, freePort),
    );
    redis = await startRedis();
    const redisPort = redis.port;
    start(join(bin, 'placement'), [
      '--port',
      String(placementPort),
      '--healthz-port',
      String(ph),
      '--metrics-port',
      String(pm),
      '--enable-metrics=false',
      '--id',
      'p0',
      '--initial-cluster',
      `p0=127.0.0.1:${raft}`,
      '--inmem-store-enabled',
      '--tls-enabled=false',
      '--log-level',
      'error',
      '--listen-address',
      '127.0.0.1',
    ]);
    mkdirSync(join(dir, 'res'));
    writeFileSync(
      join(dir, 'res', 'store.yaml'),
      `apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: ${daprDefaults.stateStore}\nspec:\n  type: state.redis\n  version: v1\n  metadata:\n    - name: redisHost\n      value: "127.0.0.1:${redisPort}"\n    - name: actorStateStore\n      value: "true"\n`,
    );
    writeFileSync(
      join(dir, 'config.yaml'),
      `apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: ${daprDefaults.configuration}\nspec:\n  features:\n${daprFeatures.map((f) => `    - name: ${f.name}\n      enabled: ${f.enabled}`).join('\n')}\n`,
    );
    await waitForPort(placementPort, 60_000, 'placement');
    start(join(bin, 'daprd'), [
      '--app-id',
      daprDefaults.appId,
      '--app-port',
      String(appPort),
      '--app-protocol',
      'http',
      '--app-channel-address',
      '127.0.0.1',
      '--dapr-http-port',
      String(httpPort),
      '--dapr-grpc-port',
      String(grpcPort),
      '--dapr-internal-grpc-port',
      String(intPort),
      '--metrics-port',
      String(metPort),
      '--enable-metrics=false',
      '--placement-host-address',
      `127.0.0.1:${placementPort}`,
      '--scheduler-host-address',
      '',
      '--dapr-listen-addresses',
      '127.0.0.1',
      '--resources-path',
      join(dir, 'res'),
      '--config',
      join(dir, 'config.yaml'),
      '--log-level',
      'error',
    ]);
    dapr = createDaprHost({ appPort, daprHttpPort: httpPort, services });
    for (const cls of [SchedulerActor, EdgeActor, ProbeActor]) dapr.register(cls);
    await dapr.start();
    const client = createDaprActorClient({ port: httpPort, maxSockets: concurrency * 2 });
    const viaDapr =
      (type: string, prefix: string) =>
      (i: number): ActorRef => ({
        actorType: type,
        actorId: `${prefix}-${i}`,
        invoke: (m, a) => client.invoke(type, `${prefix}-${i}`, m, a),
      });
    for (let i = 0; ; i++) {
      // until placement has this host
      try {
        await client.invoke('ProbeActor', 'warm', 'noop');
        break;
      } catch (err) {
        if (i > 100) throw err;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    const embedded = createEmbeddedHost({ store: createMemoryStateStore(), services });
    for (const cls of [SchedulerActor, EdgeActor, ProbeActor]) embedded.register(cls);
    const viaEmbedded =
      (type: string, prefix: string) =>
      (i: number): ActorRef =>
        embedded.proxy(type, `${prefix}-${i}`);

    const rows: Row[] = [];
    rows.push(
      ...(await measure(
        'dapr',
        'ProbeActor.noop',
        viaDapr('ProbeActor', 'noop'),
        'noop',
        calls,
        concurrency,
      )),
    );
    rows.push(
      ...(await measure(
        'dapr',
        'ProbeActor.info',
        viaDapr('ProbeActor', 'info'),
        'info',
        calls,
        concurrency,
      )),
    );
    rows.push(
      ...(await measure(
        'embedded',
        'ProbeActor.noop',
        viaEmbedded('ProbeActor', 'noop'),
        'noop',
        calls,
        concurrency,
      )),
    );
    rows.push(
      ...(await measure(
        'embedded',
        'ProbeActor.info',
        viaEmbedded('ProbeActor', 'info'),
        'info',
        calls,
        concurrency,
      )),
    );
    client.close();
    await embedded.stop();

    const fmt = (n: number, d = 2) => n.toFixed(d).padStart(10);
    process.stdout.write(
      `actor invocation, ${os.cpus().length} cores, node ${process.version}, Dapr ${daprDefaults.version}, ${calls} calls per row\n`,
    );
    process.stdout.write(
      `${'host'.padEnd(9)}${'call'.padEnd(24)}${'mode'.padEnd(15)}${'calls/s'.padStart(10)}${'p50 ms'.padStart(10)}${'p99 ms'.padStart(10)}\n`,
    );
    for (const r of rows)
      process.stdout.write(
        `${r.host.padEnd(9)}${r.call.padEnd(24)}${r.mode.padEnd(15)}${fmt(r.callsPerSec, 0)}${fmt(r.p50Ms, 3)}${fmt(r.p99Ms, 3)}\n`,
      );
    const json = arg('json', '');
    if (json)
      writeFileSync(
        json,
        JSON.stringify(
          {
            date: new Date().toISOString(),
            cores: os.cpus().length,
            node: process.version,
            dapr: daprDefaults.version,
            rows,
          },
          null,
          2,
        ),
      );
  } finally {
    await dapr?.stop().catch(() => undefined);
    await redis?.stop();
    for (const p of procs) {
      try {
        process.kill(-p.pid!, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    await bus.close();
    await tickEngine.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench:actors failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
