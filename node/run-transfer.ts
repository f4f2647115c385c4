import { subjects } from '../bus/types.js';
import type { ChunkReport } from '../common/index.js';
import { actorProxy } from '../actors/api.js';
import { terminalStates } from '../actors/scheduler-actor.js';
import { transferContentSource } from '../actors/content-source.js';
import type { TransferEdge, TransferRequest, TransferStatus } from '../actors/types.js';
import {
  createContentServer,
  type ContentServer,
  type ContentServerStats,
  type ContentSource,
} from '../transfer/content-server.js';
import { PortalError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import type { SwarmPeer } from './swarm.js';
import type { Bus } from '../bus/types.js';
import { GPU_MIN_CHUNKS, startEmbeddedNode, type EngineSettings } from './embedded-node.js';
import { setPrefixHashThread } from '../transfer/prefix-hasher.js';
import {
  discardPrestartedDataThreads,
  LOCAL_DATA_THREADS,
  SMALL_TRANSFER_BYTES,
} from '../transfer/data-thread-prestart.js';

export { SMALL_TRANSFER_BYTES } from '../transfer/data-thread-prestart.js';

/** Below GPU_MIN_CHUNKS chunks 'auto' ticks on the CPU with one rank thread and no GPU adapter (embedded-node.ts). */
export { GPU_MIN_CHUNKS };

export { LOCAL_DATA_THREADS } from '../transfer/data-thread-prestart.js';

/**
 * How often runTransfer asks the scheduler whether the transfer ended once every chunk has been reported
 * verified (ms): what is left is the whole-file check and the journal, and a small fetch is over in less than
 * one progress period.
 */
export const END_POLL_MS = 10;

/**
 * How often it asks while chunks are still missing (ms): a failure is noticed within this. Asking every
 * END_POLL_MS all along cost a 256 MiB fetch at 20 MB/s ~1400 status turns with the edges' views (BENCHMARKS.md,
 * issue 18, session 7), and every member of a swarm paid it.
 */
export const FETCH_POLL_MS = 100;

/**
 * The wait before runTransfer's next status call (ms): END_POLL_MS when the last status's complete chunks and the
 * distinct chunks reported verified since it was taken cover the whole transfer (the end is near), else the
 * smaller of FETCH_POLL_MS and the progress period `everyMs`.
 */
export function nextStatusPollMs(
  last: Pick<TransferStatus, 'complete' | 'total'>,
  verifiedSince: number,
  everyMs: number,
): number {
  if (last.complete + verifiedSince >= last.total) return END_POLL_MS;
  return Math.min(everyMs, FETCH_POLL_MS);
}

/**
 * A wait between status calls that a report can end early: `sleep(ms)` resolves after `ms`, or at once when
 * `wake()` is called during it (a `wake()` with no sleep running does nothing). runTransfer wakes it when the
 * last missing chunk is reported verified, so a fetch that ends within one FETCH_POLL_MS (a 1 MiB file: ~30 ms
 * of transfer) is not held up to 100 ms by the wait that began before its chunk arrived.
 */
export function statusWait(): { sleep(ms: number): Promise<void>; wake(): void } {
  let cut: (() => void) | undefined;
  return {
    sleep: (ms) =>
      new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          cut = undefined;
          resolve();
        }, ms);
        cut = () => {
          cut = undefined;
          clearTimeout(t);
          resolve();
        };
      }),
    wake: () => cut?.(),
  };
}

/** One source of a transfer as `--json` reports it: id, URL without secrets, last cause, state. */
export interface SourceReport {
  id: string;
  url: string;
  kind: string;
  /** False when the edge is offline or the source was given up (`retired`). */
  available: boolean;
  lastError?: string;
  failuresSinceOk: number;
  retired: boolean;
  /** Why it was given up (with `retired`). */
  retiredReason?: string;
  chunks: number;
}

