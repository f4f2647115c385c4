import { AsyncResource } from 'node:async_hooks';
import { Actor, typedProxy } from '../runtime/types.js';
import type { CoordinatorActorApi } from './api.js';
import { PortalError, checkArg } from '../common/errors.js';
import {
  RiskModel,
  heuristicScore,
  riskAdjusted,
  HybridSplitter,
  type RiskModelState,
  type SplitPlan,
  type SplitTask,
  type TaskContext,
} from '../learning/index.js';

export type {
  CoordPolicy,
  CoordPeer,
  CoordTask,
  PeerDispatch,
  PeerAnswer,
  PeerTransport,
  TaskOutcome,
  CoordOracle,
  PeerRank,
  CoordPeerStats,
  CoordSnapshot,
  PeerReport,
  PeerTelemetryReport,
  CoordTaskState,
} from './coordinator-types.js';
import type {
  CoordPolicy,
  CoordPeer,
  CoordTask,
  PeerDispatch,
  PeerAnswer,
  PeerTransport,
  TaskOutcome,
  CoordOracle,
  PeerRank,
  CoordSnapshot,
  PeerReport,
  PeerTelemetryReport,
  CoordTaskState,
} from './coordinator-types.js';

/** The services CoordinatorActor takes. */
export interface CoordinatorServices {
  /** Executes dispatches on peers; without it dispatching fails with PORTAL_CONFIG_INVALID. */
  readonly coordinatorTransport?: PeerTransport;
  /** Receives each task's final outcome. */
  readonly coordinatorSink?: (o: TaskOutcome) => void;
  /** The true service time and failure probability, for the 'oracle' policy. */
  readonly coordinatorOracle?: CoordOracle;
}

interface TaskRecord extends CoordTask {
  submittedAt: number;
  attempts: number;
  failures: number;
  excluded: string[];
}
interface AttemptRecord {
  taskId: string;
  attempt: number;
  peer: string;
  startedAt: number;
  ctx: TaskContext;
  predictedMs: number;
}
interface PeerRecord extends CoordPeer {
  taskTypes: string[];
  online: boolean;
  inFlight: number;
  completed: number;
  failed: number;
  busyMs: number;
  pressure: number;
}
interface CoordState {
  policy: CoordPolicy;
  maxAttempts: number;
  nextAttempt: number;
  peers: PeerRecord[];
  queue: TaskRecord[];
  running: Record<string, TaskRecord>;
  attempts: AttemptRecord[];
  counters: CoordSnapshot['counters'];
  /** The last RECENT_OUTCOMES final outcomes, oldest first. */
  recent?: TaskOutcome[];
}

const STATE = 'coord';
/** Final outcomes kept in state for `outcome` polling (outputs included, so bounded). */
export const RECENT_OUTCOMES = 256;

/** True when the peer runs tasks of `type` (an empty list = every type). */
function runs(p: PeerRecord, type: string): boolean {
  return p.taskTypes.length === 0 || p.taskTypes.includes(type);
}
const MODEL = 'model';
/** Peer completions arrive outside any turn: run their report call in the module's (root) async context, not the dispatching turn's. */
const rootScope = new AsyncResource('PortalCoordinatorReport');

/**
 * The learning coordinator (docs/architecture.md, "Learning"): assigns compute tasks to registered peers by risk-adjusted score
 * (predicted time / (1 − failure probability), learned online from every completion and failure;
 * the heuristic during the first 20 tasks), within per-peer concurrency limits, retrying a
 * failed task on another peer up to `maxAttempts`. Splits tasks with the HybridSplitter against
 * the same predictions. The model and every queued or running task are actor state, so a
 * reactivated coordinator keeps what it learned. Peers are reached through `services.coordinatorTransport`;
 * final outcomes go to `services.coordinatorSink`.
 */
export class CoordinatorActor extends Actor<CoordinatorServices> implements CoordinatorActorApi {
  private s: CoordState = {
    policy: 'learned',
    maxAttempts: 3,
    nextAttempt: 1,
    peers: [],
    queue: [],
    running: {},
    attempts: [],
    counters: { submitted: 0, completed: 0, failedTasks: 0, attempts: 0, failures: 0, retries: 0 },
  };
  private model = new RiskModel();
  private readonly splitter = new HybridSplitter();
  private lastModelSave = -Infinity;
  /** The model learned something since it was last written. */
  private modelChanged = false;
  /** This coordinator has state in the store (read at activation, or written since). */
  private stored = false;

