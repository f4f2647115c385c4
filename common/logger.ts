import { pino, type Logger } from 'pino';
import { redactDeep, redactText } from './redact.js';

export type { Logger };

/**
 * Creates the process logger at `level` (default 'info'; the CLI passes --log-level / PORTAL_LOG_LEVEL); writes JSON lines to
 * `destination` (stderr by default, so stdout stays free for `--json` reports). Every line's message and
 * fields pass through the redaction rule (common/redact.ts) first, so URL userinfo and signed-URL
 * parameters never reach a log; this costs a walk of the logged object, paid only for lines at or above
 * the level.
 */
export function createLogger(
  opts: { level?: string; name?: string; destination?: NodeJS.WritableStream } = {},
): Logger {
  const level = opts.level ?? 'info';
  return pino(
    {
      name: opts.name ?? 'portal',
      level,
      formatters: { log: (obj) => redactDeep(obj) },
      hooks: {
        logMethod(args, method) {
          for (let i = 0; i < args.length; i++)
            if (typeof args[i] === 'string') args[i] = redactText(args[i] as string);
          return method.apply(this, args);
        },
      },
    },
    (opts.destination ?? pino.destination(2)) as pino.DestinationStream,
  );
}

/** A logger that drops everything (tests that do not inspect logs). */
export function createSilentLogger(): Logger {
  return pino({ level: 'silent' });
}
