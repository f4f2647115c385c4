import { HEALTH_PATHS, answerHealth, type BusHealth } from '../common/health.js';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { AsyncLocalStorage } from 'node:async_hooks';
import http from 'node:http';
import net from 'node:net';
import express from 'express';
import {
  AbstractActor,
  ActorId,
  CommunicationProtocolEnum,
  DaprServer,
  HTTPClient,
  LogLevel,
  Temporal,
} from '@dapr/dapr';
import { browserRefusal, reachableOnLoopback } from '../common/browser-guard.js';
import { createSystemClock, type Clock } from '../common/clock.js';
import { PortalError, checkArg, isPortalError } from '../common/errors.js';
import { createSilentLogger, type Logger } from '../common/logger.js';
import { isInvocableMethod } from './actor-methods.js';
import { daprAppStatusOf, errorEnvelope, parseCallBody } from './api-errors.js';
import { CHAIN_HEADER, INTERNAL_HEADER, createDaprActorClient, type DaprActorClient } from './dapr-client.js';
import { createDaprActorStore } from './dapr-state.js';
import {
  createStateManager,
  type ActorStateStore,
  type StoreOp,
  type TurnStateManager,
} from './state-manager.js';
import { watchDaprSidecar } from './dapr-sidecar.js';
import { Mailbox } from './mailbox.js';
import {
  KEY_SEPARATOR,
  actorIdOfDaprSegment,
  checkActorId,
  checkActorType,
  decodeWireName,
  encodeActorId,
  encodeWireName,
  splitIdHint,
} from './state-keys.js';
import { MAX_TIMER_MS } from '../common/clock.js';
import { checkDuration, checkReminder } from './checks.js';
import { Actor } from './types.js';
import { createHostCounters } from './host-stats.js';
import type { ActorClass, ActorContext, ActorHost, ActorRef, ActorServices } from './types.js';

/** Options of createDaprHost. */
export interface DaprHostOptions {
  /** Port this app listens on for its sidecar (daprd --app-port). */
  readonly appPort: number;
  /** Interface the app port listens on (default 127.0.0.1: daprd calls the app over localhost). */
  readonly appHost?: string;
  /** daprd's HTTP API (default host 127.0.0.1). */
  readonly daprHost?: string;
  readonly daprHttpPort: number;
  /** Sent to daprd as `dapr-api-token` (daprd started with DAPR_API_TOKEN). */
  readonly daprApiToken?: string;
  /** Required from daprd on every app call as `dapr-api-token` (daprd started with APP_API_TOKEN); /healthz is exempt. */
  readonly appApiToken?: string;
  /**
   * Which methods callers outside the cluster may invoke (actors/api isExternalMethod). When set, a method
   * call without the cluster's `internalToken` (INTERNAL_HEADER, which this host's own proxies send) is refused
   * with 403 PORTAL_ACTOR_METHOD_FORBIDDEN unless the method is external. Default: every method is open.
   */
  readonly externalMethod?: (actorType: string, method: string) => boolean;
  /**
   * Checks the argument of a call that does not carry the internal-call token (with `externalMethod`; actors/api
   * checkExternalCall in `portal serve`): throws a PortalError (PORTAL_ACTOR_METHOD_FORBIDDEN) to refuse an
   * external method asked for what only the cluster's own actors may do, which answers the error envelope.
   */
  readonly externalCall?: (actorType: string, method: string, arg: unknown) => void;
  /**
   * The internal-call token, the same on every instance of the app (default: a random one per process, which
   * only suits a single instance: set it, e.g. PORTAL_INTERNAL_TOKEN, for a cluster).
   */
  readonly internalToken?: string;
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** Process-local services handed to every actor as `ctx.services`. */
  readonly services?: ActorServices;
  /** Dapr actor runtime settings returned in /dapr/config (Go durations: "60m", "30s"). */
  readonly actorIdleTimeout?: string;
  readonly actorScanInterval?: string;
  readonly drainOngoingCallTimeout?: string;
  /** Proxy calls without an answer after this long reject with PORTAL_ACTOR_TIMEOUT (default 60 s; at most 2^31-1 ms). */
  readonly callTimeoutMs?: number;
  /**
   * How long stop() waits for running turns and deactivations (default 30 s); actors still busy then are abandoned
   * without `onDeactivate`, as on the embedded host. daprd's own drain is `drainOngoingCallTimeout`.
   */
  readonly drainTimeoutMs?: number;
  /**
   * The bus's connection, reported by the app's /healthz (liveness, instead of the SDK's bare 200) and /readyz
   * (readiness): common/health.ts.
   */
  readonly busHealth?: () => BusHealth | undefined;
  /** Sockets to the sidecar at most, kept alive (SDK state/timer calls and proxies; default 64). */
  readonly maxSockets?: number;
  /**
   * Also queue the turns of each actor in-process (default true). Dapr's per-actor lock already gives one turn at a
   * time; this is a second line that also covers the SDK's activation race. Tests turn it off to check Dapr alone.
   */
  readonly localTurns?: boolean;
  /**
   * Milliseconds between two checks of the sidecar (default 1000; 0: off): logs when it becomes unreachable and
   * when it is back, and drops the activations of a sidecar that was replaced (see watchDaprSidecar).
   */
  readonly sidecarCheckMs?: number;
  /**
   * Checks a call's argument before the actor is activated (api/validate.ts's contract in `portal serve`); throws a
   * PortalError (PORTAL_INVALID_ARGUMENT with `fields`) to refuse the call, which answers the error envelope.
   */
  readonly checkCall?: (actorType: string, method: string, arg: unknown) => void;
  /** Largest actor call body accepted, bytes (default 4 MiB, the Dapr SDKs' own limit); larger answers 413. */
  readonly maxBodyBytes?: number;
  /**
   * start() gives up after the sidecar's port has refused connections this long, ms (default
   * DAPR_REFUSED_WAIT_MS); a port that accepts but is not healthy gets the SDK's own 60 s.
   */
  readonly sidecarRefusedWaitMs?: number;
}

