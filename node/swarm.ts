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
  /**
   * Chunks the executor reported verified before this peer subscribed to the reports (run-transfer collects them
   * from the transfer's start on): held at once, read lazily after the subscription so none falls in between.
   */
  verifiedBefore?: Iterable<number>;
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
 * a chunk is held once the executor reports it fetched, which it does only after its bytes matched the CID and
 * were written (the node's executor must write verified bytes only: EmbeddedNodeOptions.swarm) — and that
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
    // the chunks it serves are ones this node has just written: in the page cache
    syncReads: true,
    announce: {
      bus: o.fabricBus,
      maxParallel: o.maxParallel ?? 8,
      announceEveryMs: 1000,
      announceCoalesceMs: 50,
    },
  });
  const log = o.logger.child({ swarmPeer: o.id });
  if (o.scanExisting) await edge.addHoldings(o.manifest.chunks.keys());
  // An ok report is the executor's word that the chunk's bytes hashed to its CID and were written into the file
  // before the report was sent, and a swarm node's executor writes only verified bytes (streamWrites off:
  // node/embedded-node.ts), so nothing unverified can sit in a held chunk's place. Reading the chunk back and
  // hashing it again cost each member a second pass over the whole file on its main thread: the largest part of a
  // member's main-thread CPU at 8 × 64 MiB (BENCHMARKS.md, issue 18, session 6).
  const sub: Subscription = o.nodeBus.subscribe<ChunkReport>(subjects.report(o.transferId), (r) => {
    if (r.ok) edge.holdVerified([r.chunk]);
  });
  if (o.verifiedBefore) edge.holdVerified(o.verifiedBefore);
  log.info({ url: edge.url }, 'serving verified chunks to the swarm');
  return {
    edge,
    async close() {
      sub.unsubscribe();
      await edge.close();
    },
  };
}
