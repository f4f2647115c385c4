import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Logger } from '../common/logger.js';
import type { ActorHost } from '../runtime/index.js';
import { checkArg } from '../common/errors.js';
import { redactText } from '../common/redact.js';
import type { DashboardSnapshot, MetricSample, MetricsSource } from './types.js';

/** Tick times are a few µs to tens of ms (CPU) or a few ms (GPU round trips). */
const TICK_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25];
const NAME = /^portal_[a-z0-9_]+$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
/** The states after which a transfer's scheduler no longer runs (until a restart or a start of it again). */
const ENDED: ReadonlySet<string> = new Set(['done', 'failed', 'cancelled']);

/** The dashboard's Prometheus side; see createDashboardMetrics. */
export interface DashboardMetrics {
  readonly registry: Registry;
  /** Records what a poll saw that is a time series of its own (tick time histograms). */
  observe(s: DashboardSnapshot): void;
  /** Drops the series of transfers the tracker evicted. */
  forget(transferIds: readonly string[]): void;
  registerSource(source: MetricsSource): () => void;
  recordDeadLetter(reason: string, count?: number): void;
  countPollError(): void;
  /** Runs the contributed sources, then renders the registry in the text format. */
  render(): Promise<string>;
}

/**
 * Creates the `portal_*` metrics. Gauges and counters read the latest snapshot when scraped and
 * are reset first, so only the transfers and edges of that snapshot have series (bounded by
 * transfers × edges). Tick histograms are fed once per poll by `observe`.
 */