/** The sources of a transfer's status, for `--json`'s `sources` field (URLs are already redacted by the actor). */
export function sourcesOf(s: TransferStatus): SourceReport[] {
  return (s.edges ?? []).map((e, i) => ({
    id: e.id,
    url: e.url,
    kind: e.kind,
    available: e.available,
    ...(e.lastError ? { lastError: e.lastError } : {}),
    failuresSinceOk: e.failuresSinceOk ?? 0,
    retired: e.retired ?? false,
    ...(e.retiredReason ? { retiredReason: e.retiredReason } : {}),
    chunks: s.perEdgeChunks[i] ?? 0,
  }));
}

/** Options of runTransfer. */
export interface RunTransferOptions extends EngineSettings {
  request: TransferRequest;
  logger: Logger;
  /** Most chunk bytes in flight on the data-plane threads (default: see createDataPlane). */
  maxInFlightBytes?: number;
  /** Called about every `progressMs` with the current status. */
  onProgress?: (s: TransferStatus) => void;
  progressMs?: number;
  /** Called with every report the executor publishes (demo accounting). */
  onReport?: (r: ChunkReport) => void;
  /** Called once the scheduler has started (journal verified, tick loop running). */
  onStarted?: (s: TransferStatus) => void;
  /**
   * Called once with `join`, right after the start: `join(edges)` adds sources to the running transfer (a mirror
   * whose probe answered after the start) and resolves with the ids that joined ([] once the transfer ended).
   */
  onJoinable?: (join: (edges: TransferEdge[]) => Promise<string[]>) => void;
  /**
   * Serve the content while the transfer runs (`GET /content` and `/v1/transfers/<id>/content`, Range
   * reads) on this port (0 = any free port); readers still reading when the transfer ends are
   * served to the end before the node stops.
   */
  serve?: {
    port: number;
    host?: string;
    onUrl?: (url: string) => void;
    /** Called with the content server's counters once its last response ended. */
    onClosed?: (stats: ContentServerStats) => void;
  };
  /**
   * A reader of the running transfer's content in this process (`portal fetch --out -` streams it to stdout with
   * streamContent): called once the transfer started, with a passive content source of it (its reads raise no
   * priority: the transfer runs as fast as it would without a reader; transferContentSource). The transfer's end waits for it: runTransfer returns (or throws the
   * transfer's failure) only once its promise settled, and rejects with its error. When it resolves `'stop'` (its
   * reader went away) the transfer is cancelled and runTransfer returns the status, state `cancelled`.
   */
  reader?: (source: ContentSource) => Promise<'done' | 'stop'>;
  /** Serve the live dashboard on this port (0 = any free port) while the transfer runs. */
  dashboard?: { port: number; onUrl?: (url: string) => void; lingerMs?: number };
  /**
   * Join a swarm: serve the chunks verified here as edge `id` and announce them on `fabricBus`
   * (NATS), take other peers' announcements from it, and keep serving `lingerMs` after the transfer ends.
   */
  swarm?: {
    fabricBus: Bus;
    id: string;
    host?: string;
    port?: number;
    lingerMs?: number;
    onUrl?: (url: string) => void;
  };
}

/**
 * Runs one transfer to the end on the embedded default and returns its final status. Resumes
 * from the journal beside the output (its `publishAs` name when it has one) when there is one. Rejects
 * with PORTAL_TRANSFER_FAILED when the transfer fails (no edge can serve a chunk, or the sha256 does not
 * match); the error's `sources` (SourceReport[]) names each source's last cause.
 */
