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

/**
 * What an edge event handler may answer: 'unknown' when nothing here knows the edge (no announcement with its URL,
 * no transfer naming it): the event is counted (stats().unknownEvents) and gives its edge no claim on a tracked
 * slot. Anything else (undefined) is evidence that the edge is real: it keeps its slot.
 */
export type EdgeEventVerdict = void | 'unknown';

/** Callbacks of an edge event bridge; each may be async (errors go to onError). */
export interface EdgeEventHandlers {
  /** Every telemetry message; `first` is true for the first one of an edge this bridge has seen (an announcement). */
  onTelemetry?: (
    ev: EdgeTelemetryEvent,
    info: { first: boolean },
  ) => EdgeEventVerdict | Promise<EdgeEventVerdict>;
  /** Availability after a full message, or an incremental one that applied to the last known state. */
  onHave?: (state: EdgeHaveState, ev: EdgeHaveEvent) => EdgeEventVerdict | Promise<EdgeEventVerdict>;
  /** An incremental message whose base is not the last state seen (lost or reordered message): wait for a full one, or ask the edge (/v1/have). */
  onHaveGap?: (
    ev: EdgeHaveEvent & { kind: 'incremental' },
    knownSeq: number | undefined,
  ) => void | Promise<void>;
  onError?: (err: unknown, subject: string) => void;
  /**
   * Edges the bridge tracks at most (default DEFAULT_MAX_EDGES). An edge is tracked from its first event; once a
   * handler took one of its events (did not answer 'unknown', did not throw) it is known and keeps its slot. At the
   * cap a new edge takes the slot of the edge judged longest ago without evidence (its events answered 'unknown',
   * failed, or left a gap; counted in `stats().evicted`, its availability forgotten), so invented edge ids whose
   * events nobody takes never shut real edges out; when every slot holds a known edge or one whose first event is
   * still being handled, events of further edges are dropped and counted (`stats().droppedEvents`), so a flood
   * costs a counter, not memory (an availability map and an actor per id).
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
  /** Tracked edges no handler has taken an event of yet (they give way to new edges at the cap). */
  unverified: number;
  /** Edges not known yet that gave their slot to a new edge at the cap. */
  evicted: number;
  /** Events a handler answered 'unknown' (an edge nothing here knows). */
  unknownEvents: number;
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
  /** Edges with evidence (a handler took one of their events): never evicted. */
  const known = new Set<string>();
  /** Edges tracked whose events no handler has judged yet (in flight): kept until judged. */
  const pending = new Set<string>();
  /** Edges whose events a handler judged without evidence ('unknown', an error, a gap), oldest first: they give way. */
  const unverified = new Set<string>();
  /** Availability keys (key()) of each tracked edge, forgotten with it when it is evicted. */
  const keysOf = new Map<string, Set<string>>();
  const maxEdges = handlers.maxEdges ?? DEFAULT_MAX_EDGES;
  if (!Number.isInteger(maxEdges) || maxEdges < 1)
    throw new PortalError(
      'PORTAL_INVALID_ARGUMENT',
      `maxEdges: expected a positive integer, got ${String(maxEdges)}`,
    );
  let droppedEvents = 0;
  let evicted = 0;
  let unknownEvents = 0;
  const tracked = (edgeId: string): boolean =>
    known.has(edgeId) || pending.has(edgeId) || unverified.has(edgeId);
  /**
   * Tracks `edgeId` when it is tracked already, there is room, or an edge judged without evidence can give way
   * (the one judged longest ago); false (and counted) when every slot holds a known edge or one still judged.
   */
  const admit = (edgeId: string): boolean => {
    if (tracked(edgeId)) return true;
    if (known.size + pending.size + unverified.size >= maxEdges) {
      const oldest = unverified.values().next();
      if (oldest.done) {
        droppedEvents++;
        handlers.onEdgeDropped?.(edgeId);
        return false;
      }
      unverified.delete(oldest.value);
      for (const k of keysOf.get(oldest.value) ?? []) states.delete(k);
      keysOf.delete(oldest.value);
      evicted++;
    }
    pending.add(edgeId);
    return true;
  };
  /**
   * What a handler's run says of `edgeId`: evidence makes it known; none (an 'unknown' answer, an error, a gap)
   * makes an edge not known yet one that gives way at the cap. An evicted edge is not tracked again by this.
   */
  const judge = (edgeId: string, evidence: boolean): void => {
    if (known.has(edgeId)) return;
    if (evidence) {
      if (pending.delete(edgeId) || unverified.delete(edgeId)) known.add(edgeId);
    } else if (pending.delete(edgeId)) unverified.add(edgeId);
  };
  const states = new Map<string, EdgeHaveState>();
  const key = (edgeId: string, manifestId: string): string => `${edgeId}\u0000${manifestId}`;
  const fail = (err: unknown, subject: string): void => {
    if (handlers.onError) handlers.onError(err, subject);
    else process.emitWarning(`edge event handler for ${subject} failed: ${String(err)}`);
  };
  const call = async (
    subject: string,
    edgeId: string | undefined,
    fn: () => EdgeEventVerdict | Promise<EdgeEventVerdict>,
  ): Promise<void> => {
    let verdict: EdgeEventVerdict = 'unknown';
    try {
      verdict = await fn();
      if (verdict === 'unknown') unknownEvents++;
    } catch (err) {
      fail(err, subject);
    }
    if (edgeId !== undefined) judge(edgeId, verdict !== 'unknown');
  };

  const subs: Subscription[] = [
    bus.subscribe<EdgeTelemetryEvent>(subjects.allEdgeTelemetry, (ev, subject) => {
      const first = !tracked(ev.edgeId);
      if (!admit(ev.edgeId)) return;
      if (handlers.onTelemetry) return call(subject, ev.edgeId, () => handlers.onTelemetry!(ev, { first }));
    }),
    bus.subscribe<EdgeHaveEvent>(subjects.allEdgeHave, (ev, subject) => {
      if (!admit(ev.edgeId)) return;
      const k = key(ev.edgeId, ev.manifestId);
      const cur = states.get(k);
      if (cur && ev.seq <= cur.seq) return; // stale or duplicate
      if (!cur && states.size >= maxEdges * MANIFESTS_PER_EDGE) {
        droppedEvents++; // an admitted edge announcing endless manifests: bounded like the edges
        return judge(ev.edgeId, false);
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
          // a gap is no evidence: the edge gives way at the cap until one of its events is taken
          const gap = handlers.onHaveGap;
          if (!gap) return judge(ev.edgeId, false);
          return call(subject, undefined, () => gap(ev, cur?.seq)).then(() => judge(ev.edgeId, false));
        }
        const bitmap = cur.bitmap.slice();
        for (const c of ev.added) setBit(bitmap, c);
        for (const c of ev.removed) clearBit(bitmap, c);
        next = { ...cur, bitmap, seq: ev.seq };
      }
      states.set(k, next);
      let keys = keysOf.get(ev.edgeId);
      if (!keys) keysOf.set(ev.edgeId, (keys = new Set()));
      keys.add(k);
      if (handlers.onHave) return call(subject, ev.edgeId, () => handlers.onHave!(next, ev));
    }),
  ];

  return {
    have: (edgeId, manifestId) => states.get(key(edgeId, manifestId)),
    edges: () => [...known, ...pending, ...unverified],
    stats: () => ({
      edges: known.size + pending.size + unverified.size,
      maxEdges,
      droppedEvents,
      unverified: pending.size + unverified.size,
      evicted,
      unknownEvents,
    }),
    close() {
      for (const s of subs) s.unsubscribe();
    },
  };
}
