import { quantileSorted } from '../common/quantile.js';
import { lstat, open, rm, stat, unlink } from 'node:fs/promises';
import { publishPart } from '../transfer/publish-part.js';
import {
  checkOutputFolder,
  checkStillConfined,
  confineOutputFile,
  lstatIfPresent,
  JOURNAL_SUFFIX,
  PART_SUFFIX,
  refuseHostOwned,
  refuseLongNames,
  refuseSideFileName,
  refuseUnsafeOutputName,
  type ConfinedOutput,
  type HostOwnedPath,
} from '../transfer/output-target.js';
import { partialChunkLogPath } from '../transfer/partial-chunks.js';
import { Actor } from '../runtime/types.js';
import { checkActorId } from '../runtime/state-keys.js';
import { notOwnFileReason, openOwnFile } from '../common/own-file.js';
import { PortalError, checkArg, isPortalError } from '../common/errors.js';
import { escapeControl, isRedactedUrl, redactText, redactUrl } from '../common/redact.js';
import { checkHttpUrl } from '../common/source-url.js';
import { ChunkScheduler, zeroCounters } from '../scheduler/scheduler.js';
import { AccessTracker } from '../scheduler/access.js';
import { SWARM_SOURCE_TIMEOUT_MS, SwarmSelection } from '../scheduler/swarm-selection.js';
import { destinationFault, isEdgeOutput } from '../transfer/chunk-put.js';
import { createPrng } from '../transfer/prng.js';
import type { EdgeUsageBoard, EdgeUse } from './edge-usage.js';
import type { QueueRank, TransferAdmission } from './transfer-admission.js';
import type { ClaimedFile, OutputClaims } from './output-claims.js';
import { isLocationLabel, type ReplicaPlacer } from './replica-placement.js';
import { TickPacer, type TickOutcome } from './tick-pacer.js';
import { EdgeThroughput } from './edge-throughput.js';

import { adaptiveTimeoutMs, type EdgeEstimatorState } from '../scheduler/estimators.js';
import { subjects, type Bus, type Subscription } from '../bus/types.js';
import type { ChunkReport, DispatchBatch, CancelRequest } from '../common/index.js';
import { TRANSFER_ENDED_CHUNK } from '../common/vocabulary.js';
import {
  chunkCount,
  chunkRange,
  packManifest,
  parseManifest,
  unpackManifest,
  type PackedManifest,
} from '../transfer/manifest.js';
import { fetchManifestByCid, loadManifestRef } from '../transfer/manifest-ref.js';
import { NO_CID } from '../transfer/cid.js';
import { CidTable } from '../transfer/cid-table.js';
import { createHash } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import { hashFile } from '../transfer/chunk-writer.js';
import { isDeadSourceDetail, isFileChanged } from '../transfer/chunk-fetch-error.js';
import { backoffMs } from '../transfer/http-fetch.js';
import {
  createPrefixHasher,
  PREFIX_HASH_MIN_BYTES,
  prefixHashOnThread,
  type PrefixHasher,
} from '../transfer/prefix-hasher.js';
import { ChunkStatus } from '../scheduler/types.js';
import { engineOf, type TickEngineServices } from './gpu-worker-actor.js';
import { actorProxy, type SchedulerActorApi } from './api.js';
import { RiskModel, learnedEdgeFactors, type RiskModelState } from '../learning/index.js';
import type {
  ChecksumOrigin,
  ContentInfo,
  ContentReadRequest,
  ContentReadResult,
  EdgeSample,
  EdgeView,
  SourceFailure,
  TransferEdge,
  TransferRequest,
  TransferStatus,
} from './types.js';
import { hasBit } from '../common/bitset.js';
import { JournalPages, type PagedJournal } from './journal-pages.js';
import { edgeParallelCap, ParallelLimits, tailGate } from './parallel-limit.js';
import { repeatedEdgeId } from './edge-ids.js';
import type { TransferIndex, TransferListEntry } from './transfer-index.js';

const TICK_TIMER = 'tick';
const KEEPALIVE = 'keepalive';
/** State key a forget leaves: the forgotten life's activation count, where the id's next life goes on from. */
const LIVES_KEY = 'activations';
/**
 * Period of a queued transfer's keepalive reminder, ms: after a host restart it reactivates the actor, which
 * queues the transfer again; long, because a host may hold thousands of queued transfers.
 */
const QUEUED_KEEPALIVE_MS = 60_000;
/** Least time between two computations of the tick-time quantiles status() reports, ms (a sort of ≤ 8192). */
const TICK_QUANTILES_MS = 1000;
/** A write failure the executor reports when the output's file system is full (ENOSPC / EDQUOT). */
const NO_SPACE = /ENOSPC|EDQUOT|no space left on device|disk quota exceeded/i;
/**
 * A write failure ('io' report) that no source can cure because the output side is at fault: a missing
 * folder (ENOENT, ENOTDIR), no permission (EACCES, EPERM), a read-only file system (EROFS), a planted link
 * (ELOOP: the output is opened with O_NOFOLLOW), a folder in the file's place (EISDIR), a file larger than the
 * process or the file system allows (EFBIG: `ulimit -f`), an I/O error of the disk (EIO), or the output
 * confined out of the host's root. Node's fs errors start their message with the errno code
 * ("ENOENT: no such file or directory, open '…'"); codes from the POSIX errno list.
 */
const LOCAL_WRITE =
  /\b(ENOENT|ENOTDIR|EACCES|EPERM|EROFS|ELOOP|EISDIR|EFBIG|EIO)\b|PORTAL_OUTPUT_OUTSIDE_ROOT|outside the output root|no longer confined to the output root/;
/** How the whole-file mismatch error names what gave the expected sha256 (TransferRequest.checksumFrom). */
export const CHECKSUM_ORIGIN: Record<ChecksumOrigin, string> = {
  manifest: 'the manifest',
  'checksum-flag': '--checksum',
  metalink: 'the Metalink',
  'digest-header': "the mirrors' Digest header",
};
/**
 * A first start's check of what lies at the files a transfer writes (`files`: its written file and the name it is
 * published as, each with its lstat, undefined when absent): an existing one is refused with PORTAL_OUTPUT_REFUSED
 * unless it is a regular file and `overwrite` is set; one that is not the host's own file alone (a hard link,
 * another user's file) is then removed, so that the name gets a new file of ours instead of being written through.
 * Run at the start, and again when a transfer that start queued is admitted (files may appear while it waits).
 */
async function refuseExisting(
  files: ReadonlyArray<ConfinedOutput | undefined>,
  overwrite: boolean,
): Promise<void> {
  for (const file of files) {
    const st = file?.existing;
    if (!file || !st) continue;
    if (!st.isFile() || !overwrite)
      throw new PortalError(
        'PORTAL_OUTPUT_REFUSED',
        `output ${file.path} already exists${st.isFile() ? ' (set "overwrite": true to replace it)' : ' and is not a regular file'}`,
      );
    // replaced, not written through: a hard link there shares its bytes with a file elsewhere (maybe
    // outside the root), another user's file stays changeable by them; the name gets a new file of ours
    if (notOwnFileReason(st) !== undefined) await unlink(file.path);
  }
}

/** Orders the transfers this process queues within one millisecond (Journal.queuedAt). */
let queueSeq = 0;

/** The error of a queued transfer that could not start once admitted: the cause, with its code when it has one. */
function admittedFailure(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return `could not start once admitted: ${message}${isPortalError(err) ? ` [${err.code}]` : ''}`;
}

/** Tick times kept for the p50/p99 in status(): the last this many ticks. */
const TICK_WINDOW = 8192;
/** Default source budget (TransferRequest.edgeBudgetMs), ms. */
export const DEFAULT_EDGE_BUDGET_MS = 60_000;
/** Failures an edge needs (besides the budget's time) before it is given up. */
const EDGE_BUDGET_MIN_FAILURES = 3;
/**
 * PUTs in a row a pre-position task's destination may fail transiently (unreachable, 5xx) before the task fails
 * naming it: a blip is retried, an edge that is down is not waited out at the sources' expense.
 */
const DESTINATION_MAX_FAILURES = 3;

/**
 * Journaled edge estimates older than this (wall ms) are not used for a warm start: the uptime window of the
 * estimators (defaultEstimatorConfig.uptimeWindowMs, one hour) is the span over which they claim to describe an edge.
 */
export const WARM_START_MAX_AGE_MS = 3_600_000;
/** Least time between two journal writes of the edge estimates, ms (a crash loses at most this much learning). */
const EDGE_ESTIMATES_SAVE_MS = 1000;
/**
 * How long a turn waits for the bus to take one of its messages (a JetStream publish resolves once the server
 * stored it, and retries for a minute while NATS is away) before it goes on and lets the publish finish on its
 * own: a turn that waited out a NATS outage held every later call of the transfer (cancel, restart, forget)
 * behind it. A batch published late is fetched (or dropped by executors, when the transfer ended meanwhile);
 * one never published times out and is dispatched again.
 */
const BUS_WAIT_MS = 1000;

/** The edge estimates a transfer journals (state key `edgeEstimates`) for a warm start after a restart. */
interface JournaledEdgeEstimates {
  /** Wall-clock ms of the save. */
  savedAt: number;
  /** EdgeActor.estimates() per edge id. */
  edges: Record<string, EdgeEstimatorState>;
  /**
   * Each edge's delivered rate in this transfer (ParallelLimits.rateBytesPerSec, bytes/s) per edge id, so a
   * resume sizes its fetches in flight per edge at once instead of from ParallelLimits' initial 4 (absent in
   * journals written before; measured edges only).
   */
  deliveredBytesPerSec?: Record<string, number>;
}

/** How one edge fares in this transfer (for the budget and the failure message). */
interface EdgeHealth {
  lastError?: string;
  failuresSinceOk: number;
  /** Scheduler clock (ms since the activation's epoch) of the first failure since the last success. */
  failingSince?: number;
  retired: boolean;
  /** Why it was given up (set with `retired`), e.g. `failed for 61 s without delivering a chunk (…)`. */
  retiredReason?: string;
  /**
   * Its URL's credentials were redacted in the journal and no start of this activation gave them again
   * (CREDENTIALS_LOST): it takes no work until a start names it with its full URL (setRealUrl).
   */
  credentialsLost?: boolean;
  /**
   * What it answered since this run started (core creation, or its join): undefined before its first report, true
   * while every report was a refused connection or a host name that does not exist (isDeadSourceDetail), false
   * once anything else came (a chunk, an HTTP status, a timeout, a reset). A run whose every source is dead so
   * fails at once (deadFromStart) instead of waiting out the source budget, as URL mode's probe fails it.
   */
  deadSinceStart?: boolean;
}

interface Journal extends PagedJournal {
  manifestId: string;
  bitmap: string;
  state: TransferStatus['state'];
  error?: string;
  verified: boolean;
  startedAt: number;
  finishedAt?: number;
  /**
   * Activations so far, counted across the id's lives (a forget keeps the count under LIVES_KEY for the next
   * start): each one's attempt ids start at activations × 2^24 (mod 2^32), above every attempt an earlier
   * activation or life of this id issued, so old reports stay stale and no executor's "transfer ended" marker
   * (TRANSFER_ENDED_CHUNK) of an earlier life covers the new attempts.
   */
  activations?: number;
  /** sha256 of the finished output when there was no whole-file hash to check it against. */
  sha256?: string;
  /** Size and modification time (ms) of the output when it was verified: a rerun checks them again. */
  output?: { size: number; mtimeMs: number };
  /**
   * The finished file failed its whole-file check: its chunks without a hash of their own may hold the wrong bytes,
   * so the next start fetches them again whatever the sources' validators say (a resume keeps only those a hash
   * checks). Cleared by that start's resume.
   */
  unhashedSuspect?: boolean;
  /**
   * Set while a transfer queued by its first start waits for a running slot: the start's checks of what lies at
   * its files (an existing output refused without `overwrite`, a non-regular file always, a hard link or another
   * user's file replaced) are made again when it is admitted (outputAdmissible), since files may appear there
   * while it waits. Cleared once admitted.
   */
  outputUnchecked?: boolean;
  /**
   * Set when a start of this finished transfer found its published output (`publishAs`) changed and fetches it
   * again: the publish replaces that file, this transfer's own output, without `overwrite` (publishPart refuses any
   * other file found at the name). Cleared once published.
   */
  republish?: boolean;
  /**
   * When it was last queued (enqueue): a host that recovers its queued transfers after a restart queues them again in
   * this order (TransferAdmission.open), first in, first out.
   */
  queuedAt?: QueueRank;
}

/** The services SchedulerActor takes. */
export interface SchedulerServices extends TickEngineServices {
  /** Dispatches, cancels and reports travel on it (required once a transfer runs). */
  readonly bus?: Bus;
  /** Ids of the transfers running on this host, for a dashboard on the same host (forget removes the id). */
  readonly transferRegistry?: Set<string>;
  /** Which edges this host's foreground transfers use (background pre-position tasks wait for idle edges). */
  readonly edgeUsage?: EdgeUsageBoard;
  /**
   * Folder every output must resolve inside (symbolic links resolved first); `portal serve` sets it, the
   * local fetch (whose output the user chose) does not. Outside: PORTAL_OUTPUT_OUTSIDE_ROOT.
   */
  readonly outputRoot?: string;
  /**
   * Files and folders the host owns (its state folder, its code, its code cache): no output, partial file,
   * partial-chunk log or lock folder may be one of them or lie below (PORTAL_OUTPUT_OUTSIDE_ROOT), links resolved.
   */
  readonly hostOwnedPaths?: readonly HostOwnedPath[];
  /**
   * Where a start's `manifestUrl` may name a local file (transfer/manifest-ref.ts ManifestRefOptions.localRoot):
   * a folder, or null for http(s) only; `portal serve` sets it (its callers are not the host's user), the local
   * fetch does not.
   */
  readonly manifestRoot?: string | null;
  /**
   * The URLs edges announced over NATS, with their credentials (userinfo, a signed query), by edge id: the
   * host's edge-event router keeps them in memory and configures each EdgeActor with the URL redacted, so no
   * answer, state or journal holds them; a transfer the edge joins fetches with the real one. A transfer adds
   * the URLs its starts gave (by edge id), so that the EdgeActor probes an edge gone offline with its real URL too.
   */
  readonly announcedEdgeUrls?: Map<string, string>;
  /** Called when a transfer is forgotten, so a dashboard on the same host drops its metric series at once. */
  readonly onTransferForgotten?: (transferId: string) => void;
  /**
   * Resolves once this host's executor holds nothing of the transfer: its fetches ended and its output files closed
   * (Executor.detach). A forget awaits it before removing the partial file, which a fetch dispatched before the
   * transfer ended could otherwise open (and so create) again after the removal. Absent: nothing is awaited.
   */
  readonly settleExecutor?: (transferId: string) => Promise<void>;
  /**
   * The host's admission control: a start beyond its running slots waits in state `queued` (or fails with
   * PORTAL_OVERLOADED beyond its queue); absent, every transfer runs at once.
   */
  readonly admission?: TransferAdmission;
  /**
   * Which transfer of this host writes which output, with the per-output lock `portal fetch` takes too
   * (`portal serve` sets it): a start on an output another running or queued transfer holds is refused
   * (PORTAL_TRANSFER_CONFLICT naming it), one a fetch holds too (PORTAL_OUTPUT_LOCKED); released when it ends.
   */
  readonly outputClaims?: OutputClaims;
  /**
   * Content servers of this host listen here: emits `(transferId, chunk)` — event name the transfer id, one
   * argument, the chunk index — when an executor reports a chunk of that transfer verified and written
   * (before the report's turn applies it), so a reader waiting for the chunk is served without polling.
   */
  readonly verifiedChunks?: EventEmitter;
  /**
   * The host's replication of files read where no edge holds them (a transfer's or a read's `location`):
   * it starts background pre-position tasks to accepting edges there. Absent: no placement.
   */
  readonly replicas?: ReplicaPlacer;
  /**
   * Asks a `portal` edge of a start that omitted its `holds` which chunks it holds (`portal serve`:
   * transfer/edge-have.ts askHoldings, the edge's `/v1/have/<manifestId>`); resolves to the base64 bitmap, or
   * `'all'` when the edge does not answer it (a plain HTTP server). Absent: an omitted `holds` is `'all'`.
   */
  readonly edgeHoldings?: (edgeUrl: string, manifestId: string, chunks: number) => Promise<string>;
  /** The host's list of its transfers (`GET /v1/transfers`): each actor keeps its transfer's row there. */
  readonly transferIndex?: TransferIndex;
}

/** A manifest without its CID table: what a queued transfer keeps in memory (its chunk count for the status). */
type ManifestHead = Omit<PackedManifest, 'cids'> & { readonly cids: { readonly count: number } };

/**
 * The transfer an actor owns once started or reloaded from its journal: the request, its parsed manifest and
 * the journal are set together, and the ChunkScheduler once the transfer has been resumed on this activation.
 */
interface OwnedTransfer {
  req: TransferRequest;
  /**
   * CIDs packed 32 B per chunk; hex strings are made only for the chunks a tick dispatches. A queued transfer keeps
   * only the manifest's head and chunk count (`lean`): the request and its manifest are in the actor's state and
   * are read again when it is admitted (see shelve and hydrate).
   */
  manifest: PackedManifest | ManifestHead;
  journal: Journal;
  /** Present while the tick loop runs on this activation (and after it ended, for the final counters). */
  core?: ChunkScheduler;
}

/**
 * One actor per transfer: owns the transfer's ChunkScheduler, runs its tick on a timer (50 ms by
 * default) through the host's TickEngine, publishes dispatch batches and cancels on the bus,
 * applies executor reports, feeds edge outcomes to EdgeActors and takes their estimates back.
 *
 * Durable state (the journal): the request and the completion bitmap (in pages, only changed ones
 * written: JournalPages), written at most every `persistMs` and at the end. A reactivated actor — after idle deactivation, a crash or on another
 * host — re-reads the journal, re-verifies the chunks it lists against their CIDs in the output
 * file, and resumes without fetching those again. A durable reminder re-activates a running
 * transfer whose host went away. A running transfer adds its id to `services.transferRegistry`
 * (a Set, when the host has one) so that a dashboard on the same host can find it.
 */
