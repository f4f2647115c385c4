import type { ActorHostStats } from '../runtime/index.js';
import { redactText, redactUrl } from '../common/redact.js';
import type { EdgeView, TransferStatus } from '../actors/index.js';
import {
  MAX_QUEUED_LISTED,
  type DashboardEvent,
  type DashboardSnapshot,
  type EdgeSnapshot,
  type PhaseTimes,
  type TransferHistory,
  type TransferSnapshot,
} from './types.js';

/** The order of the transfers in a snapshot, by state: what needs watching first, what is over last. */
export const STATE_ORDER: readonly TransferSnapshot['state'][] = [
  'running',
  'verifying',
  'idle',
  'unreachable',
  'queued',
  'failed',
  'cancelled',
  'done',
];
const FINISHED = new Set<string>(['failed', 'cancelled', 'done']);

/** EdgeFlags bits as the scheduler defines them (scheduler/types.ts). */
const METERED = 1;
const BATTERY_LOW = 2;

/** Counters that become events when they grow between two polls. */
const EVENT_COUNTERS = [
  ['failovers', 'failover'],
  ['corrupt', 'corrupt'],
  ['timeouts', 'timeout'],
  ['hedges', 'hedge'],
] as const;

/** What one poll saw: a status per polled transfer, or the error its status call failed with. */
export interface PollResult {
  /** ms since the Unix epoch. */
  at: number;
  polled: readonly string[];
  /** Transfers waiting for a running slot, not polled (oldest first). */
  queued?: readonly string[];
  statuses: ReadonlyMap<string, TransferStatus | Error>;
  hostKind: string;
  hostStats: ActorHostStats | null;
  engineStats: unknown;
}

/** Options of createTracker. */
export interface TrackerOptions {
  pollMs: number;
  historyPoints?: number;
  maxEvents?: number;
  keepFinished?: number;
}

/**
 * Turns successive polls of SchedulerActor.status into dashboard snapshots: bounded throughput and
 * tick-time history per transfer, and events (failovers, corrupt chunks, edges going offline or
 * online, transfers finishing) from what changed between two polls. Pure: no I/O, no clock.
 */
export interface Tracker {
  update(poll: PollResult): DashboardSnapshot;
  snapshot(): DashboardSnapshot;
  /** Transfer ids that were evicted by the last update (their metric series should go too). */
  evicted(): readonly string[];
  /** Forgets a transfer now (it was forgotten by its actor); true when it was tracked. */
  drop(transferId: string): boolean;
}

interface Entry {
  view: TransferSnapshot;
  lastBytes: number;
  lastAt: number;
  counters: Record<string, number>;
  online: Map<string, boolean>;
  lastError?: string;
  /** The order it was last polled in, for eviction. */
  touched: number;
}

