import { checkArg } from '../common/errors.js';
import type { ChunkScheduler } from './scheduler.js';
import { ChunkStatus } from './types.js';

/** Options of SwarmSelection. */
export interface SwarmSelectionOptions {
  /**
   * A member whose announced holdings of the chunks it owns have not grown for this long (ms) is taken to be stuck:
   * the others may then fetch its chunks from the origin (default STEAL_AFTER_MS).
   */
  stealAfterMs?: number;
}

/**
 * Default SwarmSelectionOptions.stealAfterMs: ten announcement periods of a peer (≤ 1 s apart). At 5 s, members on a
 * host at load 20–30 were taken for stuck while their haves were merely late, and a third of the chunks the origin
 * served twice at 8 × 64 MiB were such take-overs.
 */
export const STEAL_AFTER_MS = 10_000;

/**
 * Least fetch timeout of a swarm member's origin, ms. The origin is capped and shared by every member, so its chunk
 * times swing with the members' number and CPU; a fetch it times out has nowhere to go but the origin again, where
 * it restarts from byte 0 — at 8 members × 64 MiB on a loaded host, fetches cut at the adaptive 2 s floor were
 * most of the bytes the origin served twice (BENCHMARKS.md, issue 18). A dead origin still fails at once by its
 * connection errors.
 */
export const SWARM_SOURCE_TIMEOUT_MS = 30_000;

/**
 * Piece selection for one swarm member: which chunks it takes from the origin, and in what order. Pure (no I/O;
 * times are passed in); it drives the scheduler only through its inputs (`setAvailability`, `setPriority`), so the
 * kernels (CPU reference and GPU) are untouched. The origin — the edges the transfer started with — is a capped
 * source that every member shares, so the rules aim at one cost: bytes the origin serves.
 *
 * 1. **Back to the origin only for chunks no live peer holds** (Dragonfly's back-to-source only when no parent has
 *    the piece): a source edge stops being a candidate of a chunk as soon as a live peer announces it, so neither
 *    ranking, spill, failover nor the endgame hedge sends that chunk to the origin.
 * 2. **Each chunk has one member that fetches it from the origin** (rendezvous hashing: Thaler & Ravishankar,
 *    "Using name-based mappings to increase hit rates", IEEE/ACM ToN 1998): the member with the highest
 *    hash(member, chunk) among those it knows (itself and the live peers) owns the chunk, and only the owner has the
 *    origin as a candidate for it. Random-first piece selection alone (what the swarm did before) leaves every
 *    member drawing from the same pool of chunks nobody has announced yet: while a have is on its way (a verify,
 *    NATS, a tick — seconds on a loaded host) the chunk looks free to all, and idle origin slots fill with chunks
 *    others are already fetching. At 8 members × 32 MiB that made the origin serve the file 2.4–3 times
 *    (BENCHMARKS.md, issue 18). Members that briefly see different member sets (a join on its way) disagree only on
 *    the chunks the newcomer owns.
 * 3. **A stuck owner's chunks are taken over**: when a live peer's holdings of the chunks it owns have not grown for
 *    `stealAfterMs` (10 s), the origin becomes a candidate of its unheld chunks here too. A member that leaves (offline,
 *    given up) hands its chunks to the next owner at once; a chunk that would fail for want of a source
 *    (FAILED_PERMANENT: its peers failed it) gets the origin back (`rescue`).
 *
 * A member fetches the chunks it owns in a pseudo-random order of its own (BitTorrent's random first pieces), and
 * everything else from peers in the order their chunks become available (priorities within (NORMAL − 1, NORMAL):
 * above pre-position work, below what a reader raises). Costs: O(chunks × members) on a membership change,
 * O(chunks) per holdings announcement (as `ChunkScheduler.setEdgeHoldings`), O(peers) per tick otherwise.
 */
