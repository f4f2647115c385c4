import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createManifest, createPrng, type Manifest } from '../../transfer/index.js';

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