/**
 * How long start() waits while daprd's HTTP port refuses every connection (nothing listens there), ms: time for a
 * daprd started alongside the app to open its port. The SDK alone waited 60 s and then said only
 * DAPR_SIDECAR_COULD_NOT_BE_STARTED.
 */
export const DAPR_REFUSED_WAIT_MS = 10_000;

/** Rejects with PORTAL_HOST_UNAVAILABLE once `host:port` has refused connections for `waitMs`; stops on `stop`. */
async function failWhileRefused(
  host: string,
  port: number,
  waitMs: number,
  stop: AbortSignal,
): Promise<void> {
  const since = Date.now();
  while (!stop.aborted) {
    const refused = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host, port });
      s.once('connect', () => {
        s.destroy();
        resolve(false);
      });
      s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
    });
    if (!refused) return;
    if (Date.now() - since >= waitMs)
      throw new PortalError(
        'PORTAL_HOST_UNAVAILABLE',
        `daprd is not reachable at ${host}:${port} (connection refused for ${Math.round(waitMs / 1000)} s; --dapr-http-port, DAPR_HTTP_PORT): start daprd for this app, or run without Dapr with --runtime embedded`,
      );
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** The Dapr actor host: ActorHost plus its lifecycle. */
export interface DaprHost<S extends ActorServices = ActorServices> extends ActorHost<S> {
  readonly kind: 'dapr';
  /** Starts the app server, registers the actor types with the sidecar (GET /dapr/config) and waits for daprd. */
  start(): Promise<void>;
  /** Actor types registered (class names). */
  readonly types: readonly string[];
}

/** What the host keeps for one active actor. */
interface Live {
  /** Names this activation in the data of its timers: a firing that names another activation is stale. */
  readonly serial: string;
  readonly dapr: PortalDaprActor;
  readonly portal: Actor;
  /** The actor's state (the embedded host's state manager over this actor's keys in Dapr: createDaprActorStore). */
  readonly state: TurnStateManager;
  /** The actor's keys in Dapr's store, for the host's own (`__`) keys. */
  readonly store: ActorStateStore;
  /**
   * Host keys (`__…`) the running turn writes, as JSON text (null: deleted): saved with its changes, dropped with
   * them on a failure.
   */
  readonly hostWrites: Map<string, string | null>;
  readonly timers: Map<string, { method: string; periodMs: number; lastEndAt: number }>;
  /** Set when the sidecar this activation came through was replaced: it may no longer touch Dapr. */
  readonly lease: { dropped: boolean };
}

interface Slot {
  readonly type: string;
  readonly id: string;
  readonly key: string;
  readonly cls: ActorClass;
  readonly log: Logger;
  readonly mailbox: Mailbox | undefined;
  live: Live | undefined;
  /** Jobs (turns, deactivations) queued or running: a slot is dropped only when it has none and no activation. */
  pending: number;
  /** The actor asked to be deactivated when its current turn ends (ctx.deactivateOnIdle). */
  deactivateAfterTurn: boolean;
}

/** Minimal shapes of the Express objects the SDK's HTTP server hands us (the SDK types them as any). */
interface Req {
  method: string;
  params: Record<string, string>;
  body: unknown;
  headers: Record<string, string | string[] | undefined>;
  path: string;
  /** The request's URL as it arrived, not percent-decoded. */
  originalUrl: string;
}
interface Res {
  status(code: number): Res;
  json(body: unknown): void;
  end(): void;
  headersSent: boolean;
  writableFinished: boolean;
  once(event: 'finish' | 'close', fn: () => void): void;
}
type Next = () => void;
interface App {
  use(fn: (req: Req, res: Res, next: Next) => void): void;
  put(path: string, fn: (req: Req, res: Res) => void): void;
  delete(path: string, fn: (req: Req, res: Res) => void): void;
}

/** The SDK actor class every generated per-type class extends; the Portal actor instance lives beside it. */
abstract class PortalDaprActor extends AbstractActor {
  portal: Actor | undefined;
}

/**
 * What a Portal reminder carries in Dapr's reminder data: its registration (a nonce, the wall-clock due time of its
 * first firing, its period) beside the actor's data, so that the host can tell a second execution of one due time
 * from the next due time (daprd 1.16 runs a reminder that unregisters itself twice, milliseconds apart).
 */
interface ReminderEnvelope {
  readonly '~portal': 1;
  /** Registration nonce: a re-registration under the same name is a new reminder. */
  readonly n: string;
  /** Wall-clock ms of the first due time. */
  readonly at: number;
  /** Period in ms (0: one-shot). */
  readonly p: number;
  readonly data: unknown;
}

function isReminderEnvelope(v: unknown): v is ReminderEnvelope {
  const e = v as Partial<ReminderEnvelope> | null;
  return (
    typeof e === 'object' &&
    e !== null &&
    e['~portal'] === 1 &&
    typeof e.n === 'string' &&
    Number.isFinite(e.at) &&
    Number.isFinite(e.p)
  );
}

/** Host-reserved state key (actors cannot use `__` keys) with the last due time each reminder ran for. */
const REMINDER_FIRES_KEY = '__reminderFires';

/** A reminder's guard in REMINDER_FIRES_KEY: the nonce of its registration, its last due time run and its period. */
type ReminderFires = Record<string, { n: string; due: number; p: number }>;

/** The guards as the running turn left them (`hostWrites`), else as stored; a copy the caller may change. */
async function reminderFires(
  store: ActorStateStore,
  hostWrites: ReadonlyMap<string, string | null>,
): Promise<ReminderFires> {
  const written = hostWrites.get(REMINDER_FIRES_KEY);
  const json = written !== undefined ? written : await store.get(REMINDER_FIRES_KEY);
  return json === undefined || json === null ? {} : { ...(JSON.parse(json) as ReminderFires) };
}

/** The store operations of a turn's host writes (null: a delete). */
function hostOps(hostWrites: ReadonlyMap<string, string | null>): StoreOp[] {
  return [...hostWrites].map(([key, value]) =>
    value === null ? { op: 'delete' as const, key } : { op: 'upsert' as const, key, value },
  );
}

/** Reminder guards this long past their next due time are dropped from REMINDER_FIRES_KEY. */
const GUARD_KEEP_MS = 10 * 60_000;

