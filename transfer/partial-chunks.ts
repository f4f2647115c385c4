import { closeSync, constants, openSync, readSync, writeSync } from 'node:fs';
import { createHash, type Hash } from 'node:crypto';

/**
 * Beside an output file, how many bytes of each chunk a streaming fetch has written so far, so that a fetch
 * interrupted by a crash (SIGKILL, a dead thread), a timeout or a cancel can be finished by asking a source
 * for the rest of the chunk only. A record never vouches for the bytes: the chunk's sha256 over the kept
 * prefix (read back from the file) and the rest decides, and a mismatch throws the prefix away.
 *
 * The log is a file of 8-byte slots, slot i at byte 8·i (sparse: untouched slots cost no disk): the bytes
 * written (uint32 LE) and a tag of the chunk's content id (its first 32 bits) so a slot left by other
 * content (another manifest at the same path) reads as empty.
 */
export interface PartialChunkLog {
  /** Bytes [0, n) of `chunk` that a fetch wrote, when the slot is for this `cid` and 0 < n ≤ length; else 0. */
  kept(chunk: number, cid: string, length: number): number;
  /** Records that bytes [0, `bytes`) of `chunk` are written. Never throws: a record that fails only loses the resume. */
  record(chunk: number, cid: string, bytes: number): void;
  /** Empties the slot of `chunk` (its bytes proved wrong). Never throws. */
  forget(chunk: number): void;
  /** Closes the log (idempotent). */
  close(): void;
}

/** The log's path beside `output`. */
export function partialChunkLogPath(output: string): string {
  return `${output}.partial`;
}

const SLOT = 8;
const tagOf = (cid: string): number => Number.parseInt(cid.slice(0, 8), 16) >>> 0;

/** Opens (creates) the log beside `output`; throws the fs error when it cannot be opened. */
export function openPartialChunkLog(output: string): PartialChunkLog {
  const fd = openSync(partialChunkLogPath(output), constants.O_RDWR | constants.O_CREAT, 0o644);
  const slot = Buffer.alloc(SLOT);
  let closed = false;
  const write = (chunk: number, tag: number, bytes: number): void => {
    if (closed) return;
    slot.writeUInt32LE(bytes >>> 0, 0);
    slot.writeUInt32LE(tag, 4);
    try {
      writeSync(fd, slot, 0, SLOT, chunk * SLOT);
    } catch {
      // a full disk or a closed descriptor: the chunk is fetched whole next time, nothing else is lost
    }
  };
  return {
    kept(chunk, cid, length) {
      if (closed) return 0;
      try {
        if (readSync(fd, slot, 0, SLOT, chunk * SLOT) !== SLOT) return 0;
      } catch {
        return 0;
      }
      const n = slot.readUInt32LE(0);
      return slot.readUInt32LE(4) === tagOf(cid) && n > 0 && n <= length ? n : 0;
    },
    record: (chunk, cid, bytes) => write(chunk, tagOf(cid), bytes),
    forget: (chunk) => write(chunk, 0, 0),
    close() {
      if (closed) return;
      closed = true;
      closeSync(fd);
    },
  };
}

/**
 * The sha256 state after bytes [offset, offset + length) of the file `path`, read through `scratch`.
 * Throws the fs error, or an Error when the file ends before those bytes.
 */
export function hashFileRange(path: string, offset: number, length: number, scratch: Buffer): Hash {
  const hash = createHash('sha256');
  const fd = openSync(path, 'r');
  try {
    for (let done = 0; done < length;) {
      const n = readSync(fd, scratch, 0, Math.min(scratch.length, length - done), offset + done);
      if (n <= 0) throw new Error(`${path} ends at byte ${offset + done}, before ${offset + length}`);
      hash.update(scratch.subarray(0, n));
      done += n;
    }
  } finally {
    closeSync(fd);
  }
  return hash;
}
