import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createEdgeServer,
  createManifest,
  createPrng,
  type EdgeServer,
  type EdgeServerOptions,
  type Manifest,
} from '../../transfer/index.js';

/** A temp directory for one test file, removed by `cleanup()`. */
export async function makeTempDir(prefix: string): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), `portal-${prefix}-`));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Deterministic pseudo-random bytes. */
export function randomBytes(size: number, seed = 1): Buffer {
  const rand = createPrng(seed);
  const b = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) b[i] = Math.floor(rand() * 256);
  return b;
}

/** Writes `size` deterministic bytes to `dir/name` and returns the path and bytes. */
export async function writeRandomFile(
  dir: string,
  name: string,
  size: number,
  seed = 1,
): Promise<{ path: string; bytes: Buffer }> {
  const bytes = randomBytes(size, seed);
  const path = join(dir, name);
  await writeFile(path, bytes);
  return { path, bytes };
}

/** Runs `fn`, expecting it to reject; returns the rejection. */
export async function rejectionOf(fn: () => unknown): Promise<unknown> {
  try {
    await fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

/**
 * A temp folder (`portal-<prefix>-…`) holding `source.bin`: `chunks` chunks of `chunkSize` random bytes (seeded),
 * the last one 77 bytes short, and its manifest.
 */
export async function sourceFixture(
  prefix: string,
  chunks: number,
  chunkSize: number,
  seed = 1,
): Promise<{ tmp: { dir: string; cleanup: () => Promise<void> }; path: string; manifest: Manifest }> {
  const tmp = await makeTempDir(prefix);
  const src = await writeRandomFile(tmp.dir, 'source.bin', chunks * chunkSize - 77, seed);
  return { tmp, path: src.path, manifest: await createManifest(src.path, { chunkSize }) };
}

/** What createSourceEdge set up: a source file, its manifest and a real loopback edge serving it. */
export interface SourceEdge {
  /** The temp folder holding `source.bin` (and the outputs of the serve tests that use it as their output root). */
  readonly dir: string;
  /** `<dir>/source.bin`. */
  readonly path: string;
  readonly manifest: Manifest;
  readonly edge: EdgeServer;
  /**
   * A SchedulerActor start request for transfer `id` into `output` from the edge (as `e0`, kind portal, `maxParallel`
   * fetches at once, default 4; tick 50 ms), with `extra` over it.
   */
  startBody(id: string, output: string, extra?: Record<string, unknown>): Record<string, unknown>;
  /** Closes the edge, then removes the folder. */
  close(): Promise<void>;
}

/**
 * A temp folder (`portal-<prefix>-…`) holding `source.bin` of `size` random bytes (seeded), its manifest in chunks of
 * `chunkSize`, and a real loopback edge (`createEdgeServer` with `edge`: its id, a bandwidth cap…) serving it.
 */
export async function createSourceEdge(
  prefix: string,
  o: {
    size: number;
    chunkSize: number;
    seed?: number;
    edge?: Omit<EdgeServerOptions, 'source'>;
    maxParallel?: number;
  },
): Promise<SourceEdge> {
  const tmp = await makeTempDir(prefix);
  const src = await writeRandomFile(tmp.dir, 'source.bin', o.size, o.seed);
  const manifest = await createManifest(src.path, { chunkSize: o.chunkSize });
  const edge = await createEdgeServer({ ...o.edge, source: { path: src.path, manifest } });
  const maxParallel = o.maxParallel ?? 4;
  return {
    dir: tmp.dir,
    path: src.path,
    manifest,
    edge,
    startBody: (id, output, extra) => ({
      transferId: id,
      manifest,
      output,
      tickMs: 50,
      edges: [{ id: 'e0', config: { url: edge.url, kind: 'portal', flags: 0, maxParallel }, holds: 'all' }],
      ...extra,
    }),
    async close() {
      await edge.close();
      await tmp.cleanup();
    },
  };
}
