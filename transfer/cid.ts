import { createHash } from 'node:crypto';
import { PortalError } from '../common/errors.js';

const HEX64 = /^[0-9a-f]{64}$/;

/**
 * The CID of a chunk whose hash is not known (mirrors without a manifest, Metalink without sha-256 pieces):
 * 64 zeros, which no sha256 of real data equals. Such a chunk is checked by length only; the whole file is
 * checked by its sha-256 when one is known (`--checksum`), and never trusted on resume.
 */
export const NO_CID = '0'.repeat(64);

/**
 * True when `hex` is an all-zero sha-256 (64 zeros, any case): NO_CID, Portal's "no hash known" marker. A hash read
 * from an input (a Metalink, a manifest file, a Digest header, `--checksum`) that is all zeros would switch its own
 * check off, so inputs refuse it instead (no content has that sha-256 in practice). Never throws.
 */
export function isNoCid(hex: string): boolean {
  return hex.length === 64 && /^0{64}$/.test(hex);
}

/** Computes the content id (lowercase sha256 hex) of `bytes`; never fails for a byte buffer, throws PORTAL_INVALID_ARGUMENT for anything else. */
export function cidOf(bytes: Uint8Array): string {
  if (!(bytes instanceof Uint8Array))
    throw new PortalError('PORTAL_INVALID_ARGUMENT', 'bytes: expected a Buffer or Uint8Array');
  return createHash('sha256').update(bytes).digest('hex');
}

/** True when `value` is a well-formed CID (64 lowercase hex characters); never throws. */
export function isCid(value: unknown): value is string {
  return typeof value === 'string' && HEX64.test(value);
}

/**
 * Checks that `bytes` hash to `cid`, for verifying a fetched chunk before it is written.
 * Throws PORTAL_INVALID_ARGUMENT for a malformed `cid` and PORTAL_CHUNK_CORRUPT (naming both hashes) on mismatch.
 */
export function verifyChunk(bytes: Uint8Array, cid: string): void {
  if (!isCid(cid))
    throw new PortalError(
      'PORTAL_INVALID_ARGUMENT',
      `cid: expected 64 lowercase hex characters, got ${JSON.stringify(cid)}`,
    );
  const actual = cidOf(bytes);
  if (actual !== cid)
    throw new PortalError(
      'PORTAL_CHUNK_CORRUPT',
      `chunk hash mismatch: expected ${cid}, got ${actual} (${bytes.length} bytes)`,
    );
}
