/**
 * Stream benchmark: items/s and p50/p99 latency of the stream processor
 *   1. direct (no NATS): records pushed into a processor, edge-telemetry kernel on the GPU and on the CPU reference;
 *   2. raw JetStream: the same 1000-record payloads published and pulled + acked, no processing (the baseline);
 *   3. end to end: the same payloads published to JetStream, pulled by the stream processor (the GpuStreamActor's
 *      engine), aggregated, outputs stored in JetStream and received by a subscriber;
 *   4. latency at 80 % (and 50 %) of the peak a producer beside the processor sustains: a paced producer,
 *      publish → output received per record.
 * Starts its own nats-server with JetStream (NATS_SERVER_BIN or nats-server on PATH) or uses BENCH_NATS_URL.
 *
 *   npm run bench:stream         (BENCH_STREAM_N=1000000 records per row by default)
 */
import { cpus } from 'node:os';
import { connect } from '@nats-io/transport-node';
import { AckPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import {
  createKernelExecutor,
  createStreamProcessor,
  defineUserKernel,
  edgeTelemetryKernel,
  edgeUpdates,
  streamSubjects,
  createNatsStreamTransport,
  STREAM_STREAM,
  type NatsStreamTransport,
  telemetrySampleLayout,
  wordsOf,
  type StreamKernel,
  type StreamSink,
} from '../stream/index.js';

import { startBenchNats } from './lib.js';
import { quantileSorted } from '../common/quantile.js';
import { ensureXdgRuntimeDir } from '../cli/env.js';

const N = Number(process.env.BENCH_STREAM_N ?? 1_000_000);
const PER_MSG = 1000;
const EDGES = 100;

function telemetryMessages(n: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < n; i += PER_MSG) {
    const k = Math.min(PER_MSG, n - i);
    const w = new Uint32Array(k * 5);
    for (let j = 0; j < k; j++) {
      const x = i + j;
      w[j * 5] = x % EDGES;
      w[j * 5 + 1] = x % 50 === 0 ? 0 : 1;
      w[j * 5 + 2] = 1_000_000 + (x & 0xffff);
      w[j * 5 + 3] = 2000 + (x % 977);
      w[j * 5 + 4] = 40_000 + (x % 1013);
    }
    out.push(new Uint8Array(w.buffer));
  }
  return out;
}

const nullSink: StreamSink = { output: async () => undefined, failed: async () => undefined };
const wait = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Row {
  name: string;
  records: number;
  perSec: number;
  p50: number | string;
  p99: number | string;
  note: string;
}
const rows: Row[] = [];
const fmt = (x: number | string): string => (typeof x === 'number' ? x.toFixed(2) : x);

async function direct(
  kernel: StreamKernel,
  prefer: 'gpu' | 'cpu',
  msgs: Uint8Array[],
  records: number,
): Promise<void> {
  let ex;
  try {
    ex = await createKernelExecutor({ kernel, prefer });
  } catch (err) {
    rows.push({
      name: `direct ${kernel.name} (${prefer})`,
      records,
      perSec: 0,
      p50: '-',
      p99: '-',
      note: `unavailable: ${(err as Error).message}`,
    });
    return;
  }
  const p = createStreamProcessor({ executor: ex, sink: nullSink });
  const t0 = performance.now();
  for (const m of msgs) await p.push(m);
  await p.drain();
  const s = (performance.now() - t0) / 1000;
  const m = await p.stop();
  rows.push({
    name: `direct ${kernel.name} (${ex.backend === 'gpu' ? 'GPU ' + ex.deviceName.split(' ')[0] : 'CPU reference'})`,
    records,
    perSec: records / s,
    p50: m.p50LatencyMs,
    p99: m.p99LatencyMs,
    note: `avg batch ${m.averageBatchSize.toFixed(0)}, batch size now ${m.currentBatchSize}`,
  });
}

async function publishAll(
  t: NatsStreamTransport,
  id: string,
  msgs: Uint8Array[],
  window = 256,
): Promise<void> {
  const inflight = new Set<Promise<void>>();
  for (const m of msgs) {
    const p: Promise<void> = t.publishRecords(id, m).finally(() => inflight.delete(p));
    inflight.add(p);
    if (inflight.size >= window) await Promise.race(inflight);
  }
  await Promise.all(inflight);
}

/** Raw JetStream: publish the payloads, pull them with fetch (64 per pull) and ack each; records/s from first publish to last ack. */
async function rawJetStream(
  url: string,
  t: NatsStreamTransport,
  msgs: Uint8Array[],
  records: number,
  recordBytes = 20,
  id = 'rawjs',
): Promise<number> {
  const nc = await connect({ servers: url });
  const jsm = await jetstreamManager(nc);
  const durable = `raw_${id}`;
  await jsm.consumers.add(STREAM_STREAM, {
    durable_name: durable,
    filter_subject: streamSubjects.input(id),
    ack_policy: AckPolicy.Explicit,
    max_ack_pending: 100_000,
  });
  const consumer = await jetstream(nc).consumers.get(STREAM_STREAM, durable);
  let got = 0;
  const t0 = performance.now();
  const consuming = (async () => {
    while (got < records) {
      const it = await consumer.fetch({
        max_messages: Math.max(1, Math.min(64, Math.ceil((records - got) / PER_MSG))),
        expires: 1000,
      });
      for await (const m of it) {
        got += new Uint8Array(m.data).byteLength / recordBytes;
        m.ack();
      }
    }
  })();
  await publishAll(t, id, msgs);
  await consuming;
  const s = (performance.now() - t0) / 1000;
  await nc.close();
  return records / s;
}

