/**
 * Memory per actor instance, while active and after idle deactivation, on the embedded host with the file state
 * store `portal serve --state-dir` uses: `--actors` EdgeActors configured, CoordinatorActors configured, and
 * SchedulerActor.status calls on ids never started (404s), each in its own phase. Heap is V8's used heap plus
 * array buffers after a forced GC, measured before, with the instances active, and once the default idle timeout
 * (60 minutes, on a manual clock) has deactivated them. Run: `npm run build && node --expose-gc dist/bench/idle-actors.js [--actors 10000] [--json out.json]`.
 */
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { createEmbeddedHost, createFileStateStore, type ActorRef } from '../runtime/index.js';
import { CoordinatorActor, EdgeActor, SchedulerActor } from '../actors/index.js';
import { arg, heapAfterGc } from './lib.js';
import { ManualClock } from '../common/clock.js';

if (!(globalThis as { gc?: unknown }).gc) throw new Error('run with node --expose-gc');
const heap = heapAfterGc;

interface Row {
  phase: string;
  actors: number;
  activeAfterCalls: number;
  /** Heap growth per actor called while the instances are active. */
  bytesPerActorActive: number;
  bytesPerActorAfterIdle: number;
  stateFiles: number;
}

async function main(): Promise<void> {
  const n = Number(arg('actors', '10000'));
  const dir = mkdtempSync(join(os.tmpdir(), 'portal-bench-idle-'));
  const store = createFileStateStore(dir);
  // a manual clock: every instance stays active until the bench moves time past the (default) idle timeout
  const clock = new ManualClock();
  const host = createEmbeddedHost({ store, services: {}, clock });
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
    clock.advance(61 * 60_000); // past the 60-minute idle timeout: the next scan deactivates them
    await host.settle();
    if ((host.stats().activeByType[p.type] ?? 0) > 0)
      throw new Error(`${p.phase}: instances left after the idle timeout`);
    const afterIdle = await heap();
    rows.push({
      phase: p.phase,
      actors: n,
      activeAfterCalls: active,
      bytesPerActorActive: Math.round((withActive - base) / n),
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
