/**
 * Unknown ids and idle actors against a real `portal serve --runtime embedded` process: thousands of calls on
 * ids nobody started create no state file and keep no instance; a few thousand coordinators configured from
 * outside each get their state file, and once idle for --actor-idle-timeout they are deactivated and released:
 * /metrics' portal_actor_instances returns to its baseline and resident memory stays bounded.
 */
import { mkdir, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { rssBytes, startEmbeddedServe, type EmbeddedServe } from '../helpers/portal-cli.js';

/** The dashboard's /metrics text (it must describe portal_actor_instances). */
async function metrics(dashboard: string): Promise<string> {
  const text = await (await fetch(new URL('metrics', dashboard))).text();
  expect(text).toContain('# TYPE portal_actor_instances gauge');
  return text;
}

/** Actor instances per type from /metrics (portal_actor_instances{type=…}). */
async function instances(dashboard: string): Promise<Record<string, number>> {
  const text = await metrics(dashboard);
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^portal_actor_instances\{[^}]*type="([^"]+)"[^}]*\} (\d+)$/gm))
    out[m[1]] = Number(m[2]);
  return out;
}

/** A counter of the actor host from /metrics, e.g. portal_actor_deactivations_total. */
async function hostCounter(dashboard: string, name: string): Promise<number> {
  const m = new RegExp(`^${name}\\{[^}]*\\} (\\d+)$`, 'm').exec(await metrics(dashboard));
  expect(m).not.toBeNull();
  return Number(m![1]);
}

const total = (r: Record<string, number>): number => Object.values(r).reduce((a, b) => a + b, 0);

/** Runs `n` POSTs, `parallel` at a time; resolves with the count of each HTTP status. */
async function post(
  n: number,
  parallel: number,
  url: (i: number) => string,
  body?: (i: number) => unknown,
): Promise<Record<number, number>> {
  const statuses: Record<number, number> = {};
  let next = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      for (let i = next++; i < n; i = next++) {
        const res = await fetch(url(i), {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: body ? JSON.stringify(body(i)) : undefined,
        });
        await res.arrayBuffer();
        statuses[res.status] = (statuses[res.status] ?? 0) + 1;
      }
    }),
  );
  return statuses;
}

/** The actor key prefix a file state store's actor file is named after (a-<base64url>.json), or the name. */
const actorOf = (file: string): string =>
  file.startsWith('a-') ? Buffer.from(file.slice(2, -'.json'.length), 'base64url').toString() : file;

/**
 * The actors with durable state in a group-committed state directory: those with a snapshot file, and those whose
 * records are still only in the commit log (wal-*.log lines `<sha256> [prefix, ops, first]`, written back later).
 */
async function persistedActors(stateDir: string): Promise<string[]> {
  const names = await readdir(stateDir);
  const out = new Set(names.filter((f) => f.endsWith('.json')).map(actorOf));
  for (const name of names.filter((f) => /^wal-\d+\.log$/.test(f)))
    for (const line of (await readFile(path.join(stateDir, name), 'utf8')).split('\n'))
      if (line.length > 65) out.add((JSON.parse(line.slice(65)) as [string])[0]);
  return [...out];
}