/** End to end through the processor: publish → pull → kernel → output stored in JetStream → subscriber. */
async function endToEnd(
  t: NatsStreamTransport,
  prefer: 'gpu' | 'cpu',
  msgs: Uint8Array[],
  records: number,
  kernel: StreamKernel = edgeTelemetryKernel(EDGES),
): Promise<{ perSec: number; p50: number; p99: number; note: string }> {
  const id = `e2e_${prefer}_${kernel.name.replace(/[^A-Za-z0-9]/g, '')}`;
  let got = 0;
  const stamp = kernel.output.name === 'StampOut';
  const sub = t.subscribe(streamSubjects.output(id), (data) => {
    if (stamp) got += data.byteLength / 8;
    else for (const u of edgeUpdates(data)) got += u.samples;
  });
  const ex = await createKernelExecutor({ kernel, prefer });
  const p = createStreamProcessor({
    executor: ex,
    sink: t.sink(id, { output: kernel.output.recordBytes, input: kernel.input.recordBytes }),
  });
  const src = await t.attach(id, p);
  const t0 = performance.now();
  await publishAll(t, id, msgs);
  while (got < records) await wait(2);
  const s = (performance.now() - t0) / 1000;
  await src.stop();
  const m = await p.stop();
  sub.unsubscribe();
  return {
    perSec: records / s,
    p50: m.p50LatencyMs,
    p99: m.p99LatencyMs,
    note: `${ex.backend}; item latency buffer→output stored; avg batch ${m.averageBatchSize.toFixed(0)}; pauses ${m.totalPauseCount}`,
  };
}

const stampKernel = defineUserKernel({
  name: 'stamp',
  input: {
    name: 'StampIn',
    fields: [
      { name: 'id', type: 'u32' },
      { name: 't', type: 'u32' },
    ],
  },
  output: {
    name: 'StampOut',
    fields: [
      { name: 'id', type: 'u32' },
      { name: 't', type: 'u32' },
    ],
  },
  wgsl: 'fn process(r: StampIn) -> StampOut { return StampOut(r.id, r.t); }',
  cpu: (i, o, n) => {
    o.set(i.subarray(0, n * 2));
  },
});

/**
 * A producer at `rate` records/s (as fast as it can when `rate` is undefined) for `seconds`, with at
 * most 256 publishes awaiting JetStream's ack (as publishAll); payloads are built before the clock
 * starts and only their timestamps are written at send time. Latency = publish → output received,
 * per record (10 µs clock in the record), sampled every 50th record.
 */
async function paced(
  t: NatsStreamTransport,
  prefer: 'gpu' | 'cpu',
  rate: number | undefined,
  seconds: number,
): Promise<{ achieved: number; p50: number; p99: number }> {
  const id = `paced_${prefer}_${rate === undefined ? 'max' : Math.round(rate)}`;
  const lat: number[] = [];
  let received = 0;
  const sub = t.subscribe(streamSubjects.output(id), (data) => {
    const now = Math.round(performance.now() * 100) >>> 0;
    const w = wordsOf(data);
    received += w.length / 2;
    for (let i = 1; i < w.length; i += 2 * 50) lat.push(((now - w[i]) >>> 0) / 100); // every 50th record
  });
  const ex = await createKernelExecutor({ kernel: stampKernel, prefer });
  const p = createStreamProcessor({ executor: ex, sink: t.sink(id, { output: 8, input: 8 }) });
  const src = await t.attach(id, p);
  const perMsg = 1000;
  const budget = Math.round(((rate ?? 12_000_000) * seconds) / perMsg);
  const payloads = Array.from({ length: budget }, (_, k) => {
    const w = new Uint32Array(perMsg * 2);
    for (let j = 0; j < perMsg; j++) w[j * 2] = k * perMsg + j;
    return w;
  });
  const intervalMs = rate === undefined ? 0 : (perMsg / rate) * 1000;
  const inflight = new Set<Promise<void>>();
  const t0 = performance.now();
  let sent = 0;
  for (let k = 0; k < budget; k++) {
    if (rate === undefined) {
      if (performance.now() - t0 > seconds * 1000) break;
    } else {
      const d = t0 + k * intervalMs - performance.now();
      if (d > 1) await wait(d);
    }
    const w = payloads[k];
    const ts = Math.round(performance.now() * 100) >>> 0;
    for (let j = 1; j < w.length; j += 2) w[j] = ts;
    const pub: Promise<void> = t
      .publishRecords(id, new Uint8Array(w.buffer))
      .finally(() => inflight.delete(pub));
    inflight.add(pub);
    sent++;
    if (inflight.size >= 256) await Promise.race(inflight);
  }
  await Promise.all(inflight);
  const end = Date.now() + 10_000;
  while (received < sent * perMsg && Date.now() < end) await wait(5);
  const s = (performance.now() - t0) / 1000;
  await src.stop();
  await p.stop();
  sub.unsubscribe();
  lat.sort((a, b) => a - b);
  return {
    achieved: (sent * perMsg) / s,
    p50: quantileSorted(lat, 0.5),
    p99: quantileSorted(lat, 0.99),
  };
}

