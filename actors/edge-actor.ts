import { Actor } from '../runtime/types.js';
import { PortalError, checkArg } from '../common/errors.js';
import { isRedactedUrl } from '../common/redact.js';
import { checkHttpUrl } from '../common/source-url.js';
import { EdgeEstimator, defaultEstimatorConfig, type EdgeEstimatorState } from '../scheduler/estimators.js';
import { EdgeFlags } from '../scheduler/types.js';
import { isLocationLabel } from './replica-placement.js';
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
  /** URLs edges announced, credentials included, by edge id (PortalServices.announcedEdgeUrls). */
  readonly announcedEdgeUrls?: ReadonlyMap<string, string>;
}

const PROBE_TIMER = 'probe';
const HOLD_TIMER = 'hold-off';
/**
 * Hold-off after a busy answer (503/429/5xx): 1 s doubling per busy answer in a row, at most 60 s (README "a `503`/`429`
 * holds the source off…"). It is also the floor under a Retry-After: `Retry-After: 0` or an HTTP date in the past
 * would otherwise put the source back at once and re-ask an overloaded mirror in a tight loop (~90 requests/s measured).
 */
const BUSY_BASE_MS = 1000;
const BUSY_CAP_MS = 60_000;
/**
 * The longest hold-off a Retry-After gets, ms (1 h). The EdgeActor is shared by every transfer naming the edge: a
 * source asking for days (or sending a nonsense number) would otherwise be taken out for all of them that long. A
 * transfer whose source budget ends before the Retry-After gives that source up at once (SchedulerActor).
 */
export const RETRY_AFTER_CAP_MS = 3_600_000;

/**
 * Hold-off after the `streak`-th busy answer in a row (1-based), ms: the source's Retry-After (ms, undefined when
 * absent or unreadable) no shorter than the 1 s doubling back-off and no longer than RETRY_AFTER_CAP_MS.
 */
export function busyHoldMs(streak: number, retryAfterMs: number | undefined): number {
  const backoff = Math.min(BUSY_CAP_MS, BUSY_BASE_MS * 2 ** Math.max(0, streak - 1));
  return Math.min(RETRY_AFTER_CAP_MS, Math.max(backoff, retryAfterMs ?? 0));
}

/** Refuses an EdgeConfig that is not one (PORTAL_INVALID_ARGUMENT naming the field). */
function checkConfig(cfg: EdgeConfig): void {
  // HTTP://… is http://… (RFC 3986 §3.1): kept in one spelling, so a claim compares URLs as the server sees them
  cfg.url = checkHttpUrl(cfg?.url, 'url');
  checkArg(cfg.kind === 'portal' || cfg.kind === 'mirror', 'kind', "'portal' or 'mirror'");
  checkArg(Number.isInteger(cfg.maxParallel) && cfg.maxParallel >= 0, 'maxParallel', 'an integer ≥ 0');
  checkArg(
    cfg.location === undefined || isLocationLabel(cfg.location),
    'location',
    'a label of 1 to 256 characters without control characters',
  );
  checkArg(cfg.accepts === undefined || typeof cfg.accepts === 'boolean', 'accepts', 'a boolean');
}

/** Refuses a claim/checkClaim argument that is not `{ transferId, config }`. */
function checkClaimArg(arg: { transferId: string; config: EdgeConfig }): void {
  checkArg(typeof arg?.transferId === 'string' && arg.transferId.length > 0, 'transferId', 'a transfer id');
  checkArg(typeof arg.config === 'object' && arg.config !== null, 'config', 'an EdgeConfig');
  checkConfig(arg.config);
}

/** True when `s` has the shape of EdgeEstimatorState (finite numbers where numbers belong). */
function isEstimatorState(s: unknown): s is EdgeEstimatorState {
  if (typeof s !== 'object' || s === null) return false;
  const o = s as Record<string, unknown>;
  const num = (k: string): boolean => {
    const v = o[k];
    return typeof v === 'number' && Number.isFinite(v) && v >= 0;
  };
  return (
    ['bw', 'bwDev', 'rtt', 'tMean', 'tDev', 'samples', 'since', 'unreachable'].every(num) &&
    typeof o.available === 'boolean' &&
    Array.isArray(o.outcomes) &&
    o.outcomes.every((x) => x === 0 || x === 1) &&
    Array.isArray(o.upMs) &&
    o.upMs.every(
      (x: unknown) =>
        Array.isArray(x) &&
        x.length === 2 &&
        x.every((v: unknown) => typeof v === 'number' && Number.isFinite(v)),
    )
  );
}

