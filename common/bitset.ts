/**
 * The byte bitset every chunk bitmap of Portal uses (completion journals, have bitmaps, edge
 * holdings on the wire): bit `i` is bit `i & 7` of byte `i >> 3`, least significant bit first.
 * One home for the bit arithmetic so journals, the bus and the have-bitmap codec cannot disagree.
 * Indices are not range-checked: a read past the end answers false, a write past the end is a no-op
 * on a Uint8Array (typed arrays ignore out-of-range stores).
 */

/** The number of bytes a bitset of `bits` bits takes. */
export function bitsetBytes(bits: number): number {
  return Math.ceil(bits / 8);
}

/** True when bit `i` of `bytes` is set. */
export function hasBit(bytes: ArrayLike<number>, i: number): boolean {
  return ((bytes[i >>> 3] >>> (i & 7)) & 1) === 1;
}

/** Sets bit `i` of `bytes`. */
export function setBit(bytes: Uint8Array, i: number): void {
  bytes[i >>> 3] |= 1 << (i & 7);
}

/** Clears bit `i` of `bytes`. */
export function clearBit(bytes: Uint8Array, i: number): void {
  bytes[i >>> 3] &= ~(1 << (i & 7));
}
