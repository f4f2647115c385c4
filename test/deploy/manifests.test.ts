import { readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as yaml from 'js-yaml';
import { daprDefaults, daprFeatures } from '../../runtime/index.js';
import { serveCommand } from '../../cli/commands/serve.js';
import type { FlagSpec } from '../../cli/args.js';
import { parseDispatchKey } from '../../bus/index.js';

// Structural checks: the Kubernetes manifests, the compose file and the serve command agree on app id, ports,
// component names and metadata (all taken from runtime/dapr-defaults.ts).

const repo = resolve(new URL('../..', import.meta.url).pathname);
type Doc = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function docs(rel: string): Doc[] {
  return yaml
    .loadAll(readFileSync(join(repo, rel), 'utf8'))
    .filter((d): d is Doc => typeof d === 'object' && d !== null);
}
const byKind = (all: Doc[], kind: string) => all.filter((d) => d.kind === kind);
const meta = (c: Doc, name: string) =>
  (c.spec.metadata as Array<{ name: string; value?: string }>).find((m) => m.name === name);

const k8s = readdirSync(join(repo, 'deploy/k8s'))
  .filter((f) => f.endsWith('.yaml'))
  .flatMap((f) => docs(`deploy/k8s/${f}`));
const deployments = byKind(k8s, 'Deployment');
const [claim] = byKind(k8s, 'PersistentVolumeClaim');

describe('deploy manifests', () => {
  test('serve defaults are the shared Dapr defaults', () => {
    const specs: readonly FlagSpec[] = serveCommand.flags;
    const flag = (n: string) => specs.find((f) => f.name === n);
    expect(flag('app-port')?.default).toBe(daprDefaults.appPort);
    expect(flag('dapr-http-port')?.default).toBe(daprDefaults.daprHttpPort);
    expect(flag('runtime')?.default).toBe('dapr');
    expect(flag('dapr-api-token')?.env).toBe('DAPR_API_TOKEN');
    expect(flag('app-api-token')?.env).toBe('APP_API_TOKEN');
  });

  test('every Deployment has the dapr.io annotations, app port and resource requests the serve command expects', () => {
    expect(deployments.map((d) => d.metadata.name).sort()).toEqual(['portal', 'portal-gpu']);
    for (const d of deployments) {
      const a = d.spec.template.metadata.annotations;
      expect(a['dapr.io/enabled']).toBe('true');
      expect(a['dapr.io/app-id']).toBe(daprDefaults.appId);
      expect(a['dapr.io/app-port']).toBe(String(daprDefaults.appPort));
      expect(a['dapr.io/app-protocol']).toBe('http'); // the JS SDK hosts actors over HTTP only
      expect(a['dapr.io/config']).toBe(daprDefaults.configuration);
      expect(d.spec.selector.matchLabels).toEqual(d.spec.template.metadata.labels);
      const [c] = d.spec.template.spec.containers;
      expect(c.args.slice(0, 3)).toEqual(['serve', '--runtime', 'dapr']);
      expect(c.ports[0].containerPort).toBe(daprDefaults.appPort);
      // the app port listens on the pod's loopback only (runtime/dapr-host.ts): an httpGet probe goes to the pod
      // IP and finds nothing, so the probes run in the container against 127.0.0.1
      for (const [probe, path] of [
        [c.readinessProbe, '/readyz'],
        [c.livenessProbe, '/healthz'],
      ]) {
        expect(probe.httpGet).toBeUndefined();
        expect(probe.tcpSocket).toBeUndefined();
        expect(probe.exec.command.slice(0, 2)).toEqual(['node', '-e']);
        expect(probe.exec.command[2]).toContain(`fetch('http://127.0.0.1:${daprDefaults.appPort}${path}')`);
      }
      // outputs on the shared volume, writable by the image's user (node, uid/gid 1000)
      const env = (n: string) => (c.env as Array<{ name: string; value?: string }>).find((e) => e.name === n);
      expect(env('PORTAL_OUTPUT_ROOT')?.value).toBe('/data');
      const mount = (c.volumeMounts as Array<{ name: string; mountPath: string }>).find(
        (m) => m.mountPath === '/data',
      )!;
      const pod = d.spec.template.spec;
      const volume = (pod.volumes as Doc[]).find((v) => v.name === mount.name)!;
      expect(volume.persistentVolumeClaim.claimName).toBe(claim.metadata.name);
      expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000, fsGroup: 1000 });
      expect(c.resources.requests.cpu).toBeDefined();
      expect(c.resources.requests.memory).toBeDefined();
    }
  });

  test('the GPU variant asks for an NVIDIA GPU and runs on GPU nodes', () => {
    const gpu = deployments.find((d) => d.metadata.name === 'portal-gpu')!;
    const [c] = gpu.spec.template.spec.containers;
    expect(c.resources.limits['nvidia.com/gpu']).toBe(1);
    expect(c.resources.requests['nvidia.com/gpu']).toBe(1);
    expect(Object.keys(gpu.spec.template.spec.nodeSelector)).toContain('nvidia.com/gpu.present');
    expect(readFileSync(join(repo, 'deploy/README.md'), 'utf8')).toMatch(/nvidia\.com\/gpu/);
  });

  test('no Service targets the app port (it listens on the pod loopback only); the output volume is shared by every pod', () => {
    for (const svc of byKind(k8s, 'Service'))
      for (const p of svc.spec.ports) expect([p.port, p.targetPort]).not.toContain(daprDefaults.appPort);
    expect(claim.spec.accessModes).toEqual(['ReadWriteMany']);
  });

  const componentSets: Array<[string, Doc[]]> = [
    ['k8s', byKind(k8s, 'Component')],
    [
      'compose',
      readdirSync(join(repo, 'deploy/compose/components')).flatMap((f) =>
        docs(`deploy/compose/components/${f}`),
      ),
    ],
  ];
  test.each(componentSets)(
    '%s components: the Redis actor state store by the name the code uses, and no Dapr pub/sub (Portal runs its own NATS client)',
    (_, comps) => {
      const store = comps.find((c) => c.metadata.name === daprDefaults.stateStore)!;
      expect(store.spec.type).toBe('state.redis');
      expect(meta(store, 'actorStateStore')?.value).toBe('true');
      expect(meta(store, 'redisHost')?.value).toMatch(/:6379$/);
      expect(comps.filter((c) => String(c.spec.type).startsWith('pubsub.'))).toEqual([]);
      for (const c of comps) expect(c.scopes ?? [daprDefaults.appId]).toContain(daprDefaults.appId);
    },
  );

  test('no deploy file creates a JetStream stream: portal serve owns its stream layout, and NATS_URL points every instance at NATS', () => {
    const files = [
      'docker-compose.yml',
      ...readdirSync(join(repo, 'deploy/k8s')).map((f) => `deploy/k8s/${f}`),
      ...readdirSync(join(repo, 'deploy/compose/components')).map((f) => `deploy/compose/components/${f}`),
    ];
    for (const f of files)
      expect({ f, text: readFileSync(join(repo, f), 'utf8') }).not.toEqual({
        f,
        text: expect.stringMatching(/stream add|streamName|nats-box/),
      });
    for (const d of deployments) {
      const env = d.spec.template.spec.containers[0].env as Array<{ name: string; value?: string }>;
      expect(env.find((e) => e.name === 'NATS_URL')?.value).toMatch(/^nats:\/\/.+:4222$/);
    }
  });

  test('every instance sharing NATS has the same dispatch key (credentialed URLs travel sealed; any executor may take a dispatch)', () => {
    for (const d of deployments) {
      const env = d.spec.template.spec.containers[0].env as Array<{
        name: string;
        valueFrom?: { secretKeyRef?: { name: string; key: string } };
      }>;
      expect(env.find((e) => e.name === 'PORTAL_DISPATCH_KEY')?.valueFrom?.secretKeyRef).toEqual({
        name: 'portal-dispatch-key',
        key: 'key',
      });
    }
    const compose = readFileSync(join(repo, 'docker-compose.yml'), 'utf8');
    const keys = [
      ...compose.matchAll(/^\s+PORTAL_DISPATCH_KEY: "\$\{PORTAL_DISPATCH_KEY:-([0-9a-f]{64})\}"$/gm),
    ];
    // one per Portal instance, the same default, a key parseDispatchKey takes
    expect(keys.map((k) => k[1])).toEqual([keys[0][1], keys[0][1]]);
    expect(parseDispatchKey(keys[0][1], 'compose')).toHaveLength(32);
  });

  test("every instance logs in to NATS as the permissions file's scheduler role when the portal-nats secret exists (trial S3)", () => {
    // before: no NATS_USER/NATS_PASSWORD, so against deploy/nats/nats-server.conf every pod failed to connect
    const conf = readFileSync(join(repo, 'deploy/nats/nats-server.conf'), 'utf8');
    expect(conf).toMatch(
      /\{ user: "portal-scheduler", password: \$PORTAL_NATS_SCHEDULER_PASSWORD, permissions: \$SCHEDULER \}/,
    );
    for (const d of deployments) {
      const env = d.spec.template.spec.containers[0].env as Array<{
        name: string;
        value?: string;
        valueFrom?: { secretKeyRef?: { name: string; key: string; optional?: boolean } };
      }>;
      const ref = (name: string) => env.find((e) => e.name === name)?.valueFrom?.secretKeyRef;
      expect([ref('NATS_USER'), ref('NATS_PASSWORD')]).toEqual([
        { name: 'portal-nats', key: 'user', optional: true },
        { name: 'portal-nats', key: 'password', optional: true },
      ]);
    }
    const readme = readFileSync(join(repo, 'deploy/README.md'), 'utf8');
    expect(readme).toContain(
      'kubectl create secret generic portal-nats --from-literal=user=portal-scheduler',
    );
  });

  test.each([['deploy/k8s/configuration.yaml'], ['deploy/compose/config.yaml']])(
    '%s disables scheduler-backed reminders',
    (rel) => {
      const [cfg] = docs(rel);
      expect(cfg.kind).toBe('Configuration');
      expect(cfg.metadata.name).toBe(daprDefaults.configuration);
      expect(cfg.spec.features).toEqual(daprFeatures.map((f) => ({ ...f })));
    },
  );

  test('the Dockerfile is multi-stage and starts `portal serve --runtime dapr` on the app port', () => {
    const text = readFileSync(join(repo, 'deploy/Dockerfile'), 'utf8');
    expect(text.match(/^FROM /gm)?.length).toBeGreaterThanOrEqual(2);
    expect(text).toMatch(/COPY --from=build/);
    expect(text).toMatch(/CMD \["serve", "--runtime", "dapr"/);
    expect(text).toMatch(new RegExp(`EXPOSE ${daprDefaults.appPort}`));
  });

  // The build stage's and the runtime stage's COPY lines: [source, destination] (COPY --from=build for the latter).
  const dockerfile = readFileSync(join(repo, 'deploy/Dockerfile'), 'utf8');
  const [buildStage, runStage] = dockerfile.split(/^FROM .*$/m).slice(1);
  const copies = (stage: string, from: string) =>
    [...stage.matchAll(new RegExp(`^COPY ${from}(\\S+) (\\S+)$`, 'gm'))].map((m) => [m[1], m[2]]);
  const sourceFolders = (dir: string): boolean =>
    readdirSync(join(repo, dir), { withFileTypes: true }).some((e) =>
      e.isDirectory()
        ? e.name !== 'node_modules' && sourceFolders(join(dir, e.name))
        : e.name.endsWith('.ts') && !e.name.endsWith('.test.ts'),
    );

  test('the build stage copies every folder tsconfig.build.json compiles and the scripts `npm run build` runs', () => {
    const build = JSON.parse(readFileSync(join(repo, 'tsconfig.build.json'), 'utf8')) as {
      include: string[];
      exclude: string[];
    };
    expect(build.include).toEqual(['**/*.ts']); // a narrower include would change the list below
    const needed = readdirSync(repo, { withFileTypes: true })
      .filter((e) => e.isDirectory() && !e.name.startsWith('.') && !build.exclude.includes(e.name))
      .map((e) => e.name)
      .filter(sourceFolders);
    const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as {
      scripts: { build: string };
    };
    for (const script of pkg.scripts.build.matchAll(/\bnode (\S+)/g)) needed.push(script[1].split('/')[0]);
    expect(needed).toEqual(expect.arrayContaining(['cli', 'node', 'engine', 'learning', 'api', 'scripts']));
    const copied = copies(buildStage, '').map(([src, dst]) => {
      expect(dst).toBe(src);
      return src;
    });
    expect(copied).toEqual(expect.arrayContaining([...new Set(needed)]));
    expect(buildStage).toMatch(/^RUN npm run build /m);
  });

  test('the runtime stage carries dist/, production deps and the files serve reads at run time, and a /data owned by node', () => {
    const carried = copies(runStage, '--from=build /src/');
    const wgslFolders = (dir: string): string[] =>
      readdirSync(join(repo, dir), { withFileTypes: true }).flatMap((e) =>
        e.isDirectory()
          ? ['node_modules', 'test', 'dist', 'docs'].includes(e.name) || e.name.startsWith('.')
            ? []
            : wgslFolders(join(dir, e.name))
          : e.name.endsWith('.wgsl') && dir !== '.'
            ? [dir]
            : [],
      );
    const runtimeFiles = ['dist', 'node_modules', 'api/schemas', ...new Set(wgslFolders('.'))];
    expect(runtimeFiles).toEqual(expect.arrayContaining(['gpu/kernels', 'stream/kernels']));
    for (const f of runtimeFiles) expect(carried).toContainEqual([f, f]);
    expect(carried).toContainEqual(['package.json', './']); // cli/main.ts reads its version
    expect(runStage).toMatch(/^RUN mkdir -p \/data && chown node:node \/data$/m);
    expect(runStage.indexOf('chown node:node /data')).toBeLessThan(runStage.indexOf('USER node'));
    expect(runStage).toMatch(/PORTAL_OUTPUT_ROOT=\/data/);
  });
});