export class SchedulerActor extends Actor<SchedulerServices> implements SchedulerActorApi {
  /** Absent until `start` or a reactivation that finds a journal. */
  private t: OwnedTransfer | undefined;
  private edgeViews: EdgeView[] = [];
  private sub: Subscription | undefined;
  /** Reports received and not yet applied, each with the settling of its bus handler (the bus acks on resolve). */
  private inbox: Array<{ report: ChunkReport; applied: () => void; failed: (err: unknown) => void }> = [];
  private flushScheduled = false;
  private samples = new Map<number, EdgeSample[]>();
  /** Times of the last TICK_WINDOW ticks (a ring), for p50/p99 without unbounded growth. */
  private tickTimes: Float64Array | undefined; // allocated by the first tick: an actor that never ticks stays small
  private ticks = 0;
  private epochMs = 0;
  private lastPersist = -Infinity;
  private lastRiskSave = -Infinity;
  private lastEstimatesSave = -Infinity;
  /** Fetches this transfer keeps in flight per edge, probed below each edge's max_parallel. */
  private limits = new ParallelLimits();
  /** Edges that take no new fetch this tick: one more chunk there would finish after the rest (tailGate). */
  private tailGated: boolean[] = [];
  /** The edge estimates last journaled, per edge id (an edge that cannot answer keeps its entry). */
  private savedEstimates: Record<string, EdgeEstimatorState> = {};
  private savedDelivered: Record<string, number> = {};
  private lastRefresh = 0;
  private bytesDone = 0;
  private resumedChunks = 0;
  private recoveredChunks = 0;
  private perEdgeChunks: number[] = [];
  /** Each edge's recent throughput, for the DEMAND dispatch's choice of edge (ChunkScheduler.setEdgeThroughput). */
  private throughput = new EdgeThroughput();
  private edgeEpochs: number[] = [];
  private lastComplete = -1;
  private lastTickAt = -Infinity;
  /** A publish outlasted BUS_WAIT_MS and none was taken in time since (publishBounded). */
  private busLate = false;
  private lastTickMs: TransferStatus['lastTickMs'];
  /** Learned completion time and failure risk per edge (when the request asks for `learned`). */
  private risk: RiskModel | undefined;
  private lastProgressAt = 0;
  private health: EdgeHealth[] = [];
  /** A pre-position task's transient PUT failures at its destination since its last delivered chunk. */
  private destinationFailures = 0;
  /** Edge URLs as the caller gave them (credentials, signed queries): memory only, the journal keeps them redacted. */
  private realUrls = new Map<string, string>();
  /** The whole-file hash, advanced over the contiguous prefix of complete chunks while the transfer runs. */
  private prefix: { hasher: PrefixHasher; chunks: number } | undefined;
  /** Piece selection of a swarm member (TransferRequest.swarm): origin only for chunks no live peer holds. */
  private swarm: SwarmSelection | undefined;
  /** Readers of the content while the transfer runs (priorities and read-ahead). */
  private access: AccessTracker | undefined;
  /** A background pre-position task whose deadline made it foreground. */
  private escalated = false;
  /**
   * Wall-clock time (ms) at which a background pre-position task with a deadline must run as foreground by the
   * last estimate (deadline − time the rest needs); the tick pacer never sleeps past it. Undefined otherwise.
   */
  private escalateAtWallMs: number | undefined;
  /** The idle gate (gateOnIdleEdges) has set edge limits of this task; lifted when it runs as foreground. */
  private idleGated = false;
  /** Locations this activation told the replica placer of, with a final answer (placed, or held there). */
  private readonly placedAt = new Set<string>();
  /** Complete chunks per the journal, for the status of a transfer that ended before this activation. */
  private journalComplete = 0;
  /** The tick timer's period: tickMs while ticks find work, longer while the transfer is idle. */
  private pacer: TickPacer | undefined;
  /** The tick-time quantiles status() last computed, and at which tick count and time. */
  private tickQ = { ticks: -1, at: -Infinity, p50: 0, p99: 0 };
  /** Writes the journal with its bitmap in pages, only the pages that changed. */
  private readonly journalPages = new JournalPages<Journal>();
  /**
   * Set when this activation resumed a running transfer from its journal, until the next start: that start
   * (a rerun of `portal fetch` after a kill) brings the sources the transfer runs with from now on (takeSources).
   */
  private resumedFromJournal = false;
  /** Retries of chunks whose sources all failed transiently (retryTransient): how many, and when the next is due. */
  private transientRetry = { n: 0, at: -Infinity };
  /**
   * What the `portal` edges whose start omitted `holds` answered at `/v1/have` on this activation (base64 bitmap or
   * 'all'), by edge id: in memory only, so a repeated start (holds still omitted) is the same request, and a
   * reactivation asks again.
   */
  private readonly askedHolds = new Map<string, string>();
  /** The transfer listTransfer last put on the host's list (its row reads it should `t` be gone meanwhile). */
  private lastListed: OwnedTransfer | undefined;

  override async onActivate(): Promise<void> {
    const req = await this.ctx.state.get<TransferRequest>('request');
    const journal = await this.journalPages.load(this.ctx.state);
    if (req && journal) {
      const manifest = await manifestOf(req, this.ctx.services.manifestRoot);
      if (manifest.id !== journal.manifestId)
        throw new PortalError(
          'PORTAL_MANIFEST_MISMATCH',
          `transfer ${this.ctx.actorId}: the manifest at its manifestUrl is now ${manifest.id}, the journal's is ${journal.manifestId}`,
        );
      this.t = { req, manifest, journal };
      this.listTransfer();
      const admission = this.ctx.services.admission;
      const wasQueued = journal.state === 'queued';
      if (
        wasQueued &&
        admission?.acquire(this.ctx.actorId, { wasQueued: true, queuedAt: journal.queuedAt }) !== 'queued'
      )
        journal.state = 'running';
      // A crash while it was finishing: done when the publish had happened (the journal may still say `running`:
      // the finishing turn's `verifying` and `done` are saved when that turn ends, after the publish), else it runs
      // again (its chunks that still match their CIDs are kept), as one that crashed running does.
      if (
        !wasQueued &&
        (journal.state === 'running' || journal.state === 'verifying') &&
        !(await this.finishPublishedBeforeCrash(this.t))
      )
        journal.state = 'running';
      if (journal.state === 'running') {
        // admitted before this activation (a restart, a move): it runs whatever the host's count
        admission?.acquire(this.ctx.actorId, { resume: true });
        const t = this.t;
        // one that was queued and is admitted now is checked as admit checks it
        const unconfined = wasQueued
          ? await this.checkAdmitted(t).then(
              () => undefined,
              (e: Error) => e,
            )
          : await this.stillConfined(t);
        const refused = unconfined ?? (await this.claimOutput(t).catch((e: Error) => e));
        if (refused !== undefined) await this.fail(t, wasQueued ? admittedFailure(refused) : refused.message);
        else {
          await this.resume(this.t);
          this.resumedFromJournal = true;
        }
      } else {
        this.countJournal(this.t);
        if (journal.state === 'queued') {
          // a queued transfer reserves its output (in memory); it takes the lock on disk once admitted
          const taken = this.reserveOutput(this.t);
          if (taken !== undefined) await this.fail(this.t, taken.message);
          else this.shelve(this.t);
        }
      }
    }
  }

  override async onDeactivate(): Promise<void> {
    this.prefix?.hasher.dispose();
    this.prefix = undefined;
    this.ctx.services.edgeUsage?.remove(this.ctx.actorId);
    this.sub?.unsubscribe();
    this.sub = undefined;
    if (this.t?.core) await this.persist(true);
    // a queued transfer keeps its place in the host's queue while deactivated, and so its output: a start of another
    // transfer on it meanwhile would take it from the one admitted first (its reactivation reserves it again: a no-op)
    if (this.t && this.t.journal.state !== 'queued') await this.releaseOutput(this.t);
    if (this.t) this.ctx.services.transferIndex?.freeze(this.ctx.actorId);
  }

  override async receiveReminder(name: string): Promise<void> {
    // Activation (onActivate) already resumed a running transfer, or queued a queued one again.
    const state = this.t?.journal.state;
    if (name !== KEEPALIVE || !this.t) return;
    if (state === 'queued') {
      // a promotion whose call failed released the slot: wait for one again
      const admission = this.ctx.services.admission;
      const queuedAt = this.t.journal.queuedAt;
      if (admission?.acquire(this.ctx.actorId, { wasQueued: true, queuedAt }) !== 'queued')
        await this.admit();
    } else if (state !== 'running') await this.ctx.unregisterReminder(KEEPALIVE);
  }

  /**
   * Starts (or, for the same manifest, resumes) the transfer. Idempotent: a second start of a
   * queued, running or finished transfer with the same request returns its status; one that differs throws
   * PORTAL_TRANSFER_CONFLICT naming the first field that differs (firstDifference). A journal of another manifest is an error. The first start
   * after an activation that resumed the transfer from its journal (a rerun of `portal fetch` after a kill, a
   * host restart) also brings the sources it runs with from then on: new edges join, those it no longer names
   * are dropped (takeSources).
   */
  async start(req: TransferRequest): Promise<TransferStatus> {
    try {
      return await this.startOrResume(req);
    } catch (err) {
      // Every refused start (validation, confinement, conflict, no room…) of an id that knows no transfer leaves no
      // instance behind: ids nobody created cost nothing (a known one keeps what it had).
      if (!this.t) this.ctx.deactivateOnIdle();
      throw err;
    }
  }

  /** start's work; start frees the instance when it throws for an id that knows no transfer. */
  private async startOrResume(req: TransferRequest): Promise<TransferStatus> {
    checkArg(
      typeof req?.transferId === 'string' && req.transferId === this.ctx.actorId,
      'transferId',
      `the actor id (${this.ctx.actorId})`,
    );
    checkArg(typeof req.output === 'string' && req.output.length > 0, 'output', 'a file path');
    checkArg(Array.isArray(req.edges) && req.edges.length > 0, 'edges', 'at least one edge');
    // an edge id is its EdgeActor's id and a subject token: refused here, naming the field, not at its first call
    req.edges.forEach((e, i) => checkActorId(e?.id, `edges[${i}].id`));
    // a source URL's scheme is case-insensitive (HTTP://…): lowered here, where every start's edges enter, so the
    // EdgeActor, the journal and the fetches see one spelling; no http(s) URL is refused naming the edge
    for (const [i, e] of req.edges.entries())
      if (e.config !== null && typeof e.config === 'object')
        e.config.url = checkHttpUrl(e.config.url, `edges[${i}].config.url`);
    refuseDuplicateEdgeIds(req.edges);
    checkLocation(req.location);
    checkArg(
      [req.manifest, req.manifestUrl, req.manifestCid].filter((x) => x !== undefined).length === 1,
      'manifest',
      'exactly one of manifest (inline), manifestUrl or manifestCid (by reference)',
    );
    // A start the host has no room for is refused before its manifest is parsed
    if (!this.t || !['running', 'verifying', 'done', 'queued'].includes(this.t.journal.state))
      this.ctx.services.admission?.checkRoom(this.ctx.actorId);
    const manifest = await manifestOf(req, this.ctx.services.manifestRoot);
    if (req.prePosition !== undefined) {
      checkArg(isEdgeOutput(req.output), 'output', 'the URL of the edge a pre-position task copies to');
      prePositionChunks(req.prePosition, manifest);
    }
    const old = this.t;
    // a pre-position task's output is an edge URL, not a file here: only files are confined
    if (this.ctx.services.outputRoot !== undefined && req.prePosition === undefined)
      req = await this.confineOutput(req, old);
    if (old && old.journal.manifestId !== manifest.id) {
      throw new PortalError(
        'PORTAL_MANIFEST_MISMATCH',
        `transfer ${req.transferId} has a journal for manifest ${old.journal.manifestId}, not ${manifest.id}`,
      );
    }
    const was = old?.journal.state;
    // a start answered with the status of the transfer as it is must ask for that transfer: status and fetches
    // never disagree (a second start with another edge URL or output answered `running` and fetched from it)
    // (the first start after a resume sets the sources and is answered as before: takeSources)
    const answered =
      was === 'done' || was === 'queued' || (old?.core && (was === 'running' || was === 'verifying'));
    if (old && answered && !this.resumedFromJournal) {
      const kept = old.req.edges.filter((_, i) => this.health[i]?.retiredReason !== DROPPED_SOURCE);
      const differs = firstDifference({ ...old.req, edges: kept }, req, (id) => this.realUrls.get(id));
      if (differs !== undefined) {
        // the outputs themselves: a relative output resolved against another folder differs without showing it
        const outputs =
          differs === 'output' || differs === 'publishAs'
            ? ` (${escapeControl(old.req.publishAs ?? old.req.output)}, not ${escapeControl(req.publishAs ?? req.output)})`
            : '';
        // cancel leaves a done transfer as it is: only forget ends it
        const wayOut =
          was === 'done' ? 'forget it (its method forget; the output file is kept)' : 'cancel it';
        throw new PortalError(
          'PORTAL_TRANSFER_CONFLICT',
          `transfer ${req.transferId} is ${was} with another ${differs}${outputs}; a start of a ${was} transfer must repeat its request (${wayOut}, or use another transferId)`,
        );
      }
    }
    // an edge id another transfer uses with another URL or kind: 409 naming it, before anything host-wide changes
    await this.checkEdgeClaims(req);
    for (const e of req.edges) {
      this.realUrls.set(e.id, e.config.url);
      // the EdgeActor probes an edge gone offline with the URL the host keeps in memory (its own is redacted)
      if (!isRedactedUrl(e.config.url)) this.ctx.services.announcedEdgeUrls?.set(e.id, e.config.url);
    }
    // checked on every start of a done transfer, in this activation too (a file removed after it finished was
    // answered `done` until the actor was deactivated)
    if (
      old?.journal.state === 'done' &&
      !isEdgeOutput(old.req.output) &&
      !(await this.outputStillVerified(old, req.publishAs ?? req.output))
    ) {
      // the output changed since it was verified: fetch again what no longer matches (and publish it over that
      // output, this transfer's own, which this start found there)
      old.journal.state = 'running';
      old.journal.republish =
        old.req.publishAs !== undefined && (await stat(old.req.publishAs).catch(() => undefined))
          ? true
          : undefined;
      old.journal.verified = false;
      old.journal.finishedAt = undefined;
      old.journal.output = undefined;
      // the scheduler of its finished run (its loop stopped when it ended) is not this run's: the start below
      // builds a new one, as after a reactivation
      old.core = undefined;
    }
    const claimed = this.resumedFromJournal;
    this.resumedFromJournal = false;
    // the first start after a reactivation that resumed the transfer: its sources are the ones to use now
    if (claimed && old?.core && old.journal.state === 'running')
      await this.takeSources(old, old.core, req.edges);
    const st = old?.journal.state;
    // A finished transfer, or one running here, answers with its status; a failed one (or one that died
    // while verifying) starts again with what the new request says — the chunks already verified are kept.
    if (old && (st === 'done' || st === 'queued' || (old.core && (st === 'running' || st === 'verifying'))))
      return this.status();
    checkArg(
      req.tickMs === undefined || (typeof req.tickMs === 'number' && req.tickMs > 0 && req.tickMs <= 60_000),
      'tickMs',
      'a number of milliseconds in (0, 60000]',
    );
    const oldJournal = old ? { ...old.journal } : undefined;
    const t: OwnedTransfer = {
      req,
      manifest,
      journal: old?.journal ?? {
        manifestId: manifest.id,
        bitmap: '',
        state: 'running',
        verified: false,
        startedAt: this.ctx.clock.wallNow(),
        // a new life of a forgotten id goes on from its last activation (see Journal.activations)
        activations: old ? undefined : await this.ctx.state.get<number>(LIVES_KEY),
      },
    };
    // (the queue may have filled while the manifest was read: this.t is still `old`, start frees a new id's instance)
    const admitted = await this.claimAndAdmit(t);
    t.journal.state = admitted;
    t.journal.error = undefined;
    t.journal.finishedAt = undefined;
    t.journal.verified = false;
    // the checks a first start made of its files are made again when it is admitted (checkAdmitted)
    t.journal.outputUnchecked = admitted === 'queued' && !old ? true : undefined;
    this.t = t;
    this.listTransfer();
    try {
      await this.ctx.state.set('request', journaledRequest(t.req, manifest));
      if (admitted === 'running') await this.resume(t);
      else await this.enqueue(t);
      if (req.location !== undefined) this.placeNear(t, req.location);
    } catch (err) {
      this.ctx.services.admission?.release(this.ctx.actorId);
      // Atomic: a start that fails leaves nothing (the host rolls the turn's state writes back; timers, the
      // reminder, the subscription and the in-memory transfer are this actor's to undo), so the id stays unknown
      // (or keeps the state it had) and a corrected start runs.
      if (old && oldJournal) Object.assign(old.journal, oldJournal);
      await this.releaseOutput(t);
      await this.undoStart(old, t.req);
      throw err;
    }
    return this.status();
  }

  /**
   * The request with its output (and `publishAs`) resolved inside the host's output root (links resolved),
   * refused with PORTAL_OUTPUT_OUTSIDE_ROOT outside it, and with PORTAL_OUTPUT_REFUSED when its folder does not
   * exist (no folder is created); for a first start, an existing file at either (or at the partial file) is
   * refused with PORTAL_OUTPUT_REFUSED unless it is a regular file and `overwrite` is set (never a link or a folder).
   * A request without `publishAs` is written to `<output>.portal-part` and published as `output` once verified, as
   * `portal fetch` does, so a failed or cancelled transfer never leaves unverified bytes under the name asked for
   * (a transfer journaled before, without `publishAs`, keeps writing its output in place).
   */
  private async confineOutput(
    req: TransferRequest,
    old: OwnedTransfer | undefined,
  ): Promise<TransferRequest> {
    const root = this.ctx.services.outputRoot!;
    const first = !old;
    // one lstat each for a file directly in the root (its real path is resolved once per process)
    let output = await confineOutputFile(root, req.output, 'serve');
    let publishAs =
      req.publishAs === undefined ? undefined : await confineOutputFile(root, req.publishAs, 'serve');
    // never another output's side file (a fetch's or another host's, which no claim here covers): refused by name;
    // a request naming its own partial file (`<publishAs>.portal-part`) is Portal's own scheme
    const claims = this.ctx.services.outputClaims;
    const named = (asked: string, file: string): void => {
      // a side file of a transfer of this host: the conflict names it (409 PORTAL_TRANSFER_CONFLICT)
      claims?.refuseTaken(file, file, this.ctx.actorId);
      refuseUnsafeOutputName(asked, file);
      refuseSideFileName(asked, file);
    };
    if (publishAs === undefined || output.path !== `${publishAs.path}${PART_SUFFIX}`)
      named(req.output, output.path);
    if (publishAs !== undefined) named(req.publishAs!, publishAs.path);
    if (publishAs === undefined && (old === undefined || old.req.publishAs !== undefined)) {
      // the partial file lies beside the confined output: the same folder, a name of this host's choosing
      const part = `${output.path}${PART_SUFFIX}`;
      publishAs = output;
      output = { path: part, existing: lstatIfPresent(part) };
    }
    // every name fits in NAME_MAX, said up front (not ENAMETOOLONG from the first side file the host opens)
    const lockDir = `${(publishAs ?? output).path}${JOURNAL_SUFFIX}`;
    refuseLongNames(req.publishAs ?? req.output, [
      output.path,
      partialChunkLogPath(output.path),
      lockDir,
      ...(publishAs ? [publishAs.path] : []),
    ]);
    // never the host's own files, whatever `overwrite` says (checked before anything there is removed)
    this.refuseHostOwned(req.output, output.path, publishAs?.path);
    if (first) await refuseExisting([output, publishAs], req.overwrite === true);
    return { ...req, output: output.path, ...(publishAs === undefined ? {} : { publishAs: publishAs.path }) };
  }