/** An edge's configuration with its estimators (EdgeActor holds both or neither). */
interface ConfiguredEdge {
  config: EdgeConfig;
  est: EdgeEstimator;
}

/**
 * One actor per edge: runs the edge's estimators (bandwidth EMA, SRTT, health, uptime), keeps its
 * flags and availability, and answers with an EdgeView. An edge marked offline is probed every
 * `probeMs` until it answers again. Observations come from schedulers; telemetry from the bus.
 */
export class EdgeActor extends Actor<EdgeServices> implements EdgeActorApi {
  /** How the edge is reached and its estimators: set together by `configure` (or reloaded), absent before. */
  private edge: ConfiguredEdge | undefined;
  private epoch = 0;
  private lastSave = -Infinity;
  private probing = false;
  /** The edge (or its operator) said it is offline: stays offline until it says otherwise, whatever samples show. */
  private announcedOffline = false;
  /** Busy answers (5xx/429) in a row; reset by a delivered chunk. */
  private busyStreak = 0;
  /** Wall time until which the edge asked not to be asked (Retry-After), 0 when not held off. */
  private holdUntil = 0;
  /** The transfers that use the edge now (claim … release), by id: kept with the configuration. */
  private users = new Set<string>();

  /**
   * `checkClaim` of a configured edge runs beside a turn in progress (Actor.mayInterleave): it only reads the
   * configuration and the users, which every await point leaves consistent, and every start asks each of its edges,
   * so a burst of starts would otherwise wait behind the reports of the transfers running on them (bench:load).
   */
  override mayInterleave(method: string): boolean {
    return method === 'checkClaim' && this.edge !== undefined;
  }

  /** What a release left unsaved (persist(false) within 1 s of the last save) is saved when the actor goes. */
  override async onDeactivate(): Promise<void> {
    await this.persist(true);
  }

  override async onActivate(): Promise<void> {
    const saved = await this.ctx.state.get<{
      config: EdgeConfig;
      est: EdgeEstimatorState;
      epoch: number;
      announcedOffline?: boolean;
      users?: string[];
    }>('edge');
    if (saved) {
      const edge = { config: saved.config, est: EdgeEstimator.fromJSON(saved.est, defaultEstimatorConfig) };
      this.edge = edge;
      this.users = new Set(saved.users ?? []);
      this.epoch = saved.epoch;
      this.announcedOffline = saved.announcedOffline ?? false;
      if (!this.announcedOffline && !edge.est.snapshot(this.now()).available) await this.startProbing();
    }
  }

  /**
   * Sets how the edge is reached (an announcement on the bus: actors/edge-event-router.ts); keeps the estimates if it
   * was configured before. Refused with PORTAL_TRANSFER_CONFLICT (naming the edge, the transfer and both URLs) when
   * `cfg` names another URL or kind while a transfer uses the edge (claim … release): an announcement never moves an
   * edge a running transfer fetches from.
   */
  async configure(cfg: EdgeConfig): Promise<EdgeView> {
    checkConfig(cfg);
    const user = this.conflictingUser(undefined, cfg);
    if (user !== undefined) {
      const have = this.edge!.config;
      throw new PortalError(
        'PORTAL_TRANSFER_CONFLICT',
        `edge id "${this.ctx.actorId}" is in use by transfer "${user}" as ${have.kind} ${have.url}: an announcement of ${cfg.kind} ${cfg.url} does not move it while a transfer fetches from it`,
      );
    }
    return this.setConfig(cfg);
  }

  /**
   * A transfer (`transferId`) uses this edge as `config` (its URL redacted): refused with PORTAL_TRANSFER_CONFLICT
   * (409) when another transfer that uses it now named it with another URL or kind (claimConflict), else configures
   * the edge (a new URL or kind starts its estimates afresh: they were another server's) and counts the transfer
   * among its users until `release`. An edge id names one edge for every transfer of the host, on purpose: what its
   * EdgeActor learns serves all of them; two transfers naming one id with two URLs would reconfigure it under each
   * other (trial #3: one transfer's dead URL stalled the other).
   */
  async claim(arg: { transferId: string; config: EdgeConfig }): Promise<EdgeView> {
    checkClaimArg(arg);
    this.refuseConflict(arg.transferId, arg.config);
    return this.setConfig(arg.config, arg.transferId);
  }