describe('portal serve: unknown ids and idle actors', () => {
  let dir: string;
  let serve: EmbeddedServe;
  let base: string;
  let dashboard: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'portal-idle-'));
    await mkdir(path.join(dir, 'root'));
    serve = await startEmbeddedServe([
      '--output-root',
      path.join(dir, 'root'),
      '--state-dir',
      path.join(dir, 'state'),
      '--dashboard-port',
      '0',
      '--actor-idle-timeout',
      '5s',
      '--actor-scan-interval',
      '500ms',
    ]);
    base = serve.base;
    dashboard = serve.dashboard!;
  }, 60_000);

  afterAll(async () => {
    serve?.child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });

  test('5000 status calls on unknown transfer ids and 1000 snapshots of unknown edges create no file and keep no instance', async () => {
    const stateDir = path.join(dir, 'state');
    const filesBefore = await readdir(stateDir).catch(() => [] as string[]);
    // warm up the code paths, then take the baseline
    await post(200, 8, (i) => `${base}/SchedulerActor/warm-${i}/method/status`);
    const baseline = await instances(dashboard);
    const activations0 = await hostCounter(dashboard, 'portal_actor_activations_total');
    const rss0 = rssBytes(serve.child.pid!);

    const statuses = await post(5000, 16, (i) => `${base}/SchedulerActor/unknown-${i}/method/status`);
    expect(statuses).toEqual({ 404: 5000 });
    const edges = await post(1000, 16, (i) => `${base}/EdgeActor/edge-${i}/method/snapshot`);
    expect(edges).toEqual({ 404: 1000 });

    // each call activated an instance, released when the call ended (no idle timeout needed)
    expect(
      (await hostCounter(dashboard, 'portal_actor_activations_total')) - activations0,
    ).toBeGreaterThanOrEqual(6000);
    expect(total(await instances(dashboard))).toBe(total(baseline));
    expect(await readdir(stateDir).catch(() => [] as string[])).toEqual(filesBefore);
    // before, each unknown id kept an instance (~64 KiB) until the idle timeout: 6000 of them were ~400 MB
    expect(rssBytes(serve.child.pid!) - rss0).toBeLessThan(100 * 2 ** 20);
  }, 120_000);

  test('2000 coordinators configured from outside each get durable state (a snapshot or commit-log records) and are released after the idle timeout', async () => {
    const stateDir = path.join(dir, 'state');
    const baseline = await instances(dashboard);
    const deactivated0 = await hostCounter(dashboard, 'portal_actor_deactivations_total');
    const rss0 = rssBytes(serve.child.pid!);
    const n = 2000;
    const statuses = await post(
      n,
      16,
      (i) => `${base}/CoordinatorActor/workload-${i}/method/configure`,
      () => ({ policy: 'heuristic', maxAttempts: 2 }),
    );
    expect(statuses).toEqual({ 200: n });
    const actors = await persistedActors(stateDir);
    const coordinators = actors.filter((a) => /^CoordinatorActor\|\|workload-\d+\|\|$/.test(a));
    expect(coordinators).toHaveLength(n);
    expect(actors.filter((a) => /^(SchedulerActor|EdgeActor)\|\|/.test(a))).toEqual([]);
    // the last ones configured are still in memory (the first may already be gone: the calls take a while)
    const peak = await instances(dashboard);
    expect(peak.CoordinatorActor ?? 0).toBeGreaterThan(baseline.CoordinatorActor ?? 0);
    const rssPeak = rssBytes(serve.child.pid!);

    // idle for 5 s, found by a scan every 500 ms: every one of them is deactivated
    const deadline = Date.now() + 30_000;
    let now = peak;
    while (Date.now() < deadline) {
      now = await instances(dashboard);
      if (total(now) <= total(baseline)) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(total(now)).toBe(total(baseline));
    expect(now.CoordinatorActor ?? 0).toBe(baseline.CoordinatorActor ?? 0);
    expect(
      (await hostCounter(dashboard, 'portal_actor_deactivations_total')) - deactivated0,
    ).toBeGreaterThanOrEqual(n);
    // deactivation kept their state: a call reads it back (and the instance comes back for it)
    const snap = await fetch(`${base}/CoordinatorActor/workload-7/method/snapshot`, { method: 'POST' });
    expect(await snap.json()).toMatchObject({ policy: 'heuristic' });
    expect(rssBytes(serve.child.pid!) - rss0).toBeLessThan(150 * 2 ** 20);
    process.stdout.write(
      `idle-actors: ${n} coordinators: rss ${(rss0 / 2 ** 20).toFixed(0)} → ${(rssPeak / 2 ** 20).toFixed(0)} MiB at peak → ${(rssBytes(serve.child.pid!) / 2 ** 20).toFixed(0)} MiB after the idle timeout\n`,
    );
  }, 180_000);
});