  override async onActivate(): Promise<void> {
    const s = await this.ctx.state.get<CoordState>(STATE);
    if (s) {
      // state written before peers had task types and presence
      for (const p of s.peers) {
        p.taskTypes ??= [];
        p.online ??= true;
      }
      this.s = s;
      this.stored = true;
    }
    const m = await this.ctx.state.get<RiskModelState>(MODEL);
    if (m) this.model = RiskModel.fromJSON(m);
  }

  override async onDeactivate(): Promise<void> {
    await this.saveModel(true);
  }

  /** Sets the policy and retry limit. */
  async configure(arg: { policy?: CoordPolicy; maxAttempts?: number }): Promise<CoordSnapshot> {
    if (arg?.policy !== undefined)
      checkArg(
        ['learned', 'heuristic', 'oracle'].includes(arg.policy),
        'policy',
        "'learned', 'heuristic' or 'oracle'",
      );
    if (arg?.maxAttempts !== undefined)
      checkArg(Number.isInteger(arg.maxAttempts) && arg.maxAttempts >= 1, 'maxAttempts', 'an integer ≥ 1');
    if (arg?.policy) this.s.policy = arg.policy;
    if (arg?.maxAttempts) this.s.maxAttempts = arg.maxAttempts;
    await this.persist();
    return this.view();
  }

  /** Registers (or updates) a peer. */
  async registerPeer(p: CoordPeer): Promise<CoordSnapshot> {
    checkArg(typeof p?.id === 'string' && p.id.length > 0, 'id', 'a non-empty string');
    checkArg(Number.isInteger(p.maxConcurrent) && p.maxConcurrent >= 1, 'maxConcurrent', 'an integer ≥ 1');
    checkArg(Number.isFinite(p.latencyHintMs) && p.latencyHintMs >= 0, 'latencyHintMs', 'a number ≥ 0');
    checkArg(
      p.taskTypes === undefined ||
        (Array.isArray(p.taskTypes) && p.taskTypes.every((t) => typeof t === 'string' && t.length > 0)),
      'taskTypes',
      'an array of non-empty strings',
    );
    const taskTypes = [...(p.taskTypes ?? [])];
    const old = this.s.peers.find((x) => x.id === p.id);
    if (old) {
      old.maxConcurrent = p.maxConcurrent;
      old.latencyHintMs = p.latencyHintMs;
      old.taskTypes = taskTypes;
      old.online = true;
    } else
      this.s.peers.push({
        id: p.id,
        maxConcurrent: p.maxConcurrent,
        latencyHintMs: p.latencyHintMs,
        taskTypes,
        online: true,
        inFlight: 0,
        completed: 0,
        failed: 0,
        busyMs: 0,
        pressure: 0,
      });
    this.pump();
    await this.persist();
    return this.view();
  }

  /**
   * Marks a peer away (it left, or its transport stopped hearing from it): nothing more is
   * dispatched to it until registerPeer brings it back. What the model learned about it is kept.
   * Its attempts in flight fail (counted as the peer's failures) and are retried on another peer.
   * Unknown ids are ignored.
   */
  async peerGone(arg: { id: string; reason?: string }): Promise<CoordSnapshot> {
    checkArg(typeof arg?.id === 'string' && arg.id.length > 0, 'id', 'a non-empty string');
    const p = this.s.peers.find((x) => x.id === arg.id);
    if (p && p.online) {
      p.online = false;
      this.ctx.log.info({ peer: p.id, reason: arg.reason, inFlight: p.inFlight }, 'peer gone');
      // its attempts in flight fail now (and are retried elsewhere): after a coordinator restart no
      // transport holds them any more; the transport's own answer for them later is stale
      for (const a of this.s.attempts.filter((x) => x.peer === p.id))
        this.apply({
          taskId: a.taskId,
          attempt: a.attempt,
          peer: a.peer,
          ok: false,
          error: `peer ${p.id} gone${arg.reason ? ` (${arg.reason})` : ''}`,
        });
      this.pump();
      await this.persist();
    }
    return this.view();
  }

