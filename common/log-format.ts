import { PortalError } from './errors.js';
import { escapeControl } from './redact.js';

/**
 * How log lines reach stderr: `json` (one pino JSON object a line, for services and log shippers) or `text` (one
 * readable line a record, for a person at a terminal: `portal: warning: source given up (edge=m0 failures=6 …)`).
 */
export type LogFormat = 'json' | 'text';

/** pino's numeric levels, as words a person reads. */
const LEVEL_WORDS: Record<number, string> = {
  10: 'trace',
  20: 'debug',
  30: 'info',
  40: 'warning',
  50: 'error',
  60: 'fatal',
};

/** Keys every pino line has that say nothing to a person at a terminal (the process's own pid and host, the time). */
const PLUMBING = new Set(['level', 'time', 'pid', 'hostname', 'name', 'msg']);

/** A value that needs no quotes: no space, quote, `=`, parenthesis, backslash or control character. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const BARE = /^[^\s"=()\\\u0000-\u001f\u007f-\u009f]+$/;

function renderValue(v: unknown): string {
  if (typeof v === 'string') return BARE.test(v) ? v : escapeControl(JSON.stringify(v));
  if (typeof v === 'number' || typeof v === 'boolean' || v === null) return String(v);
  // objects and arrays as JSON, so nothing they hold is lost (JSON.stringify escapes C0 controls; C1 escaped here)
  return escapeControl(JSON.stringify(v) ?? typeof v);
}

/**
 * One pino JSON line (`line`, as pino writes it, with or without its newline) as one readable line:
 * `<name>: <level>: <msg> (key=value …)`, every field but pino's plumbing (level, time, pid, hostname) kept in its
 * order, strings quoted as JSON when they hold spaces or quotes, objects as JSON. An `err` field (pino's error
 * serializer: type, message, stack, own properties) is written `err="<type>: <message>"` and its other properties
 * as `err.<key>=…`; its stack only when `withStack` (a debug or trace run: it is a programmer's detail). Control
 * characters are escaped (`\x1b`), so a message quoting an answer from the network cannot drive the terminal. The
 * fields were redacted before the line was written (common/logger.ts), so this prints no secret. A line that is
 * not a JSON object is passed through as it is. Never throws.
 */
export function formatLogLine(line: string, withStack = false): string {
  let rec: unknown;
  try {
    rec = JSON.parse(line);
  } catch {
    return line.endsWith('\n') ? line : `${line}\n`;
  }
  if (typeof rec !== 'object' || rec === null || Array.isArray(rec))
    return line.endsWith('\n') ? line : `${line}\n`;
  const r = rec as Record<string, unknown>;
  const name = typeof r.name === 'string' ? escapeControl(r.name) : 'portal';
  const level =
    typeof r.level === 'number'
      ? (LEVEL_WORDS[r.level] ?? `level ${r.level}`)
      : escapeControl(String(r.level));
  const msg = typeof r.msg === 'string' ? r.msg : r.msg === undefined ? '' : JSON.stringify(r.msg);
  const fields: string[] = [];
  let stack: string | undefined;
  for (const [k, v] of Object.entries(r)) {
    if (PLUMBING.has(k)) continue;
    const key = escapeControl(k);
    if (k === 'err' && typeof v === 'object' && v !== null && !Array.isArray(v)) {
      const e = v as Record<string, unknown>;
      const type = typeof e.type === 'string' ? e.type : 'Error';
      const message = typeof e.message === 'string' ? e.message : JSON.stringify(e.message ?? '');
      fields.push(`err=${renderValue(`${type}: ${message}`)}`);
      for (const [ek, ev] of Object.entries(e))
        if (ek !== 'type' && ek !== 'message' && ek !== 'stack')
          fields.push(`err.${escapeControl(ek)}=${renderValue(ev)}`);
      if (typeof e.stack === 'string') stack = e.stack;
      continue;
    }
    fields.push(`${key}=${renderValue(v)}`);
  }
  const text = msg.split('\n').map(escapeControl).join('\n  ');
  const tail = fields.length > 0 ? ` (${fields.join(' ')})` : '';
  const trace =
    withStack && stack
      ? `\n${stack
          .split('\n')
          .map((l) => `    ${escapeControl(l.trim())}`)
          .join('\n')}`
      : '';
  return `${name}: ${level}: ${text}${tail}${trace}\n`;
}

/**
 * The format `flag` asks for (`--log-format` / PORTAL_LOG_FORMAT: auto, text or json), with `auto` resolved to
 * `auto` (the command's own: text for the one-shot commands run by a person, fetch and demo; JSON for services).
 * Throws PORTAL_CONFIG_INVALID (exit 2) naming the valid values otherwise.
 */
export function resolveLogFormat(flag: string | undefined, auto: LogFormat): LogFormat {
  const v = (flag ?? 'auto').toLowerCase();
  if (v === 'auto' || v === '') return auto;
  if (v === 'text' || v === 'json') return v;
  throw new PortalError('PORTAL_CONFIG_INVALID', `--log-format "${flag}": expected auto, text or json`);
}