describe('docker-compose.yml', () => {
  const [compose] = docs('docker-compose.yml');
  const services = compose.services as Record<string, Doc>;

  test('has redis, nats, placement and two Portal instances, each with a daprd sidecar in its network namespace', () => {
    for (const s of ['redis', 'nats', 'placement', 'portal-a', 'portal-b', 'portal-a-dapr', 'portal-b-dapr'])
      expect(services[s]).toBeDefined();
    for (const app of ['portal-a', 'portal-b']) {
      const sidecar = services[`${app}-dapr`];
      expect(sidecar.network_mode).toBe(`service:${app}`);
      expect(sidecar.image).toBe(`daprio/daprd:${daprDefaults.version}`);
      const args: string[] = sidecar.command;
      const arg = (n: string) => args[args.indexOf(n) + 1];
      expect(arg('--app-id')).toBe(daprDefaults.appId);
      expect(arg('--app-port')).toBe(String(daprDefaults.appPort));
      expect(arg('--app-protocol')).toBe('http');
      expect(arg('--dapr-http-port')).toBe(String(daprDefaults.daprHttpPort));
      expect(arg('--placement-host-address')).toBe(`placement:${daprDefaults.placementPort}`);
      const appArgs: string[] = services[app].command;
      expect(appArgs.slice(0, 3)).toEqual(['serve', '--runtime', 'dapr']);
      expect(appArgs[appArgs.indexOf('--app-port') + 1]).toBe(String(daprDefaults.appPort));
      expect(appArgs[appArgs.indexOf('--dapr-http-port') + 1]).toBe(String(daprDefaults.daprHttpPort));
    }
    expect(services.placement.image).toBe(`daprio/placement:${daprDefaults.version}`);
    expect(services.placement.command).toContain(String(daprDefaults.placementPort));
    // placement's healthz port must not be 8080 (its default, shared with scheduler and others)
    expect(services.placement.command[services.placement.command.indexOf('--healthz-port') + 1]).not.toBe(
      '8080',
    );
  });

  test('no published port binds every interface (daprd has no API token here) and the outputs volume is /data', () => {
    for (const [name, s] of Object.entries(services)) {
      for (const p of (s.ports ?? []) as Array<string | Doc>) {
        if (typeof p === 'string')
          expect([name, p]).toEqual([name, expect.stringMatching(/^127\.0\.0\.1:\d+:\d+$/)]);
        else expect([name, p.host_ip]).toEqual([name, '127.0.0.1']);
      }
      if (s.image === 'portal:dev') {
        expect(s.environment.PORTAL_OUTPUT_ROOT).toBe('/data');
        expect(s.volumes).toEqual(['transfers:/data']);
      }
    }
    expect(services['portal-a'].ports).toEqual(['127.0.0.1:3501:3500']);
  });

  test('the runtime script builds the Dapr version the manifests pin', () => {
    expect(readFileSync(join(repo, 'scripts/dapr-runtime.sh'), 'utf8')).toContain(
      `PORTAL_DAPR_VERSION:-${daprDefaults.version}`,
    );
  });
});