  /**
   * Refuses (PORTAL_OUTPUT_OUTSIDE_ROOT) a transfer whose files (`written`, its partial-chunk log, `publishAs`, and
   * the lock folder `<publishAs or written>.portal`) would be any of the host's own (services.hostOwnedPaths).
   * `asked` is the output as the request named it, for the message.
   */
  private refuseHostOwned(asked: string, written: string, publishAs: string | undefined): void {
    const owned = this.ctx.services.hostOwnedPaths;
    if (!owned?.length) return;
    const files = [written, partialChunkLogPath(written), `${publishAs ?? written}${JOURNAL_SUFFIX}`];
    if (publishAs !== undefined) files.push(publishAs);
    refuseHostOwned(asked, files, owned);
  }

  /**
   * On a host with an output root, the confinement of the files this transfer writes checked again
   * (checkStillConfined: every component lstat'ed, no symbolic link) before they are opened once more: its output,
   * the output's partial-chunk log and the name it is published as. A start confined them, but a folder of the path
   * may have become a link to a place outside the root since (a cancel and a restart, a host restart). Resolves
   * to the PORTAL_OUTPUT_OUTSIDE_ROOT error naming the path, or undefined while it holds (always without a root,
   * and for a pre-position task, whose output is an edge).
   */
  private async stillConfined(t: OwnedTransfer): Promise<PortalError | undefined> {
    const root = this.ctx.services.outputRoot;
    const { req } = t;
    if (root === undefined || req.prePosition !== undefined || isEdgeOutput(req.output)) return undefined;
    try {
      for (const file of [req.output, partialChunkLogPath(req.output), req.publishAs])
        if (file !== undefined) await checkStillConfined(root, file);
      this.refuseHostOwned(req.output, req.output, req.publishAs);
      return undefined;
    } catch (err) {
      if (!isPortalError(err)) throw err;
      this.ctx.log.error({ err }, 'output no longer confined to the output root');
      return err;
    }
  }

  /**
   * For a transfer whose journal says `running` or `verifying` after a crash (no run of it in this activation): true,
   * and the journal made `done` and saved, when the process had published the file before it died — its partial file
   * is gone and `publishAs` is a regular file of the manifest's size whose sha-256 is the manifest's (or, for a
   * manifest without a whole-file hash, whose every chunk matches its CID). Without it the resume found no partial
   * file and fetched the whole transfer again (the demo's SIGKILL landing between the publish and the end of the
   * finishing turn, which saves `verifying` and `done`: 57 and 64 of 64 chunks fetched again, exit 1). False, with
   * nothing changed, in any other case (the partial file is there: the run verifies it again; the file at
   * `publishAs` is not the transfer's bytes: it is fetched again and publishPart refuses to replace that file). Costs
   * one lstat when the partial file is there; reads the whole published file once otherwise. Throws nothing.
   */
  private async finishPublishedBeforeCrash(t: OwnedTransfer): Promise<boolean> {
    const { req, manifest: m, journal: j } = t;
    if (req.publishAs === undefined || isEdgeOutput(req.output)) return false;
    const partGone = await lstat(req.output).then(
      () => false,
      (e: NodeJS.ErrnoException) => e.code === 'ENOENT',
    );
    if (!partGone) return false;
    const st = await lstat(req.publishAs).catch(() => undefined);
    if (!st?.isFile() || st.size !== m.fileSize) return false;
    const sha = await hashFile(req.publishAs).catch(() => '');
    if (m.fileSha256 !== NO_CID) {
      if (sha !== m.fileSha256) return false;
    } else {
      if (!(m.cids instanceof CidTable)) return false;
      const all = Buffer.alloc(Math.ceil(m.cids.count / 8), 0xff);
      const { verified } = await this.verifyOutput(all, packed(m), req.publishAs, true);
      if (verified.length !== m.cids.count) return false;
      j.sha256 = sha;
    }
    j.state = 'done';
    j.verified = m.fileSha256 !== NO_CID;
    j.finishedAt ??= this.ctx.clock.wallNow();
    j.output = { size: st.size, mtimeMs: st.mtimeMs };
    j.republish = undefined;
    this.resumedChunks = m.cids.count;
    await unlink(partialChunkLogPath(req.output)).catch(() => undefined);
    await this.journalPages.save(this.ctx.state, j, true);
    this.ctx.log.info(
      { output: req.publishAs },
      'the run before the crash had published the verified file: transfer done, nothing fetched again',
    );
    return true;
  }

  /**
   * True when the output of a finished transfer is still what was verified: same size and
   * modification time as recorded then, or — on any doubt (another time, an older journal without
   * the record) — a sha256 that still matches the manifest (then the record is refreshed).
   */
  private async outputStillVerified(t: OwnedTransfer, output: string): Promise<boolean> {
    const j = t.journal;
    const m = t.manifest;
    let st;
    try {
      st = await stat(output);
    } catch {
      this.ctx.log.warn({ output }, 'finished output is gone: fetching it again');
      return false;
    }
    if (!st.isFile() || st.size !== m.fileSize) {
      this.ctx.log.warn({ output, size: st.size }, 'finished output changed size: fetching it again');
      return false;
    }
    if (j.output && j.output.size === st.size && j.output.mtimeMs === st.mtimeMs) return true;
    const sha = await hashFile(output).catch(() => '');
    // without a whole-file hash in the manifest, the one taken when it finished is the reference
    if (sha !== (m.fileSha256 === NO_CID ? j.sha256 : m.fileSha256)) {
      this.ctx.log.warn({ output }, 'finished output no longer matches its sha256: fetching it again');
      return false;
    }
    j.output = { size: st.size, mtimeMs: st.mtimeMs };
    await this.journalPages.save(this.ctx.state, j, true);
    return true;
  }

  /**
   * Runs a failed or cancelled transfer again from its journal: chunks whose bytes in the output still match
   * their CID are kept, the rest are fetched. PORTAL_UNKNOWN_TRANSFER for an unknown id, PORTAL_TRANSFER_CONFLICT
   * for one that is running, verifying or done. Atomic like start.
   */
  async restart(): Promise<TransferStatus> {
    const t = this.known();
    const j = t.journal;
    if (j.state !== 'failed' && j.state !== 'cancelled')
      throw new PortalError(
        'PORTAL_TRANSFER_CONFLICT',
        `transfer ${this.ctx.actorId} is ${j.state}: only a failed or cancelled transfer can be restarted`,
      );
    await this.hydrate(t); // cancelled while it was queued
    // a folder of its path may have become a link since it started: refused, and it stays as it was
    const unconfined = await this.stillConfined(t);
    if (unconfined !== undefined) throw unconfined;
    const before = { ...j };
    const admitted = await this.claimAndAdmit(t);
    j.state = admitted;
    j.error = undefined;
    j.finishedAt = undefined;
    j.verified = false;
    try {
      if (admitted === 'running') await this.resume(t);
      else await this.enqueue(t);
    } catch (err) {
      this.ctx.services.admission?.release(this.ctx.actorId);
      Object.assign(j, before);
      t.core = undefined;
      await this.undoStart(t, t.req);
      throw err;
    }
    // a new row (a new revision): the dashboard asks a transfer it saw finished again only then
    this.listTransfer();
    this.ctx.log.info('transfer restarted');
    return this.status();
  }

  /**
   * Removes the transfer: cancels it when it runs, deletes its request, journal and learned model from the actor
   * state, drops it from the host's registry and its metric series from the dashboard. A published output file
   * stays; the partial file of a transfer that never finished (`<output>.portal-part` and its partial-chunk log:
   * unverified bytes no journal can resume now) is removed, before the output's claim is released. So does one
   * number (LIVES_KEY: the activation count, so that a new life's attempt ids are new to executors).
   * Afterwards the id is unknown (PORTAL_UNKNOWN_TRANSFER), and `start` may use it again.
   */
  async forget(): Promise<{ transferId: string; forgotten: true; kept?: ForgetKept }> {
    const t = this.known();
    const running = t.core !== undefined && t.journal.state === 'running';
    // the partial file goes once this host's fetches of it ended (settleExecutor), before the output is released
    let kept: ForgetKept | undefined;
    const remove = async (): Promise<void> => {
      await this.ctx.services
        .settleExecutor?.(this.ctx.actorId)
        .catch((err: unknown) =>
          this.ctx.log.warn({ err }, 'executor detach failed before the forget removed the partial file'),
        );
      kept = await this.removeUnpublished(t);
    };
    if (running) await this.stopLoop(remove);
    if (t.journal.state === 'queued') await this.ctx.unregisterReminder(KEEPALIVE);
    this.ctx.services.admission?.release(this.ctx.actorId);
    if (!running) await remove();
    await this.releaseOutput(t);
    // a finished transfer released its edges when it ended; again here, for an end a crash kept from being saved
    if (!running) await this.releaseEdges(t.req.edges);
    this.sub?.unsubscribe();
    this.sub = undefined;
    // the one thing a forget keeps: where the next life's attempt ids start (executors remember this life's end)
    if (t.journal.activations !== undefined) await this.ctx.state.set(LIVES_KEY, t.journal.activations);
    for (const key of ['request', 'risk', 'edgeEstimates']) await this.ctx.state.delete(key);
    await this.journalPages.delete(this.ctx.state);
    this.t = undefined;
    this.resetCounters();
    this.ctx.services.transferRegistry?.delete(this.ctx.actorId);
    this.ctx.services.transferIndex?.delete(this.ctx.actorId);
    this.ctx.services.onTransferForgotten?.(this.ctx.actorId);
    this.ctx.log.info('transfer forgotten');
    return { transferId: this.ctx.actorId, forgotten: true, ...(kept ? { kept } : {}) };
  }

  /** Applies a batch of executor reports (the bus subscription batches them into one turn). */
  async reports(arg: { items: ChunkReport[] }): Promise<{ applied: number; ignored: number }> {
    const t = this.t;
    const core = t?.core;
    if (!t || !core) return { applied: 0, ignored: arg.items.length };
    let applied = 0;
    let noSpace: ChunkReport | undefined;
    let localWrite: ChunkReport | undefined;
    let destination: ChunkReport | undefined;
    const toEdge = isEdgeOutput(t.req.output);
    for (const r of arg.items) {
      if (r.transferId !== this.ctx.actorId || r.edgeIndex >= this.edgeViews.length) continue;
      // a pre-position task's PUT failed at its destination: the source delivered verified bytes, so the failure
      // is not the source's (no failure counted against it, no sample saying it is down)
      const dest = !r.ok && r.reason === 'io' && toEdge ? destinationFault(r.detail) : undefined;
      if (dest) {
        if (dest.permanent || ++this.destinationFailures >= DESTINATION_MAX_FAILURES) destination ??= r;
      } else if (!r.ok && r.reason === 'io' && NO_SPACE.test(r.detail ?? '')) noSpace ??= r;
      else if (!r.ok && r.reason === 'io' && LOCAL_WRITE.test(r.detail ?? '')) localWrite ??= r;
      const inFlight = core.edges.queueDepth[r.edgeIndex];
      const outcome = core.report({
        chunk: r.chunk,
        attempt: r.attempt,
        edge: r.edgeIndex,
        ok: r.ok,
        // 'busy' excludes no source from the chunk: the chunk is tried again, the destination is what failed
        reason: dest ? 'busy' : r.reason,
      });
      if (outcome === 'stale' || outcome === 'duplicate') continue;
      applied++;
      if (r.ok) this.destinationFailures = 0;
      if (dest) {
        this.ctx.log.debug({ chunk: r.chunk, detail: r.detail }, 'chunk PUT failed at the destination');
        continue;
      }
      if (outcome === 'completed') {
        this.bytesDone += chunkRange(packed(t.manifest), r.chunk).length;
        this.perEdgeChunks[r.edgeIndex]++;
        this.throughput.completed(r.edgeIndex, r.bytes, this.ctx.clock.now());
      }
      if (r.ok) {
        const e = r.edgeIndex;
        const configured = edgeParallelCap(this.edgeViews[e].maxParallel);
        if (
          this.limits.onComplete(e, r.bytes, r.transferMs, inFlight, configured, t.manifest.chunkSize) &&
          !this.isBackground(t, core)
        )
          core.updateEdge(e, { maxParallel: this.parallelOf(e) });
      }
      const h = this.health[r.edgeIndex];
      if (h && r.reason !== 'cancelled')
        h.deadSinceStart = !r.ok && isDeadSourceDetail(r.detail) && h.deadSinceStart !== false;
      if (h && r.ok) {
        h.failuresSinceOk = 0;
        h.failingSince = undefined;
      } else if (h && r.reason !== 'cancelled') {
        h.failuresSinceOk++;
        h.failingSince ??= this.ctx.clock.now() - this.epochMs;
        h.lastError = `${r.reason ?? 'failed'}: ${r.detail ?? 'no detail'}`;
        // every byte it serves now belongs to another file: no retry can help
        if (isFileChanged(r.detail)) this.retire(t, core, r.edgeIndex, r.detail!);
        else if (r.retryAfterMs !== undefined)
          this.retireIfRetryAfterPastBudget(t, core, r.edgeIndex, r.retryAfterMs);
      }
      if (r.reason !== 'cancelled') {
        this.risk?.observe({
          peer: t.req.edges[r.edgeIndex].id,
          taskType: 'chunk',
          hour: new Date(this.ctx.clock.wallNow()).getUTCHours(),
          load: core.edges.queueDepth[r.edgeIndex] + 1,
          work: r.bytes || t.manifest.chunkSize,
          ok: r.ok,
          timeMs: r.transferMs,
        });
        let list = this.samples.get(r.edgeIndex);
        if (!list) {
          list = [];
          this.samples.set(r.edgeIndex, list);
        }
        list.push({
          ok: r.ok,
          bytes: r.bytes,
          firstByteMs: r.firstByteMs,
          transferMs: r.transferMs,
          reason: r.reason,
          ...(r.retryAfterMs !== undefined ? { retryAfterMs: r.retryAfterMs } : {}),
        });
      }
      if (!r.ok)
        this.ctx.log.debug(
          { chunk: r.chunk, edge: r.edgeIndex, reason: r.reason, detail: r.detail },
          'chunk failed',
        );
    }
    if (destination && t.journal.state === 'running') {
      // the destination refuses (a token, no space) or is down: no source can help, and none is to blame
      await this.fail(
        t,
        `the pre-position task's destination failed, not a source: ${destination.detail ?? `chunk ${destination.chunk} to ${redactUrl(t.req.output)}`}`,
      );
      return { applied, ignored: arg.items.length - applied };
    }
    if (noSpace && t.journal.state === 'running') {
      // no edge can help when the disk is full: stop now, naming the cause (the journal stays as it is)
      await this.fail(t, `no space left on device: cannot write chunk ${noSpace.chunk} to ${t.req.output}`);
      return { applied, ignored: arg.items.length - applied };
    }
    if (localWrite && t.journal.state === 'running') {
      // the output's fault, not the sources': every source's bytes would fail the same way
      await this.fail(
        t,
        `the output cannot be written (a local error, not a source's): ${localWrite.detail ?? `chunk ${localWrite.chunk} to ${t.req.output}`}`,
      );
      return { applied, ignored: arg.items.length - applied };
    }
    // Event-driven dispatch: a freed slot is refilled now rather than at the next timer tick, so an
    // edge whose chunks finish together does not sit idle for up to a tick period.
    const gap = t.req.dispatchOnReportMs ?? 5;
    // a chunk a reader waits for that has no slot yet (DEMAND_PER_EDGE) takes the freed one now, whatever the gap
    if (applied > 0 && gap >= 0 && (this.ctx.clock.now() - this.lastTickAt >= gap || core.demandWaiting))
      await this.eventTick();
    else if (applied > 0) await this.pace(this.pacer?.wake()); // the timer's next tick takes them
    return { applied, ignored: arg.items.length - applied };
  }

  /**
   * Timer callback: one scheduler tick (step), then the timer's next period: the transfer's tickMs while ticks
   * find work, longer while it is idle (TickPacer).
   */
  async tick(): Promise<void> {
    const o = await this.step();
    if (o) await this.pace(this.pacer?.afterTick(o));
  }

  /**
   * A tick for an event (a report, a reader's demand) between timer ticks; the timer keeps its period unless
   * what the tick dispatched falls due before the timer's next tick.
   */
  private async eventTick(): Promise<void> {
    const o = await this.step();
    if (o) await this.pace(this.pacer?.bound(o.untilDueMs));
  }