export class SwarmSelection {
  private readonly n: number;
  private readonly selfSeed: number;
  private readonly sources: number[];
  private readonly stealAfterMs: number;
  /** Edge index → the peer's id, seed, announced holdings and when its holdings of its own chunks last grew. */
  private readonly peers = new Map<number, { id: string; seed: number; bits: Uint8Array; grewAt: number }>();
  /** Live peers holding each chunk. */
  private readonly holders: Uint16Array;
  /** Owner of each chunk: SELF or a peer's edge index. */
  private readonly owner: Int32Array;
  /** 1 where the sources are candidates of the chunk (as last told to the scheduler). */
  private readonly open: Uint8Array;
  /** 1 where `rescue` gave the sources back for good. */
  private readonly forced: Uint8Array;
  /** Peers counted as members and holders (live at the last sync). */
  private readonly live = new Set<number>();
  /** Live peers taken to be stuck (their chunks are open to everyone). */
  private readonly stuck = new Set<number>();
  private membersStale = true;

  /**
   * `selfId`: this member's id as its peers know it (its swarm edge id). `sourceEdges`: the scheduler's edge
   * indices of the origin. Throws PORTAL_INVALID_ARGUMENT on an empty id or an edge index outside the scheduler.
   * The sources stay candidates of every chunk until the first `sync`.
   */
  constructor(
    private readonly core: ChunkScheduler,
    private readonly selfId: string,
    sourceEdges: Iterable<number>,
    opts: SwarmSelectionOptions = {},
  ) {
    checkArg(typeof selfId === 'string' && selfId.length > 0, 'selfId', 'a non-empty swarm id');
    this.n = core.chunks.n;
    this.selfSeed = idSeed(selfId);
    this.sources = [...sourceEdges];
    for (const e of this.sources)
      checkArg(
        Number.isInteger(e) && e >= 0 && e < core.edges.e,
        'sourceEdges',
        'edge indices of the scheduler',
      );
    this.stealAfterMs = opts.stealAfterMs ?? STEAL_AFTER_MS;
    checkArg(this.stealAfterMs > 0, 'stealAfterMs', 'a positive number of ms');
    this.holders = new Uint16Array(this.n);
    this.owner = new Int32Array(this.n).fill(SELF);
    this.open = new Uint8Array(this.n).fill(1);
    this.forced = new Uint8Array(this.n);
  }

  /**
   * Records what peer `edge` (id `peerId`) announced it holds (bit i = chunk i, little-endian bytes) at `now` (ms,
   * any monotonic clock the caller also passes to `sync`). Call after the scheduler's own `setEdgeHoldings` for
   * the edge. Throws PORTAL_INVALID_ARGUMENT for a source edge or a bitmap shorter than the chunk count.
   */
  peerHoldings(edge: number, peerId: string, bitmap: Uint8Array, now: number): void {
    checkArg(!this.sources.includes(edge), 'edge', 'a peer edge, not a source edge');
    checkArg(bitmap.length * 8 >= this.n, 'bitmap', `at least ${this.n} bits`);
    let p = this.peers.get(edge);
    if (!p) {
      p = { id: peerId, seed: idSeed(peerId), bits: new Uint8Array(Math.ceil(this.n / 8)), grewAt: now };
      this.peers.set(edge, p);
    }
    const old = p.bits;
    const next = bitmap.slice(0, old.length);
    const isLive = this.live.has(edge);
    for (let byte = 0; byte < old.length; byte++) {
      const changed = old[byte] ^ next[byte];
      if (changed === 0) continue;
      for (let b = 0; b < 8; b++) {
        if (((changed >>> b) & 1) === 0) continue;
        const c = byte * 8 + b;
        if (c >= this.n) break;
        const gained = ((next[byte] >>> b) & 1) === 1;
        if (gained && this.owner[c] === edge) p.grewAt = now;
        if (!isLive) continue;
        this.holders[c] += gained ? 1 : -1;
        this.apply(c);
      }
    }
    p.bits = next;
  }

  /**
   * Brings members, holders and stuck owners in line with the scheduler's edge table (a peer is live while
   * available) at `now`, and on a membership change every chunk's owner and priority. Call before each
   * tick.
   */
  sync(now: number): void {
    const edges = this.core.edges;
    for (const [e, p] of this.peers) {
      // available, whatever its slots: a peer gated to 0 slots for a while (the tail gate) is still a member
      const isLive = edges.available[e] === 1;
      if (isLive === this.live.has(e)) continue;
      if (isLive) {
        this.live.add(e);
        p.grewAt = now;
      } else {
        this.live.delete(e);
        this.stuck.delete(e);
      }
      this.membersStale = true;
      const d = isLive ? 1 : -1;
      for (let byte = 0; byte < p.bits.length; byte++) {
        const v = p.bits[byte];
        if (v !== 0) for (let b = 0; b < 8; b++) if ((v >>> b) & 1) this.holders[byte * 8 + b] += d;
      }
    }
    if (this.membersStale) this.assignOwners();
    for (const e of this.live) {
      const isStuck = now - this.peers.get(e)!.grewAt >= this.stealAfterMs;
      if (isStuck === this.stuck.has(e)) continue;
      if (isStuck) this.stuck.add(e);
      else this.stuck.delete(e);
      for (let c = 0; c < this.n; c++) if (this.owner[c] === e) this.apply(c);
    }
  }