  /**
   * Takes a peer's telemetry (its heartbeat): its resource pressure (CPU and memory, 0..1; not its
   * queue, which the load feature already counts) becomes the pressure feature of the model for
   * the attempts dispatched to it from now on (time and failure predictions), until the next one. Not written to state on its own (it is refreshed every heartbeat).
   * Answers whether the peer is registered; unknown ids are ignored. Throws
   * PORTAL_INVALID_ARGUMENT for a missing id or a pressure outside 0..1.
   */
  async peerTelemetry(arg: PeerTelemetryReport): Promise<{ known: boolean }> {
    checkArg(typeof arg?.id === 'string' && arg.id.length > 0, 'id', 'a non-empty string');
    checkArg(
      Number.isFinite(arg.pressure) && arg.pressure >= 0 && arg.pressure <= 1,
      'pressure',
      'a number in [0, 1]',
    );
    const p = this.s.peers.find((x) => x.id === arg.id);
    if (!p) return { known: false };
    p.pressure = arg.pressure;
    return { known: true };
  }

  /** Queues tasks and dispatches what fits; outcomes go to the sink. */
  async submit(arg: { tasks: CoordTask[] }): Promise<{ queued: number; inFlight: number }> {
    checkArg(Array.isArray(arg?.tasks), 'tasks', 'an array of tasks');
    const now = this.ctx.clock.now();
    for (const t of arg.tasks) {
      checkArg(typeof t?.id === 'string' && t.id.length > 0, 'task.id', 'a non-empty string');
      checkArg(typeof t.type === 'string' && t.type.length > 0, 'task.type', 'a non-empty string');
      checkArg(Number.isFinite(t.work) && t.work > 0, 'task.work', 'a positive number');
      if (this.s.running[t.id] || this.s.queue.some((q) => q.id === t.id))
        throw new PortalError('PORTAL_INVALID_ARGUMENT', `task.id: "${t.id}" is already queued or running`);
      this.s.queue.push({ ...t, submittedAt: now, attempts: 0, failures: 0, excluded: [] });
      this.s.counters.submitted++;
    }
    this.pump();
    await this.persist();
    return { queued: this.s.queue.length, inFlight: this.s.attempts.length };
  }

  /** A peer's answer for one attempt (sent by the transport). Unknown attempts are ignored (stale). */
  async report(r: PeerReport): Promise<{ outcome: 'completed' | 'retrying' | 'failed' | 'stale' }> {
    const outcome = this.apply(r);
    if (outcome === 'stale') return { outcome };
    this.pump();
    await this.persist();
    await this.saveModel(false);
    return { outcome };
  }

  /** What becomes of a task's answer, by the peer: learned from, then completed, retried or failed. */
  private apply(r: PeerReport): 'completed' | 'retrying' | 'failed' | 'stale' {
    const i = this.s.attempts.findIndex(
      (a) => a.taskId === r?.taskId && a.attempt === r.attempt && a.peer === r.peer,
    );
    if (i < 0) return 'stale';
    const a = this.s.attempts[i];
    this.s.attempts.splice(i, 1);
    const now = this.ctx.clock.now();
    const timeMs = Math.max(0, now - a.startedAt);
    const peer = this.s.peers.find((p) => p.id === a.peer);
    if (peer) {
      peer.inFlight = Math.max(0, peer.inFlight - 1);
      peer.busyMs += timeMs;
    }
    // learn the service time when the peer measured it (its queue is accounted for separately, see backlogMs)
    this.ctx.log.debug(
      {
        taskId: a.taskId,
        peer: a.peer,
        ok: r.ok,
        predictedMs: a.predictedMs,
        serviceMs: r.serviceMs,
        elapsedMs: timeMs,
        load: a.ctx.load,
        hour: a.ctx.hour,
        pressure: a.ctx.pressure,
      },
      'attempt answered',
    );
    const learnMs =
      r.serviceMs !== undefined && Number.isFinite(r.serviceMs) && r.serviceMs >= 0 ? r.serviceMs : timeMs;
    this.model.observe({ ...a.ctx, ok: r.ok, timeMs: learnMs });
    this.modelChanged = true;
    const task = this.s.running[a.taskId];
    let outcome: 'completed' | 'retrying' | 'failed' = 'completed';
    if (task) {
      delete this.s.running[a.taskId];
      if (r.ok) {
        if (peer) peer.completed++;
        this.s.counters.completed++;
        this.emit({
          taskId: task.id,
          type: task.type,
          ok: true,
          peer: a.peer,
          attempts: task.attempts,
          failures: task.failures,
          latencyMs: now - task.submittedAt,
          output: r.output,
        });
      } else {
        if (peer) peer.failed++;
        this.s.counters.failures++;
        task.failures++;
        if (!task.excluded.includes(a.peer)) task.excluded.push(a.peer);
        this.ctx.log.debug({ taskId: task.id, peer: a.peer, error: r.error }, 'attempt failed');
        if (task.attempts < this.s.maxAttempts) {
          this.s.queue.unshift(task);
          this.s.counters.retries++;
          outcome = 'retrying';
        } else {
          this.s.counters.failedTasks++;
          outcome = 'failed';
          this.emit({
            taskId: task.id,
            type: task.type,
            ok: false,
            peer: a.peer,
            attempts: task.attempts,
            failures: task.failures,
            latencyMs: now - task.submittedAt,
            error: r.error ?? 'failed',
          });
        }
      }
    }
    return outcome;
  }