  /**
   * One scheduler tick, then dispatch, edge feedback and the journal. Returns whether the tick found work and
   * how long until the scheduler's next due event, or undefined when the transfer no longer runs after it.
   */
  private async step(): Promise<TickOutcome | undefined> {
    const t = this.t;
    const core = t?.core;
    if (!t || !core || t.journal.state !== 'running') return undefined;
    const { req } = t;
    const m = packed(t.manifest);
    await this.feedEdges(t, core);
    if (this.risk?.warm) {
      // learned time and risk replace the formula's time and health factors, and a
      // risk-aware limit ≤ the edge's max_parallel replaces it; during the warm-up the formula rules
      const f = learnedEdgeFactors(this.risk, core.edges, m.chunkSize, this.ctx.clock.wallNow(), {
        edgeId: (e) => req.edges[e]?.id ?? `unused-${e}`,
        maxParallelOf: (e) => this.parallelOf(e),
      });
      f.updates.forEach((u, e) => {
        if (u && e < req.edges.length) core.updateEdge(e, u);
      });
    }
    const background = this.isBackground(t, core);
    if (background) this.gateOnIdleEdges(t, core);
    else {
      if (this.idleGated) this.liftIdleGate(t, core);
      this.gateTail(t, core);
    }
    this.lastTickAt = this.ctx.clock.now();
    for (let e = 0; e < this.edgeViews.length; e++)
      core.setEdgeThroughput(e, this.throughput.bytesPerSec(e, this.lastTickAt));
    const now = this.lastTickAt - this.epochMs;
    this.swarm?.sync(this.lastTickAt);
    const r = await engineOf(this.ctx.services).runTick(core, now);
    // a chunk its peers failed goes back to the origin instead of failing the transfer
    this.swarm?.rescue();
    if (!background) this.reportEdgeUse(t, core);
    (this.tickTimes ??= new Float64Array(TICK_WINDOW))[this.ticks++ % TICK_WINDOW] = r.phaseMs.total;
    this.lastTickMs = r.phaseMs;
    if (r.failover.backup + r.failover.recomputed > 0)
      this.ctx.log.info({ failed: r.failed, failover: r.failover }, 'failover');
    const bus = this.bus();
    // cancels first: a pre-empted fetch leaves its edge before the DEMAND fetch that takes its place arrives there
    for (const c of r.cancels) {
      const cancel: CancelRequest = { transferId: req.transferId, chunk: c.chunk, attempt: c.attempt };
      await this.publishBounded(bus, subjects.cancel(req.transferId), cancel);
    }
    if (r.dispatch.length > 0) {
      const batch: DispatchBatch = {
        transferId: req.transferId,
        output: req.output,
        fileSize: m.fileSize,
        items: r.dispatch.map((d) => {
          const { offset, length } = chunkRange(m, d.chunk);
          const edge = this.edgeViews[d.edge];
          return {
            chunk: d.chunk,
            attempt: d.attempt,
            edgeIndex: d.edge,
            edgeUrl: this.realUrls.get(req.edges[d.edge].id) ?? edge.url,
            edgeKind: edge.kind,
            cid: m.cids.hex(d.chunk),
            offset,
            length,
            timeoutMs: Math.max(1, d.deadline - now),
          };
        }),
      };
      await this.publishBounded(bus, subjects.dispatch(req.transferId), batch);
    }
    const p = core.progress();
    const completeBefore = this.lastComplete;
    if (p.inFlight > 0 || p.complete !== this.lastComplete) {
      // a chunk arrived: the next transient failure starts its backoff small again
      if (p.complete !== this.lastComplete) this.transientRetry.n = 0;
      this.lastComplete = p.complete;
      this.lastProgressAt = now;
    }
    this.retireFailingEdges(t, core, now);
    // chunks whose every source failed transiently wait and retry while a source's budget lasts
    const transient = p.failedPermanent > 0 ? this.retryTransient(core, now) : 'none';
    // a transfer done in this tick hashes on its own: starting the hash thread now would only delay the end
    if (!core.done && !isEdgeOutput(t.req.output)) this.advancePrefix(t, core);
    if (core.done) await this.finish(t);
    else if (p.failedPermanent > 0 && p.inFlight === 0 && p.pending === 0 && transient === 'spent')
      await this.fail(
        t,
        `${p.failedPermanent} chunk(s) could not be fetched: every source holding them failed (refused or reset) until its source budget of ${((req.edgeBudgetMs ?? DEFAULT_EDGE_BUDGET_MS) / 1000).toFixed(0)} s was spent${this.causes(t)}`,
      );
    else if (p.failedPermanent > 0 && p.inFlight === 0 && p.pending === 0 && transient === 'none')
      await this.fail(t, `${p.failedPermanent} chunk(s) cannot be served by any source${this.causes(t)}`);
    else if (p.inFlight === 0 && this.health.length > 0 && this.health.every((h) => h.retired))
      await this.fail(
        t,
        `every source was given up; ${p.total - p.complete} chunk(s) missing${this.causes(t)}`,
      );
    else if (this.deadFromStart())
      await this.fail(
        t,
        `every source is unreachable since the transfer started (connection refused or no such host), none delivered a chunk; ${p.total - p.complete} chunk(s) missing${this.causes(t)}`,
      );
    else if (now - this.lastProgressAt > (req.stallTimeoutMs ?? 60_000)) {
      await this.fail(
        t,
        `stalled: nothing in flight for ${((now - this.lastProgressAt) / 1000).toFixed(0)} s; ${p.pending} chunk(s) pending with no source that can take them (each source holding them is offline, given up or failed them), ${p.failedPermanent} cannot be served by any source${this.causes(t)}`,
      );
    } else {
      await this.persist(false);
      const busy =
        r.dispatch.length + r.cancels.length + r.failed > 0 || p.complete !== completeBefore || r.fullRerank;
      // a background task with a deadline is due again when it must turn foreground, however idle it is
      const untilEscalateMs =
        this.escalateAtWallMs === undefined ? Infinity : this.escalateAtWallMs - this.ctx.clock.wallNow();
      // chunks waiting out a transient failure's backoff are due when it ends
      const untilRetryMs = transient === 'wait' ? Math.max(0, this.transientRetry.at - now) : Infinity;
      return {
        busy: busy || transient === 'retry',
        untilDueMs: Math.min(core.nextDueAt() - now, Math.max(0, untilEscalateMs), untilRetryMs),
      };
    }
    return undefined;
  }

  /**
   * True when every source of this run is dead from its start (EdgeHealth.deadSinceStart: each of its answers was a
   * refused connection or an unknown host name) or given up, at least one is dead so, and no swarm peer may still
   * announce itself: docs/api.md "a transfer whose every source is dead from the start fails at once, naming them",
   * as `portal fetch URL` fails when no probe answers. A source that answered anything else (it delivered, or an
   * HTTP status, a timeout, a reset: it is there, or may be back) or has not been asked yet keeps the transfer
   * waiting, and a source that worked and then refuses is an outage the source budget waits out (retryTransient).
   */
  private deadFromStart(): boolean {
    if (this.swarm || this.health.length === 0) return false;
    return (
      this.health.every((h) => h.retired || h.deadSinceStart === true) &&
      this.health.some((h) => !h.retired && h.deadSinceStart === true)
    );
  }

  /**
   * Chunks given up because every source holding them failed transiently (refused, reset): while one of those
   * sources is within its budget (not retired) and has delivered a chunk of this transfer in this run (it worked,
   * so a refusal now is an outage that may end), they get it back after a full-jitter backoff (backoffMs, as a
   * fetch retries) — 'retry' when that happened now, 'wait' until then; 'spent' when retired sources failed them
   * so; 'none' otherwise (another cause: 404, corrupt, out of attempts, or sources that never delivered). A source that
   * has refused from the start is not waited for: `portal fetch` of a dead mirror fails at once naming it, as
   * curl does and as aria2c does after its few quick tries, instead of after the whole budget (60 s by default).
   */
  private retryTransient(core: ChunkScheduler, now: number): 'retry' | 'wait' | 'spent' | 'none' {
    const live = (e: number): boolean =>
      this.health[e] !== undefined && !this.health[e].retired && (this.perEdgeChunks[e] ?? 0) > 0;
    const retired = (e: number): boolean => this.health[e]?.retired === true;
    if (core.retryTransientFailures(live, true) === 0)
      return core.retryTransientFailures(retired, true) > 0 ? 'spent' : 'none';
    if (now < this.transientRetry.at) return 'wait';
    core.retryTransientFailures(live);
    this.transientRetry.n++;
    this.transientRetry.at = now + backoffMs(this.transientRetry.n);
    return 'retry';
  }

  /** Registers the tick timer again at `periodMs` when the pacer changed the period (undefined: unchanged). */
  private async pace(periodMs: number | undefined): Promise<void> {
    if (periodMs === undefined || this.t?.journal.state !== 'running' || !this.t.core) return;
    await this.ctx.registerTimer(TICK_TIMER, { method: 'tick', dueMs: periodMs, periodMs });
  }

  /**
   * A status call runs beside a turn in progress (Actor.mayInterleave) once the transfer is known: it only reads
   * in-memory fields, which every await point leaves consistent, so the actor API answers it while a tick or a
   * report awaits a durable write or another actor (bench:load: a running transfer's status waited ~100 ms for its
   * turn). Before that (an unknown id, a first start in progress) it waits its turn as every call does.
   */
  override mayInterleave(method: string): boolean {
    return method === 'status' && this.t !== undefined;
  }

  /**
   * Where the transfer stands: a summary by default (counts, times, counters, chunks per edge); with
   * `{ edges: true }` also every edge as the transfer sees it (`edges`), which costs a copy of each view.
   */
  async status(arg?: { edges?: boolean }): Promise<TransferStatus> {
    checkArg(
      arg === undefined || arg === null || (typeof arg === 'object' && !Array.isArray(arg)),
      'status argument',
      'nothing, or an object such as { "edges": true }',
    );
    this.known();
    const j = this.t?.journal;
    const m = this.t?.manifest;
    const core = this.t?.core;
    const p = core?.progress() ?? {
      total: m ? m.cids.count : 0,
      complete: this.journalComplete,
      inFlight: 0,
      pending: 0,
      failedPermanent: 0,
    };
    const q = this.tickQuantiles();
    let engineBackend = 'none';
    try {
      engineBackend = engineOf(this.ctx.services).backend;
    } catch {
      /* no engine on this host: reported as 'none' */
    }
    return {
      transferId: this.ctx.actorId,
      state: j!.state,
      error: j?.error === undefined ? undefined : redactText(j.error),
      total: p.total,
      complete: p.complete,
      inFlight: p.inFlight,
      pending: p.pending,
      failedPermanent: p.failedPermanent,
      bytesDone: this.bytesDone,
      fileSize: m?.fileSize ?? 0,
      startedAt: j?.startedAt ?? 0,
      finishedAt: j?.finishedAt,
      verified: j?.verified ?? false,
      resumedChunks: this.resumedChunks,
      recoveredChunks: this.recoveredChunks,
      ticks: this.ticks,
      tickMsP50: q.p50,
      tickMsP99: q.p99,
      lastTickMs: this.lastTickMs,
      backend: engineBackend,
      learned: this.risk !== undefined,
      counters: core ? { ...core.counters } : zeroCounters(),
      // status leaves the process (API, dashboard, logs): edge URLs without their credentials
      ...(arg?.edges === true
        ? {
            edges: this.edgeViews.map((v, i): EdgeView => {
              const h = this.health[i];
              return {
                ...v,
                url: redactUrl(v.url),
                // a source given up, or without its credentials, takes no work, whatever its edge says of itself
                available: v.available && usable(h),
                queueDepth: core?.edges.queueDepth[i] ?? 0,
                ...(h?.lastError ? { lastError: h.lastError } : {}),
                failuresSinceOk: h?.failuresSinceOk ?? 0,
                retired: h?.retired ?? false,
                ...(h?.retiredReason ? { retiredReason: h.retiredReason } : {}),
              };
            }),
          }
        : {}),
      perEdgeChunks: [...this.perEdgeChunks],
      chunksByEdge: Object.fromEntries(
        this.perEdgeChunks.map((n, i) => [this.t?.req.edges[i]?.id ?? `#${i}`, n] as const),
      ),
      // a verified transfer has no failing source: failures before its end are in the edges' lastError
      ...(j?.state === 'done' ? {} : this.failingSources()),
    };
  }

  /**
   * `{ failingSources }`: each source failing now (failures since its last chunk, or given up) with its last
   * error, so that a plain status says why a transfer is slow or failing without copying every edge view; `{}`
   * when none fails. O(edges), one small object per failing source.
   */
  private failingSources(): Pick<TransferStatus, 'failingSources'> {
    let out: SourceFailure[] | undefined;
    this.health.forEach((h, i) => {
      if (h.failuresSinceOk === 0 && !h.retired && !h.credentialsLost) return;
      const id = this.t?.req.edges[i]?.id;
      if (id === undefined) return;
      (out ??= []).push({
        id,
        ...(h.lastError ? { lastError: h.lastError } : {}),
        failuresSinceOk: h.failuresSinceOk,
        retired: h.retired,
        ...(h.retiredReason ? { retiredReason: h.retiredReason } : {}),
      });
    });
    return out ? { failingSources: out } : {};
  }

  /**
   * p50 and p99 of the last TICK_WINDOW tick times; sorted again only when ticks ran since and TICK_QUANTILES_MS
   * passed (or the transfer no longer ticks), so that frequent status calls do not each sort the window.
   */
  private tickQuantiles(): { p50: number; p99: number } {
    const c = this.tickQ;
    const now = this.ctx.clock.now();
    const ticking = this.t?.journal.state === 'running';
    if (c.ticks !== this.ticks && (!ticking || c.ticks <= 0 || now - c.at >= TICK_QUANTILES_MS)) {
      const sorted = (this.tickTimes ?? new Float64Array(0))
        .slice(0, Math.min(this.ticks, TICK_WINDOW))
        .sort();
      this.tickQ = {
        ticks: this.ticks,
        at: now,
        p50: quantileSorted(sorted, 0.5, 0),
        p99: quantileSorted(sorted, 0.99, 0),
      };
    }
    return this.tickQ;
  }

  /**
   * Availability an edge announced for this transfer's manifest (the edge event bridge calls this
   * for `portal.edge.<id>.have`). An edge the transfer does not know yet joins it — it must have
   * announced itself (EdgeActor configured from its telemetry) — in a spare slot, and is scheduled
   * from the next tick on. Returns the edge's index, or -1 when the transfer is not running or
   * has no spare slot.
   */
  async edgeHave(arg: {
    edgeId: string;
    manifestId: string;
    bitmap: string;
  }): Promise<{ edgeIndex: number }> {
    checkArg(typeof arg?.edgeId === 'string' && arg.edgeId.length > 0, 'edgeId', 'an edge id');
    checkArg(typeof arg.bitmap === 'string', 'bitmap', 'a base64 bitmap');
    const t = this.t;
    const core = t?.core;
    if (!t || !core || t.journal.state !== 'running') return { edgeIndex: -1 };
    const req = t.req;
    if (arg.manifestId !== t.manifest.id)
      throw new PortalError(
        'PORTAL_MANIFEST_MISMATCH',
        `have for manifest ${arg.manifestId} sent to transfer of ${t.manifest.id}`,
      );
    const bitmap = Buffer.from(arg.bitmap, 'base64');
    let i = req.edges.findIndex((e) => e.id === arg.edgeId);
    if (i < 0) {
      if (req.edges.length >= core.edges.e) {
        this.ctx.log.warn({ edgeId: arg.edgeId }, 'no spare edge slot: announced edge ignored');
        return { edgeIndex: -1 };
      }
      const view = await actorProxy(this.ctx, 'EdgeActor', arg.edgeId).invoke('snapshot');
      // not configured from its telemetry yet (the have overtook it): the next announcement joins it
      if (!view.url) return { edgeIndex: -1 };
      const url = this.ctx.services.announcedEdgeUrls?.get(arg.edgeId) ?? view.url;
      const edge: TransferEdge = {
        announced: true,
        id: arg.edgeId,
        config: {
          url: view.url,
          kind: view.kind,
          flags: view.flags,
          maxParallel: view.maxParallel,
          bandwidthHint: view.bandwidthHint,
          rttHint: view.rttHint,
        },
        holds: arg.bitmap,
      };
      // counted among the edge's users as a named source is (claim … release): while this transfer runs, an
      // announcement of another URL for this id is refused instead of moving the edge it fetches from
      const { location, accepts } = view;
      const claimed = await this.releasingEnded(arg.edgeId, () =>
        actorProxy(this.ctx, 'EdgeActor', arg.edgeId).invoke('claim', {
          transferId: this.ctx.actorId,
          config: {
            ...edge.config,
            ...(location !== undefined ? { location } : {}),
            ...(accepts !== undefined ? { accepts } : {}),
          },
        }),
      );
      i = this.addEdgeSlot(t, core, edge, url, claimed);
      await this.journalRequest(t);
    } else {
      // holdings change often (a swarm peer announces as chunks arrive): memory only, announced again on restart
      req.edges[i] = { ...req.edges[i], holds: arg.bitmap };
    }
    core.setEdgeHoldings(i, bitmap);
    if (this.swarm && req.edges[i].announced)
      this.swarm.peerHoldings(i, arg.edgeId, bitmap, this.ctx.clock.now());
    await this.pace(this.pacer?.wake());
    return { edgeIndex: i };
  }

  /**
   * Sources that join the running transfer (`portal fetch`: a mirror whose probe answered after the transfer
   * started, and agreed on the file): each edge the transfer does not have yet (sameSource) takes a spare slot and
   * is scheduled from the next tick on. Returns the ids that joined: none when the transfer is not running here,
   * and an edge is left out (logged) when no spare slot is left.
   */
  async joinSources(arg: { edges: TransferEdge[] }): Promise<{ joined: string[] }> {
    checkArg(Array.isArray(arg?.edges), 'edges', 'an array of edges');
    for (const [i, e] of arg.edges.entries())
      if (e?.config !== null && typeof e?.config === 'object')
        e.config.url = checkHttpUrl(e.config.url, `edges[${i}].config.url`);
    const t = this.t;
    const core = t?.core;
    if (!t || !core || t.journal.state !== 'running') return { joined: [] };
    const joined: string[] = [];
    for (const e of arg.edges) {
      if (sameSource(t.req.edges, e, new Set()) >= 0) continue;
      if ((await this.joinEdge(t, core, e)) >= 0) joined.push(e.id);
    }
    if (joined.length > 0) {
      await this.journalRequest(t);
      await this.pace(this.pacer?.wake());
    }
    return { joined };
  }

