import { PortalError } from '../common/errors.js';
import { bitsetBytes, hasBit, setBit } from '../common/bitset.js';

/** Encodes the chunk indices in `holds` (out of `count`) as base64 of a little-endian bitset (bit i of byte i>>3 = holds chunk i); throws PORTAL_INVALID_ARGUMENT for a bad count. */
export function encodeHaveBitmap(holds: Iterable<number> | 'all', count: number): string {
  if (!Number.isSafeInteger(count) || count < 0)
    throw new PortalError(
      'PORTAL_INVALID_ARGUMENT',
      `count: expected a non-negative integer, got ${String(count)}`,
    );
  const bytes = Buffer.alloc(bitsetBytes(count));
  if (holds === 'all') {
    for (let i = 0; i < count; i++) setBit(bytes, i);
  } else {
    for (const i of holds) if (Number.isInteger(i) && i >= 0 && i < count) setBit(bytes, i);
  }
  return bytes.toString('base64');
}

/** Decodes a have-bitmap into the sorted chunk indices it marks; throws PORTAL_INVALID_ARGUMENT when the bitmap is shorter than `count` bits. */
export function decodeHaveBitmap(bitmap: string, count: number): number[] {
  if (typeof bitmap !== 'string')
    throw new PortalError('PORTAL_INVALID_ARGUMENT', 'bitmap: expected a base64 string');
  const bytes = Buffer.from(bitmap, 'base64');
  if (bytes.length < bitsetBytes(count))
    throw new PortalError(
      'PORTAL_INVALID_ARGUMENT',
      `bitmap: ${bytes.length} bytes cannot cover ${count} chunks`,
    );
  const out: number[] = [];
  for (let i = 0; i < count; i++) if (hasBit(bytes, i)) out.push(i);
  return out;
}