async function main(): Promise<void> {
  const msgs = telemetryMessages(N);
  const k = edgeTelemetryKernel(EDGES);
  await direct(k, 'gpu', msgs, N);
  await direct(k, 'cpu', msgs, N);
  const server = await startBenchNats();
  const t = await createNatsStreamTransport({ servers: server.url });
  try {
    const raw = await rawJetStream(server.url, t, msgs, N);
    rows.push({
      name: 'raw JetStream (publish + pull + ack, no processing)',
      records: N,
      perSec: raw,
      p50: '-',
      p99: '-',
      note: `${PER_MSG} records (20 KB) per message`,
    });
    let peak = 0;
    for (const prefer of ['gpu', 'cpu'] as const) {
      try {
        const e = await endToEnd(t, prefer, msgs, N);
        peak = Math.max(peak, e.perSec);
        rows.push({
          name: `end to end through NATS (${prefer})`,
          records: N,
          perSec: e.perSec,
          p50: e.p50,
          p99: e.p99,
          note: `${((100 * e.perSec) / raw).toFixed(0)} % of raw; ${e.note}`,
        });
      } catch (err) {
        rows.push({
          name: `end to end through NATS (${prefer})`,
          records: N,
          perSec: 0,
          p50: '-',
          p99: '-',
          note: `failed: ${(err as Error).message}`,
        });
      }
    }
    void peak;
    // latency under load: the stamp kernel (8-byte records in and out, output as large as the input) — its own peak first
    const stampMsgs: Uint8Array[] = [];
    for (let i = 0; i < N; i += PER_MSG) {
      const w = new Uint32Array(PER_MSG * 2);
      for (let j = 0; j < PER_MSG; j++) w[j * 2] = i + j;
      stampMsgs.push(new Uint8Array(w.buffer));
    }
    const rawStamp = await rawJetStream(server.url, t, stampMsgs, N, 8, 'rawstamp');
    rows.push({
      name: 'raw JetStream, stamp payloads (8 KB)',
      records: N,
      perSec: rawStamp,
      p50: '-',
      p99: '-',
      note: 'baseline for the stamp rows',
    });
    for (const prefer of ['gpu', 'cpu'] as const) {
      try {
        const e = await endToEnd(t, prefer, stampMsgs, N, stampKernel);
        rows.push({
          name: `end to end, stamp kernel (${prefer})`,
          records: N,
          perSec: e.perSec,
          p50: e.p50,
          p99: e.p99,
          note: `${((100 * e.perSec) / rawStamp).toFixed(0)} % of raw; output stored in JetStream too`,
        });
        // the peak a producer running beside the processor sustains (the bulk run above publishes
        // pre-built messages into a backlog, which a paced producer on the same cores cannot match)
        const sat = await paced(t, prefer, undefined, 3);
        rows.push({
          name: `saturated producer, stamp kernel (${prefer})`,
          records: Math.round(sat.achieved * 3),
          perSec: sat.achieved,
          p50: sat.p50,
          p99: sat.p99,
          note: 'the peak the paced rows take their share of',
        });
        for (const f of [0.8, 0.5]) {
          const r = await paced(t, prefer, f * sat.achieved, 4);
          rows.push({
            name: `${f * 100} % of that peak, paced (${prefer})`,
            records: Math.round(r.achieved * 4),
            perSec: r.achieved,
            p50: r.p50,
            p99: r.p99,
            note: 'latency publish → output received, per record',
          });
        }
      } catch (err) {
        rows.push({
          name: `stamp (${prefer})`,
          records: 0,
          perSec: 0,
          p50: '-',
          p99: '-',
          note: `failed: ${(err as Error).message}`,
        });
      }
    }
  } finally {
    await t.close();
    await server.stop();
  }
  console.log(
    `\nStream benchmark — ${new Date().toISOString()} — ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}\n`,
  );
  console.log('| run | records | records/s | p50 ms | p99 ms | note |\n|---|---:|---:|---:|---:|---|');
  for (const r of rows)
    console.log(
      `| ${r.name} | ${r.records} | ${Math.round(r.perSec).toLocaleString('en-US')} | ${fmt(r.p50)} | ${fmt(r.p99)} | ${r.note} |`,
    );
  void telemetrySampleLayout;
}

ensureXdgRuntimeDir();
main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
