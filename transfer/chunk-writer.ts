import { open, type FileHandle } from 'node:fs/promises';
import { constants, createReadStream, writeSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { PortalError } from '../common/errors.js';
import { notOwnFileReason } from '../common/own-file.js';

/** Writes verified chunks at their offsets into one output file. */
export interface ChunkWriter {
  readonly path: string;
  readonly fileSize: number;
  /** Writes all of `bytes` at `offset`; rejects PORTAL_INVALID_ARGUMENT past fileSize, PORTAL_TRANSFER_FAILED on fs errors or after close. */
  write(offset: number, bytes: Uint8Array): Promise<void>;
  /**
   * Writes all of `bytes` at `offset` now (pwrite on the calling thread; for data-plane workers, whose thread
   * does nothing else); throws like write rejects. The message names the fs error (ENOSPC: no space left…).
   */
  writeSync(offset: number, bytes: Uint8Array): void;
  /**
   * Flushes written data to disk (fdatasync); rejects PORTAL_TRANSFER_FAILED on fs errors, including those of a
   * background sync (`syncEveryBytes`) that failed since the last call.
   */
  sync(): Promise<void>;
  /** Background fdatasyncs started so far (`syncEveryBytes`; 0 without it). */
  readonly backgroundSyncs: number;
  /** Closes the file once writes in progress finish; idempotent. */
  close(): Promise<void>;
}

function ioError(what: string, err: unknown): PortalError {
  return new PortalError('PORTAL_TRANSFER_FAILED', `${what}: ${(err as Error)?.message ?? String(err)}`, {
    cause: err,
  });
}

/**
 * Opens `path` for chunk writes (r+ when it exists, created exclusively otherwise, so concurrent
 * openers never truncate each other's chunks) and sizes it to `fileSize` with truncate (sparse
 * preallocation; a file is only ever extended by a concurrent opener, never cut). With `syncEveryBytes`, every
 * time that many bytes were written since the last sync an fdatasync starts in the background (none while one
 * runs), so the final sync() finds little left to flush: 128 MiB of page cache took 100–125 ms to fdatasync at
 * the end of a fetch on the dev machine, time the transfer waited for after its last byte. Rejects PORTAL_INVALID_ARGUMENT for bad arguments and
 * PORTAL_TRANSFER_FAILED (fs error as cause) when the file cannot be opened or sized.
 */
export async function openChunkWriter(
  path: string,
  opts: { fileSize: number; syncEveryBytes?: number },
): Promise<ChunkWriter> {
  if (typeof path !== 'string' || path === '')
    throw new PortalError('PORTAL_INVALID_ARGUMENT', 'path: expected a non-empty string');
  const fileSize = opts?.fileSize;
  if (!Number.isSafeInteger(fileSize) || fileSize < 0)
    throw new PortalError(
      'PORTAL_INVALID_ARGUMENT',
      `opts.fileSize: expected a non-negative integer, got ${String(fileSize)}`,
    );
  const syncEvery = opts.syncEveryBytes ?? Infinity;
  if (!(syncEvery > 0))
    throw new PortalError(
      'PORTAL_INVALID_ARGUMENT',
      `opts.syncEveryBytes: expected a positive number, got ${String(opts.syncEveryBytes)}`,
    );
  let fh: FileHandle;
  // O_NOFOLLOW: a symbolic link planted at the output is refused (ELOOP), never written through
  const rw = constants.O_RDWR | constants.O_NOFOLLOW;
  try {
    fh = await open(path, rw);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError(`cannot open ${path}`, err);
    // Exclusive create: when several executors (processes) create the same output at once, only one
    // creates it and the others open what it made — a plain 'w+' would truncate chunks already written.
    try {
      fh = await open(path, rw | constants.O_CREAT | constants.O_EXCL, 0o644);
    } catch (err2) {
      if ((err2 as NodeJS.ErrnoException).code !== 'EEXIST') throw ioError(`cannot create ${path}`, err2);
      try {
        fh = await open(path, rw);
      } catch (err3) {
        throw ioError(`cannot open ${path}`, err3);
      }
    }
  }
  let regular = true;
  try {
    // A device (/dev/null for benchmarks) is written as it is, never sized nor synced.
    const st = await fh.stat();
    regular = st.isFile();
    // checked on the opened descriptor: a hard link or a file of another user planted at the path would have
    // the verified bytes land in (or stay changeable through) a file Portal does not own
    const foreign = regular ? notOwnFileReason(st) : undefined;
    if (foreign !== undefined)
      throw new PortalError(
        'PORTAL_OUTPUT_REFUSED',
        `${path} ${foreign}: Portal writes only into files it owns alone; remove it (or give another output)`,
      );
    if (regular && st.size !== fileSize) await fh.truncate(fileSize);
  } catch (err) {
    await fh.close().catch(() => undefined);
    if (err instanceof PortalError) throw err;
    throw ioError(`cannot size ${path} to ${fileSize} bytes`, err);
  }
  let closed = false;
  let closing: Promise<void> | null = null;
  /** Bytes written since the last (background or final) sync started. */
  let unsynced = 0;
  let backgroundSyncs = 0;
  let backgroundRunning = false;
  /** The error of a background sync, thrown by the next sync(). */
  let backgroundError: unknown;
  const pending = new Set<Promise<unknown>>();
  const track = <T>(p: Promise<T>): Promise<T> => {
    pending.add(p);
    const done = (): void => {
      pending.delete(p);
    };
    p.then(done, done);
    return p;
  };

  /** Counts `n` bytes written; starts a background fdatasync once syncEveryBytes are unsynced. */
  const wrote = (n: number): void => {
    unsynced += n;
    if (unsynced < syncEvery || backgroundRunning || closed || !regular) return;
    unsynced = 0;
    backgroundRunning = true;
    backgroundSyncs++;
    void track(
      fh.datasync().then(
        () => (backgroundRunning = false),
        (err: unknown) => {
          backgroundRunning = false;
          backgroundError ??= err;
        },
      ),
    );
  };

  const check = (offset: number, bytes: Uint8Array): PortalError | undefined => {
    if (closed) return new PortalError('PORTAL_TRANSFER_FAILED', `chunk writer for ${path} is closed`);
    if (!(bytes instanceof Uint8Array))
      return new PortalError('PORTAL_INVALID_ARGUMENT', 'bytes: expected a Buffer or Uint8Array');
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + bytes.length > fileSize)
      return new PortalError(
        'PORTAL_INVALID_ARGUMENT',
        `offset: ${String(offset)} + ${bytes.length} bytes does not fit in ${fileSize} bytes of ${path}`,
      );
    return undefined;
  };

  return {
    path,
    fileSize,
    writeSync(offset, bytes) {
      const bad = check(offset, bytes);
      if (bad) throw bad;
      let done = 0;
      try {
        while (done < bytes.length) {
          const n = writeSync(fh.fd, bytes, done, bytes.length - done, offset + done);
          if (n <= 0) throw new Error('write made no progress');
          done += n;
        }
      } catch (err) {
        throw ioError(`write of ${bytes.length} bytes at ${offset} in ${path} failed`, err);
      }
      wrote(done);
    },
    write(offset, bytes) {
      if (closed)
        return Promise.reject(
          new PortalError('PORTAL_TRANSFER_FAILED', `chunk writer for ${path} is closed`),
        );
      if (!(bytes instanceof Uint8Array))
        return Promise.reject(
          new PortalError('PORTAL_INVALID_ARGUMENT', 'bytes: expected a Buffer or Uint8Array'),
        );
      if (!Number.isSafeInteger(offset) || offset < 0 || offset + bytes.length > fileSize) {
        return Promise.reject(
          new PortalError(
            'PORTAL_INVALID_ARGUMENT',
            `offset: ${String(offset)} + ${bytes.length} bytes does not fit in ${fileSize} bytes of ${path}`,
          ),
        );
      }
      return track(
        (async () => {
          let done = 0;
          try {
            while (done < bytes.length) {
              const { bytesWritten } = await fh.write(bytes, done, bytes.length - done, offset + done);
              if (bytesWritten <= 0) throw new Error('write made no progress');
              done += bytesWritten;
            }
          } catch (err) {
            throw ioError(`write of ${bytes.length} bytes at ${offset} in ${path} failed`, err);
          }
          wrote(done);
        })(),
      );
    },
    sync() {
      if (closed)
        return Promise.reject(
          new PortalError('PORTAL_TRANSFER_FAILED', `chunk writer for ${path} is closed`),
        );
      if (!regular) return Promise.resolve();
      unsynced = 0;
      const failed = backgroundError;
      backgroundError = undefined;
      if (failed !== undefined) return Promise.reject(ioError(`datasync of ${path} failed`, failed));
      return track(
        fh.datasync().catch((err: unknown) => {
          throw ioError(`datasync of ${path} failed`, err);
        }),
      );
    },
    get backgroundSyncs() {
      return backgroundSyncs;
    },
    close() {
      if (closing) return closing;
      closed = true;
      closing = (async () => {
        await Promise.allSettled([...pending]);
        try {
          await fh.close();
        } catch (err) {
          throw ioError(`close of ${path} failed`, err);
        }
      })();
      return closing;
    },
  };
}

/** Streams the file at `path` and returns its sha256 hex (final verification); rejects PORTAL_TRANSFER_FAILED when it cannot be read. */
export async function hashFile(
  path: string,
  opts: { onProgress?: (bytesDone: number) => void } = {},
): Promise<string> {
  if (typeof path !== 'string' || path === '')
    throw new PortalError('PORTAL_INVALID_ARGUMENT', 'path: expected a non-empty string');
  const hash = createHash('sha256');
  let done = 0;
  try {
    for await (const d of createReadStream(path, { highWaterMark: 1024 * 1024 }) as AsyncIterable<Buffer>) {
      hash.update(d);
      done += d.length;
      opts.onProgress?.(done);
    }
  } catch (err) {
    throw ioError(`cannot hash ${path}`, err);
  }
  return hash.digest('hex');
}
