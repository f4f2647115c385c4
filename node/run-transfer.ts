import { subjects } from '../bus/index.js';
import type { ChunkReport } from '../common/index.js';
import {
  actorProxy,
  terminalStates,
  transferContentSource,
  type TransferRequest,
  type TransferStatus,
} from '../actors/index.js';
import { createContentServer, type ContentServer } from '../transfer/index.js';
import { PortalError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import { createDashboard } from '../dashboard/index.js';
import { startEmbeddedNode, type EngineSettings } from './embedded-node.js';

/** One source of a failed transfer as `--json` reports it: id, URL without secrets, last cause, state. */
export interface SourceReport {
  id: string;
  url: string;
  kind: string;
  lastError?: string;
  failuresSinceOk: number;
  retired: boolean;
  chunks: number;
}

/** The sources of a transfer's status, for a failure's `sources` field (URLs are already redacted by the actor). */
export function sourcesOf(s: TransferStatus): SourceReport[] {
  return s.edges.map((e, i) => ({
    id: e.id,
    url: e.url,
    kind: e.kind,
    ...(e.lastError ? { lastError: e.lastError } : {}),
    failuresSinceOk: e.failuresSinceOk ?? 0,
    retired: e.retired ?? false,
    chunks: s.perEdgeChunks[i] ?? 0,
  }));
}

/** Options of runTransfer. */
export interface RunTransferOptions extends EngineSettings {
  request: TransferRequest;
  logger: Logger;
  /** Called about every `progressMs` with the current status. */
  onProgress?: (s: TransferStatus) => void;
  progressMs?: number;
  /** Called with every report the executor publishes (demo accounting). */
  onReport?: (r: ChunkReport) => void;
  /** Called once the scheduler has started (journal verified, tick loop running). */
  onStarted?: (s: TransferStatus) => void;
  /**
   * Serve the content while the transfer runs (`GET /content` and `/v1/transfers/<id>/content`, Range
   * reads; issue 18) on this port (0 = any free port); readers still reading when the transfer ends are
   * served to the end before the node stops.
   */
  serve?: { port: number; host?: string; onUrl?: (url: string) => void };
  /** Serve the live dashboard on this port (0 = any free port) while the transfer runs. */
  dashboard?: { port: number; onUrl?: (url: string) => void; lingerMs?: number };
}

/**
 * Runs one transfer to the end on the embedded default and returns its final status. Resumes
 * from the journal beside the output (its `publishAs` name when it has one) when there is one. Rejects
 * with PORTAL_TRANSFER_FAILED when the transfer fails (no edge can serve a chunk, or the sha256 does not
 * match); the error's `sources` (SourceReport[]) names each source's last cause.
 */
export async function runTransfer(o: RunTransferOptions): Promise<TransferStatus> {
  const node = await startEmbeddedNode({
    // the journal sits beside the file's final name (request.output may be a partial file beside it)
    output: o.request.publishAs ?? o.request.output,
    logger: o.logger,
    backend: o.backend,
    requireGpu: o.requireGpu,
    cpuThreads: o.cpuThreads,
  });
  const dash = o.dashboard
    ? await createDashboard({
        host: node.host,
        transfers: () => [...node.transfers],
        logger: o.logger.child({ component: 'dashboard' }),
        port: o.dashboard.port,
        engineStats: () => node.engine.stats(),
      })
    : undefined;
  if (dash) o.dashboard?.onUrl?.(dash.url);
  let content: ContentServer | undefined;
  try {
    node.executor.attach(o.request.transferId);
    const reportSub = o.onReport
      ? node.bus.subscribe<ChunkReport>(subjects.report(o.request.transferId), o.onReport)
      : undefined;
    const actor = actorProxy(node.host, 'SchedulerActor', o.request.transferId);
    let status = await actor.invoke('start', o.request);
    if (o.serve) {
      const id = o.request.transferId;
      const source = transferContentSource(node.host, id);
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
    const every = o.progressMs ?? 250;
    while (!terminalStates.includes(status.state)) {
      await new Promise((r) => setTimeout(r, every));
      status = await actor.invoke('status');
      o.onProgress?.(status);
    }
    reportSub?.unsubscribe();
    if (status.state === 'failed')
      throw Object.assign(
        new PortalError(
          'PORTAL_TRANSFER_FAILED',
          `transfer ${status.transferId} failed: ${status.error ?? 'unknown reason'}`,
        ),
        { sources: sourcesOf(status) },
      );
    const lingerMs = o.dashboard?.lingerMs;
    if (dash && lingerMs) {
      await dash.pollNow();
      await new Promise((r) => setTimeout(r, lingerMs));
    }
    return status;
  } finally {
    await content?.close();
    await dash?.close();
    await node.close();
  }
}