export async function runTransfer(o: RunTransferOptions): Promise<TransferStatus> {
  const m = o.request.manifest;
  // the local fetch always holds its manifest; manifestUrl is for callers of the actor API
  if (m === undefined)
    throw new PortalError('PORTAL_INVALID_ARGUMENT', 'runTransfer: request.manifest is required');
  const small = m.chunks.length < GPU_MIN_CHUNKS;
  // one transfer in this process: its whole-file hash runs between the main thread's ticks, not on a thread of its own
  setPrefixHashThread(false);
  const onMainThread = m.fileSize < SMALL_TRANSFER_BYTES;
  // data threads the CLI started before it knew the size are not needed for bytes moved on the main thread
  if (onMainThread) discardPrestartedDataThreads();
  const node = await startEmbeddedNode({
    // the journal sits beside the file's final name (request.output may be a partial file beside it)
    output: o.request.publishAs ?? o.request.output,
    logger: o.logger,
    // fast start: no GPU adapter and no rank threads for a transfer too small to profit from them
    backend: small && (o.backend ?? 'auto') === 'auto' && !o.requireGpu ? 'cpu' : o.backend,
    requireGpu: o.requireGpu,
    cpuThreads: o.cpuThreads ?? (small ? 1 : undefined),
    dataThreads: onMainThread ? 0 : LOCAL_DATA_THREADS,
    maxInFlightBytes: o.maxInFlightBytes,
    ...(o.swarm ? { swarm: { fabricBus: o.swarm.fabricBus, selfEdgeId: o.swarm.id } } : {}),
    // announced holdings of this manifest go to this transfer, whatever its id
    transfersOf: (manifestId) => (manifestId === m.id ? [o.request.transferId] : []),
  });
  const dash = o.dashboard
    ? // loaded only when asked for (prom-client, the page): a plain fetch starts without it
      await (
        await import('../dashboard/index.js')
      ).createDashboard({
        host: node.host,
        transfers: () => [...node.transfers],
        logger: o.logger, // createDashboard binds component: dashboard itself
        port: o.dashboard.port,
        engineStats: () => node.engine.stats(),
      })
    : undefined;
  if (dash) o.dashboard?.onUrl?.(dash.url);
  let content: ContentServer | undefined;
  let source: ReturnType<typeof transferContentSource> | undefined;
  let peer: SwarmPeer | undefined;
  let reading: Promise<void> | undefined;
  let readerSource: ReturnType<typeof transferContentSource> | undefined;
  try {
    node.executor.attach(o.request.transferId);
    const reportSub = o.onReport
      ? node.bus.subscribe<ChunkReport>(subjects.report(o.request.transferId), o.onReport)
      : undefined;
    const actor = actorProxy(node.host, 'SchedulerActor', o.request.transferId);
    // Distinct chunks reported verified since `status` was taken (a hedged chunk may be reported twice), from
    // before the start: a chunk counted here and in the status too only makes the next poll come sooner.
    let verifiedSince = new Set<number>();
    const wait = statusWait();
    // the status the poll below last took (none before the start answers)
    let polled: TransferStatus | undefined;
    // Set once every chunk was seen complete or reported verified: from then on the poll runs every END_POLL_MS.
    // Sticky because the status taken right after the last report may not count that chunk yet (the scheduler
    // handles the report after this subscriber), while the reset below has already dropped it from
    // verifiedSince: a 1 MiB fetch then waited a whole FETCH_POLL_MS more (~100 ms of its ~250).
    let endNear = false;
    // chunks verified before the swarm peer listens to the reports itself (it starts after the transfer, whose
    // status says whether to scan the file): without them a member never announced its first chunks, and as their
    // owner kept the origin closed to the others for them until it left the swarm. Undefined once it listens.
    let early: number[] | undefined = o.swarm ? [] : undefined;
    const endSub = node.bus.subscribe<ChunkReport>(subjects.report(o.request.transferId), (r) => {
      if (!r.ok) return;
      early?.push(r.chunk);
      verifiedSince.add(r.chunk);
      // the last missing chunk: ask for the status now rather than at the end of a FETCH_POLL_MS wait
      if (polled && polled.complete + verifiedSince.size >= polled.total) {
        endNear = true;
        wait.wake();
      }
    });
    // the reader's source listens before the start: it knows every chunk verified in this run (passive: its reads
    // raise no priority, the transfer runs at full speed and a pipe reads the whole file; see transferContentSource)
    readerSource = o.reader
      ? transferContentSource(node.host, o.request.transferId, node.verifiedChunks, {
          remember: true,
          passive: true,
        })
      : undefined;
    let status = await actor.invoke('start', o.request);
    if (o.swarm) {
      // loaded only for a swarm (the edge server)
      const { startSwarmPeer } = await import('./swarm.js');
      peer = await startSwarmPeer({
        id: o.swarm.id,
        manifest: m,
        output: o.request.output,
        transferId: o.request.transferId,
        nodeBus: node.bus,
        fabricBus: o.swarm.fabricBus,
        host: o.swarm.host,
        port: o.swarm.port,
        scanExisting: status.resumedChunks > 0,
        verifiedBefore: early ?? [],
        logger: o.logger.child({ component: 'swarm' }),
      });
      early = undefined;
      o.swarm.onUrl?.(peer.edge.url);
    }
    const id = o.request.transferId;
    // one source for the whole transfer: it remembers verified chunks, so reads of them are served at once
    if (o.serve) source = transferContentSource(node.host, id, node.verifiedChunks, { remember: true });
    if (o.reader && readerSource) {
      const reader = o.reader;
      const cancel = async (): Promise<void> => {
        await actor.invoke('cancel');
        wait.wake();
      };
      reading = Promise.resolve(readerSource)
        .then((s) => reader(s))
        .then(
          async (r) => {
            if (r === 'stop') await cancel();
          },
          async (err: unknown) => {
            await cancel().catch(() => undefined);
            throw err;
          },
        );
      // settled (and its error thrown) after the status loop; meanwhile an error is not unhandled
      reading.catch(() => undefined);
    }
    if (o.serve) {
      content = await createContentServer({
        sources: (t) => (t === id ? source : undefined),
        defaultTransfer: id,
        host: o.serve.host,
        port: o.serve.port,
        logger: o.logger.child({ component: 'content' }),
      });
      o.serve.onUrl?.(`${content.url}/content`);
    }
    o.onStarted?.(status);
    let ended = false;
    o.onJoinable?.(async (edges) =>
      ended ? [] : (await actor.invoke('joinSources', { edges }).catch(() => ({ joined: [] }))).joined,
    );
    const every = o.progressMs ?? 250;
    // the end is noticed within END_POLL_MS of the last chunk's report, a failure within FETCH_POLL_MS
    // (nextStatusPollMs); the edges' views are asked for only when progress is reported
    let lastProgress = performance.now();
    try {
      while (!terminalStates.includes(status.state)) {
        polled = status;
        const ms = endNear ? END_POLL_MS : nextStatusPollMs(status, verifiedSince.size, every);
        if (ms === END_POLL_MS) endNear = true;
        await wait.sleep(ms);
        // reports from here on count against the status taken next (one counted in both only shortens the wait)
        verifiedSince = new Set();
        const progressDue = performance.now() - lastProgress >= every;
        status = await actor.invoke('status', progressDue ? { edges: true } : undefined);
        const ended = terminalStates.includes(status.state);
        if (ended && status.edges === undefined) status = await actor.invoke('status', { edges: true });
        if (ended || progressDue) {
          lastProgress = performance.now();
          o.onProgress?.(status);
        }
      }
    } finally {
      ended = true;
      endSub.unsubscribe();
    }
    reportSub?.unsubscribe();
    // the reader ends with the transfer (the rest of a done one, or cut by a failed one); its error comes first
    await reading;
    // a start answered with the status of a transfer that had ended already: the sources come with the details
    if (status.edges === undefined) status = await actor.invoke('status', { edges: true });
    if (status.state === 'failed')
      throw Object.assign(
        new PortalError(
          'PORTAL_TRANSFER_FAILED',
          `transfer ${status.transferId} failed: ${status.error ?? 'unknown reason'}`,
        ),
        { sources: sourcesOf(status) },
      );
    // a swarm peer keeps seeding a while after its own transfer (others may still be fetching)
    if (peer && o.swarm?.lingerMs) await new Promise((r) => setTimeout(r, o.swarm!.lingerMs));
    const lingerMs = o.dashboard?.lingerMs;
    if (dash && lingerMs) {
      await dash.pollNow();
      await new Promise((r) => setTimeout(r, lingerMs));
    }
    return status;
  } finally {
    // the reader asks the scheduler until it ends: the node stays up until then
    await reading?.catch(() => undefined);
    await peer?.close();
    if (content) {
      await content.close();
      o.serve?.onClosed?.(content.stats());
    }
    source?.close();
    readerSource?.close();
    await dash?.close();
    await node.close();
  }
}