/** Creates a Tracker; see the interface. */
export function createTracker(opts: TrackerOptions): Tracker {
  const historyPoints = Math.max(2, opts.historyPoints ?? 240);
  const maxEvents = Math.max(1, opts.maxEvents ?? 200);
  const keepFinished = Math.max(0, opts.keepFinished ?? 8);
  const entries = new Map<string, Entry>();
  const events: DashboardEvent[] = [];
  let seq = 0;
  let eventSeq = 0;
  let touch = 0;
  let lastEvicted: string[] = [];
  let current: DashboardSnapshot = {
    version: 1,
    seq: 0,
    at: 0,
    pollMs: opts.pollMs,
    host: { kind: 'unknown', stats: null },
    backend: 'unknown',
    engine: null,
    transfers: [],
    counts: {},
    queued: { total: 0, ids: [] },
    events: [],
  };

  type EventBody = DashboardEvent extends infer E
    ? E extends DashboardEvent
      ? Omit<E, 'seq' | 'at'>
      : never
    : never;
  const emit = (at: number, e: EventBody) => {
    events.push({ ...e, seq: ++eventSeq, at });
    if (events.length > maxEvents) events.splice(0, events.length - maxEvents);
  };

  function apply(id: string, s: TransferStatus, at: number): void {
    let e = entries.get(id);
    const edges = (s.edges ?? []).map((v, i) => edgeSnapshot(v, s.perEdgeChunks[i] ?? 0));
    if (!e) {
      e = {
        view: emptyView(id),
        lastBytes: s.bytesDone,
        lastAt: at,
        counters: { ...s.counters },
        online: new Map(),
        touched: touch,
      };
      entries.set(id, e);
      emit(at, { type: 'transfer-started', transfer: id });
    }
    const prev = e.view;
    const dt = (at - e.lastAt) / 1000;
    const throughput = dt > 0 ? Math.max(0, s.bytesDone - e.lastBytes) / dt : prev.throughput;
    for (const [key, type] of EVENT_COUNTERS) {
      const now = s.counters[key] ?? 0;
      const before = e.counters[key] ?? 0;
      if (now > before) emit(at, { type, transfer: id, count: now - before, total: now });
    }
    for (const edge of edges) {
      const was = e.online.get(edge.id);
      if (was === undefined ? !edge.online : was !== edge.online)
        emit(
          at,
          edge.givenUp
            ? { type: 'edge-given-up', transfer: id, edge: edge.id, reason: edge.reason ?? '' }
            : { type: edge.online ? 'edge-online' : 'edge-offline', transfer: id, edge: edge.id },
        );
      e.online.set(edge.id, edge.online);
    }
    if (prev.state !== s.state) {
      if (s.state === 'done')
        emit(at, {
          type: 'transfer-done',
          transfer: id,
          verified: s.verified,
          seconds: s.finishedAt && s.startedAt ? (s.finishedAt - s.startedAt) / 1000 : 0,
        });
      if (s.state === 'failed')
        emit(at, { type: 'transfer-failed', transfer: id, error: redactText(s.error ?? 'unknown reason') });
    }
    const lastTickMs = phaseTimes(s.lastTickMs);
    const h = prev.history;
    if (dt > 0 || h.t.length === 0) {
      push(h, historyPoints, at, throughput, s.tickMsP50, s.tickMsP99, lastTickMs?.total ?? null);
    }
    const recent = recentRate(h);
    const elapsed = s.startedAt > 0 ? ((s.finishedAt ?? at) - s.startedAt) / 1000 : 0;
    const left = Math.max(0, s.fileSize - s.bytesDone);
    e.view = {
      id,
      state: s.state,
      error: s.error === undefined ? undefined : redactText(s.error),
      polled: true,
      progress:
        s.fileSize > 0 ? Math.min(1, s.bytesDone / s.fileSize) : s.total > 0 ? s.complete / s.total : 0,
      bytesDone: s.bytesDone,
      fileSize: s.fileSize,
      total: s.total,
      complete: s.complete,
      inFlight: s.inFlight,
      pending: s.pending,
      failedPermanent: s.failedPermanent,
      startedAt: s.startedAt,
      finishedAt: s.finishedAt,
      verified: s.verified,
      throughput,
      avgThroughput: elapsed > 0 ? s.bytesDone / elapsed : 0,
      etaSec: s.state === 'running' && recent > 0 ? left / recent : s.state === 'done' ? 0 : null,
      ticks: s.ticks,
      tickMsP50: s.tickMsP50,
      tickMsP99: s.tickMsP99,
      lastTickMs,
      backend: s.backend,
      counters: { ...s.counters },
      edges,
      history: h,
    };
    e.lastBytes = s.bytesDone;
    e.lastAt = at;
    e.counters = { ...s.counters };
    e.lastError = undefined;
  }

  function failed(id: string, err: Error, at: number): void {
    let e = entries.get(id);
    if (!e) {
      e = { view: emptyView(id), lastBytes: 0, lastAt: at, counters: {}, online: new Map(), touched: touch };
      entries.set(id, e);
    }
    const message = redactText(err.message);
    if (e.lastError !== message) emit(at, { type: 'poll-error', transfer: id, message });
    e.lastError = message;
    if (e.view.history.t.length === 0) e.view = { ...e.view, state: 'unreachable', error: message };
  }

  return {
    update(poll) {
      touch++;
      for (const id of poll.polled) {
        const r = poll.statuses.get(id);
        if (r === undefined) continue;
        if (r instanceof Error) failed(id, r, poll.at);
        else apply(id, r, poll.at);
        entries.get(id)!.touched = touch;
      }
      const listed = new Set(poll.polled);
      // a queued id that is not polled waits for a slot now (a restart of a finished transfer, an id forgotten and
      // started again): the view of its previous life is stale, and it is shown and counted as queued instead
      const requeued = (poll.queued ?? []).filter((id) => !listed.has(id) && entries.has(id));
      for (const id of requeued) entries.delete(id);
      for (const e of entries.values()) e.view.polled = listed.has(e.view.id);
      const gone = [...entries.values()].filter((e) => !e.view.polled).sort((a, b) => b.touched - a.touched);
      lastEvicted = [...requeued, ...gone.slice(keepFinished).map((e) => e.view.id)];
      for (const id of lastEvicted) entries.delete(id);
      const transfers = lightFinished(ordered([...entries.values()].map((e) => e.view)));
      const counts: Record<string, number> = {};
      for (const t of transfers) counts[t.state] = (counts[t.state] ?? 0) + 1;
      const waiting = (poll.queued ?? []).filter((id) => !entries.has(id));
      if (waiting.length) counts.queued = (counts.queued ?? 0) + waiting.length;
      const engine = flatEngineStats(poll.engineStats);
      const backend =
        typeof engine?.backend === 'string'
          ? engine.backend
          : (transfers.find((t) => t.polled && t.backend)?.backend ?? 'unknown');
      current = {
        version: 1,
        seq: ++seq,
        at: poll.at,
        pollMs: opts.pollMs,
        host: { kind: poll.hostKind, stats: poll.hostStats },
        backend,
        engine,
        transfers,
        counts,
        queued: { total: waiting.length, ids: waiting.slice(0, MAX_QUEUED_LISTED) },
        events: [...events],
      };
      return current;
    },
    snapshot: () => current,
    evicted: () => lastEvicted,
    drop: (transferId) => entries.delete(transferId),
  };
}