  /**
   * Makes `edges` (a start's) the sources of transfer `t`, which this activation resumed from its journal: an
   * edge the transfer has (sameSource) keeps its place and takes the start's URL (a re-signed URL replaces an
   * expired one); a new edge joins; an edge the start no longer names, and that did not join by announcing itself,
   * is dropped — given up with DROPPED_SOURCE as its reason, so it gets no more work and status says why. The
   * journaled request lists the kept and the joined ones. Chunks verified before stay complete.
   */
  private async takeSources(t: OwnedTransfer, core: ChunkScheduler, edges: TransferEdge[]): Promise<void> {
    const named = new Set<number>();
    for (const e of edges) {
      const i = sameSource(t.req.edges, e, named);
      if (i >= 0) {
        named.add(i);
        this.setRealUrl(t, core, i, e.config.url);
        continue;
      }
      const j = await this.joinEdge(t, core, e);
      if (j >= 0) named.add(j);
    }
    t.req.edges.forEach((e, i) => {
      if (!named.has(i) && !e.announced) this.retire(t, core, i, DROPPED_SOURCE);
    });
    await this.journalRequest(t);
  }

  /**
   * Source `i` of the running transfer fetches from `url` (a start's, with its credentials) from now on; a source
   * whose credentials were lost at a restart (CREDENTIALS_LOST) takes work again when `url` carries them.
   */
  private setRealUrl(t: OwnedTransfer, core: ChunkScheduler, i: number, url: string): void {
    const id = t.req.edges[i].id;
    this.realUrls.set(id, url);
    if (!isRedactedUrl(url)) this.ctx.services.announcedEdgeUrls?.set(id, url);
    const h = this.health[i];
    if (!h?.credentialsLost || isRedactedUrl(url)) return;
    this.health[i] = { ...h, credentialsLost: false, lastError: undefined };
    if (this.edgeViews[i]) this.applyView(core, packed(t.manifest), i, this.edgeViews[i]);
    core.requestFullRerank();
    this.ctx.log.info({ edge: id }, 'source credentials given again: fetched from');
  }

  /** Configures edge `e`'s EdgeActor and adds it to the running transfer; its index, or -1 without a spare slot. */
  private async joinEdge(t: OwnedTransfer, core: ChunkScheduler, e: TransferEdge): Promise<number> {
    if (t.req.edges.length >= core.edges.e) {
      this.ctx.log.warn({ edgeId: e.id }, 'no spare edge slot: source not joined');
      return -1;
    }
    const view = await this.releasingEnded(e.id, () =>
      actorProxy(this.ctx, 'EdgeActor', e.id).invoke('claim', {
        transferId: this.ctx.actorId,
        config: { ...e.config, url: redactUrl(e.config.url) },
      }),
    );
    this.ctx.services.replicas?.noteEdge(e.id, e.config);
    await this.askHoldings([e], t.manifest.id, core.chunks.n);
    const i = this.addEdgeSlot(t, core, { ...e, config: { ...e.config, url: view.url } }, e.config.url, view);
    const holds = this.holdsOf(e);
    if (holds === 'all') core.setEdgeHoldsAll(i);
    else core.setEdgeHoldings(i, Buffer.from(holds, 'base64'));
    return i;
  }

  /** Puts this transfer on the host's list (services.transferIndex), with a row that reads its live fields. */
  private listTransfer(): void {
    const index = this.ctx.services.transferIndex;
    if (!index || !this.t) return;
    const id = this.ctx.actorId;
    // the row outlives no owned transfer: undoStart and forget remove it, a deactivation freezes it
    const known = (): OwnedTransfer => this.t ?? this.lastListed!;
    index.set(id, { state: () => known().journal.state, entry: () => this.listEntry(known()) });
    this.lastListed = this.t;
  }

  /** The list entry of `t` (GET /v1/transfers): a few fields, its output's credentials redacted. */
  private listEntry(t: OwnedTransfer): TransferListEntry {
    const j = t.journal;
    const out = t.req.publishAs ?? t.req.output;
    return {
      transferId: this.ctx.actorId,
      state: j.state,
      bytesDone: this.bytesDone,
      fileSize: t.manifest.fileSize,
      output: isEdgeOutput(out) ? redactUrl(out) : out,
      createdAt: j.startedAt,
      ...(j.finishedAt === undefined ? {} : { finishedAt: j.finishedAt }),
    };
  }

  /** The chunks `e` holds: its `holds`, else what it answered at `/v1/have` (askHoldings), else 'all'. */
  private holdsOf(e: TransferEdge): string {
    return e.holds ?? this.askedHolds.get(e.id) ?? 'all';
  }

  /**
   * Asks each `portal` edge of `edges` whose `holds` is omitted (not yet asked on this activation) for its
   * `/v1/have` bitmap, all at once, through services.edgeHoldings (absent: nothing is asked, 'all' as before).
   */
  private async askHoldings(
    edges: readonly TransferEdge[],
    manifestId: string,
    chunks: number,
  ): Promise<void> {
    const ask = this.ctx.services.edgeHoldings;
    if (!ask) return;
    await Promise.all(
      edges.map(async (e) => {
        if (e.holds !== undefined || e.config.kind !== 'portal' || this.askedHolds.has(e.id)) return;
        const url = this.realUrls.get(e.id) ?? e.config.url;
        if (isRedactedUrl(url)) return; // no credentials to ask with: it takes no work until a start gives them
        const holds = await ask(url, manifestId, chunks);
        this.askedHolds.set(e.id, holds);
        if (holds !== 'all')
          this.ctx.log.info(
            { edge: e.id, holds: countBits(Buffer.from(holds, 'base64')) },
            'edge holdings from /v1/have',
          );
      }),
    );
  }

  /** Appends `edge` (its real URL `url`, its view) to the running transfer's tables; returns its index. */
  private addEdgeSlot(
    t: OwnedTransfer,
    core: ChunkScheduler,
    edge: TransferEdge,
    url: string,
    view: EdgeView,
  ): number {
    const i = t.req.edges.length;
    this.realUrls.set(edge.id, url);
    if (!isRedactedUrl(url)) this.ctx.services.announcedEdgeUrls?.set(edge.id, url);
    t.req.edges.push(edge);
    this.edgeViews.push(view);
    this.health.push({ failuresSinceOk: 0, retired: false });
    this.perEdgeChunks.push(0);
    this.edgeEpochs.push(-1);
    this.applyView(core, packed(t.manifest), i, view);
    this.ctx.log.info({ edgeId: edge.id, edgeIndex: i }, 'edge joined the transfer');
    return i;
  }

  /** Journals the request with the transfer's sources as they are now (those dropped by takeSources left out). */
  private async journalRequest(t: OwnedTransfer): Promise<void> {
    const edges = t.req.edges.filter((_, i) => this.health[i]?.retiredReason !== DROPPED_SOURCE);
    await this.ctx.state.set('request', journaledRequest({ ...t.req, edges }, packed(t.manifest)));
  }

  /**
   * A read of bytes [offset, offset + length) of the content: answers which of its chunks are verified
   * (a content server serves only those), raises the missing ones to DEMAND priority and, for a reader
   * reading sequentially, the chunks its rate needs next to READ_AHEAD (scheduler/access.ts); when that
   * raised anything, a tick runs now so that free slots take the chunks at once.
   */
  async read(arg: ContentReadRequest): Promise<ContentReadResult> {
    checkArg(typeof arg?.readerId === 'string' && arg.readerId.length > 0, 'readerId', 'a reader id');
    const t = this.known();
    const m = t.manifest;
    checkArg(
      Number.isSafeInteger(arg.offset) && arg.offset >= 0 && arg.offset < m.fileSize,
      'offset',
      `a byte offset in [0, ${m.fileSize})`,
    );
    checkArg(Number.isSafeInteger(arg.length) && arg.length >= 1, 'length', 'a byte count ≥ 1');
    checkLocation(arg.location);
    const location = arg.location ?? t.req.location;
    if (location !== undefined) this.placeNear(t, location);
    const first = Math.floor(arg.offset / m.chunkSize);
    const last = Math.floor((Math.min(m.fileSize, arg.offset + arg.length) - 1) / m.chunkSize);
    const core = t.core;
    const state = t.journal.state;
    if (!core || state !== 'running') {
      // not scheduling here: what the journal (or the finished scheduler) says is verified
      const bitmap = core ? core.completionBitmap() : Buffer.from(t.journal.bitmap, 'base64');
      const complete: number[] = [];
      for (let c = first; c <= last; c++) if (hasBit(bitmap, c)) complete.push(c);
      return { state, ...this.whyNotRunning(t), first, last, complete, readAhead: 0, sequential: false };
    }
    this.access ??= new AccessTracker(core, { tickMs: t.req.tickMs ?? 50 });
    const plan = this.access.read({
      readerId: arg.readerId,
      first,
      last,
      now: this.ctx.clock.now(),
      rateBytesPerSec: arg.rateBytesPerSec,
    });
    if (plan.changed > 0) await this.eventTick();
    return {
      state: t.journal.state,
      first,
      last,
      complete: plan.complete,
      readAhead: plan.readAhead,
      sequential: plan.sequential,
    };
  }

  /** The manifest, the output file and the state, for a content server. */
  async contentInfo(): Promise<ContentInfo> {
    const t = this.known();
    // a verified file has taken its final name (finish); until then its bytes are in the partial file
    const output = t.journal.state === 'done' ? (t.req.publishAs ?? t.req.output) : t.req.output;
    return {
      state: t.journal.state,
      ...this.whyNotRunning(t),
      manifest: unpackManifest(await this.hydrate(t)),
      output,
    };
  }

  /** `{ error }` of a failed or cancelled transfer, for a content server's answer; `{}` otherwise. */
  private whyNotRunning(t: OwnedTransfer): { error?: string } {
    const { state, error } = t.journal;
    if (state === 'failed') return { error: error ?? 'failed' };
    if (state === 'cancelled') return { error: error ?? 'cancelled' };
    return {};
  }

  /**
   * Stops a running transfer (state `cancelled`): ends the tick loop and the reminder, keeps the journal and the
   * output, so `restart` resumes it. A transfer that already ended is answered as it is.
   * PORTAL_UNKNOWN_TRANSFER for an unknown id.
   */
  async cancel(): Promise<TransferStatus> {
    const t = this.known();
    if (t.journal.state === 'running' || t.journal.state === 'queued') {
      t.journal.state = 'cancelled';
      t.journal.error = 'cancelled';
      t.journal.finishedAt = this.ctx.clock.wallNow();
      this.ctx.log.info('transfer cancelled');
      await this.stopLoop();
    }
    return this.status();
  }

  /**
   * The host's admission control gave this queued transfer a running slot: it starts now (state `running`).
   * Anything else (already running, ended, cancelled while it waited) is answered with its status. When the
   * start fails the transfer fails with the cause, which frees the slot again. Only Portal itself calls it.
   */
  async admit(): Promise<TransferStatus> {
    if (!this.t) this.ctx.services.admission?.release(this.ctx.actorId);
    const t = this.known();
    if (t.journal.state !== 'queued') return this.status();
    t.journal.state = 'running';
    try {
      await this.hydrate(t);
      await this.checkAdmitted(t);
      // the output's lock on disk is taken now that it runs (a fetch may have taken it while this one waited)
      await this.claimOutput(t);
      await this.resume(t);
      this.ctx.log.info('queued transfer admitted');
    } catch (err) {
      t.core = undefined;
      this.sub?.unsubscribe();
      this.sub = undefined;
      await this.fail(t, admittedFailure(err));
    }
    return this.status();
  }

  /**
   * What a queued transfer checks once it is admitted, before it writes anything: its files still confined to the
   * output root and none of the host's own (stillConfined), and, when its first start queued it
   * (Journal.outputUnchecked), that start's checks of what lies there now: its folder still exists
   * (checkOutputFolder) and a file that appeared at its output or partial file while it waited is refused unless
   * `overwrite` allows it (refuseExisting). Rejects with the error a start would get (PORTAL_OUTPUT_REFUSED,
   * PORTAL_OUTPUT_OUTSIDE_ROOT).
   */
  private async checkAdmitted(t: OwnedTransfer): Promise<void> {
    const unconfined = await this.stillConfined(t);
    if (unconfined !== undefined) throw unconfined;
    const { req, journal } = t;
    if (
      journal.outputUnchecked &&
      this.ctx.services.outputRoot !== undefined &&
      req.prePosition === undefined &&
      !isEdgeOutput(req.output)
    ) {
      await checkOutputFolder(req.output, 'serve');
      const files = [req.output, req.publishAs].map((p) =>
        p === undefined ? undefined : { path: p, existing: lstatIfPresent(p) },
      );
      await refuseExisting(files, req.overwrite === true);
    }
    journal.outputUnchecked = undefined;
  }

  // ---- lifecycle helpers -----------------------------------------------------------------------

  /** The transfer this actor owns, or PORTAL_UNKNOWN_TRANSFER: never started (or its start failed), or forgotten. */
  private known(): OwnedTransfer {
    if (!this.t) {
      this.ctx.deactivateOnIdle(); // an unknown id keeps no instance in memory
      throw new PortalError(
        'PORTAL_UNKNOWN_TRANSFER',
        `transfer ${JSON.stringify(this.ctx.actorId)} is unknown: it was never started, its start failed, or it was forgotten`,
      );
    }
    return this.t;
  }

  /**
   * Keeps a transfer the host's admission control queued: its request and journal (state `queued`) are written,
   * and a slow keepalive reminder brings it back after a host restart; SchedulerActor.admit starts it.
   */
  private async enqueue(t: OwnedTransfer): Promise<void> {
    this.countJournal(t);
    t.journal.queuedAt = { at: this.ctx.clock.wallNow(), seq: queueSeq++ };
    await this.ctx.state.set('journal', t.journal);
    await this.ctx.registerReminder(KEEPALIVE, { dueMs: QUEUED_KEEPALIVE_MS, periodMs: QUEUED_KEEPALIVE_MS });
    this.shelve(t);
    this.ctx.log.info('transfer queued: every running slot of this host is taken');
  }

  /** Undoes what a failed start or restart did on this activation; `previous` is what the actor owned before. */
  private async undoStart(previous: OwnedTransfer | undefined, failed?: TransferRequest): Promise<void> {
    const quiet = async (what: string, op: () => Promise<void>): Promise<void> => {
      try {
        await op();
      } catch (err) {
        this.ctx.log.warn({ err }, `undoing a failed start: ${what} failed`);
      }
    };
    await quiet('unregister the tick timer', () => this.ctx.unregisterTimer(TICK_TIMER));
    await quiet('unregister the keepalive reminder', () => this.ctx.unregisterReminder(KEEPALIVE));
    this.sub?.unsubscribe();
    this.sub = undefined;
    // the edges the failed start claimed, unless the transfer runs on with them
    if (failed && previous?.journal.state !== 'running') await this.releaseEdges(failed.edges);
    if (previous?.core === undefined) this.ctx.services.transferRegistry?.delete(this.ctx.actorId);
    this.t = previous && previous.journal.state !== 'running' ? previous : undefined;
    if (!this.t) this.ctx.services.transferIndex?.delete(this.ctx.actorId);
    this.resetCounters();
    if (this.t) this.countJournal(this.t);
  }

  /** Chunks and bytes the journal lists as complete, for the status of a transfer not running here. */
  private countJournal(t: OwnedTransfer): void {
    const { chunks, bytes } = completeBytes(Buffer.from(t.journal.bitmap, 'base64'), t.manifest);
    this.journalComplete = chunks;
    this.bytesDone = bytes;
  }

  /**
   * A queued transfer keeps only what its status and promotion need: the manifest's head and chunk count, and its
   * request without an inline manifest (both are in the actor's state, written before this; `hydrate` reads them
   * again). A queued transfer's memory so does not grow with its manifest (bench/queued-memory.ts).
   */
  private shelve(t: OwnedTransfer): void {
    const { cids, ...head } = t.manifest;
    t.manifest = { ...head, cids: { count: cids.count } };
    t.req = { ...t.req, manifest: undefined };
    this.ctx.state.release?.('request'); // the activation's state cache would keep the request's JSON
  }

  /**
   * Loads again what `shelve` dropped: the journaled request and its manifest (inline, or by reference again,
   * which must still have the journal's id: PORTAL_MANIFEST_MISMATCH otherwise). Edge URLs given at start keep
   * their credentials in memory (realUrls), as after a reactivation.
   */
  private async hydrate(t: OwnedTransfer): Promise<PackedManifest> {
    if (t.manifest.cids instanceof CidTable) return t.manifest as PackedManifest;
    const req = await this.ctx.state.get<TransferRequest>('request');
    if (!req)
      throw new PortalError(
        'PORTAL_STATE_CORRUPT',
        `transfer ${this.ctx.actorId}: its journaled request is gone`,
      );
    const manifest = await manifestOf(req, this.ctx.services.manifestRoot);
    if (manifest.id !== t.journal.manifestId)
      throw new PortalError(
        'PORTAL_MANIFEST_MISMATCH',
        `transfer ${this.ctx.actorId}: the manifest at its manifestUrl is now ${manifest.id}, the journal's is ${t.journal.manifestId}`,
      );
    t.req = req;
    t.manifest = manifest;
    return manifest;
  }

  private resetCounters(): void {
    this.prefix?.hasher.dispose();
    this.prefix = undefined;
    this.edgeViews = [];
    this.inbox = [];
    this.samples.clear();
    this.destinationFailures = 0;
    this.ticks = 0;
    this.bytesDone = 0;
    this.journalComplete = 0;
    this.resumedChunks = 0;
    this.recoveredChunks = 0;
    this.perEdgeChunks = [];
    this.edgeEpochs = [];
    this.lastTickMs = undefined;
    this.risk = undefined;
  }

  // ---- internals -----------------------------------------------------------------------------