  /** What `claim` would answer, without configuring or counting anything: a start checks every edge first. */
  async checkClaim(arg: { transferId: string; config: EdgeConfig }): Promise<{ ok: true }> {
    checkClaimArg(arg);
    this.refuseConflict(arg.transferId, arg.config);
    if (!this.edge) this.ctx.deactivateOnIdle(); // an unknown edge keeps no instance in memory
    return { ok: true };
  }

  /**
   * Transfer `transferId` no longer uses this edge (it ended, or its start failed); unknown ids are ignored. Saved
   * with the edge's next state write (at most 1 s later while transfers report, as the estimates are), not as a
   * durable write of its own: every transfer's end releases each of its edges, and a durable write per release
   * queued the edges' turns behind the commit log (bench:load, 1000 transfers on 4 edges: 16–18 s to the last
   * against 10 s); at the latest it is saved when the actor is deactivated (idle, or the host stopping). A crash
   * before that may leave the transfer counted as a user after the restart: a claim refused naming it asks that
   * transfer's SchedulerActor, which releases the edge here when the transfer has ended (releaseEdgeIfEnded).
   */
  async release(arg: { transferId: string }): Promise<{ users: number }> {
    checkArg(typeof arg?.transferId === 'string', 'transferId', 'a transfer id');
    if (this.users.delete(arg.transferId) && this.edge) await this.persist(false);
    if (!this.edge) this.ctx.deactivateOnIdle();
    return { users: this.users.size };
  }

  /** The ids of the transfers counted as this edge's users (claim … release), for a claim refused naming one. */
  async listUsers(): Promise<{ users: string[] }> {
    if (!this.edge) this.ctx.deactivateOnIdle();
    return { users: [...this.users] };
  }

  /** A transfer other than `transferId` (any, when undefined) that uses this edge with another URL or kind than `cfg`. */
  private conflictingUser(transferId: string | undefined, cfg: EdgeConfig): string | undefined {
    const have = this.edge?.config;
    if (!have || (have.url === cfg.url && have.kind === cfg.kind)) return undefined;
    return [...this.users].find((u) => u !== transferId);
  }

  /** Throws PORTAL_TRANSFER_CONFLICT when another transfer uses this edge with another URL or kind than `cfg`. */
  private refuseConflict(transferId: string, cfg: EdgeConfig): void {
    const other = this.conflictingUser(transferId, cfg);
    if (other === undefined) return;
    const have = this.edge!.config;
    throw new PortalError(
      'PORTAL_TRANSFER_CONFLICT',
      `edge id "${this.ctx.actorId}" is in use by transfer "${other}" as ${have.kind} ${have.url}, not ${cfg.kind} ${cfg.url}: an edge id names one edge for every transfer on this host (its EdgeActor learns that edge's bandwidth, RTT and health for all of them); give this source another id, or name the same url and kind`,
    );
  }

  /** configure's work: the edge is reached as `cfg` from now on; `user` (a transfer id) is counted among its users. */
  private async setConfig(cfg: EdgeConfig, user?: string): Promise<EdgeView> {
    const prev = this.edge;
    const sameServer = prev !== undefined && prev.config.url === cfg.url && prev.config.kind === cfg.kind;
    const edge: ConfiguredEdge = {
      config: { ...cfg, flags: cfg.flags >>> 0 },
      est:
        (user === undefined || sameServer ? prev?.est : undefined) ??
        new EdgeEstimator(defaultEstimatorConfig, this.now(), {
          bandwidth: cfg.bandwidthHint ?? 0,
          rtt: cfg.rttHint ?? 0,
        }),
    };
    if (prev && edge.est !== prev.est) {
      // another server under this id: what was learned of the old one (offline, held off) does not hold for it
      this.epoch++;
      this.busyStreak = 0;
      this.holdUntil = 0;
      await this.stopProbing();
    }
    if (user !== undefined) this.users.add(user);
    this.edge = edge;
    await this.persist(true);
    return this.view(edge);
  }

