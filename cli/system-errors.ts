import { PortalError } from '../common/errors.js';
import { localWriteError } from '../common/local-write-error.js';

/** A Node system error (errno exception) as `listen` and `mkdir` raise it. */
type SystemError = NodeJS.ErrnoException & { address?: string; port?: number };

const LISTEN_WHY: Record<string, string> = {
  EADDRINUSE: 'is already in use',
  EACCES: 'needs privileges this process lacks',
  EADDRNOTAVAIL: 'is not an address of this machine',
};

const PATH_WHY: Record<string, string> = {
  EEXIST: 'a file (not a folder) is in the way',
  ENOTDIR: 'a part of the path is a file, not a folder',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EROFS: 'read-only file system',
};

/** Errors of a write whose exit code is not the configuration's (3, not 2): see localWriteError. */
const NOT_CONFIG = new Set(['ENOSPC', 'EDQUOT', 'EFBIG', 'EIO']);

/**
 * Turns a raw Node system error that escaped a command (a `listen` that failed: EADDRINUSE…, a `mkdir` or `open`
 * of a path the user gave) into a one-line PORTAL_CONFIG_INVALID naming the flag whose value it concerns: the flag
 * of `flags` (parsed, with defaults) whose value is the port, or the path or one of its parents. Returns `err`
 * unchanged for anything else (a PortalError, an error no flag explains), which the caller reports as before.
 * A local write error (a full disk, EFBIG, EIO; EACCES, EPERM, EROFS of a file no flag names: a journal, a part
 * file) becomes localWriteError's one line naming the file, exit 3, instead of PORTAL_INTERNAL and a stack.
 */
export function explainSystemError(err: unknown, flags: Record<string, unknown> | undefined): unknown {
  const e = err as SystemError | undefined;
  if (!(err instanceof Error) || !e || typeof e.code !== 'string' || !flags) return err;
  if (NOT_CONFIG.has(e.code)) return localWriteError(err) ?? err;
  const entries = Object.entries(flags);
  if (e.syscall === 'listen' && LISTEN_WHY[e.code] && typeof e.port === 'number') {
    const flag = entries.find(([name, v]) => v === e.port && name.includes('port'))?.[0];
    if (!flag) return err;
    const where = `${e.address ?? ''}${e.address?.includes(':') ? `[${e.port}]` : `:${e.port}`}`;
    return new PortalError(
      'PORTAL_CONFIG_INVALID',
      `--${flag} ${e.port}: ${where} ${LISTEN_WHY[e.code]} (${e.code}); choose another port`,
      { cause: err },
    );
  }
  if (typeof e.path === 'string' && PATH_WHY[e.code]) {
    const path = e.path;
    const flag = entries.find(
      ([, v]) =>
        typeof v === 'string' && v !== '' && (path === v || path.startsWith(`${v.replace(/\/+$/, '')}/`)),
    );
    if (!flag) return localWriteError(err) ?? err;
    return new PortalError(
      'PORTAL_CONFIG_INVALID',
      `--${flag[0]} ${String(flag[1])}: cannot ${e.syscall === 'mkdir' ? 'create the folder' : (e.syscall ?? 'use')} ${path}: ${PATH_WHY[e.code]} (${e.code})`,
      { cause: err },
    );
  }
  return localWriteError(err) ?? err;
}