  /** Peers ranked for a task type by the active policy (best first), with the learned predictions. */
  async rankPeers(arg: { type: string; work?: number }): Promise<PeerRank[]> {
    checkArg(typeof arg?.type === 'string' && arg.type.length > 0, 'type', 'a non-empty string');
    this.releaseIfBlank();
    const work = arg.work ?? 1;
    const hour = this.hour();
    return this.s.peers
      .filter((p) => p.online && runs(p, arg.type))
      .map((p) => {
        const q: TaskContext = {
          peer: p.id,
          taskType: arg.type,
          hour,
          load: p.inFlight,
          work,
          pressure: p.pressure,
        };
        const pr = this.model.predict(q);
        return {
          peer: p.id,
          score: this.score(p, q),
          timeMs: pr.time.timeMs,
          lowMs: pr.time.lowMs,
          highMs: pr.time.highMs,
          failureProb: pr.failure.probability,
          load: p.inFlight,
          source: pr.time.source,
        };
      })
      .sort((a, b) => a.score - b.score || a.peer.localeCompare(b.peer));
  }

  /**
   * Splits a task with the HybridSplitter over the `peers` best-ranked peers (all by default),
   * using the model's risk-adjusted time per work unit on each at its current load (the oracle's
   * under 'oracle'; the heuristic policy has no notion of speed and splits as if peers were equal).
   */
  async split(arg: { task: SplitTask; peers?: number }): Promise<SplitPlan> {
    checkArg(typeof arg?.task?.type === 'string', 'task.type', 'a string');
    const ranked = await this.rankPeers({ type: arg.task.type });
    const chosen = ranked
      .slice(0, Math.max(1, Math.min(arg.peers ?? ranked.length, ranked.length)))
      .map((r) => r.peer);
    checkArg(chosen.length > 0, 'peers', 'registered peers (none registered)');
    const hour = this.hour();
    return this.splitter.split(arg.task, {
      peers: chosen,
      // risk-adjusted service time at the peer's current load: a slow, loaded or flaky peer gets a smaller share
      predictMs: (peer, taskType, work) => {
        if (this.s.policy === 'heuristic') return work;
        const p = this.s.peers.find((x) => x.id === peer)!;
        const ps = this.predictService({
          peer,
          taskType,
          hour,
          load: p.inFlight,
          work,
          pressure: p.pressure,
        });
        return riskAdjusted(ps.serviceMs, ps.failureProb);
      },
    });
  }

  /**
   * Where task `taskId` stands: its final outcome while it is among the last RECENT_OUTCOMES,
   * else queued, running or unknown (never submitted, or finished long ago). For services that
   * poll instead of listening on the outcome subject.
   */
  async outcome(arg: { taskId: string }): Promise<CoordTaskState> {
    checkArg(typeof arg?.taskId === 'string' && arg.taskId.length > 0, 'taskId', 'a non-empty string');
    this.releaseIfBlank();
    const done = this.s.recent?.findLast((o) => o.taskId === arg.taskId);
    if (this.s.running[arg.taskId]) return { state: 'running', taskId: arg.taskId };
    if (this.s.queue.some((t) => t.id === arg.taskId)) return { state: 'queued', taskId: arg.taskId };
    if (done) return { state: 'done', taskId: arg.taskId, outcome: done };
    return { state: 'unknown', taskId: arg.taskId };
  }

