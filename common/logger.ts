import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * Creates the process logger at `level` (default 'info'; the CLI passes --log-level / PORTAL_LOG_LEVEL); writes JSON lines to
 * `destination` (stderr by default, so stdout stays free for `--json` reports).
 */
export function createLogger(
  opts: { level?: string; name?: string; destination?: NodeJS.WritableStream } = {},
): Logger {
  const level = opts.level ?? 'info';
  return pino(
    { name: opts.name ?? 'portal', level },
    (opts.destination ?? pino.destination(2)) as pino.DestinationStream,
  );
}

/** A logger that drops everything (tests that do not inspect logs). */
export function createSilentLogger(): Logger {
  return pino({ level: 'silent' });
}