  /**
   * The estimator state (bandwidth EMA and deviation, SRTT, transfer-time mean and deviation, the success
   * window, uptime intervals, unreachable count, availability): what a scheduler keeps in its journal so that
   * a restarted fetch starts from what this one learned (warmStart). PORTAL_UNKNOWN_EDGE before configure.
   */
  async estimates(): Promise<EdgeEstimatorState> {
    return this.requireConfigured().est.toJSON();
  }

  /**
   * Warm start after a restart: adopts `estimates` (an `estimates()` answer a scheduler journaled before it
   * crashed or stopped) when this actor has learned nothing of its own yet (no sample since it was configured,
   * still available), so the resumed transfer ranks, sizes its timeouts and avoids a dead edge from its first
   * tick instead of from cold priors. An actor that already has samples (another transfer, a durable host)
   * keeps its own. An edge the estimates say was offline is probed from now on. Returns the view either way;
   * PORTAL_INVALID_ARGUMENT names a malformed state, PORTAL_UNKNOWN_EDGE before configure.
   */
  async warmStart(arg: { estimates: EdgeEstimatorState }): Promise<EdgeView> {
    const edge = this.requireConfigured();
    const s = arg?.estimates;
    checkArg(isEstimatorState(s), 'estimates', 'an EdgeActor estimates() answer');
    const own = edge.est.snapshot(this.now());
    if (own.samples > 0 || !own.available || this.announcedOffline) return this.view(edge);
    // the transfer-time deviation starts as wide as after a first sample (tDev = tMean): the timeouts of the
    // resumed run start generous (its process may run slower than the one that measured), the ranking warm
    edge.est = EdgeEstimator.fromJSON({ ...s, tDev: Math.max(s.tDev, s.tMean) }, defaultEstimatorConfig);
    this.epoch++;
    if (!edge.est.snapshot(this.now()).available) await this.startProbing();
    await this.persist(true);
    return this.view(edge);
  }

  /** Feeds chunk outcomes into the estimators and returns the updated view. */
  async observe(arg: { samples: EdgeSample[] }): Promise<EdgeView> {
    const edge = this.requireConfigured();
    const est = edge.est;
    const now = this.now();
    let holdMs = 0;
    for (const s of arg.samples) {
      if (s.ok) this.busyStreak = 0;
      if (s.reason === 'busy') {
        this.busyStreak++;
        holdMs = Math.max(holdMs, busyHoldMs(this.busyStreak, s.retryAfterMs));
      }
      if (s.ok) est.observeSuccess(s.bytes, s.firstByteMs, s.transferMs, now);
      else if (est.observeFailure(s.reason ?? 'unknown', now) && !this.announcedOffline) {
        this.epoch++;
        this.ctx.log.warn({ reason: s.reason }, 'edge marked offline');
        await this.startProbing();
      }
    }
    if (holdMs > 0) await this.holdOff(est, holdMs);
    await this.persist(false);
    return this.view(edge);
  }

  /**
   * The edge answered busy: it is taken out of scheduling until `ms` from now (busyHoldMs: its Retry-After, at
   * least the doubling back-off, at most RETRY_AFTER_CAP_MS), then put back without a probe — the next chunk request is the probe. A later
   * busy answer can only extend the hold.
   */
  private async holdOff(est: EdgeEstimator, ms: number): Promise<void> {
    const now = this.now();
    const until = now + ms;
    if (until <= this.holdUntil) return;
    this.holdUntil = until;
    if (est.setAvailable(false, now)) this.epoch++;
    this.ctx.log.info({ holdMs: ms }, 'edge busy: held off');
    await this.ctx.registerTimer(HOLD_TIMER, { method: 'holdOver', dueMs: ms, periodMs: 0 });
  }

  /** Timer callback: a busy edge's hold-off is over; it is scheduled again. */
  async holdOver(): Promise<void> {
    const est = this.edge?.est;
    if (!est || this.holdUntil === 0) return;
    const left = this.holdUntil - this.now();
    if (left > 5) {
      await this.ctx.registerTimer(HOLD_TIMER, { method: 'holdOver', dueMs: left, periodMs: 0 });
      return;
    }
    this.holdUntil = 0;
    await this.ctx.unregisterTimer(HOLD_TIMER);
    if (!this.announcedOffline && est.setAvailable(true, this.now())) {
      this.epoch++;
      await this.stopProbing();
      await this.persist(true);
    }
  }

