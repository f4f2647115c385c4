import { pino, type Logger } from 'pino';
import { formatLogLine, type LogFormat } from './log-format.js';
import { redactDeep, redactText } from './redact.js';

export type { Logger };

/**
 * Creates the process logger at `level` (default 'info'; the CLI passes --log-level / PORTAL_LOG_LEVEL); writes JSON lines to
 * `destination` (stderr by default, so stdout stays free for `--json` reports). Every line's message and
 * fields pass through the redaction rule (common/redact.ts) first, so URL userinfo and signed-URL
 * parameters never reach a log; this costs a walk of the logged object, paid only for lines at or above
 * the level. `format: 'text'` writes each line as one readable line instead (common/log-format.ts: the CLI's
 * one-shot commands, read by a person at a terminal); the fields are the same, redacted the same way.
 *
 * Every line holds each key once. pino writes a child's bindings after its parent's and a line's fields after
 * both, without looking for keys already there, so `child({ component })` under a parent bound to another
 * component, or `log.info({ coordinatorId }, …)` on a logger bound to it, wrote the key twice (a JSON parser keeps
 * the last; a grep or a log shipper may keep the first). Here a child is made from the root with its parent's
 * bindings merged with its own (the newer value wins), and a line's field equal to a binding is left out; one
 * that differs is written through a one-off child bound to it. `child`'s options (level, serializers) are those
 * of the child itself: an intermediate child's serializers are not inherited (Portal sets none).
 */
export function createLogger(
  opts: {
    level?: string;
    name?: string;
    destination?: NodeJS.WritableStream;
    format?: LogFormat;
    /**
     * Decides, per line at or above the level, whether it is written (the line as pino wrote it, parsed: `msg`,
     * `err`, the bindings…); costs a JSON.parse per line, paid only when set. A one-shot command uses it to leave
     * out what it is about to say itself (see `portal fetch`).
     */
    keep?: (record: Record<string, unknown>) => boolean;
  } = {},
): Logger {
  const level = opts.level ?? 'info';
  const keep = opts.keep;
  const out = (opts.destination ?? pino.destination(2)) as pino.DestinationStream;
  // pino-pretty is not among the dependencies, and its layout (a time and pid header, one line per field) is not
  // the CLI's `portal: warning: …` line: a destination that rewrites pino's own JSON line keeps pino's serializers
  // and redaction on the one path, and costs a JSON.parse per line written (warnings, at the CLI's default level)
  const withStack = level === 'debug' || level === 'trace';
  const shown = (line: string): string => (opts.format === 'text' ? formatLogLine(line, withStack) : line);
  // `keep` reads pino's JSON line, before the text format rewrites it
  const destination: pino.DestinationStream =
    keep || opts.format === 'text'
      ? { write: (line: string) => (keep && !keepLine(line, keep) ? undefined : out.write(shown(line))) }
      : out;
  /**
   * What each logger made here is bound to: its ancestors' bindings merged with its own, `name` included. A
   * property of the logger itself (each child made here sets its own), not a WeakMap: an embedded host makes one
   * logger per actor activation, and a WeakMap of thousands of them costs each set and every GC more.
   */
  const BOUND = Symbol('portal.logger.bound');
  type Bound = { [BOUND]?: Record<string, unknown> };
  const bound = {
    get: (l: object): Record<string, unknown> | undefined => (l as Bound)[BOUND],
    set: (l: object, b: Record<string, unknown>): void => {
      (l as Bound)[BOUND] = b;
    },
  };
  // the name is a binding of the logger returned, not of pino's base (pid, hostname), so a child may bind another
  const base = pino(
    {
      level,
      formatters: { log: (obj) => redactDeep(obj) },
      hooks: {
        logMethod(args, method) {
          for (let i = 0; i < args.length; i++)
            if (typeof args[i] === 'string') args[i] = redactText(args[i] as string);
          const fields: unknown = args[0];
          const has = bound.get(this);
          if (has && isPlainObject(fields)) {
            let rest: Record<string, unknown> | undefined;
            let differ: Record<string, unknown> | undefined;
            for (const key of Object.keys(fields))
              if (Object.hasOwn(has, key)) {
                rest ??= { ...fields };
                delete rest[key];
                if (has[key] !== fields[key]) (differ ??= {})[key] = fields[key];
              }
            if (rest) {
              args[0] = rest;
              return method.apply(differ ? this.child(differ) : this, args);
            }
          }
          return method.apply(this, args);
        },
      },
    },
    destination,
  );
  // pino's own child: a child of the logger it is called on (`.call` below), its bindings written after the parent's
  // eslint-disable-next-line @typescript-eslint/unbound-method
  const ownChild = base.child;
  const pinoChild = ownChild.bind(base); // children of the base, whatever logger asks
  // an own property of the base; pino makes children with Object.create(parent), so they all inherit it
  base.child = function child<L extends string = never>(
    this: Logger,
    bindings: pino.Bindings,
    options?: pino.ChildLoggerOptions<L>,
  ): Logger<L> {
    const parent = bound.get(this);
    const merged = { ...parent, ...bindings };
    // no key bound twice and no options (an actor's logger, one per activation): pino's own child of this logger,
    // which writes the same keys in the same order without serialising the parent's bindings again
    const rebinds = parent === undefined || Object.keys(bindings).some((k) => Object.hasOwn(parent, k));
    const made =
      options === undefined && !rebinds
        ? (ownChild.call(this, bindings) as Logger<L>)
        : pinoChild(
            merged,
            // no options object when none is needed: pino makes a child without one faster
            this.level !== base.level ? { level: this.level, ...options } : options,
          );
    bound.set(made, merged);
    return made;
  };
  return base.child({ name: opts.name ?? 'portal' });
}

/** Whether `keep` keeps a pino JSON line (a line that is not a JSON object is always kept). */
function keepLine(line: string, keep: (record: Record<string, unknown>) => boolean): boolean {
  let record: unknown;
  try {
    record = JSON.parse(line);
  } catch {
    return true;
  }
  return !isPlainObject(record) || keep(record);
}

function isPlainObject(x: unknown): x is Record<string, unknown> {
  if (typeof x !== 'object' || x === null) return false;
  const proto = Object.getPrototypeOf(x) as unknown;
  return proto === Object.prototype || proto === null;
}

/** A logger that drops everything (tests that do not inspect logs). */
export function createSilentLogger(): Logger {
  return pino({ level: 'silent' });
}