  /**
   * Gives the sources back for good to chunks that would fail for want of a candidate (FAILED_PERMANENT: their
   * peers failed them). Call after each tick; returns how many chunks it gave back.
   */
  rescue(): number {
    if (this.core.progress().failedPermanent === 0) return 0;
    const status = this.core.chunks.status;
    let given = 0;
    for (let c = 0; c < this.n; c++) {
      if (status[c] !== ChunkStatus.FAILED_PERMANENT || this.open[c] === 1) continue;
      this.forced[c] = 1;
      this.apply(c);
      if (status[c] !== ChunkStatus.FAILED_PERMANENT) given++;
    }
    return given;
  }

  /** True when edge `e` is one of the origin's (a source edge the transfer started with). */
  isSource(e: number): boolean {
    return this.sources.includes(e);
  }

  /** The members this one divides the chunks among: its own id first, then the live peers' (for status and tests). */
  members(): string[] {
    return [this.selfId, ...[...this.live].map((e) => this.peers.get(e)!.id)];
  }

  /** Chunks this member owns under the current members (for status and tests). */
  ownedCount(): number {
    let own = 0;
    for (let c = 0; c < this.n; c++) if (this.owner[c] === SELF) own++;
    return own;
  }

  /** Tells the scheduler whether the sources are candidates of chunk `c` now, when that changed. */
  private apply(c: number): void {
    const o = this.owner[c];
    const want =
      this.forced[c] === 1 ||
      (this.holders[c] === 0 && (o === SELF || this.stuck.has(o) || !this.live.has(o)))
        ? 1
        : 0;
    if (want === this.open[c]) return;
    this.open[c] = want;
    if (this.core.chunks.status[c] === ChunkStatus.COMPLETE) return;
    for (const s of this.sources) this.core.setAvailability(c, s, want === 1);
  }

  /** Every chunk's owner (highest hash; ties to the lower seed) and priority, then its source candidacy. */
  private assignOwners(): void {
    this.membersStale = false;
    const members = [...this.live].map((e) => ({ e, seed: this.peers.get(e)!.seed }));
    for (let c = 0; c < this.n; c++) {
      let owner = SELF;
      let ownerSeed = this.selfSeed;
      let ownerH = mix(this.selfSeed, c);
      for (const m of members) {
        const h = mix(m.seed, c);
        if (h > ownerH || (h === ownerH && m.seed < ownerSeed)) {
          owner = m.e;
          ownerSeed = m.seed;
          ownerH = h;
        }
      }
      this.owner[c] = owner;
      // own chunks first, each member in its own order (a second hash of (member, chunk)); the rest below them
      const pos = mix(this.selfSeed ^ ORDER_SALT, c) / 2 ** 32;
      this.core.setPriority(c, owner === SELF ? -0.05 - 0.4 * pos : -0.5 - 0.4 * pos);
      this.apply(c);
    }
  }
}

/** `SwarmSelection.owner` of a chunk this member owns. */
const SELF = -1;

/** Salt of the walk-order hash (any constant other than 0: the order must not follow the ownership hash). */
const ORDER_SALT = 0x5bd1e995;

/** 32-bit seed of a member id (FNV-1a, then the murmur3 finalizer). */
function idSeed(id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
  return fmix32(h);
}

/** Hash of (seed, chunk) as an unsigned 32-bit integer. */
function mix(seed: number, c: number): number {
  return fmix32(seed ^ Math.imul(c + 1, 0x9e3779b9));
}

/** murmur3's 32-bit finalizer (Appleby, MurmurHash3): full avalanche of a 32-bit word. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
