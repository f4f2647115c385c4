import { Actor } from '../runtime/types.js';
import { PortalError, checkArg } from '../common/errors.js';
import { EdgeEstimator, defaultEstimatorConfig, type EdgeEstimatorState } from '../scheduler/estimators.js';
import { EdgeFlags } from '../scheduler/types.js';
import type { EdgeConfig, EdgeSample, EdgeTelemetry, EdgeView } from './types.js';
import type { EdgeActorApi } from './api.js';

/** Checks whether an edge answers; injected as `services.probeEdge` (HTTP GET /health by default). */
export type EdgeProber = (url: string, kind: string) => Promise<boolean>;

/** The services EdgeActor takes. */
export interface EdgeServices {
  /** Checks an offline edge; without it an offline edge stays offline until telemetry says otherwise. */
  readonly probeEdge?: EdgeProber;
  /** Period of the probe timer, ms (default 2000). */
  readonly probeMs?: number;
}

const PROBE_TIMER = 'probe';

/**
 * One actor per edge: runs the edge's estimators (bandwidth EMA, SRTT, health, uptime), keeps its
 * flags and availability, and answers with an EdgeView. An edge marked offline is probed every
 * `probeMs` until it answers again. Observations come from schedulers; telemetry from the bus.
 */
export class EdgeActor extends Actor<EdgeServices> implements EdgeActorApi {
  private config: EdgeConfig | undefined;
  private est: EdgeEstimator | undefined;
  private epoch = 0;
  private lastSave = -Infinity;
  private probing = false;
  /** The edge (or its operator) said it is offline: stays offline until it says otherwise, whatever samples show. */
  private announcedOffline = false;

  override async onActivate(): Promise<void> {
    const saved = await this.ctx.state.get<{
      config: EdgeConfig;
      est: EdgeEstimatorState;
      epoch: number;
      announcedOffline?: boolean;
    }>('edge');
    if (saved) {
      this.config = saved.config;
      this.est = EdgeEstimator.fromJSON(saved.est, defaultEstimatorConfig);
      this.epoch = saved.epoch;
      this.announcedOffline = saved.announcedOffline ?? false;
      if (!this.announcedOffline && !this.est.snapshot(this.now()).available) await this.startProbing();
    }
  }

  /** Sets how the edge is reached; keeps the estimates if it was configured before. */
  async configure(cfg: EdgeConfig): Promise<EdgeView> {
    checkArg(typeof cfg?.url === 'string' && /^https?:\/\//.test(cfg.url), 'url', 'an http(s) URL');
    checkArg(cfg.kind === 'portal' || cfg.kind === 'mirror', 'kind', "'portal' or 'mirror'");
    checkArg(Number.isInteger(cfg.maxParallel) && cfg.maxParallel >= 0, 'maxParallel', 'an integer ≥ 0');
    this.config = { ...cfg, flags: cfg.flags >>> 0 };
    if (!this.est)
      this.est = new EdgeEstimator(defaultEstimatorConfig, this.now(), {
        bandwidth: cfg.bandwidthHint ?? 0,
        rtt: cfg.rttHint ?? 0,
      });
    await this.persist(true);
    return this.view();
  }

  /** Feeds chunk outcomes into the estimators and returns the updated view. */
  async observe(arg: { samples: EdgeSample[] }): Promise<EdgeView> {
    const est = this.requireConfigured();
    const now = this.now();
    for (const s of arg.samples) {
      if (s.ok) est.observeSuccess(s.bytes, s.firstByteMs, s.transferMs, now);
      else if (est.observeFailure(s.reason ?? 'unknown', now) && !this.announcedOffline) {
        this.epoch++;
        this.ctx.log.warn({ reason: s.reason }, 'edge marked offline');
        await this.startProbing();
      }
    }
    await this.persist(false);
    return this.view();
  }

  /** Applies telemetry (online/offline, flags, bandwidth and RTT hints). */
  async telemetry(t: EdgeTelemetry): Promise<EdgeView> {
    const est = this.requireConfigured();
    const cfg = this.config!;
    if (t.metered !== undefined)
      cfg.flags = t.metered ? cfg.flags | EdgeFlags.METERED : cfg.flags & ~EdgeFlags.METERED;
    if (t.batteryLow !== undefined)
      cfg.flags = t.batteryLow ? cfg.flags | EdgeFlags.BATTERY_LOW : cfg.flags & ~EdgeFlags.BATTERY_LOW;
    if (t.maxParallel !== undefined) cfg.maxParallel = t.maxParallel;
    if (t.online !== undefined && t.online === this.announcedOffline) {
      // an announcement overrides what samples and probes infer, until the next announcement
      this.announcedOffline = !t.online;
      est.setAvailable(t.online, this.now());
      this.epoch++;
      await this.stopProbing();
    }
    await this.persist(true);
    return this.view();
  }

  /** The current view of the edge. */
  async snapshot(): Promise<EdgeView> {
    this.requireConfigured();
    return this.view();
  }

  /** Timer callback: asks the edge whether it is back. */
  async probe(): Promise<void> {
    const est = this.est;
    if (!est || !this.config || est.snapshot(this.now()).available) {
      await this.stopProbing();
      return;
    }
    const prober = this.ctx.services.probeEdge;
    if (!prober) return;
    let ok = false;
    try {
      ok = await prober(this.config.url, this.config.kind);
    } catch (err) {
      this.ctx.log.debug({ err }, 'probe failed');
    }
    if (ok && est.setAvailable(true, this.now())) {
      this.epoch++;
      this.ctx.log.info('edge back online');
      await this.stopProbing();
      await this.persist(true);
    }
  }

  private async startProbing(): Promise<void> {
    if (this.probing) return;
    this.probing = true;
    const probeMs = this.ctx.services.probeMs ?? 2000;
    await this.ctx.registerTimer(PROBE_TIMER, { method: 'probe', dueMs: probeMs, periodMs: probeMs });
  }

  private async stopProbing(): Promise<void> {
    if (!this.probing) return;
    this.probing = false;
    await this.ctx.unregisterTimer(PROBE_TIMER);
  }

  private view(): EdgeView {
    const s = this.est!.snapshot(this.now());
    return {
      ...this.config!,
      ...s,
      id: this.ctx.actorId,
      available: s.available && !this.announcedOffline,
      epoch: this.epoch,
    };
  }

  /** Writes state at most once a second unless forced (observations arrive every tick). */
  private async persist(force: boolean): Promise<void> {
    const now = this.now();
    if (!force && now - this.lastSave < 1000) return;
    this.lastSave = now;
    await this.ctx.state.set('edge', {
      config: this.config,
      est: this.est!.toJSON(),
      epoch: this.epoch,
      announcedOffline: this.announcedOffline,
    });
  }

  private requireConfigured(): EdgeEstimator {
    if (!this.est || !this.config)
      throw new PortalError(
        'PORTAL_UNKNOWN_EDGE',
        `edge ${this.ctx.actorId} is not configured: call configure first`,
      );
    return this.est;
  }

  /** Wall-clock ms: estimator state (uptime intervals) outlives the process, so it needs an absolute time. */
  private now(): number {
    return this.ctx.clock.wallNow();
  }
}
