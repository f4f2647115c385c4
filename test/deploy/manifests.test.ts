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
      expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: daprDefaults.appPort });
      expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: daprDefaults.appPort });
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

  test('the Service selects the portal pods on the app port', () => {
    const [svc] = byKind(k8s, 'Service');
    expect(svc.spec.selector).toEqual({ app: 'portal' });
    expect(svc.spec.ports[0].targetPort).toBe(daprDefaults.appPort);
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

  test('the runtime script builds the Dapr version the manifests pin', () => {
    expect(readFileSync(join(repo, 'scripts/dapr-runtime.sh'), 'utf8')).toContain(
      `PORTAL_DAPR_VERSION:-${daprDefaults.version}`,
    );
  });
});
