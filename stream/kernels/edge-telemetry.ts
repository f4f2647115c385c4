import { checkArg } from '../../common/errors.js';
import { defineLayout, wordsOf, type RecordLayout } from '../layout.js';
import type { StreamKernel } from '../kernel.js';
import { loadStreamWgsl } from './load-wgsl.js';

/** Input record of the edge telemetry kernel: one chunk outcome (times in µs, bytes ≤ 4 GiB). */
export const telemetrySampleLayout: RecordLayout = defineLayout({
  name: 'TelemetrySample',
  fields: [
    { name: 'edge', type: 'u32' },
    { name: 'ok', type: 'u32' },
    { name: 'bytes', type: 'u32' },
    { name: 'firstByteUs', type: 'u32' },
    { name: 'transferUs', type: 'u32' },
  ],
});

/** Output record: the aggregate of one edge over one batch (sums split in 16-bit halves, see edge-telemetry.wgsl). */
export const edgeAggregateLayout: RecordLayout = defineLayout({
  name: 'EdgeAggregate',
  fields: [
    'edge',
    'count',
    'ok',
    'fail',
    'bytesLo',
    'bytesHi',
    'firstByteLo',
    'firstByteHi',
    'transferLo',
    'transferHi',
    'firstByteMinUs',
    'firstByteMaxUs',
  ].map((name) => ({ name, type: 'u32' as const })),
});

const IN = 5;
const OUT = 12;
/** Samples one batch may hold: the 16-bit split sums stay exact up to 2^16 samples. */
export const EDGE_TELEMETRY_MAX_BATCH = 65_536;
/** Edge id of the slot that collects samples of unknown edges. */
export const UNKNOWN_EDGE = 0xffffffff;

function initSlots(edges: number): Uint32Array {
  const out = new Uint32Array((edges + 1) * OUT);
  for (let e = 0; e <= edges; e++) {
    out[e * OUT] = e === edges ? UNKNOWN_EDGE : e;
    out[e * OUT + 10] = 0xffffffff;
  }
  return out;
}

/** The CPU reference of edge_telemetry: the same integer folds as the WGSL, in record order. */
export function edgeTelemetryCpu(input: Uint8Array, n: number, edges: number): Uint8Array {
  const s = wordsOf(input);
  const a = initSlots(edges);
  for (let i = 0; i < n; i++) {
    const b = i * IN;
    const o = Math.min(s[b], edges) * OUT;
    a[o + 1]++;
    if (s[b + 1] !== 0) {
      a[o + 2]++;
      const bytes = s[b + 2],
        fb = s[b + 3],
        tr = s[b + 4];
      a[o + 4] += bytes & 0xffff;
      a[o + 5] += bytes >>> 16;
      a[o + 6] += fb & 0xffff;
      a[o + 7] += fb >>> 16;
      a[o + 8] += tr & 0xffff;
      a[o + 9] += tr >>> 16;
      if (fb < a[o + 10]) a[o + 10] = fb;
      if (fb > a[o + 11]) a[o + 11] = fb;
    } else a[o + 3]++;
  }
  return new Uint8Array(a.buffer);
}

/** Keeps the slots that saw at least one sample, in edge order (unknown edges last). */
export function touchedSlots(raw: Uint8Array): Uint8Array {
  const w = wordsOf(raw);
  const slots = w.length / OUT;
  let k = 0;
  for (let e = 0; e < slots; e++) if (w[e * OUT + 1] !== 0) k++;
  const out = new Uint32Array(k * OUT);
  let j = 0;
  for (let e = 0; e < slots; e++)
    if (w[e * OUT + 1] !== 0) {
      out.set(w.subarray(e * OUT, e * OUT + OUT), j * OUT);
      j++;
    }
  return new Uint8Array(out.buffer);
}

/**
 * The edge telemetry aggregation kernel for `edges` known edges (ids 0…edges-1; others go to the
 * UNKNOWN_EDGE slot). Output: one EdgeAggregate per edge that had samples in the batch.
 */
export function edgeTelemetryKernel(edges: number): StreamKernel {
  checkArg(Number.isInteger(edges) && edges >= 1 && edges <= 1 << 20, 'edges', 'an integer in [1, 2^20]');
  const wgsl = loadStreamWgsl('edge-telemetry.wgsl');
  return {
    name: 'edge-telemetry',
    input: telemetrySampleLayout,
    output: edgeAggregateLayout,
    maxBatch: EDGE_TELEMETRY_MAX_BATCH,
    rawOutputCount: () => edges + 1,
    cpu: (input, n) => edgeTelemetryCpu(input, n, edges),
    gpu: {
      wgsl,
      params: (n) => Uint32Array.of(n, edges, 0, 0),
      initOutput: () => new Uint8Array(initSlots(edges).buffer),
    },
    finish: (raw) => touchedSlots(raw),
  };
}

/** One edge's estimator update from one batch (what EdgeActors consume). */
export interface EdgeUpdate {
  /** Edge index (UNKNOWN_EDGE for samples naming no known edge). */
  edge: number;
  samples: number;
  ok: number;
  failed: number;
  bytes: number;
  /** Mean over successful samples, ms. */
  meanFirstByteMs: number;
  meanTransferMs: number;
  minFirstByteMs: number;
  maxFirstByteMs: number;
  /** bytes / transfer time over successful samples, bytes per second (0 without time). */
  bandwidthBps: number;
}

/** Decodes EdgeAggregate records into updates (exact 64-bit sums as JS numbers). */
export function edgeUpdates(aggregates: Uint8Array): EdgeUpdate[] {
  const w = wordsOf(aggregates);
  const out: EdgeUpdate[] = [];
  for (let o = 0; o < w.length; o += OUT) {
    const ok = w[o + 2];
    const sum = (lo: number): number => w[o + lo + 1] * 65536 + w[o + lo];
    const bytes = sum(4),
      fb = sum(6),
      tr = sum(8);
    out.push({
      edge: w[o],
      samples: w[o + 1],
      ok,
      failed: w[o + 3],
      bytes,
      meanFirstByteMs: ok ? fb / ok / 1000 : 0,
      meanTransferMs: ok ? tr / ok / 1000 : 0,
      minFirstByteMs: ok ? w[o + 10] / 1000 : 0,
      maxFirstByteMs: ok ? w[o + 11] / 1000 : 0,
      bandwidthBps: tr > 0 ? bytes / (tr / 1e6) : 0,
    });
  }
  return out;
}

/** A sample in EdgeActor.observe's shape (actors/types.ts EdgeSample). */
export interface ObservedSample {
  ok: boolean;
  bytes: number;
  firstByteMs: number;
  transferMs: number;
  reason?: string;
}

/**
 * The samples to feed one EdgeActor for an update: one success sample carrying the batch means (so
 * the bandwidth EMA and SRTT move once per batch, not once per chunk) and one failure sample per
 * failed chunk, at most `maxFailures` (the health window is 100 chunks).
 */
export function toObservedSamples(u: EdgeUpdate, maxFailures = 100): ObservedSample[] {
  const out: ObservedSample[] = [];
  if (u.ok > 0)
    out.push({
      ok: true,
      bytes: Math.round(u.bytes / u.ok),
      firstByteMs: u.meanFirstByteMs,
      transferMs: u.meanTransferMs,
    });
  for (let i = 0; i < Math.min(u.failed, maxFailures); i++)
    out.push({ ok: false, bytes: 0, firstByteMs: 0, transferMs: 0, reason: 'stream' });
  return out;
}