  /**
   * Applies telemetry (online/offline, flags, bandwidth and RTT hints). The state is saved at once when the
   * telemetry changed the flags, maxParallel or the announced availability; a heartbeat that changed none of them
   * saves only as the samples do (at most once a second): a swarm member gets a heartbeat from every peer every
   * second, and a state write each cost it a log append and an fdatasync (BENCHMARKS.md, issue 18, session 7).
   */
  async telemetry(t: EdgeTelemetry): Promise<EdgeView> {
    const edge = this.requireConfigured();
    const { est, config: cfg } = edge;
    const before = { flags: cfg.flags, maxParallel: cfg.maxParallel };
    if (t.metered !== undefined)
      cfg.flags = t.metered ? cfg.flags | EdgeFlags.METERED : cfg.flags & ~EdgeFlags.METERED;
    if (t.batteryLow !== undefined)
      cfg.flags = t.batteryLow ? cfg.flags | EdgeFlags.BATTERY_LOW : cfg.flags & ~EdgeFlags.BATTERY_LOW;
    if (t.maxParallel !== undefined) cfg.maxParallel = t.maxParallel;
    let changed = cfg.flags !== before.flags || cfg.maxParallel !== before.maxParallel;
    if (t.online !== undefined && t.online === this.announcedOffline) {
      // an announcement overrides what samples and probes infer, until the next announcement
      this.announcedOffline = !t.online;
      est.setAvailable(t.online, this.now());
      this.epoch++;
      changed = true;
      await this.stopProbing();
    }
    await this.persist(changed);
    return this.view(edge);
  }

  /** The current view of the edge. */
  async snapshot(): Promise<EdgeView> {
    return this.view(this.requireConfigured());
  }

  /** Timer callback: asks the edge whether it is back. */
  async probe(): Promise<void> {
    const edge = this.edge;
    if (!edge || edge.est.snapshot(this.now()).available) {
      await this.stopProbing();
      return;
    }
    const prober = this.ctx.services.probeEdge;
    if (!prober) return;
    // an announced URL is stored redacted; the host keeps the one with its credentials. Without it, a URL whose
    // credentials were redacted is not probed: it would send `***` as a password or a signature.
    const url = this.ctx.services.announcedEdgeUrls?.get(this.ctx.actorId) ?? edge.config.url;
    if (isRedactedUrl(url)) return;
    let ok = false;
    try {
      ok = await prober(url, edge.config.kind);
    } catch (err) {
      this.ctx.log.debug({ err }, 'probe failed');
    }
    if (ok && edge.est.setAvailable(true, this.now())) {
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

  private view(edge: ConfiguredEdge): EdgeView {
    const s = edge.est.snapshot(this.now());
    return {
      ...edge.config,
      ...s,
      id: this.ctx.actorId,
      available: s.available && !this.announcedOffline,
      epoch: this.epoch,
    };
  }

  /** Writes state at most once a second unless forced (observations arrive every tick). */
  private async persist(force: boolean): Promise<void> {
    const edge = this.edge;
    if (!edge) return;
    const now = this.now();
    if (!force && now - this.lastSave < 1000) return;
    this.lastSave = now;
    await this.ctx.state.set('edge', {
      config: edge.config,
      est: edge.est.toJSON(),
      epoch: this.epoch,
      announcedOffline: this.announcedOffline,
      users: [...this.users],
    });
  }

  private requireConfigured(): ConfiguredEdge {
    if (!this.edge) {
      this.ctx.deactivateOnIdle(); // an unknown edge keeps no instance in memory
      throw new PortalError(
        'PORTAL_UNKNOWN_EDGE',
        `edge ${this.ctx.actorId} is not known to this host: no transfer names it and it has not announced itself (portal.edge.<id>.telemetry with its URL)`,
      );
    }
    return this.edge;
  }

  /** Wall-clock ms: estimator state (uptime intervals) outlives the process, so it needs an absolute time. */
  private now(): number {
    return this.ctx.clock.wallNow();
  }
}
