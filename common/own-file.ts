import { constants, type Stats } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { PortalError, type PortalErrorCode } from './errors.js';
import { escapeControl } from './redact.js';

/**
 * Why a regular file Portal is about to write into may not be its own, or undefined: it has other hard links
 * (another name, possibly outside the output's folder or root, shares its bytes, so the write would land there
 * too), or another user owns it (who could change the bytes after they were verified). In a folder others can
 * write to (/tmp, a shared download folder) either can be planted before a fetch. `st` must come from fstat of
 * the opened descriptor (or lstat of a path about to be replaced), never stat through a link.
 */
export function notOwnFileReason(st: Pick<Stats, 'nlink' | 'uid'>): string | undefined {
  if (st.nlink > 1) return `has ${st.nlink} hard links (another name shares its bytes)`;
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid) return `belongs to another user (uid ${st.uid})`;
  return undefined;
}

/**
 * Why a folder Portal keeps its own files in (a journal) may be tampered with, or undefined: another user owns
 * it, or anyone may write to it without the sticky bit (then anyone may replace the files in it).
 */
export function notOwnFolderReason(st: Pick<Stats, 'uid' | 'mode'>): string | undefined {
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid) return `belongs to another user (uid ${st.uid})`;
  if ((st.mode & 0o002) !== 0 && (st.mode & 0o1000) === 0) return 'is writable by every user';
  return undefined;
}

/**
 * How openOwnFile opens a file: `read`, `append` (created 0600 when missing), `write` (an existing file, for
 * truncate or in-place writes) or `create` (a new file only: O_EXCL).
 */
export type OwnFileAccess = 'read' | 'append' | 'write' | 'create';

const ACCESS_FLAGS: Record<OwnFileAccess, number> = {
  read: constants.O_RDONLY,
  append: constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT,
  write: constants.O_WRONLY,
  create: constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL,
};

/**
 * Opens `path` only when it is a regular file of this user, never through a symbolic link: O_NOFOLLOW (a link
 * planted at the name fails with ELOOP instead of being followed) and O_NONBLOCK (a FIFO planted there does not
 * hang the open), then fstat of the descriptor: a regular file, this user's, and, when opened for writing, with no
 * other hard link (notOwnFileReason). For journals, commit logs and stored files, whose names are Portal's own.
 * Throws PortalError `code` "`what` <path> is refused: it is a symbolic link | is not a regular file (a FIFO, …) |
 * has N hard links | belongs to another user"; other errors (ENOENT, EACCES, EEXIST for `create`) are thrown as
 * the file system gave them. The descriptor is the caller's to close. `mode` is that of a created file (0600).
 */
export async function openOwnFile(
  path: string,
  access: OwnFileAccess,
  refusal: { code: PortalErrorCode; what: string },
  mode = 0o600,
): Promise<FileHandle> {
  const refuse = (why: string, cause?: unknown): PortalError =>
    new PortalError(
      refusal.code,
      `${refusal.what} ${escapeControl(path)} is refused: ${why}`,
      cause === undefined ? undefined : { cause },
    );
  let fh: FileHandle;
  try {
    fh = await open(path, ACCESS_FLAGS[access] | constants.O_NOFOLLOW | constants.O_NONBLOCK, mode);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ELOOP')
      throw refuse('it is a symbolic link (Portal does not follow links at its own files)', err);
    throw err;
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw refuse(`it is not a regular file (${fileKind(st)})`);
    const foreign =
      access === 'read'
        ? notOwnFileReason({ nlink: 1, uid: st.uid }) // reading a hard-linked file of ours is harmless
        : notOwnFileReason(st);
    if (foreign !== undefined) throw refuse(`it ${foreign}`);
  } catch (err) {
    await fh.close().catch(() => undefined);
    throw err;
  }
  return fh;
}

/** Reads a file opened by openOwnFile('read') as UTF-8 text, and closes it. */
export async function readOwnFile(
  path: string,
  refusal: { code: PortalErrorCode; what: string },
): Promise<string> {
  const fh = await openOwnFile(path, 'read', refusal);
  try {
    return await fh.readFile('utf8');
  } finally {
    await fh.close();
  }
}

function fileKind(st: Stats): string {
  if (st.isDirectory()) return 'a folder';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  return 'not a file';
}