  /** Builds the scheduler from the request and the journal and starts the tick loop. */
  private async resume(t: OwnedTransfer): Promise<void> {
    // a (re)started loop hashes the output from byte 0 again: a hash state is not kept across runs
    this.prefix?.hasher.dispose();
    this.prefix = undefined;
    const { req, journal: j } = t;
    const m = packed(t.manifest);
    const n = m.cids.count;
    j.activations = (j.activations ?? 0) + 1;
    // a multi-threaded CPU engine ranks large transfers from worker threads: the tables go on shared memory (an
    // engine that opens a GPU only for large transfers opens it now, and says so for the engine that will tick them)
    const engine = this.ctx.services.tickEngine;
    const sharedMemory = engine?.prepare
      ? (await engine.prepare(n)).sharedMemory
      : engine?.sharedMemory === true;
    const core = new ChunkScheduler(
      {
        chunks: n,
        chunkBytes: m.chunkSize,
        edgeCapacity: req.edges.length + (req.spareEdges ?? 32),
        sharedMemory,
      },
      req.scheduler,
      ((j.activations & 0xff) << 24) >>> 0,
    );
    this.perEdgeChunks = new Array<number>(req.edges.length).fill(0);
    this.health = req.edges.map(() => ({ failuresSinceOk: 0, retired: false }));
    this.edgeEpochs = new Array<number>(req.edges.length).fill(-1);
    this.edgeViews = [];
    this.limits = new ParallelLimits();
    this.tailGated = [];
    this.transientRetry = { n: 0, at: -Infinity };
    const warm = await this.ctx.state.get<JournaledEdgeEstimates>('edgeEstimates');
    const useWarm = warm !== undefined && this.ctx.clock.wallNow() - warm.savedAt <= WARM_START_MAX_AGE_MS;
    this.savedEstimates = useWarm ? { ...warm.edges } : {};
    this.savedDelivered = useWarm ? { ...warm.deliveredBytesPerSec } : {};
    let warmStarted = 0;
    await this.askHoldings(req.edges, m.id, n);
    for (let i = 0; i < req.edges.length; i++) {
      const e = req.edges[i];
      // the journal keeps URLs redacted: the real one is in memory (a start of this activation, an announcement),
      // or the source waits for a start that gives it again instead of sending `***` as its credentials
      const real = this.realUrls.get(e.id) ?? this.ctx.services.announcedEdgeUrls?.get(e.id);
      if (real !== undefined) this.realUrls.set(e.id, real);
      else if (isRedactedUrl(e.config.url)) {
        this.health[i] = { ...this.health[i], credentialsLost: true, lastError: CREDENTIALS_LOST };
        this.ctx.log.warn({ edge: e.id }, 'source without its credentials after a restart: not fetched from');
      }
      const edgeActor = actorProxy(this.ctx, 'EdgeActor', e.id);
      let view = await this.releasingEnded(e.id, () =>
        edgeActor.invoke('claim', {
          transferId: this.ctx.actorId,
          config: { ...e.config, url: redactUrl(e.config.url) },
        }),
      );
      const saved = useWarm ? warm.edges[e.id] : undefined;
      if (saved) {
        // warm start: the estimates this transfer had learned before its restart, not cold priors
        try {
          view = await edgeActor.invoke('warmStart', { estimates: saved });
          if (view.samples > 0) warmStarted++;
        } catch (err) {
          this.ctx.log.warn({ err, edge: e.id }, 'journaled edge estimates not used');
        }
      }
      // and its fetches in flight from the rate it delivered then
      const delivered = useWarm ? warm.deliveredBytesPerSec?.[e.id] : undefined;
      if (delivered !== undefined) this.limits.seed(i, delivered, m.chunkSize);
      this.edgeViews.push(view);
      this.ctx.services.replicas?.noteEdge(e.id, e.config);
      this.applyView(core, m, i, view);
      const holds = this.holdsOf(e);
      if (holds === 'all') core.setEdgeHoldsAll(i);
      else core.setEdgeHoldings(i, Buffer.from(holds, 'base64'));
    }
    if (warmStarted > 0)
      this.ctx.log.info({ edges: warmStarted }, 'edge estimates warm-started from the journal');
    this.resumedChunks = 0;
    this.bytesDone = 0;
    const toEdge = isEdgeOutput(req.output);
    if (j.bitmap && toEdge) {
      // an edge output: the chunks the journal lists were acknowledged by the edge, which checked their CIDs
      const bitmap = Buffer.from(j.bitmap, 'base64');
      for (let c = 0; c < n; c++)
        if (hasBit(bitmap, c)) {
          core.markComplete(c);
          this.bytesDone += chunkRange(m, c).length;
          this.resumedChunks++;
        }
    } else if (j.bitmap) {
      const bitmap = Buffer.from(j.bitmap, 'base64');
      const all = (req.verifyOnResume ?? (m.fileSize <= 4 * 2 ** 30 ? 'all' : 'journaled')) === 'all';
      const { verified, recovered } = await this.verifyOutput(
        bitmap,
        m,
        req.output,
        all,
        vouched(req) && !j.unhashedSuspect,
      );
      j.unhashedSuspect = undefined;
      for (const c of verified) {
        core.markComplete(c);
        this.bytesDone += chunkRange(m, c).length;
      }
      this.resumedChunks = verified.length;
      this.recoveredChunks = recovered;
      this.ctx.log.info(
        { journaled: countBits(bitmap), verified: verified.length, recovered },
        'resumed from journal',
      );
    }
    this.swarm = undefined;
    if (req.swarm) {
      // the origin is what the transfer started with; peers joined by announcing (also before a restart)
      const sources = req.edges.flatMap((e, i) => (e.announced ? [] : [i]));
      this.swarm = new SwarmSelection(core, req.swarm.selfId, sources);
      req.edges.forEach((e, i) => {
        if (e.announced && e.holds !== undefined && e.holds !== 'all')
          this.swarm!.peerHoldings(i, e.id, Buffer.from(e.holds, 'base64'), this.ctx.clock.now());
      });
    } else if (req.order === 'random') {
      // a permutation within (NORMAL − 1, NORMAL): below whatever a reader raises, above pre-position work
      const rand = createPrng(req.orderSeed ?? 1);
      for (let c = 0; c < n; c++) core.setPriority(c, -0.9 * rand());
    }
    this.escalateAtWallMs = undefined;
    this.idleGated = false;
    if (req.prePosition) {
      // chunks outside the task are not part of it: complete from the start
      const wanted = prePositionChunks(req.prePosition, m);
      if (wanted) for (let c = 0; c < n; c++) if (!wanted.has(c)) core.markComplete(c);
      this.escalated = false;
    }
    if (req.learned) {
      const saved = await this.ctx.state.get<RiskModelState>('risk');
      this.risk = saved ? RiskModel.fromJSON(saved) : new RiskModel();
    }
    t.core = core;
    this.access = new AccessTracker(core, { tickMs: req.tickMs ?? 50 });
    this.throughput = new EdgeThroughput();
    this.ctx.services.transferRegistry?.add(this.ctx.actorId);
    this.epochMs = this.ctx.clock.now();
    this.lastProgressAt = 0;
    this.lastComplete = -1;
    this.sub?.unsubscribe();
    const self = actorProxy(this.ctx, 'SchedulerActor', this.ctx.actorId);
    // Reports go in through the actor's own turn, and each report's bus handler resolves only once
    // that turn has applied it: the bus acknowledges a report after it is applied, so a
    // crash in between leaves it to be redelivered (reports are idempotent: stale attempts are
    // ignored). A call that fails (the sidecar restarting, the actor moving) is retried with backoff
    // for about 16 s; then, or when this host stops, the handlers reject and the bus redelivers.
    const deliver = (batch: SchedulerActor['inbox'], attempt: number): void => {
      const items = batch.map((b) => b.report);
      self.invoke('reports', { items }).then(
        () => {
          for (const b of batch) b.applied();
        },
        (err: unknown) => {
          const stopped = isPortalError(err, 'PORTAL_HOST_STOPPED');
          if (attempt >= 8 || stopped) {
            // a host that stops (a fetch that ended, a serve shutting down) leaves the reports still arriving to the
            // bus by design: worth a line only when the host still runs
            this.ctx.log[stopped ? 'debug' : 'error'](
              { err, reports: items.length },
              'applying reports failed; left unacknowledged for the bus to deliver again',
            );
            for (const b of batch) b.failed(err);
            return;
          }
          if (attempt === 0)
            this.ctx.log.warn({ err, reports: items.length }, 'applying reports failed; retrying');
          this.ctx.clock.setTimeout(() => deliver(batch, attempt + 1), Math.min(5000, 100 * 2 ** attempt));
        },
      );
    };
    this.sub = this.bus().subscribe<ChunkReport>(
      subjects.report(req.transferId),
      (report) =>
        new Promise<void>((applied, failed) => {
          // the data plane verified and wrote these bytes: readers waiting for them need not wait for the turn
          if (report?.ok === true && report.transferId === this.ctx.actorId)
            this.ctx.services.verifiedChunks?.emit(this.ctx.actorId, report.chunk);
          this.inbox.push({ report, applied, failed });
          if (this.flushScheduled) return;
          this.flushScheduled = true;
          setImmediate(() => {
            this.flushScheduled = false;
            const batch = this.inbox.splice(0);
            if (batch.length) deliver(batch, 0);
          });
        }),
    );
    const tickMs = req.tickMs ?? 50;
    this.pacer = new TickPacer(tickMs);
    await this.ctx.registerTimer(TICK_TIMER, { method: 'tick', dueMs: 0, periodMs: tickMs });
    await this.ctx.registerReminder(KEEPALIVE, { dueMs: 10_000, periodMs: 10_000 });
    await this.persist(true);
  }

  /**
   * Chunks whose bytes in the output file match their CID: those the journal lists, and with
   * `all` every other chunk too (`recovered`: written before a crash but not yet journaled).
   * A journaled chunk that no longer matches is fetched again. A chunk without a CID is kept only when journaled,
   * in the file at its full length, and `unhashed` (the sources' validators vouch for it: see vouched).
   */
  private async verifyOutput(
    bitmap: Uint8Array,
    m: PackedManifest,
    output: string,
    all: boolean,
    unhashed = false,
  ): Promise<{ verified: number[]; recovered: number }> {
    const verified: number[] = [];
    let recovered = 0;
    let fh;
    try {
      fh = await open(output, 'r');
    } catch {
      return { verified, recovered };
    }
    try {
      const buf = Buffer.alloc(m.chunkSize);
      const fileBytes = (await fh.stat()).size;
      for (let c = 0; c < m.cids.count; c++) {
        const journaled = hasBit(bitmap, c);
        if (!journaled && !all) continue;
        if (m.cids.isUnknown(c)) {
          // no hash to check it against: kept only on the sources' word (validators), else fetched again
          const { offset, length } = chunkRange(m, c);
          if (unhashed && journaled && offset + length <= fileBytes) verified.push(c);
          continue;
        }
        const { offset, length } = chunkRange(m, c);
        const { bytesRead } = await fh.read(buf, 0, length, offset);
        if (bytesRead !== length) continue;
        if (!m.cids.matches(c, createHash('sha256').update(buf.subarray(0, length)).digest())) continue;
        verified.push(c);
        if (!journaled) recovered++;
      }
    } finally {
      await fh.close();
    }
    return { verified, recovered };
  }

  /**
   * A read of this transfer's file at `location` (the transfer's own, or a reader's): tells the host's
   * replica placer, which may start a pre-position task to an accepting edge there. Decided once per
   * location and activation, unless the placer found no accepting edge there yet or was at its limit.
   */
  private placeNear(t: OwnedTransfer, location: string): void {
    const placer = this.ctx.services.replicas;
    // a queued transfer keeps only its manifest's head: it is placed once admitted and read
    if (!placer || t.req.prePosition || this.placedAt.has(location) || !(t.manifest.cids instanceof CidTable))
      return;
    const m = packed(t.manifest);
    const n = chunkCount(m);
    const sources = t.req.edges.map((e, i) => ({
      edge: { ...e, config: { ...e.config, url: this.realUrls.get(e.id) ?? e.config.url } },
      location: this.edgeViews[i]?.location ?? e.config.location,
      holdsAll: ((h) => h === 'all' || countBits(Buffer.from(h, 'base64')) >= n)(this.holdsOf(e)),
    }));
    const r = t.req;
    const outcome = placer.onRead({
      location,
      manifestId: t.manifest.id,
      manifest:
        r.manifestUrl !== undefined || r.manifestCid !== undefined
          ? { manifestUrl: r.manifestUrl, manifestCid: r.manifestCid }
          : { manifest: unpackManifest(m) },
      sources,
    });
    if ('placed' in outcome || outcome.skipped === 'held-there' || outcome.skipped === 'already-placed')
      this.placedAt.add(location);
  }

  /** True for a pre-position task that runs in idle capacity (not foreground, its deadline not near). */
  private isBackground(t: OwnedTransfer, core: ChunkScheduler): boolean {
    const pp = t.req.prePosition;
    if (!pp || pp.background === false || this.escalated) return false;
    if (pp.deadlineWallMs !== undefined) {
      let bw = 0;
      for (let e = 0; e < t.req.edges.length; e++) if (core.edges.available[e]) bw += core.edges.bandwidth[e];
      const p = core.progress();
      const leftBytes = (p.total - p.complete) * t.manifest.chunkSize;
      // at half the edges' estimated bandwidth (idle capacity is not all of it), does the rest still fit?
      // no estimate yet (no sample, no hint: the first ticks): nothing to judge by but the deadline itself
      const needMs = bw > 0 ? (leftBytes / (bw / 2)) * 1000 : 0;
      this.escalateAtWallMs = pp.deadlineWallMs - needMs;
      if (this.ctx.clock.wallNow() >= this.escalateAtWallMs) {
        this.escalated = true;
        this.escalateAtWallMs = undefined;
        this.ctx.log.info(
          { deadlineWallMs: pp.deadlineWallMs, leftBytes, needMs },
          'pre-position task runs as foreground: its deadline is near',
        );
        return false;
      }
    }
    return true;
  }

  /**
   * Background dispatch rule: an edge that a foreground transfer of this host uses or still wants gets
   * no new fetch of this task (max_parallel 0 for the tick), and the task's fetches already in flight on it
   * are cancelled (their chunks pending again, sent out with this tick's cancels; the executor aborts them),
   * so the foreground transfer gets the edge's whole bandwidth from this tick on rather than after the
   * task's fetches end. An idle edge keeps its own limit. A cancelled fetch loses its bytes so far (at most
   * one chunk per fetch: a pre-position fetch holds its chunk in memory until it is PUT whole).
   */
  private gateOnIdleEdges(t: OwnedTransfer, core: ChunkScheduler): void {
    const board = this.ctx.services.edgeUsage;
    if (!board) return;
    this.idleGated = true;
    t.req.edges.forEach((e, i) => {
      const use = board.of(e.id, this.ctx.actorId);
      const busy = use.inFlight > 0 || use.wanting > 0;
      const limit = busy ? 0 : this.parallelOf(i);
      if (core.edges.maxParallel[i] !== limit) core.updateEdge(i, { maxParallel: limit });
      if (busy && core.edges.queueDepth[i] > 0) {
        const n = core.preemptEdge(i, Number.POSITIVE_INFINITY);
        this.ctx.log.debug(
          { edge: e.id, cancelled: n },
          'pre-position fetches yield to a foreground transfer',
        );
      }
    });
  }

  /**
   * A task that stopped being background (its deadline came near): every edge gets its own limit back at once,
   * instead of keeping the 0 the idle gate gave a busy edge until the next edge view arrives.
   */
  private liftIdleGate(t: OwnedTransfer, core: ChunkScheduler): void {
    this.idleGated = false;
    t.req.edges.forEach((_e, i) => {
      const limit = this.parallelOf(i);
      if (core.edges.maxParallel[i] !== limit) core.updateEdge(i, { maxParallel: limit });
    });
  }

  /** Tells the host's board which edges this (foreground) transfer uses now. */
  private reportEdgeUse(t: OwnedTransfer, core: ChunkScheduler): void {
    const board = this.ctx.services.edgeUsage;
    // a tick that was under way when the transfer ended (finish took it off the board) reports nothing:
    // its last use would stay on the board and keep background work off the edge for good
    if (!board || t.journal.state !== 'running' || this.t !== t) return;
    const pending = core.progress().pending > 0;
    const use = new Map<string, EdgeUse>();
    t.req.edges.forEach((e, i) => {
      use.set(e.id, {
        inFlight: core.edges.queueDepth[i],
        wanting: pending && core.edges.available[i] === 1 ? 1 : 0,
      });
    });
    board.report(this.ctx.actorId, use);
  }

  /** Sends outcomes to EdgeActors and applies the views they return; refreshes every edge each second. */
  private async feedEdges(t: OwnedTransfer, core: ChunkScheduler): Promise<void> {
    const req = t.req;
    const batches = [...this.samples.entries()];
    this.samples.clear();
    const now = this.ctx.clock.now();
    const refresh = now - this.lastRefresh >= 1000;
    if (refresh) this.lastRefresh = now;
    const targets = refresh ? req.edges.map((_, i) => i) : batches.map(([i]) => i);
    const byEdge = new Map(batches);
    await Promise.all(
      targets.map(async (i) => {
        const proxy = actorProxy(this.ctx, 'EdgeActor', req.edges[i].id);
        try {
          const s = byEdge.get(i);
          const view = s ? await proxy.invoke('observe', { samples: s }) : await proxy.invoke('snapshot');
          this.edgeViews[i] = view;
          this.applyView(core, packed(t.manifest), i, view);
        } catch (err) {
          this.ctx.log.warn({ err, edge: req.edges[i].id }, 'edge actor unavailable; keeping its last view');
        }
      }),
    );
  }

  /** The fetches edge `i` may have in flight in this transfer: its probed limit, at most its max_parallel. */
  private parallelOf(i: number): number {
    return this.tailGated[i] ? 0 : this.configuredLimit(i);
  }

  /**
   * Edge `i`'s probed limit, at most its max_parallel (edgeParallelCap: 0 is no limit); 0 while no view of it is
   * known yet.
   */
  private configuredLimit(i: number): number {
    const v = this.edgeViews[i];
    return v ? this.limits.limit(i, edgeParallelCap(v.maxParallel)) : 0;
  }

  /**
   * Near the end of a foreground transfer, edges whose next chunk would finish after all edges together could
   * finish the rest take no new fetch (tailGate); the others get their limit back.
   */
  private gateTail(t: OwnedTransfer, core: ChunkScheduler): void {
    const p = core.progress();
    const remainingBytes = (p.total - p.complete) * t.manifest.chunkSize;
    // a chunk whose open sources all failed it (e.g. mirrors that sent wrong bytes) waits for a gated edge: open it
    const needed = this.tailGated.some(Boolean) ? core.heldSourcesOfStrandedChunks() : undefined;
    const gate = tailGate(
      t.req.edges.map((e, i) => ({
        inFlight: core.edges.queueDepth[i],
        rateBytesPerSec: this.limits.rateBytesPerSec(i),
        usable: core.edges.available[i] === 1 && this.configuredLimit(i) > 0,
        holdsAll: this.holdsOf(e) === 'all',
        needed: this.tailGated[i] === true && needed?.has(i) === true,
      })),
      remainingBytes,
      t.manifest.chunkSize,
    );
    gate.forEach((g, i) => {
      if (g === (this.tailGated[i] ?? false)) return;
      this.tailGated[i] = g;
      core.updateEdge(i, { maxParallel: this.parallelOf(i) });
    });
  }

