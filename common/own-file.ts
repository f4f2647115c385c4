import type { Stats } from 'node:fs';

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
