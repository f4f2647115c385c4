/** Helpers the benchmark scripts share: flags, a seeded PRNG and quantiles. */

/** The value after `--name` on the command line, or `fallback`. */
export function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

/** A seeded xorshift32 generator of unsigned 32-bit integers (benchmarks must be repeatable). */
export function xorshift(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

export { quantile } from '../common/quantile.js';

/** A JetStream-enabled nats-server for a benchmark: BENCH_NATS_URL when set, else a fresh one on a free port (stopped and removed by `stop`). */
export async function startBenchNats(): Promise<{ url: string; stop(): Promise<void> }> {
  if (process.env.BENCH_NATS_URL) return { url: process.env.BENCH_NATS_URL, stop: async () => undefined };
  const { startNatsServer } = await import('../harness/index.js');
  const s = await startNatsServer();
  return { url: s.url, stop: () => s.stop() };
}