  private applyView(core: ChunkScheduler, m: PackedManifest, i: number, v: EdgeView): void {
    const bandwidth = v.bandwidth > 0 ? v.bandwidth : (v.bandwidthHint ?? 0);
    const rtt = v.samples > 0 ? v.rtt : (v.rttHint ?? v.rtt);
    const chunk = m.chunkSize;
    core.updateEdge(i, {
      ...(this.risk?.warm ? {} : { bandwidth, rtt, health: v.health }),
      available: v.available && usable(this.health[i]),
      flags: v.flags,
      maxParallel: this.tailGated[i] ? 0 : this.limits.limit(i, edgeParallelCap(v.maxParallel)),
      timeoutMs: this.swarm?.isSource(i)
        ? Math.max(SWARM_SOURCE_TIMEOUT_MS, adaptiveTimeoutMs({ ...v, bandwidth, rtt }, chunk))
        : adaptiveTimeoutMs({ ...v, bandwidth, rtt }, chunk),
    });
    if (this.edgeEpochs[i] !== v.epoch) {
      this.edgeEpochs[i] = v.epoch;
      core.requestFullRerank();
    }
  }

  /**
   * The source budget: an edge that has delivered nothing while failing for `edgeBudgetMs` (and at least
   * EDGE_BUDGET_MIN_FAILURES times) is given up for this transfer, so a run whose sources are all bad
   * ends in bounded time instead of retrying forever.
   */
  private retireFailingEdges(t: OwnedTransfer, core: ChunkScheduler, now: number): void {
    const budget = t.req.edgeBudgetMs ?? DEFAULT_EDGE_BUDGET_MS;
    this.health.forEach((h, i) => {
      if (h.retired || h.failingSince === undefined || h.failuresSinceOk < EDGE_BUDGET_MIN_FAILURES) return;
      if (now - h.failingSince < budget) return;
      this.retire(
        t,
        core,
        i,
        `failed for ${((now - h.failingSince) / 1000).toFixed(0)} s without delivering a chunk (${h.failuresSinceOk} failures; source budget ${(budget / 1000).toFixed(0)} s)`,
      );
    });
  }

  /**
   * A source that asks to be retried (Retry-After, RFC 9110 §10.2.3) only after what is left of its budget (`edgeBudgetMs`
   * since its first failure without a success since) would be given up before it could be asked again: it is given
   * up now, naming the Retry-After and the budget, instead of holding its chunks until the stall timeout.
   */
  private retireIfRetryAfterPastBudget(
    t: OwnedTransfer,
    core: ChunkScheduler,
    i: number,
    retryAfterMs: number,
  ): void {
    const h = this.health[i];
    if (!h || h.retired || h.failingSince === undefined) return;
    const budget = t.req.edgeBudgetMs ?? DEFAULT_EDGE_BUDGET_MS;
    const left = budget - (this.ctx.clock.now() - this.epochMs - h.failingSince);
    if (retryAfterMs <= left) return;
    this.retire(
      t,
      core,
      i,
      `it asked to be retried after ${(retryAfterMs / 1000).toFixed(0)} s (Retry-After), past its source budget of ${(budget / 1000).toFixed(0)} s (${(Math.max(0, left) / 1000).toFixed(0)} s left)`,
    );
  }

  /**
   * Gives source `i` up for this transfer: it gets no more work, status shows it unavailable and `retired` with
   * `retiredReason` (besides its `lastError`), and a run whose sources are all given up ends naming them.
   */
  private retire(t: OwnedTransfer, core: ChunkScheduler, i: number, reason: string): void {
    const h = this.health[i];
    if (!h || h.retired) return;
    h.retired = true;
    h.retiredReason = reason;
    if (reason === DROPPED_SOURCE)
      // asked for (a rerun that no longer names it): said by the rerun itself, not a warning (trial L6)
      this.ctx.log.info({ edge: t.req.edges[i]?.id }, 'source dropped');
    else
      this.ctx.log.warn(
        { edge: t.req.edges[i]?.id, failures: h.failuresSinceOk, lastError: h.lastError, reason },
        'source given up',
      );
    if (this.edgeViews[i]) this.applyView(core, packed(t.manifest), i, this.edgeViews[i]);
    core.requestFullRerank();
  }

  /**
   * One line per edge that failed: `\n  <redacted url> (<id>): <last cause>`. The URL comes first and is
   * followed by a space, so that redaction of a message (which masks a query value up to the next space)
   * never swallows what follows it.
   */
  private causes(t: OwnedTransfer): string {
    const lines = this.health
      .map((h, i) => {
        const e = t.req.edges[i];
        // a source given up says why (its budget spent, a Retry-After past it, another version) after its last error
        const why =
          h.retired && h.retiredReason && h.retiredReason !== h.lastError
            ? `; given up: ${h.retiredReason}`
            : '';
        return h.lastError && e
          ? `\n  ${redactUrl(this.realUrls.get(e.id) ?? e.config.url)} (${e.id}): ${h.lastError}${why}`
          : '';
      })
      .join('');
    return lines ? `; last cause per source:${lines}` : '';
  }

  /** Moves the whole-file hash over the complete chunks that now follow its prefix (amortized O(1) a tick). */
  private advancePrefix(t: OwnedTransfer, core: ChunkScheduler): void {
    if (t.manifest.fileSize < PREFIX_HASH_MIN_BYTES) return;
    const status = core.chunks.status;
    const n = core.chunks.n;
    let c = this.prefix?.chunks ?? 0;
    while (c < n && status[c] === ChunkStatus.COMPLETE) c++;
    if (c === (this.prefix?.chunks ?? 0)) return;
    this.prefix ??= { hasher: createPrefixHasher(t.req.output), chunks: 0 };
    this.prefix.chunks = c;
    this.prefix.hasher.advance(Math.min(c * t.manifest.chunkSize, t.manifest.fileSize));
  }

  /**
   * The sha256 of the finished output: the prefix hash finished over what is left, or the whole file read. A
   * file too small to be hashed while it ran (PREFIX_HASH_MIN_BYTES) is read and hashed on the hash thread
   * when this process hashes there (a host: its main thread runs every actor; ~0.6 ms of sha256 and four
   * thread-pool round trips per MiB otherwise), and on this thread when it does not (`portal fetch`). With
   * `datasync`, the hash thread also flushes the file's data first (`synced`; false: the caller has to).
   */
  private async outputSha(t: OwnedTransfer, datasync: boolean): Promise<{ sha256: string; synced: boolean }> {
    const p =
      this.prefix ?? (prefixHashOnThread() ? { hasher: createPrefixHasher(t.req.output) } : undefined);
    this.prefix = undefined;
    if (!p) return { sha256: await hashFile(t.req.output), synced: false };
    const d = await p.hasher.digest(t.manifest.fileSize, { datasync });
    this.ctx.log.debug(
      { hashedWhileRunning: d.hashedBefore, fileSize: t.manifest.fileSize, synced: d.synced },
      'whole-file hash finished',
    );
    return d;
  }

  /**
   * Creates the output when it is missing and flushes its data to disk, on this thread's file-system pool. Opened as
   * Portal's own file (openOwnFile: O_NOFOLLOW, then fstat): a symbolic link planted at the name was followed (its
   * target created, or flushed), and so was a FIFO (the open hung). Throws PORTAL_OUTPUT_REFUSED naming the output
   * and why (a link, not a regular file, another hard link, another user's).
   */
  private async datasyncOutput(output: string): Promise<void> {
    // created here only when no chunk was written (a 0-byte file): the mode the chunk writer creates outputs with
    // (0644 less the umask), not openOwnFile's 0600 for Portal's private files
    const out = await openOwnFile(output, 'append', { code: 'PORTAL_OUTPUT_REFUSED', what: 'output' }, 0o644);
    try {
      await out.datasync();
    } finally {
      await out.close();
    }
  }

  private async finish(t: OwnedTransfer): Promise<void> {
    const j = t.journal;
    this.ctx.services.edgeUsage?.remove(this.ctx.actorId);
    if (isEdgeOutput(t.req.output)) {
      // a pre-position task: every chunk was acknowledged by the target edge after its own CID check
      j.state = 'done';
      j.verified = true;
      j.finishedAt = this.ctx.clock.wallNow();
      this.ctx.log.info({ target: redactUrl(t.req.output) }, 'pre-position task complete');
      await this.stopLoop();
      return;
    }
    // the datasync below opens the output by name (creating it when missing), and the rename writes a name
    const unconfined = await this.stillConfined(t);
    if (unconfined !== undefined) {
      await this.fail(t, unconfined.message);
      return;
    }
    j.state = 'verifying';
    await this.persist(true);
    // The output's bytes are made durable (fdatasync flushes the file's dirty pages whichever descriptor wrote
    // them) before it takes its final name and the journal says done: without it a power loss after the rename
    // could leave a file under its final name, trusted by a rerun's size and mtime check, with pages the data
    // threads' writes never flushed. The hash thread does it beside the hash (no round trips of this turn); else,
    // or when it could not (a file of zero chunks, never opened by an executor, or one removed meanwhile), this
    // thread creates the file if missing, flushes it, and hashes what is there.
    let d: { sha256: string; synced: boolean } | undefined;
    if (t.manifest.fileSize > 0) d = await this.outputSha(t, true).catch(() => undefined);
    if (!d?.synced)
      try {
        await this.datasyncOutput(t.req.output);
      } catch (err) {
        // the output is not ours to finish (a link or another file planted at its name): the transfer fails naming it
        if (!isPortalError(err)) throw err;
        await this.fail(t, err.message);
        return;
      }
    d ??= await this.outputSha(t, false);
    const sha = d.sha256;
    j.verified = sha === t.manifest.fileSha256;
    j.finishedAt = this.ctx.clock.wallNow();
    let final = t.req.output;
    if (t.req.publishAs && (j.verified || t.manifest.fileSha256 === NO_CID)) {
      // only a verified (or, without any hash, complete) file takes its final name, never over a file another
      // program created there meanwhile (the start checked there was none) unless the start allowed it
      try {
        await publishPart(
          t.req.output,
          t.req.publishAs,
          t.req.overwrite === true || j.republish === true,
          sha,
        );
      } catch (err) {
        if (!isPortalError(err, 'PORTAL_OUTPUT_REFUSED')) throw err;
        await this.fail(
          t,
          `${err.message}: move ${escapeControl(t.req.publishAs)} away and start the transfer again to publish it, or start it with overwrite (portal fetch --force; serve: "overwrite": true) to replace that file [${err.code}]`,
        );
        return;
      }
      j.republish = undefined;
      final = t.req.publishAs;
    }
    // what a rerun checks first (size and modification time) before it trusts this journal
    const st = await stat(final).catch(() => undefined);
    if (st) j.output = { size: st.size, mtimeMs: st.mtimeMs };
    if (t.manifest.fileSha256 === NO_CID) {
      // No whole-file hash was given (mirrors without a manifest and no --checksum): complete, not verified.
      j.state = 'done';
      j.sha256 = sha;
      // info, not warn: the status says verified false and the CLI prints its own warning, once (a warn record
      // here repeated it at the default level)
      this.ctx.log.info({ sha256: sha }, 'transfer complete; no checksum to verify it against');
    } else if (j.verified) {
      j.state = 'done';
      this.ctx.log.info({ sha256: sha }, 'transfer complete and verified');
    } else {
      j.state = 'failed';
      j.error = this.wholeFileMismatch(t, sha);
      // which chunk is wrong cannot be told for those without a hash: a rerun fetches them again
      j.unhashedSuspect = true;
      this.ctx.log.error({ sha256: sha }, 'transfer verification failed');
    }
    // nothing is left to resume once done: the partial-chunk log goes with the state that says so (the executor's
    // close of the output removes it too, but only when the transfer detaches, after this turn)
    if (j.state === 'done') await unlink(partialChunkLogPath(t.req.output)).catch(() => undefined);
    await this.stopLoop();
  }

  /**
   * The error of a finished file whose sha256 is not the expected one: names what gave the expected hash
   * (TransferRequest.checksumFrom) and, when chunks came from several sources, that one of them served wrong
   * bytes (chunks without their own hashes are checked by length only) and how to find it.
   */
  private wholeFileMismatch(t: OwnedTransfer, sha: string): string {
    const from = CHECKSUM_ORIGIN[t.req.checksumFrom ?? 'manifest'] ?? CHECKSUM_ORIGIN.manifest;
    const served = this.perEdgeChunks.filter((n) => n > 0).length;
    const why =
      served > 1
        ? `; ${served} sources served chunks and one of them served wrong bytes (or the expected sha256 is wrong): retry with fewer sources, one at a time, to find it`
        : this.resumedChunks > 0
          ? `; ${this.resumedChunks} chunk(s) came from an earlier run: a source of that run or this one served wrong bytes (or the expected sha256 is wrong)`
          : '; the source served other bytes than expected (or the expected sha256 is wrong)';
    return `sha256 of output ${sha} does not match the sha256 ${from} gives, ${t.manifest.fileSha256}${why}`;
  }

  private async fail(t: OwnedTransfer, reason: string): Promise<void> {
    this.prefix?.hasher.dispose();
    this.prefix = undefined;
    this.ctx.services.edgeUsage?.remove(this.ctx.actorId);
    const j = t.journal;
    j.state = 'failed';
    j.error = reason;
    j.finishedAt = this.ctx.clock.wallNow();
    this.ctx.log.error({ reason }, 'transfer failed');
    await this.stopLoop();
  }

  /**
   * Stops the transfer's loop: tells the executors it ended, drops its timers, admission, subscription and
   * output claim. `beforeRelease` runs once the executors were told, before the claim goes (forget removes the
   * partial file there, while no other transfer may claim the output).
   */
  private async stopLoop(beforeRelease?: () => Promise<void>): Promise<void> {
    this.ctx.services.replicas?.ended(this.ctx.actorId);
    await this.announceEnd();
    await this.ctx.unregisterTimer(TICK_TIMER);
    await this.ctx.unregisterReminder(KEEPALIVE);
    this.pacer = undefined;
    this.ctx.services.admission?.release(this.ctx.actorId);
    this.sub?.unsubscribe();
    this.sub = undefined;
    await beforeRelease?.();
    if (this.t) await this.releaseOutput(this.t);
    if (this.t) await this.releaseEdges(this.t.req.edges);
    await this.persist(true);
  }

  /**
   * Refuses (409 PORTAL_TRANSFER_CONFLICT, EdgeActor.checkClaim) a start naming an edge id that another transfer uses
   * now with another URL or kind. Nothing is configured or counted: the transfer claims its edges when it runs.
   */
  private async checkEdgeClaims(req: TransferRequest): Promise<void> {
    // all edges at once: one after another, a burst of starts queued behind every EdgeActor in turn
    // (bench:load, 1000 starts on 4 edges: API p99 82-90 → 128-148 ms; BENCHMARKS.md, session 13)
    await Promise.all(
      req.edges.map((e) =>
        this.releasingEnded(e.id, () =>
          actorProxy(this.ctx, 'EdgeActor', e.id).invoke('checkClaim', {
            transferId: this.ctx.actorId,
            config: { ...e.config, url: redactUrl(e.config.url) },
          }),
        ),
      ),
    );
  }

  /**
   * Runs `ask` (a claim or checkClaim of edge `edgeId`). When it is refused with PORTAL_TRANSFER_CONFLICT, each
   * other transfer counted as the edge's user is asked, by its own SchedulerActor, to release the edge if it has
   * ended (releaseEdgeIfEnded): a release is saved with the edge's next write, so a crash within about a second of
   * a transfer's end leaves it counted after the restart (EdgeActor.release). When one did, `ask` runs once more
   * (and may be refused again, by a transfer that still runs); else the refusal stands. The calls go from this turn
   * to the EdgeActor, then to each user's SchedulerActor (a turn of its own: a start of it cannot run between its
   * check and its release), which calls the EdgeActor: none of them calls back into this actor.
   */
  private async releasingEnded<T>(edgeId: string, ask: () => Promise<T>): Promise<T> {
    try {
      return await ask();
    } catch (err) {
      if (!isPortalError(err, 'PORTAL_TRANSFER_CONFLICT')) throw err;
      const { users } = await actorProxy(this.ctx, 'EdgeActor', edgeId).invoke('listUsers');
      let released = false;
      for (const user of users) {
        if (user === this.ctx.actorId) continue;
        const r = await actorProxy(this.ctx, 'SchedulerActor', user).invoke('releaseEdgeIfEnded', { edgeId });
        if (r.released) {
          released = true;
          this.ctx.log.info({ edge: edgeId, user }, 'edge released for a transfer that had ended');
        }
      }
      if (!released) throw err;
      return ask();
    }
  }

  /**
   * Releases edge `edgeId` for this transfer when it has ended (done, failed, cancelled) or is not known (never
   * started, forgotten): another transfer's claim of the edge was refused naming this one (releasingEnded). Answers
   * whether it released. A turn of this actor, so a start or restart of this transfer never runs between the check
   * and the release; an unknown id keeps no instance (and writes no state).
   */
  async releaseEdgeIfEnded(arg: { edgeId: string }): Promise<{ released: boolean }> {
    checkArg(typeof arg?.edgeId === 'string', 'edgeId', 'an edge id');
    const t = this.t;
    if (t !== undefined && !terminalStates.includes(t.journal.state)) return { released: false };
    if (t === undefined) this.ctx.deactivateOnIdle();
    await actorProxy(this.ctx, 'EdgeActor', arg.edgeId).invoke('release', { transferId: this.ctx.actorId });
    return { released: true };
  }

  /** This transfer no longer uses `edges` (EdgeActor.release); a release that fails is logged. */
  private async releaseEdges(edges: readonly TransferEdge[]): Promise<void> {
    // all edges at once: each release is a turn of its EdgeActor, and the transfer's end waits for them
    await Promise.all(
      edges.map(async (e) => {
        try {
          await actorProxy(this.ctx, 'EdgeActor', e.id).invoke('release', { transferId: this.ctx.actorId });
        } catch (err) {
          this.ctx.log.warn({ err, edge: e.id }, 'edge actor unavailable: not released');
        }
      }),
    );
  }