  /** Counters, peers and the model's warm-up state. */
  async snapshot(): Promise<CoordSnapshot> {
    this.releaseIfBlank();
    return this.view();
  }

  /** The learned model, serialized (for inspection and tests). */
  async exportModel(): Promise<RiskModelState> {
    this.releaseIfBlank();
    return this.model.toJSON();
  }

  // ---- internals ------------------------------------------------------------------------------

  private hour(): number {
    return new Date(this.ctx.clock.wallNow()).getUTCHours();
  }

  private score(p: PeerRecord, q: TaskContext): number {
    if (this.s.policy === 'heuristic' || (this.s.policy === 'learned' && !this.model.warm))
      return heuristicScore(p.latencyHintMs, p.inFlight);
    return this.learnedScore(q);
  }

  /**
   * Risk-adjusted expected completion of `q` under the policy: (work already queued on the peer +
   * the task's predicted service time) / (1 − failure probability), from the oracle's truth or the
   * model's prediction; 1 per work unit for the heuristic (it has no notion of speed).
   */
  private learnedScore(q: TaskContext): number {
    if (this.s.policy === 'heuristic') return q.work ?? 1;
    const { serviceMs, failureProb, optimistic } = this.predictService(q);
    return riskAdjusted(this.backlogMs(q.peer) + (optimistic ?? serviceMs), failureProb);
  }

  /** Predicted service time (no queueing) and failure probability under the policy. */
  private predictService(q: TaskContext): { serviceMs: number; failureProb: number; optimistic?: number } {
    if (this.s.policy === 'oracle') {
      const oracle = this.ctx.services.coordinatorOracle;
      if (!oracle)
        throw new PortalError('PORTAL_CONFIG_INVALID', "policy 'oracle' needs services.coordinatorOracle");
      const o = oracle(q);
      return { serviceMs: o.timeMs, failureProb: o.failureProb };
    }
    const pr = this.model.predict(q);
    // Optimism under uncertainty: a peer the model knows only from the population prior (no sample
    // of the type yet) is scored between the low end of its interval and its point estimate, so it
    // gets tried instead of being starved by a known peer; once it has a sample, the point estimate.
    return {
      serviceMs: pr.time.timeMs,
      failureProb: pr.failure.probability,
      optimistic: pr.time.source === 'model' ? undefined : Math.sqrt(pr.time.lowMs * pr.time.timeMs),
    };
  }

  /** Predicted ms of work still ahead on a peer: its in-flight attempts' predicted service, less what the oldest has already run. */
  private backlogMs(peer: string): number {
    const now = this.ctx.clock.now();
    let sum = 0,
      oldest = Infinity;
    for (const a of this.s.attempts)
      if (a.peer === peer) {
        sum += a.predictedMs;
        oldest = Math.min(oldest, a.startedAt);
      }
    return Number.isFinite(oldest) ? Math.max(0, sum - (now - oldest)) : 0;
  }

  /** Dispatches queued tasks (FIFO, skipping tasks whose pinned peer is full) while peers have free slots. */
  private pump(): void {
    const transport = this.ctx.services.coordinatorTransport;
    if (!transport) return;
    const hour = this.hour();
    for (let i = 0; i < this.s.queue.length;) {
      const free = this.s.peers.filter((p) => p.online && p.inFlight < p.maxConcurrent);
      if (free.length === 0) return;
      const task = this.s.queue[i];
      let pick: PeerRecord | undefined;
      if (task.pin && task.attempts === 0) {
        const pinned = this.s.peers.find((p) => p.id === task.pin && p.online && runs(p, task.type));
        if (pinned) {
          if (pinned.inFlight >= pinned.maxConcurrent) {
            i++;
            continue;
          }
          pick = pinned;
        }
      }
      if (!pick) {
        // peers that run the type; among them the free ones that have not failed this task, else
        // wait for one of those, else (every able peer failed it) any free able peer
        const able = free.filter((p) => runs(p, task.type));
        const fresh = able.filter((p) => !task.excluded.includes(p.id));
        const candidates =
          fresh.length > 0
            ? fresh
            : this.s.peers.some((p) => p.online && runs(p, task.type) && !task.excluded.includes(p.id))
              ? []
              : able;
        if (candidates.length === 0) {
          i++;
          continue;
        } // wait for a peer that has not failed this task
        let best = Infinity;
        for (const p of candidates) {
          const s = this.score(p, {
            peer: p.id,
            taskType: task.type,
            hour,
            load: p.inFlight,
            work: task.work,
            pressure: p.pressure,
          });
          if (s < best) {
            best = s;
            pick = p;
          }
        }
      }
      this.s.queue.splice(i, 1);
      this.dispatch(transport, task, pick!, hour);
    }
  }

