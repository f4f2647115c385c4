import { subjects, type Bus, type Subscription } from '../bus/types.js';
import type { ChunkReport } from '../common/vocabulary.js';
import type { Logger } from '../common/logger.js';
import { createEdgeServer, type EdgeServer } from '../transfer/edge-server.js';
import { openChunkWriter } from '../transfer/chunk-writer.js';
import type { Manifest } from '../transfer/manifest.js';

/** Options of startSwarmPeer. */
export interface SwarmPeerOptions {
  /** The peer's edge id (a NATS subject token: no dots or spaces). */
  id: string;
  manifest: Manifest;
  /** The file the transfer writes (the peer serves its verified chunks from it). */
  output: string;
  transferId: string;
  /** The node's bus, where the transfer's reports pass. */
  nodeBus: Bus;
  /** The bus the peer announces itself and its holdings on (NATS). */
  fabricBus: Bus;
  host?: string;
  port?: number;
  /** Check every chunk already in the file and hold those that match (a resumed transfer). */
  scanExisting?: boolean;
  /** Fetches a peer takes at once from this one (its announced max_parallel, default 8). */
  maxParallel?: number;
  logger: Logger;
}

/** A running swarm peer. */
export interface SwarmPeer {
  readonly edge: EdgeServer;
  /** Stops announcing and serving (announces itself offline first). */
  close(): Promise<void>;
}

/**
 * Makes a fetching node an edge of the swarm (the job Dragonfly and Kraken do for container
 * images): an edge server over the transfer's output file that holds exactly the chunks verified there —
 * each chunk whose report says it was fetched is read back and checked against its CID before it is
 * held (so bytes streamed into the file by an attempt that later failed are never served) — and that
 * announces its URL and holdings on `fabricBus` (`portal.edge.<id>.telemetry|have`) as they grow, so
 * other transfers of the manifest add it as an edge at their next tick. Chunks already in the file
 * (a resumed transfer) are checked and held from the start.
 */
export async function startSwarmPeer(o: SwarmPeerOptions): Promise<SwarmPeer> {
  // the file must exist at its size before the edge opens it (the executor may not have written yet)
  await (await openChunkWriter(o.output, { fileSize: o.manifest.fileSize })).close();
  const edge = await createEdgeServer({
    id: o.id,
    source: { path: o.output, manifest: o.manifest },
    holds: new Set(),
    host: o.host,
    port: o.port,
    logger: o.logger,
    announce: {
      bus: o.fabricBus,
      maxParallel: o.maxParallel ?? 8,
      announceEveryMs: 1000,
      announceCoalesceMs: 50,
    },
  });
  const log = o.logger.child({ swarmPeer: o.id });
  if (o.scanExisting) await edge.addHoldings(o.manifest.chunks.keys());
  const pending = new Set<number>();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let closed = false;
  const flush = (): void => {
    timer = undefined;
    if (closed || pending.size === 0) return;
    const batch = [...pending];
    edge.addHoldings(batch).then(
      () => {
        const held = edge.holdings();
        for (const c of batch) if (held === 'all' || held.has(c)) pending.delete(c);
        // a chunk whose bytes do not match yet (another attempt still writing) is checked again later
        if (pending.size > 0 && !closed) timer ??= setTimeout(flush, 200);
      },
      (err: unknown) => log.warn({ err }, 'swarm holdings not updated'),
    );
  };
  const sub: Subscription = o.nodeBus.subscribe<ChunkReport>(subjects.report(o.transferId), (r) => {
    if (!r.ok) return;
    pending.add(r.chunk);
    timer ??= setTimeout(flush, 10);
  });
  log.info({ url: edge.url }, 'serving verified chunks to the swarm');
  return {
    edge,
    async close() {
      closed = true;
      sub.unsubscribe();
      if (timer) clearTimeout(timer);
      await edge.close();
    },
  };
}