export function createDashboardMetrics(o: {
  host: ActorHost;
  snapshot: () => DashboardSnapshot;
  engineStats?: () => unknown;
  logger: Logger;
  sseClients: () => number;
  /** /events clients dropped so far because they stopped reading (default: none counted). */
  sseDropped?: () => number;
}): DashboardMetrics {
  const registry = new Registry();
  const reg = [registry];
  const lastTicks = new Map<string, number>();
  const phasesSeen = new Map<string, Set<string>>();

  const transfers = () => o.snapshot().transfers.filter((t) => t.polled || t.state !== 'unreachable');
  /**
   * The transfers whose scheduler runs or may run (not done, failed or cancelled): the only ones with series that
   * describe a running scheduler (throughput, chunks in flight or pending, tick times, every per-edge series). A
   * finished transfer keeps one series per per-transfer counter and outcome gauge until the tracker evicts it
   * (trial M1: ~118 series each, most of them tick-phase histogram buckets and edge gauges frozen at their last value,
   * so a host that had finished 1000 transfers exported ~118,000 series).
   */
  const live = () => transfers().filter((t) => !ENDED.has(t.state));
  function perTransfer(
    name: string,
    help: string,
    pick: (t: DashboardSnapshot['transfers'][number]) => number,
    type: 'gauge' | 'counter' = 'gauge',
    of: () => DashboardSnapshot['transfers'] = transfers,
  ): void {
    const collect = function (this: Gauge<'transfer'> | Counter<'transfer'>) {
      this.reset();
      for (const t of of()) {
        const v = pick(t);
        if (!Number.isFinite(v)) continue;
        if (this instanceof Gauge) this.set({ transfer: t.id }, v);
        else this.inc({ transfer: t.id }, Math.max(0, v));
      }
    };
    if (type === 'gauge') new Gauge({ name, help, labelNames: ['transfer'], registers: reg, collect });
    else new Counter({ name, help, labelNames: ['transfer'], registers: reg, collect });
  }
  function perEdge(
    name: string,
    help: string,
    pick: (e: DashboardSnapshot['transfers'][number]['edges'][number]) => number,
    type: 'gauge' | 'counter' = 'gauge',
  ): void {
    const collect = function (this: Gauge<'transfer' | 'edge'> | Counter<'transfer' | 'edge'>) {
      this.reset();
      for (const t of live())
        for (const e of t.edges) {
          const v = pick(e);
          if (!Number.isFinite(v)) continue;
          if (this instanceof Gauge) this.set({ transfer: t.id, edge: redactText(e.id) }, v);
          else this.inc({ transfer: t.id, edge: redactText(e.id) }, Math.max(0, v));
        }
    };
    if (type === 'gauge')
      new Gauge({ name, help, labelNames: ['transfer', 'edge'], registers: reg, collect });
    else new Counter({ name, help, labelNames: ['transfer', 'edge'], registers: reg, collect });
  }

  // transfers
  perTransfer('portal_transfer_progress_ratio', 'Fraction of the file fetched (0..1)', (t) => t.progress);
  perTransfer('portal_transfer_bytes_done', 'Bytes fetched and verified so far', (t) => t.bytesDone);
  perTransfer('portal_transfer_size_bytes', 'Size of the file being fetched', (t) => t.fileSize);
  perTransfer(
    'portal_transfer_throughput_bytes_per_second',
    'Bytes per second over the last poll interval',
    (t) => t.throughput,
    'gauge',
    live,
  );
  perTransfer(
    'portal_transfer_chunks_in_flight',
    'Chunks dispatched and not yet reported',
    (t) => t.inFlight,
    'gauge',
    live,
  );
  perTransfer(
    'portal_transfer_chunks_pending',
    'Chunks waiting for an edge',
    (t) => t.pending,
    'gauge',
    live,
  );
  perTransfer('portal_transfer_done', '1 when the transfer finished and verified', (t) =>
    t.state === 'done' ? 1 : 0,
  );
  perTransfer('portal_transfer_failed', '1 when the transfer failed', (t) => (t.state === 'failed' ? 1 : 0));
  perTransfer(
    'portal_dispatches_total',
    'Chunk dispatches the scheduler issued',
    (t) => t.counters.dispatched ?? 0,
    'counter',
  );
  perTransfer(
    'portal_failovers_total',
    'Chunks moved to another edge after a failure',
    (t) => t.counters.failovers ?? 0,
    'counter',
  );
  perTransfer(
    'portal_corrupt_chunks_total',
    'Chunks rejected because their CID did not match',
    (t) => t.counters.corrupt ?? 0,
    'counter',
  );
  perTransfer(
    'portal_chunk_timeouts_total',
    'Chunks that missed their deadline',
    (t) => t.counters.timeouts ?? 0,
    'counter',
  );
  perTransfer(
    'portal_chunk_failures_total',
    'Chunk attempts that failed',
    (t) => t.counters.failures ?? 0,
    'counter',
  );
  perTransfer('portal_hedges_total', 'Endgame hedge dispatches', (t) => t.counters.hedges ?? 0, 'counter');
  perTransfer('portal_scheduler_ticks_total', 'Scheduler ticks run', (t) => t.ticks, 'counter');
  perTransfer(
    'portal_tick_p50_seconds',
    "Median tick time over the scheduler's recent window",
    (t) => t.tickMsP50 / 1000,
    'gauge',
    live,
  );
  perTransfer(
    'portal_tick_p99_seconds',
    "99th percentile tick time over the scheduler's recent window",
    (t) => t.tickMsP99 / 1000,
    'gauge',
    live,
  );
  const tickHist = new Histogram({
    name: 'portal_tick_seconds',
    help: 'Tick time, sampled once per dashboard poll while ticks run (last tick when the scheduler reports it, else its rolling median)',
    labelNames: ['transfer'],
    buckets: TICK_BUCKETS,
    registers: reg,
  });
  const phaseHist = new Histogram({
    name: 'portal_tick_phase_seconds',
    help: 'Time of each tick phase/kernel (rank, detect, failover, balance, dispatch), sampled once per poll when the scheduler reports lastTickMs',
    labelNames: ['transfer', 'phase'],
    buckets: TICK_BUCKETS,
    registers: reg,
  });

  // edges
  perEdge('portal_edge_queue_depth', "This transfer's chunks in flight on the edge", (e) => e.queueDepth);
  perEdge('portal_edge_max_parallel', 'Chunks the edge serves at once', (e) => e.maxParallel);
  perEdge('portal_edge_load_ratio', 'queue depth / max parallel', (e) => e.load);
  perEdge('portal_edge_health', 'Health score of the edge (0..1)', (e) => e.health);
  perEdge('portal_edge_success_ratio', 'Share of chunk attempts that succeeded', (e) => e.successRate);
  perEdge('portal_edge_bandwidth_bytes_per_second', 'Estimated bandwidth of the edge', (e) => e.bandwidth);
  perEdge('portal_edge_rtt_seconds', 'Estimated round-trip time of the edge', (e) => e.rtt / 1000);
  perEdge('portal_edge_online', '1 when the edge is available', (e) => (e.online ? 1 : 0));
  perEdge('portal_edge_metered', '1 when the edge is metered', (e) => (e.metered ? 1 : 0));
  perEdge('portal_edge_battery_low', '1 when the edge reports a low battery', (e) => (e.batteryLow ? 1 : 0));
  perEdge(
    'portal_edge_chunks_total',
    'Chunks the edge completed for the transfer',
    (e) => e.chunks,
    'counter',
  );

  // actor host
  const hostCounter = (
    name: string,
    help: string,
    key: 'activations' | 'deactivations' | 'calls' | 'remindersFired' | 'timersFired',
  ) =>
    new Counter({
      name,
      help,
      labelNames: ['host'],
      registers: reg,
      collect() {
        this.reset();
        this.inc({ host: o.host.kind }, o.host.stats()[key]);
      },
    });
  hostCounter('portal_actor_activations_total', 'Actor activations on this host', 'activations');
  hostCounter('portal_actor_deactivations_total', 'Actor deactivations on this host', 'deactivations');
  hostCounter('portal_actor_calls_total', 'Actor method calls on this host', 'calls');
  hostCounter('portal_actor_reminders_fired_total', 'Reminders fired on this host', 'remindersFired');
  hostCounter('portal_actor_timers_fired_total', 'Timers fired on this host', 'timersFired');
  new Gauge({
    name: 'portal_actors_active',
    help: 'Actors active on this host',
    labelNames: ['host'],
    registers: reg,
    collect() {
      this.reset();
      this.set({ host: o.host.kind }, o.host.stats().active);
    },
  });
  new Gauge({
    name: 'portal_actor_instances',
    help: 'Actor instances in memory on this host, by actor type (idle ones are deactivated and released)',
    labelNames: ['host', 'type'],
    registers: reg,
    collect() {
      this.reset();
      const stats = o.host.stats();
      for (const [type, n] of Object.entries(stats.activeByType ?? {}))
        this.set({ host: o.host.kind, type }, n);
    },
  });

  // tick engine
  const engine = () => {
    try {
      return o.engineStats?.();
    } catch (err) {
      o.logger.warn({ err }, 'dashboard: engineStats failed');
      return undefined;
    }
  };
  new Gauge({
    name: 'portal_engine_info',
    help: 'The backend that runs the scheduler kernels (value 1)',
    labelNames: ['backend'],
    registers: reg,
    collect() {
      this.reset();
      const b = (engine() as { backend?: unknown } | undefined)?.backend ?? o.snapshot().backend;
      if (typeof b === 'string' && b !== 'unknown') this.set({ backend: b.slice(0, 100) }, 1);
    },
  });
  const engineCounter = (name: string, help: string, key: string, scale = 1) =>
    new Counter({
      name,
      help,
      registers: reg,
      collect() {
        this.reset();
        const v = (engine() as Record<string, unknown> | undefined)?.[key];
        if (typeof v === 'number' && Number.isFinite(v) && v >= 0) this.inc(v * scale);
      },
    });
  engineCounter('portal_engine_ticks_total', 'Ticks the engine ran (all transfers)', 'ticks');
  engineCounter(
    'portal_engine_tick_seconds_total',
    'Time the engine spent in ticks (all transfers)',
    'totalTickMs',
    1 / 1000,
  );
  engineCounter('portal_engine_fallbacks_total', 'GPU engine ticks that ran on the CPU instead', 'fallbacks');
  engineCounter('portal_engine_gpu_ticks_total', 'Ticks whose rank phase ran on the GPU', 'gpuTicks');
  engineCounter('portal_engine_device_losses_total', 'GPU devices lost', 'deviceLosses');
  new Counter({
    name: 'portal_kernel_seconds_total',
    help: 'Time spent in each kernel, when the engine reports kernelMs (cumulative ms per kernel)',
    labelNames: ['kernel'],
    registers: reg,
    collect() {
      this.reset();
      const k = (engine() as { kernelMs?: unknown } | undefined)?.kernelMs;
      if (!k || typeof k !== 'object') return;
      for (const [name, ms] of Object.entries(k).slice(0, 64))
        if (typeof ms === 'number' && Number.isFinite(ms) && ms >= 0) this.inc({ kernel: name }, ms / 1000);
    },
  });

  // hooks and the dashboard itself
  const deadLetters = new Counter({
    name: 'portal_dead_letters_total',
    help: 'Messages that were dead-lettered, by reason',
    labelNames: ['reason'],
    registers: reg,
  });
  const pollErrors = new Counter({
    name: 'portal_dashboard_poll_errors_total',
    help: 'SchedulerActor.status calls of the dashboard that failed',
    registers: reg,
  });
  new Gauge({
    name: 'portal_dashboard_sse_clients',
    help: 'Pages connected to /events',
    registers: reg,
    collect() {
      this.set(o.sseClients());
    },
  });
  new Counter({
    name: 'portal_dashboard_sse_dropped_total',
    help: '/events clients dropped because they stopped reading (their unread buffer passed the limit)',
    registers: reg,
    collect() {
      this.reset();
      this.inc(o.sseDropped?.() ?? 0);
    },
  });

  const sources = new Set<MetricsSource>();
  const dynamic = new Map<
    string,
    { metric: Gauge<string> | Counter<string>; type: MetricSample['type']; labels: string }
  >();
  async function runSources(): Promise<void> {
    const seen = new Set<string>();
    const batches = await Promise.all(
      [...sources].map(async (src) => {
        try {
          return await src();
        } catch (err) {
          o.logger.warn({ err }, 'dashboard: metrics source failed');
          return [];
        }
      }),
    );
    for (const d of dynamic.values()) d.metric.reset();
    for (const s of batches.flat()) {
      const labels = s.labels ?? {};
      const names = Object.keys(labels).sort();
      const key = names.join(',');
      if (!NAME.test(s.name) || !names.every((n) => LABEL.test(n)) || !Number.isFinite(s.value)) {
        o.logger.warn(
          { metric: s.name },
          'dashboard: metrics source sample rejected (name must match portal_[a-z0-9_]+, finite value)',
        );
        continue;
      }
      let d = dynamic.get(s.name);
      if (!d) {
        if (registry.getSingleMetric(s.name)) {
          o.logger.warn(
            { metric: s.name },
            'dashboard: metrics source sample clashes with a built-in metric',
          );
          continue;
        }
        const cfg = { name: s.name, help: s.help || s.name, labelNames: names, registers: reg };
        d = { metric: s.type === 'counter' ? new Counter(cfg) : new Gauge(cfg), type: s.type, labels: key };
        dynamic.set(s.name, d);
      }
      if (d.labels !== key || d.type !== s.type) {
        if (!seen.has(s.name))
          o.logger.warn(
            { metric: s.name },
            'dashboard: metrics source sample changed its type or label names; skipped',
          );
        seen.add(s.name);
        continue;
      }
      const lv = Object.fromEntries(names.map((n) => [n, String(labels[n])]));
      if (d.metric instanceof Gauge) d.metric.set(lv, s.value);
      else d.metric.inc(lv, Math.max(0, s.value));
    }
  }

  /** Removes the tick and tick-phase histogram series of transfer `id`. */
  function dropTicks(id: string): void {
    lastTicks.delete(id);
    tickHist.remove({ transfer: id });
    for (const phase of phasesSeen.get(id) ?? []) phaseHist.remove({ transfer: id, phase });
    phasesSeen.delete(id);
  }

  return {
    registry,
    observe(s) {
      for (const t of s.transfers) {
        if (!t.polled) continue;
        // a finished transfer ticks no more: its tick histograms go (see `live`)
        if (ENDED.has(t.state)) {
          if (lastTicks.has(t.id)) dropTicks(t.id);
          continue;
        }
        const before = lastTicks.get(t.id) ?? 0;
        lastTicks.set(t.id, t.ticks);
        if (t.ticks <= before) continue;
        const last = t.lastTickMs?.total ?? t.tickMsP50;
        tickHist.observe({ transfer: t.id }, last / 1000);
        if (!t.lastTickMs) continue;
        let seen = phasesSeen.get(t.id);
        if (!seen) phasesSeen.set(t.id, (seen = new Set()));
        for (const [phase, ms] of Object.entries(t.lastTickMs)) {
          if (phase === 'total' || (!seen.has(phase) && seen.size >= 16)) continue;
          seen.add(phase);
          phaseHist.observe({ transfer: t.id, phase }, ms / 1000);
        }
      }
    },
    forget(ids) {
      for (const id of ids) dropTicks(id);
    },
    registerSource(source) {
      checkArg(
        typeof source === 'function',
        'registerMetricsSource(source)',
        'a function returning metric samples',
      );
      sources.add(source);
      return () => {
        sources.delete(source);
      };
    },
    recordDeadLetter(reason, count = 1) {
      checkArg(
        typeof reason === 'string' && reason.length > 0 && reason.length <= 64,
        'recordDeadLetter(reason)',
        'a short non-empty string',
      );
      checkArg(Number.isFinite(count) && count >= 0, 'recordDeadLetter(count)', 'a finite number >= 0');
      deadLetters.inc({ reason }, count);
    },
    countPollError: () => pollErrors.inc(),
    async render() {
      await runSources();
      return registry.metrics();
    },
  };
}
