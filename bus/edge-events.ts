import { PortalError } from '../common/errors.js';
import { subjects, type Bus, type Subscription } from './types.js';
import type { EdgeHaveEvent, EdgeTelemetryEvent } from '../common/vocabulary.js';
import { clearBit, setBit } from '../common/bitset.js';

/** The availability an edge announced for one manifest, after applying its have messages in order. */
export interface EdgeHaveState {
  edgeId: string;
  manifestId: string;
  chunkCount: number;
  /** Little-endian bitset, bit i of byte i>>3 = the edge holds chunk i. */
  bitmap: Uint8Array;
  seq: number;
}

/** Callbacks of an edge event bridge; each may be async (errors go to onError). */
export interface EdgeEventHandlers {
  /** Every telemetry message; `first` is true for the first one of an edge this bridge has seen (an announcement). */
  onTelemetry?: (ev: EdgeTelemetryEvent, info: { first: boolean }) => void | Promise<void>;
  /** Availability after a full message, or an incremental one that applied to the last known state. */
  onHave?: (state: EdgeHaveState, ev: EdgeHaveEvent) => void | Promise<void>;
  /** An incremental message whose base is not the last state seen (lost or reordered message): wait for a full one, or ask the edge (/v1/have). */
  onHaveGap?: (
    ev: EdgeHaveEvent & { kind: 'incremental' },
    knownSeq: number | undefined,
  ) => void | Promise<void>;
  onError?: (err: unknown, subject: string) => void;
  /**
   * Edges the bridge tracks at most (default DEFAULT_MAX_EDGES). Once that many edges were seen,
   * events of further edges are dropped and counted (`stats().droppedEvents`), so a flood of invented
   * edge ids costs a counter, not memory (an availability map and an actor per id).
   */
  maxEdges?: number;
  /** Called for the first event dropped of each new edge past the cap (log it, rate-limited). */
  onEdgeDropped?: (edgeId: string) => void;
}

/** Edges one bridge tracks by default: far more than a deployment has, far less than a flood. */
export const DEFAULT_MAX_EDGES = 10_000;
/** Availability states kept per tracked edge on average (edge × manifest pairs ≤ maxEdges × this). */
const MANIFESTS_PER_EDGE = 16;

/** Counters of a bridge. */
export interface EdgeEventBridgeStats {
  /** Edges tracked now. */
  edges: number;
  maxEdges: number;
  /** Events dropped because their edge came past the cap. */
  droppedEvents: number;
}

/** A running bridge. */
export interface EdgeEventBridge {
  /** The availability last applied for an edge and manifest. */
  have(edgeId: string, manifestId: string): EdgeHaveState | undefined;
  /** Edges that sent telemetry or availability. */
  edges(): string[];
  stats(): EdgeEventBridgeStats;
  close(): void;
}

/**
 * Subscribes to `portal.edge.*.telemetry` and `portal.edge.*.have` on `bus` and calls the handlers with
 * decoded, validated events (the NATS bus dead-letters what does not decode, so handlers see only good ones).
 * Keeps the availability of every edge and manifest, applying incremental messages in sequence; a stale one
 * (seq not above the last) is ignored. Throws PORTAL_INVALID_ARGUMENT without a bus.
 */
export function createEdgeEventBridge(bus: Bus, handlers: EdgeEventHandlers): EdgeEventBridge {
  if (!bus || typeof bus.subscribe !== 'function')
    throw new PortalError('PORTAL_INVALID_ARGUMENT', 'bus: expected a Bus');
  const seen = new Set<string>();
  const maxEdges = handlers.maxEdges ?? DEFAULT_MAX_EDGES;
  if (!Number.isInteger(maxEdges) || maxEdges < 1)
    throw new PortalError(
      'PORTAL_INVALID_ARGUMENT',
      `maxEdges: expected a positive integer, got ${String(maxEdges)}`,
    );
  let droppedEvents = 0;
  /** Tracks `edgeId` when it is known or there is room; false (and counted) when it is past the cap. */
  const admit = (edgeId: string): boolean => {
    if (seen.has(edgeId)) return true;
    if (seen.size < maxEdges) {
      seen.add(edgeId);
      return true;
    }
    droppedEvents++;
    handlers.onEdgeDropped?.(edgeId);
    return false;
  };
  const states = new Map<string, EdgeHaveState>();
  const key = (edgeId: string, manifestId: string): string => `${edgeId}\u0000${manifestId}`;
  const fail = (err: unknown, subject: string): void => {
    if (handlers.onError) handlers.onError(err, subject);
    else process.emitWarning(`edge event handler for ${subject} failed: ${String(err)}`);
  };
  const call = async (subject: string, fn: () => void | Promise<void>): Promise<void> => {
    try {
      await fn();
    } catch (err) {
      fail(err, subject);
    }
  };

  const subs: Subscription[] = [
    bus.subscribe<EdgeTelemetryEvent>(subjects.allEdgeTelemetry, (ev, subject) => {
      const first = !seen.has(ev.edgeId);
      if (!admit(ev.edgeId)) return;
      if (handlers.onTelemetry) return call(subject, () => handlers.onTelemetry!(ev, { first }));
    }),
    bus.subscribe<EdgeHaveEvent>(subjects.allEdgeHave, (ev, subject) => {
      if (!admit(ev.edgeId)) return;
      const k = key(ev.edgeId, ev.manifestId);
      const cur = states.get(k);
      if (cur && ev.seq <= cur.seq) return; // stale or duplicate
      if (!cur && states.size >= maxEdges * MANIFESTS_PER_EDGE) {
        droppedEvents++; // an admitted edge announcing endless manifests: bounded like the edges
        return;
      }
      let next: EdgeHaveState;
      if (ev.kind === 'full') {
        next = {
          edgeId: ev.edgeId,
          manifestId: ev.manifestId,
          chunkCount: ev.chunkCount,
          bitmap: ev.bitmap.slice(0, Math.ceil(ev.chunkCount / 8)),
          seq: ev.seq,
        };
      } else {
        if (!cur || cur.seq !== ev.baseSeq || cur.chunkCount !== ev.chunkCount) {
          if (handlers.onHaveGap) return call(subject, () => handlers.onHaveGap!(ev, cur?.seq));
          return;
        }
        const bitmap = cur.bitmap.slice();
        for (const c of ev.added) setBit(bitmap, c);
        for (const c of ev.removed) clearBit(bitmap, c);
        next = { ...cur, bitmap, seq: ev.seq };
      }
      states.set(k, next);
      if (handlers.onHave) return call(subject, () => handlers.onHave!(next, ev));
    }),
  ];

  return {
    have: (edgeId, manifestId) => states.get(key(edgeId, manifestId)),
    edges: () => [...seen],
    stats: () => ({ edges: seen.size, maxEdges, droppedEvents }),
    close() {
      for (const s of subs) s.unsubscribe();
    },
  };
}
