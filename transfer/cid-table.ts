import { PortalError } from '../common/errors.js';

/** Bytes of one CID in a packed table: a raw sha-256 digest. */
export const CID_BYTES = 32;

const HEX64 = /^[0-9a-fA-F]{64}$/;

/**
 * The CIDs of a manifest packed into one buffer: 32 bytes (the raw sha-256) per chunk, in file order. A list of
 * 64-character hex strings costs about 80 bytes of heap per CID on V8 (string header, characters, the array
 * slot); this table costs 32, which is what lets a transfer of 100 million chunks fit in memory. Hex strings are
 * made on demand (`hex`), e.g. for the few chunks a tick dispatches.
 */
export class CidTable {
  /** Number of CIDs. */
  readonly count: number;
  /** `count × 32` bytes: CID i is bytes [32 i, 32 i + 32). Owned by the table; do not mutate. */
  readonly bytes: Uint8Array;

  /**
   * Wraps `bytes` (length a multiple of 32) without copying. Throws PORTAL_INVALID_ARGUMENT when the length is not
   * a multiple of 32.
   */
  constructor(bytes: Uint8Array) {
    if (!(bytes instanceof Uint8Array) || bytes.length % CID_BYTES !== 0)
      throw new PortalError(
        'PORTAL_INVALID_ARGUMENT',
        `bytes: expected a Uint8Array whose length is a multiple of ${CID_BYTES}, got ${bytes?.length ?? typeof bytes}`,
      );
    this.bytes = bytes;
    this.count = bytes.length / CID_BYTES;
  }

  /**
   * Packs hex CIDs (64 hex characters each, any case). Throws PORTAL_MANIFEST_INVALID naming the first entry that
   * is not 64 hex characters.
   */
  static fromHex(list: readonly string[]): CidTable {
    const bytes = new Uint8Array(list.length * CID_BYTES);
    const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i < list.length; i++) {
      const c = list[i];
      if (typeof c !== 'string' || !HEX64.test(c))
        throw new PortalError(
          'PORTAL_MANIFEST_INVALID',
          `manifest.chunks[${i}]: expected 64 hex characters, got ${JSON.stringify(c)}`,
        );
      view.write(c, i * CID_BYTES, CID_BYTES, 'hex');
    }
    return new CidTable(bytes);
  }

  /** Size of the packed table in bytes (`count × 32`). */
  get byteLength(): number {
    return this.bytes.byteLength;
  }

  /** CID `i` as 64 lowercase hex characters. Throws PORTAL_UNKNOWN_CHUNK for an index outside the table. */
  hex(i: number): string {
    this.check(i);
    return Buffer.from(this.bytes.buffer, this.bytes.byteOffset + i * CID_BYTES, CID_BYTES).toString('hex');
  }

  /** The 32 bytes of CID `i` (a view into the table, not a copy). Throws PORTAL_UNKNOWN_CHUNK outside the table. */
  digest(i: number): Uint8Array {
    this.check(i);
    return this.bytes.subarray(i * CID_BYTES, (i + 1) * CID_BYTES);
  }

  /** True when CID `i` equals the raw sha-256 `digest` (32 bytes). Throws PORTAL_UNKNOWN_CHUNK outside the table. */
  matches(i: number, digest: Uint8Array): boolean {
    this.check(i);
    if (digest.length !== CID_BYTES) return false;
    const o = i * CID_BYTES;
    for (let b = 0; b < CID_BYTES; b++) if (this.bytes[o + b] !== digest[b]) return false;
    return true;
  }

  /** True when CID `i` is all zeros (NO_CID: the chunk's hash is not known). */
  isUnknown(i: number): boolean {
    this.check(i);
    const o = i * CID_BYTES;
    for (let b = 0; b < CID_BYTES; b++) if (this.bytes[o + b] !== 0) return false;
    return true;
  }

  /** Every CID as hex, in order (count × ~80 B of heap: for small manifests and the inline JSON form only). */
  toHexArray(): string[] {
    const out = new Array<string>(this.count);
    for (let i = 0; i < this.count; i++) out[i] = this.hex(i);
    return out;
  }

  private check(i: number): void {
    if (!Number.isInteger(i) || i < 0 || i >= this.count)
      throw new PortalError(
        'PORTAL_UNKNOWN_CHUNK',
        `index: expected an integer in [0, ${this.count}), got ${String(i)}`,
      );
  }
}
