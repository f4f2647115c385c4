import { lstat, mkdir } from 'node:fs/promises';
import path from 'node:path';

/** The file system calls makeDirs uses (tests give their own). */
export interface MakeDirsFs {
  mkdir: (dir: string, opts: { recursive?: boolean; mode?: number }) => Promise<unknown>;
  lstat: (p: string) => Promise<unknown>;
}

/**
 * `mkdir -p dir` (mode for the folders it creates) that rejects with the real cause. Node's recursive mkdir
 * reports ENOENT for a folder it could not create for another reason: on a read-only file system (EROFS) or
 * without write permission on its parent (EACCES) it answers "ENOENT: no such file or directory, mkdir …", which
 * names no cause a user can act on. On ENOENT the missing folders are made again one level at a time, so the
 * error is the one of the first folder that cannot be made (EROFS, EACCES, ENOTDIR…), naming that folder.
 */
export async function makeDirs(dir: string, mode?: number, fs: MakeDirsFs = { mkdir, lstat }): Promise<void> {
  const opts = mode === undefined ? {} : { mode };
  try {
    await fs.mkdir(dir, { ...opts, recursive: true });
    return;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const missing: string[] = [];
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    try {
      await fs.lstat(d);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || path.dirname(d) === d) throw err;
      missing.unshift(d);
    }
  }
  for (const d of missing)
    await fs.mkdir(d, opts).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw err;
    });
}
