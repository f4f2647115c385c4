/**
 * NATS event-plane benchmark: telemetry ingestion and chunk-report round trips through the Portal NATS bus
 * (protobuf codecs, validation, JetStream for reports), beside raw NATS pub/sub of the same message sizes,
 * in the same run against the same server. Starts its own nats-server with JetStream on a free port
 * (NATS_SERVER_BIN or nats-server on PATH), or uses BENCH_NATS_URL. Prints a markdown table.
 *
 *   npm run bench:nats            (BENCH_N=20000 messages per row by default)
 */
import { cpus } from 'node:os';
import { connect } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { createNatsBus } from '../bus/nats-bus.js';
import { wire } from '../bus/codec.js';
import { subjects } from '../bus/types.js';
import type { ChunkReport, EdgeTelemetryEvent } from '../common/index.js';
import { startBenchNats } from './lib.js';
import { quantile } from '../common/quantile.js';

const N = Number(process.env.BENCH_N ?? 20_000);
const RTT_N = Number(process.env.BENCH_RTT_N ?? 2_000);

const telemetry = (i: number): EdgeTelemetryEvent => ({
  edgeId: `e${i % 100}`,
  sentAtMs: Date.now(),
  online: true,
  metered: false,
  bandwidth: [{ atMs: Date.now(), bytesPerSec: 12_500_000 + i }],
  rtt: [{ atMs: Date.now(), rttMs: 12.5 }],
  url: '',
});
const report = (t: string, i: number): ChunkReport => ({
  transferId: t,
  chunk: i,
  attempt: 1,
  edgeIndex: i % 100,
  ok: true,
  bytes: 1 << 20,
  firstByteMs: 3.2,
  transferMs: 81.7,
  executorId: 'bench',
});

const pct = (xs: number[], p: number): number => quantile(xs, p / 100);

interface Row {
  name: string;
  bytes: number;
  n: number;
  perSec: number;
  p50: number;
  p99: number;
}

