import {
  closeSync,
  constants,
  fstatSync,
  lstatSync,
  openSync,
  readSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { notOwnFileReason } from '../common/own-file.js';
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

/** Tries to open a log of our own at `file` before giving up (see openPartialChunkLog). */
const OPEN_ATTEMPTS = 4;

/**
 * Opens (creates) the log beside `output`; throws the fs error when it cannot be opened. A symbolic link at the
 * log's path is never followed (O_NOFOLLOW: ELOOP): a link planted there would otherwise have the log's records
 * written through it into a file outside the output's folder (or outside `portal serve`'s output root). A hard link
 * or another user's file planted there is replaced by a new file of our own (the log holds only hints; the other
 * file is left as it was). The descriptor is kept only when the log's name still refers to it after the check: the
 * data threads of one process open the same log, and one of them may replace a planted hard link between another's
 * open and its fstat (that one would then see the planted file with one link left, take it for its own and write
 * into it): it opens again. Throws EINVAL when the name is not a regular file, EAGAIN when it keeps changing.
 */
export function openPartialChunkLog(output: string): PartialChunkLog {
  const file = partialChunkLogPath(output);
  let fd = -1;
  for (let attempt = 1; fd < 0; attempt++) {
    if (attempt > OPEN_ATTEMPTS)
      throw Object.assign(new Error(`${file} keeps being replaced while it is opened`), { code: 'EAGAIN' });
    const opened = openSync(file, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o644);
    const st = fstatSync(opened);
    if (!st.isFile()) {
      closeSync(opened);
      throw Object.assign(new Error(`${file} is not a regular file`), { code: 'EINVAL' });
    }
    if (notOwnFileReason(st) !== undefined) {
      closeSync(opened);
      try {
        unlinkSync(file); // the name goes; the next attempt creates a file of our own
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err; // another thread removed it first
      }
      continue;
    }
    const now = lstatSync(file, { throwIfNoEntry: false });
    if (now !== undefined && now.ino === st.ino && now.dev === st.dev) fd = opened;
    else closeSync(opened); // replaced since it was opened: open what the name holds now
  }
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

/** Smallest step between two records of one chunk's progress (bytes). */
export const PARTIAL_RECORD_MIN_BYTES = 64 * 1024;

/**
 * Bytes of progress between two records of a chunk of `length` bytes: a quarter of the chunk, at least
 * PARTIAL_RECORD_MIN_BYTES. A socket read is ≤ 64 KiB, so recording every piece cost one 8-byte pwrite per
 * 64 KiB received (16 per 1 MiB chunk, as many syscalls as the chunk's own writes); at a quarter it is 4, and a
 * fetch cut short by a crash loses at most a quarter of the chunk's received bytes, which are fetched again (a
 * failure the data thread sees records every byte written: data-worker.ts).
 */
export function partialRecordStep(length: number): number {
  return Math.max(PARTIAL_RECORD_MIN_BYTES, Math.ceil(length / 4));
}

/**
 * The progress of one fetch of `chunk` (`length` bytes, content id `cid`) as it writes: call it with the bytes
 * [0, written) in the file after each write; it records into `log` when `written` has moved partialRecordStep
 * past the last record, and always at `length`. A `written` below the last record (a retry from byte 0)
 * starts the count again from there. Never throws (as PartialChunkLog.record).
 */
export function partialRecorder(
  log: PartialChunkLog,
  chunk: number,
  cid: string,
  length: number,
): (written: number) => void {
  const step = partialRecordStep(length);
  let last = 0;
  return (written) => {
    if (written < last) last = 0;
    if (written - last < step && written !== length) return;
    log.record(chunk, cid, written);
    last = written;
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