  private dispatch(transport: PeerTransport, task: TaskRecord, peer: PeerRecord, hour: number): void {
    const attempt = this.s.nextAttempt++;
    task.attempts++;
    const ctx: TaskContext = {
      peer: peer.id,
      taskType: task.type,
      hour,
      load: peer.inFlight,
      work: task.work,
      pressure: peer.pressure,
    };
    const predictedMs = this.s.policy === 'heuristic' ? 0 : this.predictService(ctx).serviceMs;
    this.s.attempts.push({
      taskId: task.id,
      attempt,
      peer: peer.id,
      startedAt: this.ctx.clock.now(),
      ctx,
      predictedMs,
    });
    this.s.running[task.id] = task;
    peer.inFlight++;
    this.s.counters.attempts++;
    const d: PeerDispatch = {
      taskId: task.id,
      attempt,
      peer: peer.id,
      type: task.type,
      work: task.work,
      payload: task.payload,
      hour,
    };
    // the type this actor was registered under (CoordinatorActor by default)
    const self = typedProxy<CoordinatorActorApi>(this.ctx.proxy(this.ctx.actorType, this.ctx.actorId));
    const log = this.ctx.log;
    const send = (r: PeerReport): void => {
      rootScope.runInAsyncScope(() => {
        self
          .invoke('report', r)
          .catch((err: unknown) => log.error({ err, taskId: r.taskId }, 'report failed'));
      });
    };
    let run: Promise<PeerAnswer>;
    try {
      run = transport.execute(peer.id, d);
    } catch (err) {
      run = Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    run.then(
      (ans) => send({ ...ans, taskId: task.id, attempt, peer: peer.id }),
      (err: unknown) =>
        send({
          ok: false,
          error: err instanceof Error ? err.message : String(err),
          taskId: task.id,
          attempt,
          peer: peer.id,
        }),
    );
  }

  private emit(o: TaskOutcome): void {
    // kept for polling (outcome): the most recent RECENT_OUTCOMES
    this.s.recent ??= [];
    this.s.recent.push(o);
    if (this.s.recent.length > RECENT_OUTCOMES)
      this.s.recent.splice(0, this.s.recent.length - RECENT_OUTCOMES);
    const sink = this.ctx.services.coordinatorSink;
    if (!sink) return;
    try {
      sink(o);
    } catch (err) {
      this.ctx.log.error({ err, taskId: o.taskId }, 'coordinator sink threw');
    }
  }

  private view(): CoordSnapshot {
    return {
      policy: this.s.policy,
      warm: this.model.warm,
      observations: this.model.time.observations,
      queued: this.s.queue.length,
      inFlight: this.s.attempts.length,
      peers: this.s.peers.map((p) => ({
        id: p.id,
        online: p.online,
        taskTypes: [...p.taskTypes],
        inFlight: p.inFlight,
        completed: p.completed,
        failed: p.failed,
        busyMs: p.busyMs,
        pressure: p.pressure,
      })),
      counters: { ...this.s.counters },
    };
  }

  private async persist(): Promise<void> {
    await this.ctx.state.set(STATE, this.s);
    this.stored = true;
  }

  /** A coordinator nobody configured or fed (a read of a new id) keeps no instance in memory after the call. */
  private releaseIfBlank(): void {
    if (!this.stored && !this.modelChanged) this.ctx.deactivateOnIdle();
  }

  /**
   * Writes the model, when it learned something, at most once a second (and on deactivation): it is the larger
   * part of the state.
   */
  private async saveModel(force: boolean): Promise<void> {
    if (!this.modelChanged) return;
    const now = this.ctx.clock.now();
    if (!force && now - this.lastModelSave < 1000) return;
    this.lastModelSave = now;
    this.modelChanged = false;
    await this.ctx.state.set(MODEL, this.model.toJSON());
  }
}