async function main(): Promise<void> {
  const server = await startBenchNats();
  const rows: Row[] = [];
  const tBytes = wire.telemetry.encode(telemetry(1), 'portal.edge.e1.telemetry');
  const rBytes = wire.report.encode(report('bench', 1), 'portal.transfer.bench.report');
  try {
    // --- raw NATS: core pub/sub of telemetry-sized payloads, one-way latency from a timestamp in the payload
    {
      const a = await connect({ servers: server.url });
      const b = await connect({ servers: server.url });
      const lat: number[] = [];
      let got = 0;
      const done = new Promise<void>((res) => {
        b.subscribe('raw.telemetry', {
          callback: (_e, m) => {
            lat.push(performance.now() - new DataView(m.data.buffer, m.data.byteOffset).getFloat64(0));
            if (++got === N) res();
          },
        });
      });
      await b.flush();
      const start = performance.now();
      for (let i = 0; i < N; i++) {
        const p = new Uint8Array(tBytes.length);
        new DataView(p.buffer).setFloat64(0, performance.now());
        a.publish('raw.telemetry', p);
        if (i % 1000 === 999) await a.flush();
      }
      await done;
      rows.push({
        name: 'raw NATS core pub/sub (telemetry size)',
        bytes: tBytes.length,
        n: N,
        perSec: N / ((performance.now() - start) / 1000),
        p50: pct(lat, 50),
        p99: pct(lat, 99),
      });
      await a.close();
      await b.close();
    }
    // --- Portal bus: telemetry ingestion (encode + core publish → decode + validate + handler)
    {
      const a = await createNatsBus({ servers: server.url, name: 'bench-pub' });
      const b = await createNatsBus({ servers: server.url, name: 'bench-sub' });
      const lat: number[] = [];
      let got = 0;
      const sent = new Map<number, number>();
      let resolve!: () => void;
      const done = new Promise<void>((r) => {
        resolve = r;
      });
      const sub = b.subscribe<EdgeTelemetryEvent>(subjects.allEdgeTelemetry, (t) => {
        lat.push(performance.now() - sent.get(t.bandwidth[0].bytesPerSec - 12_500_000)!);
        if (++got === N) resolve();
      });
      await sub.ready;
      const start = performance.now();
      for (let i = 0; i < N; i++) {
        const t = telemetry(i);
        sent.set(i, performance.now());
        await a.publish(subjects.edgeTelemetry(t.edgeId), t);
        if (i % 1000 === 999) await a.flush();
      }
      await done;
      rows.push({
        name: 'Portal bus telemetry ingestion (protobuf, core)',
        bytes: tBytes.length,
        n: N,
        perSec: N / ((performance.now() - start) / 1000),
        p50: pct(lat, 50),
        p99: pct(lat, 99),
      });
      await a.close();
      await b.close();
    }
    // --- raw JetStream: publish (acked) → pull consumer, report-sized payloads, sequential round trip
    {
      const nc = await connect({ servers: server.url });
      const js = jetstream(nc);
      const { jetstreamManager } = await import('@nats-io/jetstream');
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: 'BENCH_RAW', subjects: ['raw.report'] });
      await jsm.consumers.add('BENCH_RAW', { durable_name: 'raw', ack_policy: 'explicit' });
      const c = await js.consumers.get('BENCH_RAW', 'raw');
      const iter = await c.consume({ max_messages: 256 });
      const lat: number[] = [];
      let pending: (() => void) | undefined;
      void (async () => {
        for await (const m of iter) {
          m.ack();
          pending?.();
        }
      })();
      const start = performance.now();
      for (let i = 0; i < RTT_N; i++) {
        const t0 = performance.now();
        const arrived = new Promise<void>((r) => {
          pending = r;
        });
        await js.publish('raw.report', rBytes);
        await arrived;
        lat.push(performance.now() - t0);
      }
      rows.push({
        name: 'raw JetStream publish→consume round trip (report size)',
        bytes: rBytes.length,
        n: RTT_N,
        perSec: RTT_N / ((performance.now() - start) / 1000),
        p50: pct(lat, 50),
        p99: pct(lat, 99),
      });
      iter.stop();
      await nc.close();
    }
    // --- Portal bus: report round trip (encode, JetStream publish acked, durable consumer, decode, handler, ack)
    {
      const a = await createNatsBus({ servers: server.url, name: 'bench-rpub' });
      const b = await createNatsBus({ servers: server.url, name: 'bench-rsub' });
      const lat: number[] = [];
      let pending: (() => void) | undefined;
      const sub = b.subscribe<ChunkReport>(subjects.report('bench'), () => {
        pending?.();
      });
      await sub.ready;
      const start = performance.now();
      for (let i = 0; i < RTT_N; i++) {
        const t0 = performance.now();
        const arrived = new Promise<void>((r) => {
          pending = r;
        });
        await a.publish(subjects.report('bench'), report('bench', i));
        await arrived;
        lat.push(performance.now() - t0);
      }
      rows.push({
        name: 'Portal bus report round trip (protobuf, JetStream)',
        bytes: rBytes.length,
        n: RTT_N,
        perSec: RTT_N / ((performance.now() - start) / 1000),
        p50: pct(lat, 50),
        p99: pct(lat, 99),
      });
      // Throughput: publish in parallel windows, count deliveries.
      let got = 0;
      let resolve!: () => void;
      const done = new Promise<void>((r) => {
        resolve = r;
      });
      pending = () => {
        if (++got === N) resolve();
      };
      const t1 = performance.now();
      for (let i = 0; i < N; i += 256)
        await Promise.all(
          Array.from({ length: Math.min(256, N - i) }, (_, k) =>
            a.publish(subjects.report('bench'), report('bench', i + k)),
          ),
        );
      await done;
      const sec = (performance.now() - t1) / 1000;
      rows.push({
        name: 'Portal bus report throughput (256 publishes in flight)',
        bytes: rBytes.length,
        n: N,
        perSec: N / sec,
        p50: NaN,
        p99: NaN,
      });
      await a.close();
      await b.close();
    }
  } finally {
    await server.stop();
  }
  const f = (x: number): string => (Number.isNaN(x) ? '—' : x.toFixed(3));
  process.stdout.write(
    `\nNATS event plane, ${new Date().toISOString()}, node ${process.version}, ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'})\n\n`,
  );
  process.stdout.write(
    '| path | msg bytes | messages | msgs/s | p50 ms | p99 ms |\n|---|---:|---:|---:|---:|---:|\n',
  );
  for (const r of rows)
    process.stdout.write(
      `| ${r.name} | ${r.bytes} | ${r.n} | ${Math.round(r.perSec).toLocaleString('en-US')} | ${f(r.p50)} | ${f(r.p99)} |\n`,
    );
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exitCode = 1;
});