/** A Temporal.Duration of `ms` milliseconds (what the SDK's timer and reminder calls take). */
function duration(ms: number): Temporal.Duration {
  // The SDK re-exports Temporal from @js-temporal/polyfill, whose types the type-aware lint cannot resolve.
  // eslint-disable-next-line @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-member-access
  return Temporal.Duration.from({ milliseconds: Math.round(ms) });
}

/**
 * The argument of a call: the raw body (read as bytes for every content type by the host's own parser, see
 * createDaprHost) as JSON, scalars included; no body is no argument. Throws PORTAL_INVALID_ARGUMENT for non-JSON.
 */
function argOf(req: Req, what: string): unknown {
  return parseCallBody(what, Buffer.isBuffer(req.body) ? req.body : undefined);
}

/**
 * Answers daprd with the error envelope (runtime/api-errors.ts) and the status common/error-table.ts gives its code,
 * as daprd needs it (daprAppStatusOf), or `status`.
 */
function sendError(res: Res, err: unknown, status?: number): void {
  if (res.headersSent) return;
  const e = errorEnvelope(err);
  res.status(status ?? daprAppStatusOf(e.status)).json(e.body);
}

/**
 * Express error middleware: a body parser's failure (too large, unreadable) or any error passed to `next` answers the
 * error envelope with its 4xx status (PORTAL_BODY_TOO_LARGE for 413, else PORTAL_INVALID_ARGUMENT) or 500, never
 * Express's HTML page.
 */
function envelopeOnParserError(
  err: unknown,
  _req: express.Request,
  res: express.Response,
  next: express.NextFunction,
): void {
  if (res.headersSent) return next(err);
  const status = (err as { status?: unknown }).status;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    const message = err instanceof Error ? err.message : String(err);
    const code = status === 413 ? 'PORTAL_BODY_TOO_LARGE' : 'PORTAL_INVALID_ARGUMENT';
    // Express's router throws a URIError for a malformed %-escape in a route parameter ("Failed to decode param")
    const what = err instanceof URIError ? 'path: malformed %-escape' : 'request body';
    res.status(status).json({ error: { code, message: `${what}: ${message}` } });
    return;
  }
  sendError(res, err);
}

/**
 * Creates the Dapr actor host: the same Portal actor classes as the embedded host, hosted through `@dapr/dapr`.
 *
 * - For each registered Portal class a subclass of the SDK's AbstractActor is generated whose class name is the
 *   Portal class name (Dapr's actor type); DaprServer serves /dapr/config with those types.
 * - Each activation gets an ActorContext whose state is the embedded host's state manager (createStateManager)
 *   over Dapr's actor state API (createDaprActorStore; not the SDK's change tracker, which dropped deletes: trial
 *   F1), saved after activation and after every successful turn, rolled back on a failed one; whose timers and
 *   reminders are Dapr timers and reminders, and whose proxies call Dapr's HTTP actor API.
 * - The actor routes (method, timer, reminder, deactivate) are served by this host ahead of the SDK's: it checks
 *   the method name before anything is activated (dapr/js-sdk#454), answers deactivation of an inactive actor
 *   with 200 (js-sdk#627), catches every failure (the SDK lets timer and reminder failures crash the process),
 *   passes the reminder name to `receiveReminder` (the SDK drops it), and takes a timer's method from the timer's
 *   data when daprd fires it without its callback name (dapr/dapr#10088).
 * - One turn at a time per actor is Dapr's (its per-actor lock); with `localTurns` the host also queues turns.
 *   A call from a turn into an actor already in its call chain (itself, A -> B -> A) would deadlock on that lock
 *   and rejects with PORTAL_INVALID_ARGUMENT; the chain travels between instances in CHAIN_HEADER.
 * - Actor ids, timer and reminder names and state keys travel in their wire form (encodeActorId): every string
 *   is its own actor, and an id that is not a wire form is refused with PORTAL_INVALID_ARGUMENT.
 * - Timers die with their activation (a firing that names another activation is answered, not run, and the
 *   timer removed); a reminder runs once per due time (its registration travels in its data, and the due times
 *   already run are kept in the actor's state under `__reminderFires`).
 * - stop() drains for `drainTimeoutMs`, then answers the turns still running with PORTAL_HOST_STOPPED.
 * - Activations, timers and the actor lease live in daprd's memory. When daprd is replaced (killed and started
 *   again while this process runs) the host drops every activation made through the old one, before the new one
 *   routes calls here (watchDaprSidecar): the next call reactivates the actor from the state store, restarting its
 *   timers, instead of a stale in-memory copy without timers answering. Sidecar outages are logged (warn / info).
 */
