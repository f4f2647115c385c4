import { createHash } from 'node:crypto';
import type { Logger } from '../common/logger.js';
import type { EdgeConfig, TransferEdge, TransferRequest } from './types.js';

export { isLocationLabel } from '../common/vocabulary.js';

/** A read of a file at a location, as ReplicaPlacer.onRead takes it. */
export interface ReadAt {
  /** The reader's location label (compared for equality with edges' `location`). */
  location: string;
  /** The file's manifest id. */
  manifestId: string;
  /** How the reading transfer names the manifest; the task names it the same way. */
  manifest: Pick<TransferRequest, 'manifest' | 'manifestUrl' | 'manifestCid'>;
  /**
   * The reading transfer's sources: each edge, its location label (when known) and whether it holds every
   * chunk of the file.
   */
  sources: Array<{ edge: TransferEdge; location?: string; holdsAll: boolean }>;
}

/** What ReplicaPlacer.onRead did: started a task, or why not. */
export type PlacementOutcome =
  | { placed: string }
  | { skipped: 'held-there' | 'no-accepting-edge' | 'already-placed' | 'at-limit' | 'no-source' };

/**
 * The seed's pattern "a file read in one place is replicated to an edge near the readers" (seed 000 §9.2):
 * when a file is read from a location where no edge holds it, start a background pre-position task that
 * copies the whole file onto an edge that accepts chunks (`portal edge --accept`) and carries that location
 * label, from the reading transfer's own sources. The task runs only in capacity foreground transfers leave
 * idle (SchedulerActor's background gate), so replication never slows the read that caused it.
 *
 * Bounded and deduplicated, per host: one task per (manifest, target edge) for the placer's lifetime (the
 * most recent `maxPlaced` pairs are remembered; a forgotten pair may place again, and a task id already
 * done answers with its status); at most `maxRunning` of its tasks running at once (a read beyond that
 * places nothing: the next read of the file tries again); at most `maxEdges` accepting edges remembered
 * (the least recently announced forgotten first). Which edges accept and where they are, the placer learns
 * from transfers' edge configurations and from edge announcements (`noteEdge`).
 */
export class ReplicaPlacer {
  private readonly edges = new Map<string, { url: string; location: string }>();
  private readonly placed = new Set<string>();
  private readonly running = new Set<string>();
  private readonly maxRunning: number;
  private readonly maxEdges: number;
  private readonly maxPlaced: number;

  constructor(
    private readonly opts: {
      /** Starts a pre-position task on this host (SchedulerActor.start); a rejection ends the task here. */
      submit: (req: TransferRequest) => Promise<unknown>;
      maxRunning?: number;
      maxEdges?: number;
      maxPlaced?: number;
      log?: Logger;
    },
  ) {
    this.maxRunning = opts.maxRunning ?? 4;
    this.maxEdges = opts.maxEdges ?? 1024;
    this.maxPlaced = opts.maxPlaced ?? 4096;
  }

  /** Learns (or forgets, when it no longer accepts or has no location) an edge and its location label. */
  noteEdge(id: string, cfg: Pick<EdgeConfig, 'url' | 'location' | 'accepts'>): void {
    this.edges.delete(id);
    if (!cfg.accepts || !cfg.location) return;
    this.edges.set(id, { url: cfg.url, location: cfg.location });
    for (const old of this.edges.keys()) {
      if (this.edges.size <= this.maxEdges) break;
      this.edges.delete(old);
    }
  }

  /** Decides for one read, and starts the task when one is due (without waiting for its start to answer). */
  onRead(r: ReadAt): PlacementOutcome {
    if (r.sources.some((s) => s.location === r.location && s.holdsAll)) return { skipped: 'held-there' };
    // the first accepting edge there (in the order they were learned) that is not already a full source
    const target = [...this.edges].find(([, e]) => e.location === r.location);
    if (!target) return { skipped: 'no-accepting-edge' };
    const [targetId, { url }] = target;
    const key = `${r.manifestId}\n${targetId}`;
    if (this.placed.has(key)) return { skipped: 'already-placed' };
    if (this.running.size >= this.maxRunning) return { skipped: 'at-limit' };
    const sources = r.sources.filter((s) => s.edge.id !== targetId).map((s) => s.edge);
    if (sources.length === 0) return { skipped: 'no-source' };
    const taskId = `replica-${r.manifestId.slice(0, 24)}-${createHash('sha256').update(targetId).digest('hex').slice(0, 12)}`;
    this.placed.add(key);
    for (const old of this.placed) {
      if (this.placed.size <= this.maxPlaced) break;
      this.placed.delete(old);
    }
    this.running.add(taskId);
    const req: TransferRequest = {
      transferId: taskId,
      ...(r.manifest.manifest ? { manifest: r.manifest.manifest } : {}),
      ...(r.manifest.manifestUrl ? { manifestUrl: r.manifest.manifestUrl } : {}),
      ...(r.manifest.manifestCid ? { manifestCid: r.manifest.manifestCid } : {}),
      output: url,
      edges: sources,
      prePosition: {},
    };
    this.opts.log?.info(
      { taskId, manifestId: r.manifestId, location: r.location, target: targetId },
      'replicating a file read where no edge holds it to an accepting edge there',
    );
    this.opts.submit(req).catch((err: unknown) => {
      this.running.delete(taskId);
      this.opts.log?.warn({ err, taskId }, 'replica pre-position task not started');
    });
    return { placed: taskId };
  }

  /** A task of this placer ended (done, failed or cancelled): its running slot is free again. */
  ended(taskId: string): void {
    this.running.delete(taskId);
  }

  /** Accepting edges known, tasks running, (manifest, target) pairs placed. */
  stats(): { edges: number; running: number; placed: number } {
    return { edges: this.edges.size, running: this.running.size, placed: this.placed.size };
  }
}
