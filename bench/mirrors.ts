/**
 * Throttled-mirror benchmark: one file from nginx mirrors whose capacities differ, each behind a shaped link
 * (a token bucket shared by all of the mirror's connections, and a one-way delay: bench/shaped-link.ts), one
 * of them dying part-way (its link resets every connection and refuses new ones, and its nginx is stopped).
 * In the same run, interleaved:
 *   - aria2c with a Metalink of the pieces (sha-256 of every 1 MiB piece and of the file), tuned for many
 *     uneven mirrors: -s16 -x8 -k1M --uri-selector=adaptive;
 *   - `portal fetch` of the same manifest with the mirrors as edges.
 * The ideal time is what the caps allow: every byte moved at the summed capacity of the mirrors alive,
 *   ideal = S/C                          when S/C ≤ T (the transfer ends before the death)
 *         = T + (S − C·T) / (C − c_d)   otherwise,
 * with S the file size, C the summed caps, c_d the dying mirror's cap and T the time of its death after the
 * tool started. Each tool's wall time (process start to exit, start-up included) is compared with it.
 * Goal: Portal's efficiency (ideal ÷ wall) ≥ 0.95, and Portal ahead of aria2c.
 *
 *   npm run bench:mirrors -- [--size 128] [--runs 2] [--caps 12,8,4,2] [--delays 2,10,25,50]
 *                            [--die 1] [--die-at SECONDS] [--tools portal,aria2c]
 *
 * caps in MB/s (10^6 bytes), delays one-way in ms; --die -1 keeps every mirror alive; --die-at defaults to
 * 30% of the time the caps allow without the death.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startNginx, type TestNginx } from '../harness/index.js';
import { createManifest, saveManifest } from '../transfer/index.js';
import {
  aria2cArgs,
  arg,
  portalFetchArgs,
  median,
  prepareDownload,
  runTimed,
  writeRandomFile,
  type TimedSample,
} from './lib.js';
import { startShapedLink, type ShapedLink } from './shaped-link.js';

const sizeMiB = Number(arg('size', '128'));
const runs = Number(arg('runs', '2'));
const caps = arg('caps', '12,8,4,2')
  .split(',')
  .map((x) => Number(x) * 1e6);
const delays = arg('delays', '2,10,25,50').split(',').map(Number);
const die = Number(arg('die', '1'));
const tools = arg('tools', 'portal,aria2c').split(',');
/** --timeline MS: print each run's bytes per mirror per MS ms (where the time goes: ramp-up, death, tail). */
const timelineMs = Number(arg('timeline', '0'));
const cli = fileURLToPath(new URL('../cli/main.js', import.meta.url));

/** The time the caps allow (seconds) for `bytes` when mirror `die` (or none, -1) dies `dieAt` s in. */
export function idealSeconds(bytes: number, capsBps: number[], dieIndex: number, dieAt: number): number {
  const total = capsBps.reduce((a, b) => a + b, 0);
  if (dieIndex < 0 || bytes / total <= dieAt) return bytes / total;
  return dieAt + (bytes - total * dieAt) / (total - capsBps[dieIndex]);
}

/**
 * Prints a run's timeline to stderr: one line per sample, ms since the tool started (each sample's own clock
 * reading: setInterval fires late on a loaded machine and its lateness adds up, ~0.1 s over a 7 s run), then MB
 * each mirror sent in that interval, plus where each mirror's first byte came and when the last byte moved.
 */
function printTimeline(
  tool: string,
  run: number,
  samples: { ms: number; bytes: number[] }[],
  mirrors: number,
): void {
  const first = Array.from({ length: mirrors }, (_, i) => samples.find((x) => x.bytes[i] > 0));
  const lastIdx = samples.reduce((a, x, k) => (x.bytes.some((b) => b > 0) ? k : a), -1);
  const lines = [
    `timeline run ${run + 1} ${tool} (ms: MB per mirror since the line before, every ~${timelineMs} ms)`,
  ];
  for (let k = 0; k <= lastIdx; k++)
    lines.push(
      `${samples[k].ms.toFixed(0).padStart(6)}: ${samples[k].bytes.map((b) => (b / 1e6).toFixed(2).padStart(5)).join(' ')}`,
    );
  lines.push(
    `first byte per mirror (ms): ${first.map((x) => (x ? x.ms.toFixed(0) : '-')).join(' / ')}; last byte by ${lastIdx < 0 ? '-' : samples[lastIdx].ms.toFixed(0)} ms`,
  );
  process.stderr.write(`${lines.join('\n')}\n`);
}