export function createDaprHost<S extends ActorServices>(
  opts: DaprHostOptions & { readonly services: S },
): DaprHost<S>;
/** A Dapr host without services (`ctx.services` is an empty object). */
export function createDaprHost(opts: DaprHostOptions): DaprHost<Record<never, never>>;
export function createDaprHost(opts: DaprHostOptions): DaprHost {
  checkArg(typeof opts === 'object' && opts !== null, 'opts', 'an object');
  checkArg(
    Number.isInteger(opts.appPort) && opts.appPort > 0 && opts.appPort < 65536,
    'opts.appPort',
    'a TCP port',
  );
  checkArg(
    Number.isInteger(opts.daprHttpPort) && opts.daprHttpPort > 0 && opts.daprHttpPort < 65536,
    'opts.daprHttpPort',
    'a TCP port',
  );
  const clock = opts.clock ?? createSystemClock();
  const log = opts.logger ?? createSilentLogger();
  const services: ActorServices = opts.services ?? Object.freeze({});
  const localTurns = opts.localTurns ?? true;
  const drainTimeoutMs = opts.drainTimeoutMs ?? 30_000;
  checkDuration(drainTimeoutMs, 'opts.drainTimeoutMs');
  if (opts.callTimeoutMs !== undefined) {
    checkDuration(opts.callTimeoutMs, 'opts.callTimeoutMs');
    checkArg(opts.callTimeoutMs <= MAX_TIMER_MS, 'opts.callTimeoutMs', `at most ${MAX_TIMER_MS} ms (2^31-1)`);
  }
  /** Unique per process: with a counter it names activations (Live.serial). */
  const hostNonce = `${process.pid.toString(36)}${Date.now().toString(36)}`;
  let serials = 0;
  const daprHost = opts.daprHost ?? '127.0.0.1';
  const maxSockets = opts.maxSockets ?? 64;

  // The SDK keeps one static keep-alive agent for all its sidecar calls, with no socket limit; bound it first.
  (HTTPClient as unknown as { httpAgent?: http.Agent }).httpAgent ??= new http.Agent({
    keepAlive: true,
    maxSockets,
    maxFreeSockets: maxSockets,
  });

  // The host's own Express app, handed to the SDK: its first middleware reads every actor call's body as bytes
  // whatever the content type (the SDK's parsers skip a body without one, as daprd forwards gRPC InvokeActor, and
  // mangle a form-typed one, as `curl -d` sends), and a parser failure answers the error envelope instead of
  // Express's HTML page with a stack trace. The SDK's own parsers, added after these, find the body already read.
  const app = express();
  // The SDK calls `serverHttp.listen(port)` without its serverHost (all interfaces): bind loopback here, as
  // daprd calls the app over localhost (a direct call from another machine must find nothing).
  const listenAll = app.listen.bind(app) as (port: number, host: string) => http.Server;
  (app as unknown as { listen: (port: number) => http.Server }).listen = (port: number) =>
    listenAll(port, opts.appHost ?? '127.0.0.1');
  // Without the app token a web page in the user's browser could drive the app port by DNS rebinding (its Host
  // names its own site) or a cross-site POST (common/browser-guard.ts); daprd calls it as 127.0.0.1:<port>, without
  // an Origin, and is served.
  if (!opts.appApiToken) {
    const loopback = reachableOnLoopback(opts.appHost ?? '127.0.0.1');
    app.use((req, res, next) => {
      const why = browserRefusal(req, { loopback });
      if (why === undefined) next();
      else sendError(res, new PortalError('PORTAL_CROSS_SITE_REFUSED', why), 403);
    });
  }
  app.use('/actors', express.raw({ type: () => true, limit: opts.maxBodyBytes ?? 4 * 1024 * 1024 }));
  app.use(envelopeOnParserError);
  const server = new DaprServer({
    serverHttp: app,
    serverHost: '127.0.0.1',
    serverPort: String(opts.appPort),
    communicationProtocol: CommunicationProtocolEnum.HTTP,
    clientOptions: {
      daprHost,
      daprPort: String(opts.daprHttpPort),
      daprApiToken: opts.daprApiToken,
      isKeepAlive: true,
      actor: {
        actorIdleTimeout: opts.actorIdleTimeout ?? '60m',
        actorScanInterval: opts.actorScanInterval ?? '30s',
        drainOngoingCallTimeout: opts.drainOngoingCallTimeout ?? '60s',
        drainRebalancedActors: true,
      },
    },
    logger: { level: LogLevel.Error },
  });
  const internalToken = opts.internalToken ?? randomBytes(32).toString('base64url');
  const isInternalCall = (req: Req): boolean => {
    const h = req.headers[INTERNAL_HEADER];
    const given = Array.isArray(h) ? h[0] : h;
    if (typeof given !== 'string') return false;
    // constant time: compare digests of equal length
    const a = createHash('sha256').update(given).digest();
    const b = createHash('sha256').update(internalToken).digest();
    return timingSafeEqual(a, b);
  };
  const client: DaprActorClient = createDaprActorClient({
    host: daprHost,
    port: opts.daprHttpPort,
    apiToken: opts.daprApiToken,
    internalToken,
    timeoutMs: opts.callTimeoutMs,
    maxSockets,
  });

  const types = new Map<
    string,
    { cls: ActorClass; gen: new (c: typeof server.client, id: ActorId) => PortalDaprActor }
  >();
  const slots = new Map<string, Slot>();
  /**
   * The running turn: its actor, the call chain that led to it (actor keys, outermost first, this one last; it
   * travels between instances in the CHAIN_HEADER), and for a reminder turn the reminder changes deferred until it
   * has ended.
   */
  const turnScope = new AsyncLocalStorage<{
    key: string;
    chain: readonly string[];
    deferred?: Array<() => Promise<void>>;
  }>();
  const hostCounters = createHostCounters();
  const counters = hostCounters.stats;
  const countActive = hostCounters.countActive;
  let started = false;
  let stopped = false;
  /** Set by stop(): new calls are refused while the running turns drain. */
  let draining = false;
  /**
   * The callers of the turns running or queued now: when the drain times out, stop() answers each with
   * PORTAL_HOST_STOPPED (a Set, so that a turn's entry goes away when it settles: nothing is kept per finished turn).
   */
  const pendingTurns = new Set<(err: PortalError) => void>();
  const abandon = (err: PortalError): void => {
    for (const release of [...pendingTurns]) release(err);
  };

  // ---- generated SDK classes -------------------------------------------------------------------------------

  const generate = (
    cls: ActorClass,
    name: string,
  ): new (c: typeof server.client, id: ActorId) => PortalDaprActor => {
    const gen = class extends PortalDaprActor {};
    Object.defineProperty(gen, 'name', { value: name });
    return gen;
  };

  // ---- slots and turns -------------------------------------------------------------------------------------

  /** Slots are keyed by type and the wire form of the id (encodeActorId), as Dapr keys the actor. */
  const slotFor = (type: string, id: string): Slot => {
    const key = type + KEY_SEPARATOR + encodeActorId(id);
    let slot = slots.get(key);
    if (!slot) {
      const t = types.get(type)!;
      const childLog = log.child({ actorType: type, actorId: id });
      slot = {
        type,
        id,
        key,
        cls: t.cls,
        log: childLog,
        live: undefined,
        pending: 0,
        deactivateAfterTurn: false,
        mailbox: localTurns
          ? new Mailbox((err) => childLog.error({ err }, 'actor job failed unexpectedly'))
          : undefined,
      };
      slots.set(key, slot);
    }
    return slot;
  };

  /** Runs `job` as one turn of the slot's actor: queued behind its other turns when localTurns is on. */
  const enqueue = <R>(
    slot: Slot,
    job: () => Promise<R>,
    deferred?: Array<() => Promise<void>>,
    callers: readonly string[] = [],
  ): Promise<R> => {
    slot.pending++;
    const run = () =>
      turnScope.run({ key: slot.key, chain: [...callers, slot.key], deferred }, job).finally(() => {
        slot.pending--;
        forgetSlot(slot);
      });
    if (!slot.mailbox) return run();
    return new Promise<R>((resolve, reject) => slot.mailbox!.post(() => run().then(resolve, reject)));
  };

  /** Drops a slot with no activation and no job, so that ids called once (unknown ones too) leave nothing behind. */
  const forgetSlot = (slot: Slot): void => {
    if (!slot.live && slot.pending === 0 && slots.get(slot.key) === slot) slots.delete(slot.key);
  };

  /**
   * Runs a reminder registration or removal now, or, inside a reminder's own turn, after that turn has answered:
   * daprd 1.16 holds its reminder lock while a reminder executes, so changing reminders from that turn deadlocks
   * (seen: unregistering the firing reminder hangs the actor for good).
   */
  const reminderOp = async (slot: Slot, op: () => Promise<void>): Promise<void> => {
    const scope = turnScope.getStore();
    if (scope?.key === slot.key && scope.deferred) scope.deferred.push(op);
    else await op();
  };

  const activate = async (slot: Slot): Promise<Live> => {
    if (slot.live) return slot.live;
    const t = types.get(slot.type)!;
    const dapr = new t.gen(server.client, new ActorId(encodeActorId(slot.id)));
    const serial = `${hostNonce}.${++serials}`;
    const store = createDaprActorStore(client, slot.type, slot.id);
    const state = createStateManager(store, '');
    const timers: Live['timers'] = new Map();
    const hostWrites: Live['hostWrites'] = new Map();
    const lease: Live['lease'] = { dropped: false };
    /** A dropped activation must not change timers or reminders of the actor's next activation. */
    const leased = (what: string): void => {
      if (lease.dropped)
        throw new PortalError(
          'PORTAL_HOST_STOPPED',
          `${slot.type}/${slot.id}: ${what} refused: this activation's Dapr sidecar was replaced`,
        );
    };
    const ctx: ActorContext = {
      actorType: slot.type,
      actorId: slot.id,
      log: slot.log,
      clock,
      state,
      services,
      registerTimer: async (name, tm) => {
        checkArg(typeof name === 'string' && name.length > 0, 'timer name', 'a non-empty string');
        checkArg(typeof tm === 'object' && tm !== null, 'timer options', 'an object');
        checkDuration(tm.dueMs, 'timer dueMs');
        checkDuration(tm.periodMs, 'timer periodMs');
        if (!isInvocableMethod(slot.cls, tm.method)) {
          throw new PortalError(
            'PORTAL_UNKNOWN_ACTOR_METHOD',
            `timer ${name}: actor type ${slot.type} has no invocable method ${JSON.stringify(tm.method)}`,
          );
        }
        leased(`timer ${name}`);
        // The method also travels in the data: daprd may fire the timer without its callback (dapr/dapr#10088);
        // so does this activation's serial: a firing for another activation is stale (see the timer route).
        await dapr.registerActorTimer(
          encodeWireName(name),
          tm.method,
          duration(tm.dueMs),
          tm.periodMs > 0 ? duration(tm.periodMs) : undefined,
          undefined,
          { method: tm.method, data: tm.data, act: serial },
        );
        timers.set(name, { method: tm.method, periodMs: tm.periodMs, lastEndAt: -Infinity });
      },
      unregisterTimer: async (name) => {
        timers.delete(name);
        leased(`timer ${name}`);
        await dapr.unregisterActorTimer(encodeWireName(name));
      },
      registerReminder: async (name, r) => {
        checkReminder(name, r);
        leased(`reminder ${name}`);
        const envelope: ReminderEnvelope = {
          '~portal': 1,
          n: `${hostNonce}.${++serials}`,
          at: clock.wallNow() + r.dueMs,
          p: r.periodMs,
          data: r.data,
        };
        await reminderOp(slot, () =>
          dapr.registerActorReminder(
            encodeWireName(name),
            duration(r.dueMs),
            r.periodMs > 0 ? duration(r.periodMs) : undefined,
            undefined,
            envelope,
          ),
        );
      },
      unregisterReminder: async (name) => {
        leased(`reminder ${name}`);
        await reminderOp(slot, () => dapr.unregisterActorReminder(encodeWireName(name)));
        // its duplicate guard goes with it (the key itself with the last one: nothing of it stays in the store)
        const fires = await reminderFires(store, hostWrites);
        if (fires[name] === undefined) return;
        delete fires[name];
        hostWrites.set(REMINDER_FIRES_KEY, Object.keys(fires).length > 0 ? JSON.stringify(fires) : null);
      },
      proxy: (type, id) => proxy(type, id),
      deactivateOnIdle: () => {
        slot.deactivateAfterTurn = true;
      },
    };
    const portal = new slot.cls(ctx);
    dapr.portal = portal;
    const epoch = sidecarEpoch;
    try {
      await portal.onActivate();
      await state.saveWith(hostOps(hostWrites));
      hostWrites.clear();
    } catch (err) {
      hostWrites.clear();
      state.rollback();
      slot.log.warn({ err }, 'actor activation failed');
      throw err;
    }
    const live: Live = { serial, dapr, portal, state, store, hostWrites, timers, lease };
    slot.live = live;
    counters.activations++;
    countActive(slot.type, 1);
    if (epoch !== sidecarEpoch) {
      drop(slot, live, 'the sidecar was replaced during the activation');
      throw new PortalError(
        'PORTAL_HOST_STOPPED',
        `${slot.type}/${slot.id}: the Dapr sidecar was replaced during the activation`,
      );
    }
    slot.log.debug('actor activated');
    return live;
  };

  /** One turn: activate if needed, run `body`, save state on success, roll it back on failure. */
  const turn = <R>(
    slot: Slot,
    body: (live: Live) => Promise<R>,
    deferred?: Array<() => Promise<void>>,
    callers?: readonly string[],
  ): Promise<R> => {
    const run = enqueue(
      slot,
      async () => {
        if (stopped) throw new PortalError('PORTAL_HOST_STOPPED', 'the Dapr actor host is stopped');
        const live = await activate(slot);
        try {
          const result = await body(live);
          // A turn that outlived its sidecar answers nobody: its changes are not this activation's to save any more.
          if (live.lease.dropped)
            throw new PortalError(
              'PORTAL_HOST_STOPPED',
              `${slot.type}/${slot.id}: the Dapr sidecar was replaced during the turn; its changes were discarded`,
            );
          await live.state.saveWith(hostOps(live.hostWrites));
          live.hostWrites.clear();
          return result;
        } catch (err) {
          live.hostWrites.clear();
          live.state.rollback();
          throw err;
        } finally {
          // daprd still places the actor here: its next call activates it again, its idle DELETE is a no-op
          if (slot.deactivateAfterTurn) await deactivateNow(slot);
        }
      },
      deferred,
      callers,
    );
    return new Promise<R>((resolve, reject) => {
      const release = (err: PortalError): void => {
        pendingTurns.delete(release);
        reject(err);
      };
      pendingTurns.add(release);
      run.then(
        (r) => {
          pendingTurns.delete(release);
          resolve(r);
        },
        (err: unknown) => {
          pendingTurns.delete(release);
          reject(err instanceof Error ? err : new Error(String(err)));
        },
      );
    });
  };

  const deactivate = (slot: Slot): Promise<void> => enqueue(slot, () => deactivateNow(slot));

  /** Deactivates the slot's actor inside the running job: onDeactivate, save, drop the instance. */
  const deactivateNow = async (slot: Slot): Promise<void> => {
    slot.deactivateAfterTurn = false;
    const live = slot.live;
    if (!live) return; // Dapr may deactivate an actor this process never activated (or already did): a no-op
    slot.live = undefined;
    live.timers.clear();
    try {
      await live.portal.onDeactivate();
      await live.state.save();
    } catch (err) {
      live.state.rollback();
      slot.log.warn({ err }, 'actor onDeactivate failed; its unsaved state changes were discarded');
    }
    counters.deactivations++;
    countActive(slot.type, -1);
    slot.log.debug('actor deactivated');
  };

  /**
   * Drops an activation made through a sidecar that was replaced: the next call from the new sidecar activates the
   * actor again from the state store, which restarts its timers. onDeactivate runs after the running turn, for
   * cleanup only: the unsaved changes are discarded, since the new sidecar may already have given the actor to
   * another instance (saving would write over that one's state).
   */
  const drop = (slot: Slot, live: Live, reason: string): void => {
    if (live.lease.dropped) return;
    live.lease.dropped = true;
    live.timers.clear();
    if (slot.live === live) {
      slot.live = undefined;
      counters.deactivations++;
      countActive(slot.type, -1);
    }
    const cleanup = async (): Promise<void> => {
      try {
        await live.portal.onDeactivate();
      } catch (err) {
        slot.log.warn({ err }, 'onDeactivate of a dropped actor failed');
      }
      live.hostWrites.clear();
      live.state.rollback();
      slot.log.info({ reason }, 'actor activation dropped: its Dapr sidecar was replaced');
      forgetSlot(slot);
    };
    if (slot.mailbox) slot.mailbox.post(cleanup);
    else void cleanup();
  };

  /** Bumped when the sidecar is replaced: an activation that began before and ends after is dropped too. */
  let sidecarEpoch = 0;
  const dropAll = (reason: string): void => {
    sidecarEpoch++;
    for (const slot of slots.values()) if (slot.live) drop(slot, slot.live, reason);
  };

  const sidecar = watchDaprSidecar({
    host: daprHost,
    port: opts.daprHttpPort,
    apiToken: opts.daprApiToken,
    intervalMs: opts.sidecarCheckMs ?? 1000,
    logger: log,
    onReplaced: dropAll,
  });

  // ---- proxies ---------------------------------------------------------------------------------------------

  const proxy = (actorType: string, actorId: string): ActorRef => {
    checkActorType(actorType);
    checkActorId(actorId);
    const key = actorType + KEY_SEPARATOR + encodeActorId(actorId);
    return {
      actorType,
      actorId,
      invoke: <R = unknown>(method: string, arg?: unknown): Promise<R> => {
        const chain = turnScope.getStore()?.chain;
        if (chain?.includes(key)) {
          return Promise.reject(
            new PortalError(
              'PORTAL_INVALID_ARGUMENT',
              `call to ${actorType}/${actorId}.${method} from inside a turn of the same call chain (${chain.join(' -> ')}) would deadlock on Dapr's actor lock: reentrancy is not supported`,
            ),
          );
        }
        return client.invoke<R>(actorType, actorId, method, arg, chain ? { chain } : undefined);
      },
    };
  };

  // ---- routes daprd calls ----------------------------------------------------------------------------------

  const lookup = (req: Req, res: Res): Slot | undefined => {
    const { type } = req.params;
    // the id segment as daprd sent it: req.params.id is percent-decoded a second time (actorIdOfDaprSegment)
    const raw = req.originalUrl.split('?')[0].split('/')[3] ?? '';
    let id: string;
    try {
      id = actorIdOfDaprSegment(raw);
    } catch (err) {
      sendError(res, err);
      return undefined;
    }
    if (!types.has(type)) {
      sendError(
        res,
        new PortalError(
          'PORTAL_UNKNOWN_ACTOR_TYPE',
          `no actor type ${JSON.stringify(type)} is registered on this host`,
        ),
      );
      return undefined;
    }
    const slot = slotFor(type, id);
    // a call refused before any job (a method that is not there, a forbidden one, a bad argument) keeps no slot
    res.once('finish', () => forgetSlot(slot));
    return slot;
  };

  /**
   * One callback per reminder due time: true when this execution's due time already ran (a second execution by
   * daprd), else records it in the actor's state (saved with the turn, so a turn that fails may run again).
   * The due time is the first one (`at`) for a one-shot reminder, else the period boundary the firing belongs to,
   * with `tolerance` for clock skew between the instance that registered it and the one it fires on.
   */
  const duplicateReminder = async (live: Live, name: string, e: ReminderEnvelope): Promise<boolean> => {
    const fires = await reminderFires(live.store, live.hostWrites);
    const now = clock.wallNow();
    const tolerance = Math.min(e.p / 2, 5000);
    const due = e.p > 0 ? e.at + Math.max(0, Math.floor((now - e.at + tolerance) / e.p)) * e.p : e.at;
    const last = fires[name];
    if (last && last.n === e.n && last.due >= due) return true;
    // A guard not renewed for GUARD_KEEP_MS past its next due time belongs to a reminder that is gone.
    for (const [k, v] of Object.entries(fires)) if (v.due + v.p < now - GUARD_KEEP_MS) delete fires[k];
    fires[name] = { n: e.n, due, p: e.p };
    live.hostWrites.set(REMINDER_FIRES_KEY, JSON.stringify(fires));
    return false;
  };

  /** The callers' chain a call arrived with (CHAIN_HEADER; keys are wire forms, so never contain a comma). */
  const callChainOf = (req: Req): string[] => {
    const h = req.headers[CHAIN_HEADER];
    const text = Array.isArray(h) ? h[0] : h;
    return text ? text.split(',').filter(Boolean).slice(0, 64) : [];
  };

  const routes = (app: App): void => {
    // before the SDK's own /healthz (actor.init adds it after these routes): liveness and readiness with the bus
    app.use((req, res, next) => {
      // (Express's response is a node:http ServerResponse; Res types only what the routes use)
      if (
        !answerHealth(
          req.path,
          res as unknown as Pick<http.ServerResponse, 'writeHead' | 'end'>,
          opts.busHealth,
        )
      )
        next();
    });
    if (opts.appApiToken) {
      const token = opts.appApiToken;
      app.use((req, res, next) => {
        if (HEALTH_PATHS.has(req.path) || req.headers['dapr-api-token'] === token) return next();
        sendError(
          res,
          new PortalError('PORTAL_UNAUTHORIZED', 'missing or wrong dapr-api-token (APP_API_TOKEN)'),
          // the code and status the embedded actor API answers a wrong token with (docs/api.md: 401)
          401,
        );
      });
    }
    // daprd fetches the actor configuration when it starts, before it joins placement: a second fetch is a new sidecar.
    app.use((req, _res, next) => {
      if (req.method === 'GET' && req.path === '/dapr/config') sidecar.configRequested();
      next();
    });

    app.put('/actors/:type/:id/method/timer/:timer', (req, res) => {
      const slot = lookup(req, res);
      if (!slot) return;
      const wireName = req.params.timer;
      const name = decodeWireName(wireName) ?? wireName;
      let body: { callback?: string; data?: { method?: string; data?: unknown; act?: string } };
      try {
        body = argOf(req, `timer ${name}`) ?? {};
      } catch (err) {
        sendError(res, err);
        return;
      }
      const method = body.data?.method ?? body.callback;
      // Timers die with their activation (as on the embedded host): daprd 1.16 still fires a timer after the actor
      // was deactivated, which would activate it again. A firing for an activation that is gone is answered and not
      // run, and the timer is removed unless the current activation registered one of that name since.
      const act = body.data?.act;
      if (act !== undefined && slot.live?.serial !== act) {
        slot.log.debug({ timer: name }, 'timer of an ended activation not run');
        res.status(200).end();
        if (!slot.live?.timers.has(name))
          res.once('finish', () => {
            client
              .deleteTimer(slot.type, slot.id, name)
              .catch((err: unknown) => slot.log.debug({ err, timer: name }, 'cannot remove a stale timer'));
          });
        return;
      }
      if (!isInvocableMethod(slot.cls, method)) {
        sendError(
          res,
          new PortalError(
            'PORTAL_UNKNOWN_ACTOR_METHOD',
            `timer ${name}: actor type ${slot.type} has no invocable method ${JSON.stringify(method)}`,
          ),
        );
        return;
      }
      turn(slot, async (live) => {
        const t = live.timers.get(name);
        // A firing that queued behind a long turn comes right after the previous one: skip it (as the embedded host does).
        if (t && t.periodMs > 0 && clock.now() - t.lastEndAt < t.periodMs / 2) return;
        counters.timersFired++;
        try {
          await (live.portal as unknown as Record<string, (a: unknown) => Promise<unknown>>)[method](
            body.data?.data,
          );
        } finally {
          if (t) t.lastEndAt = clock.now();
        }
      }).then(
        () => res.status(200).end(),
        (err: unknown) => {
          slot.log.warn({ err, timer: name, method }, 'timer turn failed');
          sendError(res, err);
        },
      );
    });

    app.put('/actors/:type/:id/method/remind/:reminder', (req, res) => {
      const slot = lookup(req, res);
      if (!slot) return;
      const wireName = req.params.reminder;
      const name = decodeWireName(wireName) ?? wireName;
      let body: { data?: unknown };
      try {
        body = argOf(req, `reminder ${name}`) ?? {};
      } catch (err) {
        sendError(res, err);
        return;
      }
      const envelope = isReminderEnvelope(body.data) ? body.data : undefined;
      const deferred: Array<() => Promise<void>> = [];
      turn(
        slot,
        async (live) => {
          if (envelope && (await duplicateReminder(live, name, envelope))) {
            slot.log.debug({ reminder: name }, 'second execution of one reminder due time skipped');
            return;
          }
          counters.remindersFired++;
          await live.portal.receiveReminder(name, envelope ? envelope.data : body.data);
        },
        deferred,
      )
        .then(
          () => res.status(200).end(),
          (err: unknown) => {
            slot.log.warn({ err, reminder: name }, 'reminder turn failed');
            sendError(res, err);
          },
        )
        .finally(() => {
          // After daprd has the answer (and released the reminder), apply what the turn asked for, in order.
          if (deferred.length === 0) return;
          const apply = (): void =>
            void deferred
              .reduce((p, op) => p.then(op), Promise.resolve())
              .catch((err: unknown) =>
                slot.log.warn({ err, reminder: name }, 'deferred reminder change failed'),
              );
          if (res.writableFinished) apply();
          else res.once('finish', apply);
        });
    });

    app.put('/actors/:type/:id/method/:method', (req, res) => {
      const slot = lookup(req, res);
      if (!slot) return;
      const method = req.params.method;
      if (draining) {
        sendError(res, new PortalError('PORTAL_HOST_STOPPED', 'the Dapr actor host is shutting down'));
        return;
      }
      if (!isInvocableMethod(slot.cls, method)) {
        sendError(
          res,
          new PortalError(
            'PORTAL_UNKNOWN_ACTOR_METHOD',
            `actor type ${slot.type} has no invocable method ${JSON.stringify(method)}`,
          ),
        );
        return;
      }
      if (opts.externalMethod && !opts.externalMethod(slot.type, method) && !isInternalCall(req)) {
        sendError(
          res,
          new PortalError(
            'PORTAL_ACTOR_METHOD_FORBIDDEN',
            `${slot.type}.${method} is not callable from outside the cluster (only by its own actors)`,
          ),
        );
        return;
      }
      let arg: unknown;
      try {
        arg = argOf(req, `${slot.type}.${method}`);
        opts.checkCall?.(slot.type, method, arg);
        if (opts.externalMethod && opts.externalCall && !isInternalCall(req))
          opts.externalCall(slot.type, method, arg);
      } catch (err) {
        sendError(res, err);
        return;
      }
      counters.calls++;
      turn(
        slot,
        (live) => (live.portal as unknown as Record<string, (a: unknown) => Promise<unknown>>)[method](arg),
        undefined,
        callChainOf(req),
      ).then(
        (result) => {
          if (result === undefined) res.status(200).end();
          else res.status(200).json(result);
        },
        (err: unknown) => sendError(res, err),
      );
    });

    app.delete('/actors/:type/:id', (req, res) => {
      const slot = lookup(req, res);
      if (!slot) return;
      deactivate(slot).then(
        () => res.status(200).end(),
        (err: unknown) => sendError(res, err),
      );
    });
  };

  // ---- the host --------------------------------------------------------------------------------------------

  return {
    kind: 'dapr',

    get types() {
      return [...types.keys()];
    },

    register(cls, name = cls?.name) {
      checkArg(
        typeof cls === 'function' && cls.prototype instanceof Actor,
        'cls',
        'an actor class extending Actor',
      );
      checkActorType(name, 'actor type name');
      if (started)
        throw new PortalError(
          'PORTAL_INVALID_ARGUMENT',
          `register ${name}: the Dapr host has started; register every type before start()`,
        );
      const known = types.get(name);
      if (known && known.cls !== cls)
        throw new PortalError(
          'PORTAL_INVALID_ARGUMENT',
          `actor type ${name} is already registered with another class`,
        );
      if (!known) types.set(name, { cls, gen: generate(cls, name) });
    },

    proxy,

    async start() {
      if (started) return;
      started = true;
      routes(server.daprServer.getServer() as App);
      for (const t of types.values()) await server.actor.registerActor(t.gen);
      await server.actor.init();
      const stopProbe = new AbortController();
      try {
        await Promise.race([
          server.start(),
          failWhileRefused(
            daprHost,
            opts.daprHttpPort,
            opts.sidecarRefusedWaitMs ?? DAPR_REFUSED_WAIT_MS,
            stopProbe.signal,
          ).then(() => new Promise<never>(() => undefined)),
        ]);
      } catch (err) {
        if (isPortalError(err)) throw err;
        if ((err as Error).message === 'DAPR_SIDECAR_COULD_NOT_BE_STARTED')
          throw new PortalError(
            'PORTAL_HOST_UNAVAILABLE',
            `daprd at ${daprHost}:${opts.daprHttpPort} accepts connections but did not report healthy within 60 s (--dapr-http-port, DAPR_HTTP_PORT): is daprd running for this app? Without Dapr: --runtime embedded`,
            { cause: err },
          );
        throw err;
      } finally {
        stopProbe.abort();
      }
      // after every SDK route: unknown paths and late failures answer the envelope too, never Express's HTML
      app.use((req: express.Request, res: express.Response) =>
        sendError(
          res as unknown as Res,
          new PortalError(
            'PORTAL_UNKNOWN_ACTOR_METHOD',
            `no actor API route ${req.method} ${req.path}${splitIdHint(req.path)}`,
          ),
        ),
      );
      app.use(envelopeOnParserError);
      await sidecar.start();
      log.info(
        { appPort: opts.appPort, daprHttpPort: opts.daprHttpPort, types: [...types.keys()] },
        'Dapr actor host started',
      );
    },

    async stop() {
      if (stopped || draining) return;
      draining = true;
      const drained = Promise.all(
        [...slots.values()].map((s) =>
          deactivate(s).catch((err: unknown) => s.log.warn({ err }, 'deactivation at stop failed')),
        ),
      );
      let drainTimer: ReturnType<typeof setTimeout> | undefined;
      const outcome = await Promise.race([
        drained.then(() => 'drained' as const),
        new Promise<'timeout'>((resolve) => {
          drainTimer = setTimeout(() => resolve('timeout'), Math.min(drainTimeoutMs, MAX_TIMER_MS));
        }),
      ]);
      clearTimeout(drainTimer);
      if (outcome === 'timeout') {
        log.warn(
          { drainTimeoutMs, active: [...slots.values()].filter((s) => s.live).length },
          'drain timeout: actors with a turn still running were abandoned without onDeactivate',
        );
        abandon(
          new PortalError(
            'PORTAL_HOST_STOPPED',
            `the Dapr actor host stopped: the turn did not end within the ${drainTimeoutMs} ms drain`,
          ),
        );
      }
      stopped = true;
      sidecar.close();
      client.close();
      if (started) await server.stop();
      log.debug({ deactivations: counters.deactivations }, 'Dapr actor host stopped');
    },

    stats() {
      return hostCounters.snapshot();
    },
  };
}
