import { link, lstat, rename, unlink } from 'node:fs/promises';
import { PortalError } from '../common/errors.js';
import { escapeControl } from '../common/redact.js';
import { hashFile } from './chunk-writer.js';

/**
 * The errors link(2) gives on a file system without hard links (FAT, exFAT, some FUSE and network mounts: EPERM on
 * Linux, ENOTSUP/EOPNOTSUPP elsewhere), or where the call is missing (ENOSYS): the publish falls back to a rename.
 */
const NO_HARD_LINKS = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS']);

/** How publishPart gave the partial file its final name. */
export type PublishedBy = 'link' | 'checked-rename' | 'rename' | 'identical';

/** True when `a` and `b` are one file (a hard link of the other): same device and inode, read as bigints. */
async function sameFile(a: string, b: string): Promise<boolean> {
  const [x, y] = await Promise.all([lstat(a, { bigint: true }), lstat(b, { bigint: true })]);
  return x.dev === y.dev && x.ino === y.ino;
}

/** True when `output` is a regular file of `part`'s size whose sha-256 is `sha256` (the part's); false on any doubt. */
async function sameBytes(part: string, output: string, sha256: string): Promise<boolean> {
  try {
    const [p, o] = await Promise.all([lstat(part), lstat(output)]);
    return o.isFile() && o.size === p.size && (await hashFile(output)) === sha256;
  } catch {
    return false;
  }
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
 * not the transfer). A file at `output` that holds the very bytes of `part` (a regular file of its size whose sha-256
 * is `sha256`, the part's, when the caller gives it) is the transfer's own: a run killed after it published but
 * before its journal said so (the demo's SIGKILL at the end of a small file), whose resume fetched the file again.
 * Then `part` is removed and `output` kept as it is ('identical'). Rejects PORTAL_OUTPUT_REFUSED naming both files
 * when something else is at `output` (nothing is changed: `part` keeps its name and bytes); other file-system errors
 * as the system gave them. Resolves how it published.
 */
export async function publishPart(
  part: string,
  output: string,
  replace: boolean,
  sha256?: string,
): Promise<PublishedBy> {
  if (replace) {
    await rename(part, output);
    return 'rename';
  }
  try {
    await link(part, output);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    if (code === 'EEXIST') {
      if (!(await sameFile(part, output).catch(() => false))) {
        if (sha256 === undefined || !(await sameBytes(part, output, sha256)))
          throw appeared(part, output, err);
        await unlink(part);
        return 'identical';
      }
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
