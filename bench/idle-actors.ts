/**
 * Memory per actor instance, while active and after idle deactivation, on the embedded host with the file state
 * store `portal serve --state-dir` uses: `--actors` EdgeActors configured, CoordinatorActors configured, and
 * SchedulerActor.status calls on ids never started (404s), each in its own phase. Heap is V8's used heap plus
 * array buffers after a forced GC, measured before, with the instances active, and once the idle timeout has
 * deactivated them. Run: `npm run build && node --expose-gc dist/bench/idle-actors.js [--actors 10000] [--json out.json]`.
 */
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { createEmbeddedHost, createFileStateStore, type ActorRef } from '../runtime/index.js';
import { CoordinatorActor, EdgeActor, SchedulerActor } from '../actors/index.js';
import { arg } from './lib.js';

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');

const heap = async (): Promise<number> => {
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setImmediate(r));
  }
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};

interface Row {
  phase: string;
  actors: number;
  activeAfterCalls: number;
  bytesPerActiveActor: number;
  bytesPerActorAfterIdle: number;
  stateFiles: number;
}

async function main(): Promise<void> {
  const n = Number(arg('actors', '10000'));
  const dir = mkdtempSync(join(os.tmpdir(), 'portal-bench-idle-'));
  const store = createFileStateStore(dir);
  const host = createEmbeddedHost({ store, services: {}, idleTimeoutMs: 2000, idleScanMs: 200 });
  for (const cls of [EdgeActor, CoordinatorActor, SchedulerActor]) host.register(cls);
  await host.ready();

  const phases: Array<{ phase: string; type: string; call: (ref: ActorRef, i: number) => Promise<unknown> }> =
    [
      {
        phase: 'EdgeActor.configure',
        type: 'EdgeActor',
        call: (ref, i) =>
          ref.invoke('configure', {
            url: `http://edge-${i}.example:8080`,
            kind: 'portal',
            flags: 0,
            maxParallel: 4,
          }),
      },
      {
        phase: 'CoordinatorActor.configure',
        type: 'CoordinatorActor',
        call: (ref) => ref.invoke('configure', { policy: 'heuristic', maxAttempts: 2 }),
      },
      {
        phase: 'SchedulerActor.status (unknown id)',
        type: 'SchedulerActor',
        call: (ref) => ref.invoke('status').catch(() => undefined),
      },
    ];
  const rows: Row[] = [];
  for (const p of phases) {
    const base = await heap();
    let next = 0;
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        for (let i = next++; i < n; i = next++) await p.call(host.proxy(p.type, `${p.type}-${i}`), i);
      }),
    );
    const active = host.stats().activeByType[p.type] ?? 0;
    const withActive = await heap();
    const deadline = Date.now() + 60_000;
    while ((host.stats().activeByType[p.type] ?? 0) > 0 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 100));
    await host.settle();
    const afterIdle = await heap();
    rows.push({
      phase: p.phase,
      actors: n,
      activeAfterCalls: active,
      bytesPerActiveActor: Math.round((withActive - base) / Math.max(1, active)),
      bytesPerActorAfterIdle: Math.round((afterIdle - base) / n),
      stateFiles: readdirSync(dir).length,
    });
  }
  await host.stop();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
  console.table(rows);
  const out = arg('json', '');
  if (out) writeFileSync(out, JSON.stringify(rows, null, 2));
}

await main();
