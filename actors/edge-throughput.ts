/**
 * Each edge's throughput over its recent completions, all its fetches together: the bytes of the last
 * `window` completed chunks after the oldest of them, over the time from the oldest to the newest (the
 * oldest only marks the start). A busy edge's figure is its capacity (what a fetch alone there would get,
 * a pre-empting DEMAND fetch say), which per-fetch estimates — a share of it while several fetches run —
 * do not give. Completions older than `horizonMs` are not counted; fewer than 3 recent ones: not measured.
 */
export class EdgeThroughput {
  private readonly rings: Array<{ at: Float64Array; bytes: Float64Array; n: number }> = [];

  constructor(
    private readonly window = 16,
    private readonly horizonMs = 2000,
  ) {}

  /** Records a chunk of `bytes` completed from edge `edge` at `nowMs`. */
  completed(edge: number, bytes: number, nowMs: number): void {
    let r = this.rings[edge];
    if (!r)
      this.rings[edge] = r = {
        at: new Float64Array(this.window),
        bytes: new Float64Array(this.window),
        n: 0,
      };
    const i = r.n++ % this.window;
    r.at[i] = nowMs;
    r.bytes[i] = bytes;
  }

  /** Bytes/s of edge `edge` at `nowMs`, or 0 when not measured (fewer than 3 completions within the horizon). */
  bytesPerSec(edge: number, nowMs: number): number {
    const r = this.rings[edge];
    if (!r) return 0;
    const count = Math.min(r.n, this.window);
    let oldest = Infinity;
    let newest = -Infinity;
    let sum = 0;
    let used = 0;
    let oldestBytes = 0;
    for (let k = 0; k < count; k++) {
      const at = r.at[k];
      if (nowMs - at > this.horizonMs) continue;
      used++;
      sum += r.bytes[k];
      if (at < oldest) {
        oldest = at;
        oldestBytes = r.bytes[k];
      }
      if (at > newest) newest = at;
    }
    if (used < 3 || !(newest > oldest)) return 0;
    return ((sum - oldestBytes) * 1000) / (newest - oldest);
  }
}
