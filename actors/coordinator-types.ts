import type { TaskContext } from '../learning/index.js';

/* The vocabulary of CoordinatorActor's calls and services (kept apart from the actor so actors/api.ts can name it). */

/** How the coordinator picks a peer: learned risk-adjusted score, the heuristic, or an injected oracle. */
export type CoordPolicy = 'learned' | 'heuristic' | 'oracle';

/** A worker that executes compute tasks. */
export interface CoordPeer {
  id: string;
  /** Most attempts in flight on the peer at once. */
  maxConcurrent: number;
  /** The peer's advertised latency, ms (what the heuristic uses). */
  latencyHintMs: number;
  /** Task types the peer runs; absent or empty = every type. */
  taskTypes?: string[];
}

/** A compute task. */
export interface CoordTask {
  id: string;
  type: string;
  /** Work units (the predictor predicts time per unit). */
  work: number;
  /** Opaque, JSON-serializable input handed to the peer. */
  payload?: unknown;
  /** Run the first attempt on this peer (e.g. a tile planned for it); retries go anywhere. */
  pin?: string;
}

/** What a peer is asked to do. */
export interface PeerDispatch {
  taskId: string;
  attempt: number;
  peer: string;
  type: string;
  work: number;
  payload?: unknown;
  hour: number;
}

/**
 * What a peer answers. `pressure` is its resource pressure when it answered (0..1; informational:
 * the model's pressure feature comes from `peerTelemetry`); `serviceMs` the time it
 * measured computing the task (without waiting in its queue), when it reports one.
 */
export interface PeerAnswer {
  ok: boolean;
  output?: unknown;
  error?: string;
  pressure?: number;
  serviceMs?: number;
}

/** Executes dispatches on peers; injected as `services.coordinatorTransport`. */
export interface PeerTransport {
  execute(peer: string, d: PeerDispatch): Promise<PeerAnswer>;
}

/** The final outcome of a task, delivered to `services.coordinatorSink`. */
export interface TaskOutcome {
  taskId: string;
  type: string;
  ok: boolean;
  peer: string;
  attempts: number;
  failures: number;
  /** Submission to final answer, ms by the coordinator's clock (queueing and retries included). */
  latencyMs: number;
  output?: unknown;
  error?: string;
}

/** Injected as `services.coordinatorOracle` for the 'oracle' policy: the true expected service time (not counting the queue) and failure probability. */
export type CoordOracle = (q: TaskContext) => { timeMs: number; failureProb: number };

/** One peer's entry in a ranking. */
export interface PeerRank {
  peer: string;
  score: number;
  timeMs: number;
  lowMs: number;
  highMs: number;
  failureProb: number;
  load: number;
  source: string;
}

/** Per-peer counters. */
export interface CoordPeerStats {
  id: string;
  /** False while the peer is away (it left or its transport lost it); its learned model is kept. */
  online: boolean;
  taskTypes: string[];
  inFlight: number;
  completed: number;
  failed: number;
  busyMs: number;
  /** The peer's last reported resource pressure, 0..1 (a feature of the learned model). */
  pressure: number;
}

/** What `snapshot` answers. */
export interface CoordSnapshot {
  policy: CoordPolicy;
  warm: boolean;
  observations: number;
  queued: number;
  inFlight: number;
  peers: CoordPeerStats[];
  counters: {
    submitted: number;
    completed: number;
    failedTasks: number;
    attempts: number;
    failures: number;
    retries: number;
  };
}

/** What `outcome` answers: a task's final outcome, or where it stands. */
export type CoordTaskState =
  | { state: 'done'; taskId: string; outcome: TaskOutcome }
  | { state: 'queued' | 'running' | 'unknown'; taskId: string };

/** The report a transport sends back (method `report`). */
export interface PeerReport extends PeerAnswer {
  taskId: string;
  attempt: number;
  peer: string;
}

/**
 * A peer's telemetry (method `peerTelemetry`, from its heartbeats): `pressure` is its resource
 * pressure, 0..1 (max of its CPU and memory pressure, docs/coord-service.md); `load` the tasks
 * running and queued on it, from every submitter (informational: the model's load feature is the
 * coordinator's own attempts in flight, which it knows without delay).
 */
export interface PeerTelemetryReport {
  id: string;
  pressure: number;
  load?: number;
}