  /**
   * Removes the partial file of a transfer that did not finish (forget): `<publishAs>.portal-part`, the name this
   * host chose (a request naming its own `publishAs` keeps its output, as one without a partial file does), and
   * its partial-chunk log. Nothing of a done transfer (published: the partial file is gone), of a pre-position
   * task, or of a path that is no longer confined to the output root (stillConfined). A failure is logged.
   */
  private async removeUnpublished(t: OwnedTransfer): Promise<ForgetKept | undefined> {
    const { req } = t;
    if (
      req.publishAs === undefined ||
      req.output !== `${req.publishAs}${PART_SUFFIX}` ||
      t.journal.state === 'done'
    )
      return undefined;
    const unconfined = await this.stillConfined(t);
    if (unconfined !== undefined)
      // not removed where the host may no longer write (a link re-pointed, a root moved): said in the answer, with
      // why, instead of only in a log line (trial L12)
      return {
        files: [req.output, partialChunkLogPath(req.output)],
        why: `not removed: ${unconfined.message}`,
      };
    for (const file of [req.output, partialChunkLogPath(req.output)])
      await rm(file, { force: true }).catch((err: unknown) =>
        this.ctx.log.warn({ err, file }, 'cannot remove the partial file of a forgotten transfer'),
      );
    return undefined;
  }

  /** The output this transfer claims on a host with output claims (its final name), or undefined. */
  private claimKey(t: OwnedTransfer): string | undefined {
    const { req } = t;
    if (!this.ctx.services.outputClaims || req.prePosition !== undefined || isEdgeOutput(req.output))
      return undefined;
    return req.publishAs ?? req.output;
  }

  /**
   * The files this transfer writes besides its claimed output (claimKey), which its claim covers too: the file it
   * writes when that is not the output (its partial file), that file's partial-chunk log, and the lock folder.
   */
  private claimFiles(t: OwnedTransfer, key: string): ClaimedFile[] {
    const { req } = t;
    const files: ClaimedFile[] = [];
    if (req.output !== key) files.push({ path: req.output, what: 'the partial file' });
    files.push({ path: partialChunkLogPath(req.output), what: 'the partial-chunk log' });
    files.push({ path: `${key}${JOURNAL_SUFFIX}`, what: 'the lock folder', folder: true });
    return files;
  }

  /** Claims this transfer's output, its lock on disk included (OutputClaims.claim): the same refusals. */
  private async claimOutput(t: OwnedTransfer): Promise<undefined> {
    const key = this.claimKey(t);
    if (key !== undefined)
      await this.ctx.services.outputClaims!.claim(key, this.ctx.actorId, this.claimFiles(t, key));
    return undefined;
  }

  /** Reserves this transfer's output in memory (OutputClaims.reserve); the refusal is returned, not thrown. */
  private reserveOutput(t: OwnedTransfer): PortalError | undefined {
    const key = this.claimKey(t);
    try {
      if (key !== undefined)
        this.ctx.services.outputClaims!.reserve(key, this.ctx.actorId, this.claimFiles(t, key));
      return undefined;
    } catch (err) {
      return err as PortalError;
    }
  }

  /**
   * Reserves the output (its output is this transfer's alone until it ends: another transfer of this host is
   * refused), then takes a running slot now, a place in the host's queue, or PORTAL_OVERLOADED; a transfer that runs
   * now also takes the output's lock on disk (a fetch writing it is refused), a queued one when admitted (admit).
   * Whatever refuses it, the reservation and the slot are released and nothing changed.
   */
  private async claimAndAdmit(t: OwnedTransfer): Promise<'running' | 'queued'> {
    const taken = this.reserveOutput(t);
    if (taken !== undefined) throw taken;
    try {
      const admitted = this.ctx.services.admission?.acquire(this.ctx.actorId) ?? 'running';
      if (admitted === 'running') {
        try {
          await this.claimOutput(t);
        } catch (err) {
          this.ctx.services.admission?.release(this.ctx.actorId);
          throw err;
        }
      }
      return admitted;
    } catch (err) {
      await this.releaseOutput(t);
      throw err;
    }
  }

  /** Releases this transfer's claim on its output (when it holds it). */
  private async releaseOutput(t: OwnedTransfer): Promise<void> {
    const key = this.claimKey(t);
    if (key !== undefined) await this.ctx.services.outputClaims!.release(key, this.ctx.actorId);
  }

  /**
   * Tells the executors the transfer ended (a CancelRequest of TRANSFER_ENDED_CHUNK with the next attempt id), so
   * that they drop its dispatches still queued or yet to arrive instead of fetching them. A bus that cannot take
   * it is logged: the executors then fetch what they hold and their reports are ignored, as before.
   */
  private async announceEnd(): Promise<void> {
    const t = this.t;
    if (!t?.core) return;
    const end: CancelRequest = {
      transferId: t.req.transferId,
      chunk: TRANSFER_ENDED_CHUNK,
      attempt: t.core.nextAttemptId,
    };
    try {
      await this.publishBounded(this.bus(), subjects.cancel(t.req.transferId), end);
    } catch (err) {
      this.ctx.log.warn({ err }, 'cannot tell the executors that the transfer ended');
    }
  }

  private async persist(force: boolean): Promise<void> {
    const t = this.t;
    if (!t) return;
    const j = t.journal;
    const now = this.ctx.clock.now();
    if (!force && now - this.lastPersist < (t.req.persistMs ?? 100)) return;
    this.lastPersist = now;
    if (t.core) j.bitmap = Buffer.from(t.core.completionBitmap()).toString('base64');
    await this.journalPages.save(this.ctx.state, j, force);
    if (t.core && j.state === 'running' && now - this.lastEstimatesSave >= EDGE_ESTIMATES_SAVE_MS) {
      this.lastEstimatesSave = now;
      await this.saveEdgeEstimates(t);
    }
    if (this.risk && (force || now - this.lastRiskSave >= 1000)) {
      this.lastRiskSave = now;
      await this.ctx.state.set('risk', this.risk.toJSON());
    }
  }

  /**
   * Journals every edge's estimates (state key `edgeEstimates`), and the rate each delivered in this transfer, so a
   * resume after a crash warm-starts them and its fetches in flight per edge. An edge actor that cannot answer
   * keeps its last saved entry.
   */
  private async saveEdgeEstimates(t: OwnedTransfer): Promise<void> {
    const edges = this.savedEstimates;
    await Promise.all(
      t.req.edges.map(async (e) => {
        try {
          edges[e.id] = await actorProxy(this.ctx, 'EdgeActor', e.id).invoke('estimates');
        } catch (err) {
          this.ctx.log.debug({ err, edge: e.id }, 'edge estimates not saved');
        }
      }),
    );
    const delivered = this.savedDelivered;
    t.req.edges.forEach((e, i) => {
      const rate = this.limits.rateBytesPerSec(i);
      if (rate > 0) delivered[e.id] = rate;
    });
    const saved: JournaledEdgeEstimates = {
      savedAt: this.ctx.clock.wallNow(),
      edges,
      deliveredBytesPerSec: delivered,
    };
    await this.ctx.state.set('edgeEstimates', saved);
  }

  /**
   * Publishes `msg`, waiting at most BUS_WAIT_MS for the bus to take it; past that the turn goes on and the
   * publish finishes (or fails, logged at debug) on its own. A publish the bus drops at once
   * (PORTAL_BUS_UNAVAILABLE: its publishes waiting for NATS are at their bound, nats-bus maxPendingPublishes) is
   * treated as a late one that never goes out: the turn goes on, the batch's chunks time out and are dispatched
   * again. Any other failure throws, as before. One warning per outage: when the bus is late (or drops), and an
   * info when it takes messages in time once more.
   */
  private async publishBounded<T>(bus: Bus, subject: string, msg: T): Promise<void> {
    const sent = bus.publish(subject, msg);
    const outcome = sent.then(
      () => 'sent' as const,
      (err: unknown) => {
        if (isPortalError(err, 'PORTAL_BUS_UNAVAILABLE')) return 'dropped' as const;
        throw err;
      },
    );
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), BUS_WAIT_MS);
      timer.unref?.();
    });
    let result: 'sent' | 'dropped' | 'late';
    try {
      result = await Promise.race([outcome, late]);
    } finally {
      clearTimeout(timer);
    }
    if (result === 'sent') {
      if (this.busLate) {
        this.busLate = false;
        this.ctx.log.info({ subject }, 'the bus takes messages again');
      }
      return;
    }
    // (the warning below said it once for the outage: one line per message would flood the log)
    if (result === 'late')
      outcome.catch((err: unknown) =>
        this.ctx.log.debug({ err, subject }, 'a message the bus was late to take was not published'),
      );
    if (this.busLate) return;
    this.busLate = true;
    this.ctx.log.warn(
      { subject, waitedMs: BUS_WAIT_MS, dropped: result === 'dropped' },
      'the bus has not taken a message (NATS away?): what it has not taken goes out when the bus is back, or its chunks time out and are dispatched again; the transfer carries on',
    );
  }

  private bus(): Bus {
    const b = this.ctx.services.bus;
    if (!b) throw new PortalError('PORTAL_CONFIG_INVALID', 'no bus service configured on this host');
    return b;
  }
}

/** The manifest's CID table; PORTAL_INTERNAL for the head a queued transfer keeps (hydrate it first). */
function packed(m: PackedManifest | ManifestHead): PackedManifest {
  if (m.cids instanceof CidTable) return m as PackedManifest;
  throw new PortalError('PORTAL_INTERNAL', `transfer of manifest ${m.id}: its CIDs are not loaded (queued)`);
}

/** Bytes of the chunks `bitmap` marks complete (bit c = chunk c) of a manifest of `count` chunks. */
function completeBytes(
  bitmap: Uint8Array,
  m: ManifestHead | PackedManifest,
): { chunks: number; bytes: number } {
  let chunks = 0;
  let bytes = 0;
  for (let c = 0; c < m.cids.count; c++)
    if (hasBit(bitmap, c)) {
      chunks++;
      bytes += Math.min(m.chunkSize, m.fileSize - c * m.chunkSize);
    }
  return { chunks, bytes };
}

/**
 * The manifest of a request, CIDs packed: inline (validated), loaded from its manifestUrl, or fetched by its
 * manifestCid from the request's `portal` edges (transfer/manifest-ref.ts).
 */
async function manifestOf(req: TransferRequest, manifestRoot?: string | null): Promise<PackedManifest> {
  // a journaled request may hold both: the manifest inline and its reference redacted (see journaledRequest)
  if (req.manifest !== undefined) return packManifest(parseManifest(req.manifest));
  if (req.manifestUrl !== undefined)
    return loadManifestRef(req.manifestUrl, undefined, { localRoot: manifestRoot });
  if (req.manifestCid !== undefined)
    return fetchManifestByCid(
      req.manifestCid,
      req.edges.filter((e) => e.config.kind === 'portal').map((e) => e.config.url),
    );
  return packManifest(parseManifest(req.manifest));
}

/** The request as the journal keeps it: edge URLs without credentials or signed query values. */
/** Throws PORTAL_INVALID_ARGUMENT unless `location` is absent or a location label. */
function checkLocation(location: unknown, name = 'location'): void {
  checkArg(
    location === undefined || isLocationLabel(location),
    name,
    'a label of 1 to 256 characters without control characters',
  );
}

/**
 * Why a source takes no work after a restart: its URL's credentials (userinfo, a signed query) were journaled
 * redacted, and fetching with the redacted URL would send `***` as a password or a signature.
 */
export const CREDENTIALS_LOST =
  'credentials not kept across restarts: its URL is journaled without them; a start with the full URL restores this source';

/** A source that may take work in its transfer: not given up, and with its credentials. */
function usable(h: EdgeHealth | undefined): boolean {
  return !h?.retired && !h?.credentialsLost;
}

/** Request fields a start of a transfer that has one must repeat (TransferRequest; edges are compared apart). */
const REPEATED_FIELDS = [
  'output',
  'publishAs',
  'checksumFrom',
  'scheduler',
  'tickMs',
  'persistMs',
  'verifyOnResume',
  'learned',
  'spareEdges',
  'dispatchOnReportMs',
  'stallTimeoutMs',
  'edgeBudgetMs',
  'prePosition',
  'location',
  'order',
  'orderSeed',
  'swarm',
] as const;

/**
 * Refuses (400 PORTAL_INVALID_ARGUMENT naming the id and both places) a start naming one edge id twice: an edge id is
 * one EdgeActor, so the second edge's configuration replaced the first's for both entries (trial #3: a good and a
 * dead URL under one id, the good one never asked).
 */
export function refuseDuplicateEdgeIds(edges: readonly TransferEdge[]): void {
  const r = repeatedEdgeId(edges);
  if (r)
    throw new PortalError(
      'PORTAL_INVALID_ARGUMENT',
      `edges[${r.at}].id: edge id "${r.id}" is named twice (edges[${r.first}] and edges[${r.at}]); an edge id names one edge: give each source its own id`,
    );
}

/**
 * The first field in which start request `req` differs from `old`, the request its transfer runs with (`output`,
 * `edges[1].config.url`, …), or undefined when it asks for the same transfer. Edges are matched by id (in any
 * order); their URLs are compared with the one in memory (`realUrl` by edge id) when known, else redacted (a
 * journaled request keeps them redacted); edges that joined by announcing themselves are not the caller's.
 */
export function firstDifference(
  old: TransferRequest,
  req: TransferRequest,
  realUrl: (edgeId: string) => string | undefined,
): string | undefined {
  const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);
  for (const k of REPEATED_FIELDS) {
    const a = (old as unknown as Record<string, unknown>)[k];
    const b = (req as unknown as Record<string, unknown>)[k];
    if (!same(a, b)) return k;
  }
  const edges = old.edges.filter((e) => !e.announced);
  if (edges.length !== req.edges.length) return 'edges (their number)';
  for (let i = 0; i < req.edges.length; i++) {
    const b = req.edges[i];
    const a = edges.find((e) => e.id === b.id);
    if (!a) return `edges[${i}].id`;
    const known = realUrl(a.id);
    const url =
      known !== undefined ? known === b.config.url : redactUrl(a.config.url) === redactUrl(b.config.url);
    if (!url) return `edges[${i}].config.url`;
    for (const k of Object.keys({ ...a.config, ...b.config }) as (keyof TransferEdge['config'])[])
      if (k !== 'url' && !same(a.config[k], b.config[k])) return `edges[${i}].config.${k}`;
    if (!same(a.holds ?? 'all', b.holds ?? 'all')) return `edges[${i}].holds`;
  }
  return undefined;
}

/** Why a source is given up when the start that resumed its transfer no longer names it (takeSources). */
/** The unverified files a forget left where they are, and why (its answer's `kept`). */
export interface ForgetKept {
  /** The partial file and its partial-chunk log. */
  files: string[];
  why: string;
}

export const DROPPED_SOURCE = 'dropped: the run that resumed the transfer no longer names this source';

/**
 * The index in `edges` of the source `e` stands for, skipping the indices in `taken`: the edge with its id, else
 * one of its kind whose URL is the same once redacted (a re-signed URL, or a mirror at another place in the list,
 * whose id differs); -1 when none is.
 */
export function sameSource(
  edges: readonly TransferEdge[],
  e: TransferEdge,
  taken: ReadonlySet<number>,
): number {
  const byId = edges.findIndex((o, i) => !taken.has(i) && o.id === e.id);
  if (byId >= 0) return byId;
  const url = redactUrl(e.config.url);
  return edges.findIndex(
    (o, i) => !taken.has(i) && o.config.kind === e.config.kind && redactUrl(o.config.url) === url,
  );
}

/**
 * True when every mirror transfer `req` started with (not a swarm peer that announced itself) has a validator in
 * `req.validators`: its journaled chunks without a hash may then be kept on resume (TransferRequest.validators).
 */
function vouched(req: TransferRequest): boolean {
  const v = req.validators;
  const mirrors = req.edges.filter((e) => e.config.kind === 'mirror' && !e.announced);
  return v !== undefined && mirrors.length > 0 && mirrors.every((e) => typeof v[e.id] === 'string');
}

function journaledRequest(req: TransferRequest, manifest: PackedManifest): TransferRequest {
  return {
    ...req,
    // By reference, the state keeps the reference only and a reactivation loads the manifest again; a reference
    // with a secret in it (userinfo, a signed query) is journaled redacted, with the manifest inline instead.
    ...(req.manifestUrl !== undefined
      ? redactUrl(req.manifestUrl) === req.manifestUrl
        ? { manifest: undefined }
        : { manifestUrl: redactUrl(req.manifestUrl), manifest: unpackManifest(manifest) }
      : {}),
    edges: req.edges.map((e) => ({ ...e, config: { ...e.config, url: redactUrl(e.config.url) } })),
  };
}

/**
 * The chunks a pre-position task copies (undefined: every chunk). Throws PORTAL_INVALID_ARGUMENT naming
 * a chunk or range outside the manifest.
 */
export function prePositionChunks(
  pp: NonNullable<TransferRequest['prePosition']>,
  m: PackedManifest,
): Set<number> | undefined {
  const n = m.cids.count;
  if (pp.chunks === undefined && pp.byteRange === undefined) return undefined;
  const out = new Set<number>();
  const add = (a: number, b: number, what: string): void => {
    checkArg(
      Number.isInteger(a) && Number.isInteger(b) && a >= 0 && a <= b && b < n,
      what,
      `chunks within [0, ${n})`,
    );
    for (let c = a; c <= b; c++) out.add(c);
  };
  for (const x of pp.chunks ?? []) {
    if (typeof x === 'number') add(x, x, 'prePosition.chunks');
    else add(x[0], x[1], 'prePosition.chunks');
  }
  if (pp.byteRange) {
    const { offset, length } = pp.byteRange;
    checkArg(
      Number.isSafeInteger(offset) &&
        Number.isSafeInteger(length) &&
        offset >= 0 &&
        length >= 1 &&
        offset + length <= m.fileSize,
      'prePosition.byteRange',
      `a range within the file's ${m.fileSize} bytes`,
    );
    add(
      Math.floor(offset / m.chunkSize),
      Math.floor((offset + length - 1) / m.chunkSize),
      'prePosition.byteRange',
    );
  }
  return out;
}

function countBits(b: Uint8Array): number {
  let n = 0;
  for (const x of b) {
    let v = x;
    while (v) {
      v &= v - 1;
      n++;
    }
  }
  return n;
}

/** Statuses a finished transfer can be in. */
export const terminalStates: ReadonlyArray<TransferStatus['state']> = ['done', 'failed', 'cancelled'];
