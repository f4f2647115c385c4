/** How the foreground transfers of one host use one edge (EdgeUsageBoard.of). */
export interface EdgeUse {
  /** Chunks of foreground transfers in flight on the edge. */
  inFlight: number;
  /** Foreground transfers that still have chunks waiting which the edge could serve. */
  wanting: number;
}

/**
 * The host-wide view of which edges foreground transfers use, so that background work (pre-position
 * tasks: they run during idle time and do not compete with active transfers)
 * takes an edge only while no foreground transfer uses or wants it. Every foreground SchedulerActor
 * reports its per-edge use after each tick; a background one reads it before dispatching. An edge's
 * bandwidth is shared by all requests to it, so a free slot on an edge a foreground transfer is using
 * is not idle capacity: the rule is per edge, not per slot. In-process (one host); edges are keyed by id.
 */
export class EdgeUsageBoard {
  private readonly byTransfer = new Map<string, Map<string, EdgeUse>>();

  /** Replaces what transfer `transferId` uses (edge id → use). */
  report(transferId: string, use: Map<string, EdgeUse>): void {
    this.byTransfer.set(transferId, use);
  }

  /** Forgets a transfer (it finished, failed or went away). */
  remove(transferId: string): void {
    this.byTransfer.delete(transferId);
  }

  /** The summed use of `edgeId` by every foreground transfer but `except`. */
  of(edgeId: string, except?: string): EdgeUse {
    const out: EdgeUse = { inFlight: 0, wanting: 0 };
    for (const [t, m] of this.byTransfer) {
      if (t === except) continue;
      const u = m.get(edgeId);
      if (!u) continue;
      out.inFlight += u.inFlight;
      out.wanting += u.wanting;
    }
    return out;
  }

  /** Foreground transfers reporting now. */
  get transfers(): number {
    return this.byTransfer.size;
  }
}
