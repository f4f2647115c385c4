import { createServer } from 'node:net';
import { resolve as resolvePath } from 'node:path';
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
  // the dashboard wraps its listen error (PORTAL_DASHBOARD_LISTEN_FAILED, exit 4): the flag that gave the port is named
  const cause = (err as { cause?: SystemError } | undefined)?.cause;
  if (
    (err as { code?: unknown } | undefined)?.code === 'PORTAL_DASHBOARD_LISTEN_FAILED' &&
    cause?.syscall === 'listen'
  ) {
    const named = explainSystemError(cause, flags);
    return named === cause ? err : named;
  }
  const e = err as SystemError | undefined;
  if (!(err instanceof Error) || !e || typeof e.code !== 'string' || !flags) return err;
  if (NOT_CONFIG.has(e.code)) return localWriteError(err) ?? err;
  const entries = Object.entries(flags);
  if (e.syscall === 'listen' && LISTEN_WHY[e.code] && typeof e.port === 'number') {
    // a port flag: its name says port, or it is fetch's --serve PORT
    const flag = entries.find(
      ([name, v]) => v === e.port && (name.includes('port') || name === 'serve'),
    )?.[0];
    return flag ? listenError(flag, e) : err;
  }
  if (typeof e.path === 'string' && PATH_WHY[e.code]) {
    const path = e.path;
    // the flag's path, a file in its folder, or (mkdir -p) a folder above it that could not be made
    const concerns = (v: string): boolean =>
      path === v ||
      path.startsWith(`${v.replace(/\/+$/, '')}/`) ||
      (e.syscall === 'mkdir' && v.startsWith(`${path.replace(/\/+$/, '')}/`));
    const flag = entries.find(
      ([, v]) => typeof v === 'string' && v !== '' && (concerns(v) || concerns(resolvePath(v))),
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

/** The one line of a listen error (EADDRINUSE, EACCES, EADDRNOTAVAIL) of the port `--flag` gave. */
function listenError(flag: string, e: SystemError): PortalError {
  const where = `${e.address ?? ''}${e.address?.includes(':') ? `[${e.port}]` : `:${e.port}`}`;
  return new PortalError(
    'PORTAL_CONFIG_INVALID',
    `--${flag} ${e.port}: ${where} ${LISTEN_WHY[e.code!] ?? e.message} (${e.code}); choose another port`,
    { cause: e },
  );
}

/**
 * Checks, before a command starts any work, that each port a flag names can be listened on (`host`: the address
 * the command binds it on, 127.0.0.1 unless given): a server is bound there and closed at once. Port 0 (any free
 * port) and an absent flag are skipped. Rejects PORTAL_CONFIG_INVALID (exit 2) naming the first flag whose port is
 * taken or not allowed: `--serve 8080: 127.0.0.1:8080 is already in use (EADDRINUSE); choose another port`. The
 * command's own listen may still lose a race for the port; explainSystemError names the flag then too.
 */
export async function checkPortsFree(
  ports: readonly { flag: string; port: number | undefined; host?: string }[],
): Promise<void> {
  for (const { flag, port, host = '127.0.0.1' } of ports) {
    if (port === undefined || port === 0) continue;
    await new Promise<void>((resolve, reject) => {
      const s = createServer();
      s.once('error', (err: SystemError) => reject(listenError(flag, err)));
      s.listen({ port, host, exclusive: true }, () => s.close(() => resolve()));
    });
  }
}
