import { types } from 'node:util';
import { PortalError } from './errors.js';
import { escapeControl } from './redact.js';

/** A Node file system error (errno exception). */
type FsError = NodeJS.ErrnoException;

/**
 * An Error of any realm: `instanceof Error` is false for one made by another context's constructors (a vm
 * context, as jest runs tests in, gets Node's fs errors from the main one).
 */
const isError = (err: unknown): err is Error => err instanceof Error || types.isNativeError(err);

/** The output's file system is full or the user's quota spent (POSIX errno names). */
const NO_SPACE_CODES = new Set(['ENOSPC', 'EDQUOT']);

/**
 * Local write errors no source can cure: a file larger than the process or the file system allows (EFBIG:
 * `ulimit -f`), an I/O error of the disk (EIO), no permission (EACCES, EPERM), a read-only file system (EROFS).
 */
const LOCAL_WRITE_CODES = new Set(['EFBIG', 'EIO', 'EACCES', 'EPERM', 'EROFS']);

/**
 * Adds `path` to a file system error raised through a FileHandle (`fh.write`, `fh.sync`…: Node names no path
 * there: "ENOSPC: no space left on device, write"), so whoever reports it can name the file. Returns `err`.
 */
export function withPath(err: unknown, path: string): unknown {
  const e = err as FsError | undefined;
  if (isError(err) && typeof e?.code === 'string' && e.path === undefined) e.path = path;
  return err;
}

/**
 * A local write error as one PortalError naming the file: ENOSPC or EDQUOT is PORTAL_NO_SPACE ('no space left
 * on device: cannot write <path> (ENOSPC)', exit 3); EFBIG, EIO, EACCES, EPERM or EROFS is PORTAL_TRANSFER_FAILED
 * ("the output cannot be written (a local error, not a source's): cannot write <path>: <errno message>", exit 3,
 * as the actor reports a chunk it cannot write). `path` is used when the error names none (see withPath).
 * Undefined for anything else (not a file system error, another errno, no path known).
 */
export function localWriteError(err: unknown, path?: string): PortalError | undefined {
  const e = err as FsError | undefined;
  if (!isError(err) || typeof e?.code !== 'string') return undefined;
  const file = typeof e.path === 'string' ? e.path : path;
  if (file === undefined) return undefined;
  const shown = escapeControl(file);
  if (NO_SPACE_CODES.has(e.code))
    return new PortalError('PORTAL_NO_SPACE', `no space left on device: cannot write ${shown} (${e.code})`, {
      cause: err,
    });
  if (LOCAL_WRITE_CODES.has(e.code))
    return new PortalError(
      'PORTAL_TRANSFER_FAILED',
      `the output cannot be written (a local error, not a source's): cannot write ${shown}: ${escapeControl(e.message)}`,
      { cause: err },
    );
  return undefined;
}

/**
 * Whether an error of errno `code` has the cause a failure `reason` names: a local write error's code (ENOSPC,
 * EDQUOT, EFBIG, EIO, EACCES, EPERM, EROFS) that the reason names, or ENOSPC/EDQUOT for a reason saying the disk is
 * full ('no space left on device…', as localWriteError and the actors word it). False for any other code.
 */
export function sameLocalWriteCause(reason: string, code: unknown): boolean {
  if (typeof code !== 'string') return false;
  if (NO_SPACE_CODES.has(code)) return reason.includes('no space left on device') || reason.includes(code);
  return LOCAL_WRITE_CODES.has(code) && reason.includes(code);
}
