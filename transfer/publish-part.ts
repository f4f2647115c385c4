import { link, lstat, rename, unlink } from 'node:fs/promises';
import { PortalError } from '../common/errors.js';
import { escapeControl } from '../common/redact.js';

/**
 * The errors link(2) gives on a file system without hard links (FAT, exFAT, some FUSE and network mounts: EPERM on
 * Linux, ENOTSUP/EOPNOTSUPP elsewhere), or where the call is missing (ENOSYS): the publish falls back to a rename.
 */
const NO_HARD_LINKS = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS']);

/** How publishPart gave the partial file its final name. */
export type PublishedBy = 'link' | 'checked-rename' | 'rename';

/** True when `a` and `b` are one file (a hard link of the other): same device and inode, read as bigints. */
async function sameFile(a: string, b: string): Promise<boolean> {
  const [x, y] = await Promise.all([lstat(a, { bigint: true }), lstat(b, { bigint: true })]);
  return x.dev === y.dev && x.ino === y.ino;
}

/** The refusal of a publish that found something at `output`: names both files. */
function appeared(part: string, output: string, cause?: unknown): PortalError {
  return new PortalError(
    'PORTAL_OUTPUT_REFUSED',
    `output ${escapeControl(output)} was created by another program while the transfer ran: Portal does not replace a file it did not find at the start (it was left as it is), and the finished file is kept as ${escapeControl(part)}`,
    cause === undefined ? undefined : { cause },
  );
}

/**
 * Gives the verified partial file `part` its final name `output` (`<out>.portal-part` → `<out>`). With `replace`
 * (fetch --force, serve's `"overwrite": true`) a rename, which replaces whatever is at `output`. Without it, a file
 * that appeared at `output` while the transfer ran (the start checked that there was none) is never replaced:
 * link(part, output) fails with EEXIST atomically when anything is there, then `part` is unlinked. A crash between
 * the two leaves both names on the one file: a publish that finds `output` to be `part` itself only removes `part`.
 * On a file system without hard links (NO_HARD_LINKS) it falls back to a rename after checking that `output` is
 * absent: a file created between that check and the rename would still be replaced (the window is two system calls,
 * not the transfer). Rejects PORTAL_OUTPUT_REFUSED naming both files when something is at `output` (nothing is
 * changed: `part` keeps its name and bytes); other file-system errors as the system gave them. Resolves how it
 * published.
 */
export async function publishPart(part: string, output: string, replace: boolean): Promise<PublishedBy> {
  if (replace) {
    await rename(part, output);
    return 'rename';
  }
  try {
    await link(part, output);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    if (code === 'EEXIST') {
      if (!(await sameFile(part, output).catch(() => false))) throw appeared(part, output, err);
    } else if (NO_HARD_LINKS.has(code)) {
      const there = await lstat(output).then(
        () => true,
        (e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? false : Promise.reject(e)),
      );
      if (there) throw appeared(part, output);
      await rename(part, output);
      return 'checked-rename';
    } else throw err;
  }
  await unlink(part);
  return 'link';
}
