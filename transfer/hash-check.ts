import { open } from 'node:fs/promises';
import { PortalError } from '../common/errors.js';
import { chunkRange, type Manifest } from './manifest.js';
import { cidOf, NO_CID } from './cid.js';

/** Bytes one read of the hash check takes at most (rounded to whole chunks): bounds its memory. */
export const HASH_CHECK_READ_BYTES = 4 * 1024 * 1024;

/** What hashCheck found. */
export interface HashCheckResult {
  /** Indices of the chunks whose bytes hash to their manifest CID. */
  verified: Set<number>;
  /** The first chunk that did not match, with the sha256 its bytes have (absent when all matched). */
  firstMismatch?: { index: number; expected: string; actual: string };
  /** Bytes read and hashed. */
  bytes: number;
}

/**
 * The "hash check" BitTorrent and aria2 clients run on a file they are to seed: reads `path` once from start to
 * end and hashes every chunk of `manifest` (only the indices in `only`, when given) against its CID. A chunk
 * without a CID (NO_CID) is never verified. Cost: one sequential read and one sha256 pass of the file on the
 * calling thread, ~0.6 s per GiB at sha256's ~1.7 GB/s per core (plus the disk's read time for a cold file);
 * memory: one buffer of HASH_CHECK_READ_BYTES (at least one chunk). `onProgress(doneBytes, totalBytes)` is called
 * after every read. Throws PORTAL_INVALID_ARGUMENT when the file cannot be opened or read, and
 * PORTAL_MANIFEST_MISMATCH when it is shorter than the manifest says.
 */
export async function hashCheck(
  path: string,
  manifest: Manifest,
  opts: { only?: Set<number>; onProgress?: (done: number, total: number) => void } = {},
): Promise<HashCheckResult> {
  const n = manifest.chunks.length;
  const perRead = Math.max(1, Math.floor(HASH_CHECK_READ_BYTES / manifest.chunkSize));
  const buf = Buffer.allocUnsafe(perRead * manifest.chunkSize);
  const verified = new Set<number>();
  let firstMismatch: HashCheckResult['firstMismatch'];
  let bytes = 0;
  const fh = await open(path, 'r').catch((cause: unknown) => {
    throw new PortalError('PORTAL_INVALID_ARGUMENT', `${path}: cannot open: ${(cause as Error).message}`, {
      cause,
    });
  });
  try {
    for (let first = 0; first < n; first += perRead) {
      const last = Math.min(n, first + perRead) - 1;
      const wanted = (i: number): boolean => !opts.only || opts.only.has(i);
      let any = false;
      for (let i = first; i <= last && !any; i++) any = wanted(i);
      if (!any) continue;
      const start = chunkRange(manifest, first).offset;
      const end = chunkRange(manifest, last).offset + chunkRange(manifest, last).length;
      const { bytesRead } = await fh.read(buf, 0, end - start, start);
      if (bytesRead !== end - start)
        throw new PortalError(
          'PORTAL_MANIFEST_MISMATCH',
          `${path}: ${start + bytesRead} bytes, shorter than the ${manifest.fileSize} of manifest ${manifest.id}`,
        );
      bytes += bytesRead;
      for (let i = first; i <= last; i++) {
        if (!wanted(i) || manifest.chunks[i] === NO_CID) continue;
        const { offset, length } = chunkRange(manifest, i);
        const actual = cidOf(buf.subarray(offset - start, offset - start + length));
        if (actual === manifest.chunks[i]) verified.add(i);
        else firstMismatch ??= { index: i, expected: manifest.chunks[i], actual };
      }
      opts.onProgress?.(end, manifest.fileSize);
    }
  } finally {
    await fh.close();
  }
  return { verified, ...(firstMismatch ? { firstMismatch } : {}), bytes };
}