/** Finished transfers whose history a snapshot carries: the most recent ones (the page draws as many cards). */
export const FINISHED_WITH_HISTORY = 50;

/**
 * `views` (ordered) with the history of the finished transfers beyond the first FINISHED_WITH_HISTORY left out (empty
 * arrays): with hundreds of finished transfers their charts were most of every frame (7 KB each at 240 points).
 */
function lightFinished(views: TransferSnapshot[]): TransferSnapshot[] {
  let n = 0;
  return views.map((t) =>
    FINISHED.has(t.state) && ++n > FINISHED_WITH_HISTORY
      ? { ...t, history: { t: [], throughput: [], tickP50: [], tickP99: [], tickLast: [] } }
      : t,
  );
}

/** `views` (in the order first seen) by STATE_ORDER; the finished ones the most recently finished first. */
function ordered(views: TransferSnapshot[]): TransferSnapshot[] {
  const rank = (t: TransferSnapshot): number => {
    const r = STATE_ORDER.indexOf(t.state);
    return r < 0 ? STATE_ORDER.length : r;
  };
  return views
    .map((t, i) => ({ t, i, r: rank(t) }))
    .sort(
      (a, b) =>
        a.r - b.r ||
        (FINISHED.has(a.t.state) ? (b.t.finishedAt ?? 0) - (a.t.finishedAt ?? 0) : 0) ||
        a.i - b.i,
    )
    .map((x) => x.t);
}

function emptyView(id: string): TransferSnapshot {
  return {
    id,
    state: 'idle',
    polled: true,
    progress: 0,
    bytesDone: 0,
    fileSize: 0,
    total: 0,
    complete: 0,
    inFlight: 0,
    pending: 0,
    failedPermanent: 0,
    startedAt: 0,
    verified: false,
    throughput: 0,
    avgThroughput: 0,
    etaSec: null,
    ticks: 0,
    tickMsP50: 0,
    tickMsP99: 0,
    backend: '',
    counters: {},
    edges: [],
    history: { t: [], throughput: [], tickP50: [], tickP99: [], tickLast: [] },
  };
}

function edgeSnapshot(v: EdgeView, chunks: number): EdgeSnapshot {
  const queueDepth = v.queueDepth ?? 0;
  const maxParallel = v.maxParallel > 0 ? v.maxParallel : 0;
  const reason = reasonOf(v);
  return {
    id: v.id,
    url: redactUrl(v.url),
    kind: v.kind,
    online: v.available !== false && v.retired !== true,
    givenUp: v.retired === true,
    ...(reason ? { reason } : {}),
    queueDepth,
    maxParallel,
    load: maxParallel > 0 ? queueDepth / maxParallel : 0,
    health: finite(v.health),
    successRate: finite(v.successRate),
    bandwidth: finite(v.bandwidth),
    rtt: finite(v.rtt),
    flags: v.flags | 0,
    metered: (v.flags & METERED) !== 0,
    batteryLow: (v.flags & BATTERY_LOW) !== 0,
    chunks,
  };
}

/** `given up: <why>; last error: <cause>`, or the last error alone, or undefined when neither is known. */
function reasonOf(v: EdgeView): string | undefined {
  const parts = [
    v.retired ? `given up: ${v.retiredReason ?? 'by the source budget'}` : '',
    v.lastError ? `last error: ${v.lastError}` : '',
  ].filter(Boolean);
  return parts.length ? parts.join('; ') : undefined;
}

function push(
  h: TransferHistory,
  max: number,
  t: number,
  thr: number,
  p50: number,
  p99: number,
  last: number | null,
): void {
  h.t.push(t);
  h.throughput.push(thr);
  h.tickP50.push(p50);
  h.tickP99.push(p99);
  h.tickLast.push(last);
  if (h.t.length > max) {
    const n = h.t.length - max;
    h.t.splice(0, n);
    h.throughput.splice(0, n);
    h.tickP50.splice(0, n);
    h.tickP99.splice(0, n);
    h.tickLast.splice(0, n);
  }
}

/** Mean throughput of the last five points. */
function recentRate(h: TransferHistory): number {
  const xs = h.throughput.slice(-5);
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0;
}

const finite = (x: number) => (Number.isFinite(x) ? x : 0);

/** `status.lastTickMs` when it is a record of finite numbers (the scheduler may add it); else undefined. */
export function phaseTimes(x: unknown): PhaseTimes | undefined {
  if (typeof x === 'number' && Number.isFinite(x)) return { total: x };
  if (!x || typeof x !== 'object') return undefined;
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(x))
    if (typeof v === 'number' && Number.isFinite(v) && /^[A-Za-z0-9_]{1,32}$/.test(k)) out[k] = v;
  return Object.keys(out).length ? out : undefined;
}

/** The top-level numbers and strings of TickEngine.stats() (any shape); null when there is none. */
export function flatEngineStats(x: unknown): Record<string, number | string> | null {
  if (!x || typeof x !== 'object') return null;
  const out: Record<string, number | string> = {};
  for (const [k, v] of Object.entries(x)) {
    if ((typeof v === 'number' && Number.isFinite(v)) || (typeof v === 'string' && v.length <= 200))
      out[k] = v;
  }
  return out;
}