interface Row {
  tool: string;
  seconds: number;
  efficiency: number;
  cpuSeconds: number;
  rssMB: number;
  ok: boolean;
  /** Bytes each mirror sent during the run (more than the file in all: bytes wasted on the dying one). */
  mirrorMB: number[];
}

async function main(): Promise<void> {
  if (caps.length !== delays.length || caps.some((c) => !(c > 0)) || delays.some((d) => !(d >= 0)))
    throw new Error(
      `--caps and --delays need as many positive numbers each (got ${caps.join(',')} / ${delays.join(',')})`,
    );
  if (die >= caps.length) throw new Error(`--die ${die}: there are only ${caps.length} mirrors`);
  for (const bin of ['/usr/bin/time', 'aria2c'])
    if (bin.startsWith('/') ? !existsSync(bin) : spawnSync('which', [bin]).status !== 0)
      throw new Error(`${bin} is missing: run npm run setup`);
  const bytes = sizeMiB * 1024 * 1024;
  const total = caps.reduce((a, b) => a + b, 0);
  const dieAt = Number(arg('die-at', String(Math.round((0.3 * bytes * 100) / total) / 100)));
  const ideal = idealSeconds(bytes, caps, die, dieAt);

  const dir = await mkdtemp(join(tmpdir(), 'portal-bench-mirrors-'));
  const nginx: (TestNginx | undefined)[] = [];
  const links: ShapedLink[] = [];
  try {
    const src = join(dir, 'file.bin');
    await writeRandomFile(src, bytes);
    const m = await createManifest(src, { chunkSize: 1024 * 1024 });
    const manifestPath = join(dir, 'file.manifest.json');
    await saveManifest(manifestPath, m);
    const nginxAddress = (n: TestNginx) => ({ host: '127.0.0.1', port: Number(new URL(n.httpUrl).port) });
    for (let i = 0; i < caps.length; i++) {
      const n = await startNginx({ root: dir });
      nginx.push(n);
      links.push(
        await startShapedLink({ target: nginxAddress(n), rateBytesPerSec: caps[i], delayMs: delays[i] }),
      );
    }
    const urls = links.map((l) => `${l.url}/file.bin`);
    const target = prepareDownload(dir, m, urls);
    const { out, clean, good } = target;
    const commands: Record<string, [string, string[]]> = {
      portal: [process.execPath, portalFetchArgs(cli, manifestPath, urls, out)],
      aria2c: ['aria2c', aria2cArgs(target, ['-s16', '-x8', '-k1M', '--uri-selector=adaptive'])],
    };
    const rows: Row[] = [];
    const loads: number[] = [];
    for (let r = 0; r < runs; r++) {
      for (const tool of tools) {
        const cmd = commands[tool];
        if (!cmd) throw new Error(`--tools: unknown tool ${tool} (portal, aria2c)`);
        loads.push(loadavg()[0]);
        clean();
        // the dying mirror comes back for every run: a fresh nginx behind the same link port
        if (die >= 0 && !nginx[die]) {
          nginx[die] = await startNginx({ root: dir });
          await links[die].restore(nginxAddress(nginx[die]));
        }
        const before = links.map((l) => l.bytesDown());
        let killer: NodeJS.Timeout | undefined;
        let killed: Promise<void> = Promise.resolve();
        const samples: { ms: number; bytes: number[] }[] = [];
        let sampler: NodeJS.Timeout | undefined;
        const s: TimedSample = await runTimed(tool, cmd[0], cmd[1], good, () => {
          if (timelineMs > 0) {
            const t0 = performance.now();
            let last = links.map((l) => l.bytesDown());
            sampler = setInterval(() => {
              const now = links.map((l) => l.bytesDown());
              samples.push({ ms: performance.now() - t0, bytes: now.map((b, i) => b - last[i]) });
              last = now;
            }, timelineMs);
          }
          if (die < 0) return;
          killer = setTimeout(() => {
            const n = nginx[die];
            nginx[die] = undefined;
            killed = Promise.all([links[die].cut(), n?.stop()]).then(() => undefined);
          }, dieAt * 1000);
        });
        clearTimeout(killer);
        clearInterval(sampler);
        await killed;
        if (timelineMs > 0) printTimeline(tool, r, samples, links.length);
        rows.push({
          tool,
          seconds: s.seconds,
          efficiency: ideal / s.seconds,
          cpuSeconds: s.cpuSeconds,
          rssMB: s.rssMB,
          ok: s.ok,
          mirrorMB: links.map((l, i) => (l.bytesDown() - before[i]) / 1e6),
        });
        process.stderr.write(
          `run ${r + 1} ${tool}: ${s.seconds.toFixed(2)} s (ideal ${ideal.toFixed(2)} s, ${(ideal / s.seconds).toFixed(3)})${s.ok ? '' : ' FAILED'}\n`,
        );
      }
    }
    loads.push(loadavg()[0]);
    const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB`;
    process.stdout.write(
      `${sizeMiB} MiB, 1 MiB pieces, mirrors capped at ${caps.map((c) => c / 1e6).join(', ')} MB/s (sum ${total / 1e6}) with one-way delays ${delays.join(', ')} ms; ` +
        `${die >= 0 ? `mirror ${die} (${caps[die] / 1e6} MB/s) dies ${dieAt} s after each tool starts` : 'no mirror dies'}; ideal ${ideal.toFixed(2)} s; ` +
        `${runs} runs interleaved; ${machine}; load average ${loads.map((l) => l.toFixed(1)).join(' → ')}\n\n`,
    );
    process.stdout.write(
      '| tool | seconds (median, min–max) | ideal ÷ seconds (median) | CPU s (median) | peak RSS MB | MB sent per mirror (last run) | all verified |\n|---|---:|---:|---:|---:|---|---|\n',
    );
    const summary = tools.map((t) => {
      const xs = rows.filter((x) => x.tool === t);
      const secs = xs.map((x) => x.seconds);
      return {
        tool: t,
        secondsMedian: median(secs),
        secondsMin: Math.min(...secs),
        secondsMax: Math.max(...secs),
        efficiencyMedian: ideal / median(secs),
        cpuMedian: median(xs.map((x) => x.cpuSeconds)),
        rssMBMax: Math.max(...xs.map((x) => x.rssMB)),
        ok: xs.every((x) => x.ok),
        mirrorMB: xs[xs.length - 1]?.mirrorMB ?? [],
      };
    });
    for (const x of summary)
      process.stdout.write(
        `| ${x.tool} | ${x.secondsMedian.toFixed(2)} (${x.secondsMin.toFixed(2)}–${x.secondsMax.toFixed(2)}) | ${x.efficiencyMedian.toFixed(3)} | ${x.cpuMedian.toFixed(2)} | ${x.rssMBMax.toFixed(0)} | ${x.mirrorMB.map((b) => b.toFixed(0)).join(' / ')} | ${x.ok ? 'yes' : 'NO'} |\n`,
      );
    const portal = summary.find((x) => x.tool === 'portal');
    const aria = summary.find((x) => x.tool === 'aria2c');
    const goals = {
      ...(portal
        ? {
            efficiency: {
              value: portal.efficiencyMedian,
              goal: '≥ 0.95',
              met: portal.efficiencyMedian >= 0.95,
            },
          }
        : {}),
      ...(portal && aria
        ? {
            aheadOfAria2c: {
              value: portal.secondsMedian / aria.secondsMedian,
              goal: '< 1',
              met: portal.secondsMedian < aria.secondsMedian,
            },
          }
        : {}),
    };
    process.stdout.write('\n');
    for (const [k, g] of Object.entries(goals))
      process.stdout.write(`${k}: ${g.value.toFixed(3)} (goal ${g.goal}) ${g.met ? 'met' : 'NOT met'}\n`);
    process.stdout.write(
      `${JSON.stringify({ sizeMiB, caps, delays, die, dieAt, idealSeconds: ideal, runs, loads, rows, summary, goals })}\n`,
    );
  } finally {
    await Promise.all(links.map((l) => l.close()));
    await Promise.all(nginx.map((n) => (n ? n.stop() : Promise.resolve())));
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:mirrors: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(1);
});
