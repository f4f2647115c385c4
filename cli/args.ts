import { readFileSync } from 'node:fs';
import { PortalError } from '../common/errors.js';
import { readSecretFile } from '../common/secret-file.js';

/** The kinds of value a flag takes, and the TypeScript type each parses to. */
export interface FlagKinds {
  string: string;
  number: number;
  boolean: boolean;
  /** Repeated (`--types a --types b`), or comma-separated (`--types a,b`) unless the spec says `split: false`. */
  list: string[];
}

/** One flag of a command: `--name value`, `--name` for booleans, repeated for lists. */
export interface FlagSpec {
  readonly name: string;
  readonly type: keyof FlagKinds;
  readonly help: string;
  readonly default?: string | number | boolean | readonly string[];
  /** Also read from this environment variable. */
  readonly env?: string;
  /**
   * For lists: false when a value is never split at commas (each --flag is one value: URLs, whose query may hold a
   * comma, and headers, whose values may); default true.
   */
  readonly split?: boolean;
  /** For numbers: inclusive bounds. */
  readonly min?: number;
  readonly max?: number;
  /**
   * For numbers: only a whole number is accepted (a count, a port, bytes, a seed): `--max-running 1.5` is refused
   * here, PORTAL_CONFIG_INVALID naming the flag like an out-of-range value, not later by the code it configures.
   */
  readonly integer?: boolean;
  /**
   * For strings: the only values accepted (matched without regard to case; the value is handed out as written
   * here). Anything else is refused PORTAL_CONFIG_INVALID naming the flag (or the env variable / config file it came
   * from) and these values, before the command runs.
   */
  readonly choices?: readonly string[];
  /**
   * For strings: the value is a secret (a token, a password). Besides `--name` and `env`, it is read from the file
   * `--name-file PATH` or the env variable `<env>_FILE` names (its trailing newline dropped), so it need not stand on
   * the command line, where every local user sees it in `ps`; --help says so.
   */
  readonly secret?: boolean;
}

/**
 * The parsed values of the flags `F` (a command's spec list, inferred with its literal names and kinds), by flag
 * name: a flag with a default always has a value; any other flag may be undefined (not given anywhere).
 */
export type FlagValues<F extends readonly FlagSpec[]> = {
  readonly [S in F[number] as S['name']]: S extends { readonly default: unknown }
    ? FlagKinds[S['type']]
    : FlagKinds[S['type']] | undefined;
};

/** Parsed flags (by name, typed from their specs) and positionals. */
export interface ParsedArgs<F extends readonly FlagSpec[] = readonly FlagSpec[]> {
  flags: FlagValues<F>;
  positionals: string[];
}

/** A command of the CLI; its `run` reads flags typed from its own `flags` list. */
export interface CommandSpec<F extends readonly FlagSpec[] = readonly FlagSpec[]> {
  name: string;
  summary: string;
  usage: string;
  flags: F;
  run(args: ParsedArgs<F>): Promise<number>;
}

/**
 * Declares a command so that its flag list keeps its literal names and kinds (a `const` type parameter, no
 * `as const` needed) and `run` gets `FlagValues` of exactly those flags: `flags['tick-ms']` is a number, a
 * misspelt flag name is a compile error.
 */
export function defineCommand<const F extends readonly FlagSpec[]>(spec: CommandSpec<F>): CommandSpec<F> {
  return spec;
}

/** The levels `--log-level` takes: pino's, from most to least severe, and `silent` (no logs). */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** Flags every command takes. */
export const commonFlags = [
  { name: 'json', type: 'boolean', help: 'print one JSON object as the result, for scripts', default: false },
  {
    name: 'config',
    type: 'string',
    help: 'JSON file of flag values (flags and environment win over it)',
    env: 'PORTAL_CONFIG',
  },
  {
    name: 'log-level',
    type: 'string',
    help: 'pino level for the logs on stderr',
    default: 'warn',
    env: 'PORTAL_LOG_LEVEL',
    choices: LOG_LEVELS,
  },
  {
    name: 'log-format',
    type: 'string',
    help: "logs on stderr: text ('portal: warning: <msg> (key=value …)'), json (pino's JSON lines) or auto (text for fetch, demo and coord-demo; json for the services serve, edge, executor and peer)",
    default: 'auto',
    env: 'PORTAL_LOG_FORMAT',
  },
  { name: 'help', type: 'boolean', help: 'show this help', default: false },
] as const satisfies readonly FlagSpec[];

/** The tick engine a command runs its SchedulerActors on. */
export const backendFlag = {
  name: 'backend',
  type: 'string',
  help: 'tick engine: auto (WebGPU for transfers of 262,144+ chunks when an adapter exists, else the CPU; Dawn loaded only then), webgpu or cpu (never loads Dawn)',
  default: 'auto',
  env: 'PORTAL_BACKEND',
} as const satisfies FlagSpec;

/** `--ca` of the commands that make HTTPS requests (fetch, serve): CAs trusted besides the system store. */
export const caFlag = {
  name: 'ca',
  type: 'string',
  help: 'PEM file of CA certificates trusted besides the system store (and NODE_EXTRA_CA_CERTS)',
} as const satisfies FlagSpec;

/** Flags of the commands that run a transfer's scheduler here (demo, fetch): its cost model and engine. */
export const schedulingFlags = [
  {
    name: 'learned',
    type: 'boolean',
    help: "learned completion time and failure risk replace the cost formula's time and health factors",
    default: false,
  },
  backendFlag,
] as const satisfies readonly FlagSpec[];

/** A parsed value of any kind, as the parser holds it before it is handed out typed. */
type AnyFlagValue = FlagKinds[keyof FlagKinds];

/**
 * True for a flag whose value is a secret (a token, a password, a credential): its value is never printed, not
 * even in the error about its own type (a config file's `"api-token": ["…"]` printed the token).
 */
export function isSecretFlag(name: string): boolean {
  return /token|password|secret|credential/i.test(name);
}

/** What an error shows of a value it refuses: the value itself, or only its kind for a secret flag's. */
function shownValue(spec: FlagSpec, raw: unknown): string {
  if (!isSecretFlag(spec.name)) return JSON.stringify(raw);
  const kind = Array.isArray(raw) ? 'a list' : raw === null ? 'null' : `a ${typeof raw}`;
  return `${kind} (the value of a secret is not shown)`;
}

/**
 * A token is sent as `Authorization: Bearer <token>` (RFC 6750 §2.1: token68, visible ASCII): a control character
 * (a newline), a space or a non-ASCII character cannot be carried by any client, so every caller would be refused.
 */
const TOKEN_CHARS = /^[\x21-\x7e]+$/;

function convert(spec: FlagSpec, raw: unknown, origin: string): AnyFlagValue {
  const bad = (want: string): never => {
    throw new PortalError(
      'PORTAL_CONFIG_INVALID',
      `--${spec.name} (${origin}): expected ${want}, got ${shownValue(spec, raw)}`,
    );
  };
  switch (spec.type) {
    case 'boolean':
      if (typeof raw === 'boolean') return raw;
      if (raw === 'true' || raw === '1') return true;
      if (raw === 'false' || raw === '0') return false;
      return bad('true or false');
    case 'number': {
      const n =
        typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : NaN;
      const kind = spec.integer ? 'an integer' : 'a number';
      if (!Number.isFinite(n)) return bad(kind);
      if (spec.integer && !Number.isInteger(n))
        return bad(
          [
            kind,
            spec.min !== undefined ? `≥ ${spec.min}` : '',
            spec.max !== undefined ? `${spec.min !== undefined ? 'and ' : ''}≤ ${spec.max}` : '',
          ]
            .filter(Boolean)
            .join(' '),
        );
      if (spec.min !== undefined && n < spec.min) return bad(`${kind} ≥ ${spec.min}`);
      if (spec.max !== undefined && n > spec.max) return bad(`${kind} ≤ ${spec.max}`);
      return n;
    }
    case 'list':
      if (Array.isArray(raw) && raw.every((x): x is string => typeof x === 'string')) return raw;
      if (typeof raw === 'string') return spec.split === false ? [raw] : raw.split(',').filter(Boolean);
      return bad('a list of strings');
    default:
      if (typeof raw === 'string' && spec.choices) {
        const choice = spec.choices.find((c) => c.toLowerCase() === raw.toLowerCase());
        if (choice === undefined) return bad(`one of ${spec.choices.join(', ')}`);
        return choice;
      }
      if (typeof raw === 'string') {
        if (/token$/.test(spec.name) && raw !== '' && !TOKEN_CHARS.test(raw))
          throw new PortalError(
            'PORTAL_CONFIG_INVALID',
            `--${spec.name} (${origin}): a token may hold visible ASCII characters only (no space, newline or other control character, no non-ASCII), as an HTTP header carries it; the value is not shown`,
          );
        return raw;
      }
      if (typeof raw === 'number') return String(raw);
      return bad('a string');
  }
}

/** The secret flag `spec` from file `file` (the --name-file flag or the <ENV>_FILE variable `origin`). */
function fromSecretFile(spec: FlagSpec, file: string, origin: string): AnyFlagValue {
  return convert(spec, readSecretFile(file, origin), `${origin} ${file}`);
}

/**
 * Parses argv for a command. Precedence: flags, then environment, then the --config file, then
 * defaults. Unknown flags and bad values are PORTAL_CONFIG_INVALID errors that name the flag.
 */
export function parseArgs<const F extends readonly FlagSpec[]>(
  argv: string[],
  specs: F,
  env: NodeJS.ProcessEnv = process.env,
): ParsedArgs<F> {
  const byName = new Map<string, FlagSpec>(specs.map((s) => [s.name, s]));
  const flags: Record<string, AnyFlagValue | undefined> = {};
  const positionals: string[] = [];
  /** Secret flags read from their --name-file. */
  const fromFile = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) {
      positionals.push(a);
      continue;
    }
    let name = a.slice(2);
    let value: string | undefined;
    const eq = name.indexOf('=');
    if (eq >= 0) {
      value = name.slice(eq + 1);
      name = name.slice(0, eq);
    }
    let negated = false;
    if (!byName.has(name) && name.startsWith('no-') && byName.get(name.slice(3))?.type === 'boolean') {
      name = name.slice(3);
      negated = true;
    }
    const secretOf = name.endsWith('-file') ? byName.get(name.slice(0, -5)) : undefined;
    if (!byName.has(name) && secretOf?.secret) {
      if (value === undefined) value = argv[++i];
      if (value === undefined) throw new PortalError('PORTAL_CONFIG_INVALID', `--${name}: missing value`);
      if (fromFile.has(secretOf.name) || flags[secretOf.name] !== undefined)
        throw new PortalError(
          'PORTAL_CONFIG_INVALID',
          `--${secretOf.name} is given twice: give it or --${name}, once`,
        );
      flags[secretOf.name] = fromSecretFile(secretOf, value, `--${name}`);
      fromFile.add(secretOf.name);
      continue;
    }
    const spec = byName.get(name);
    if (!spec) throw new PortalError('PORTAL_CONFIG_INVALID', `unknown flag --${name} (see --help)`);
    if (fromFile.has(name))
      throw new PortalError(
        'PORTAL_CONFIG_INVALID',
        `--${name} is given twice: give it or --${name}-file, once`,
      );
    if (spec.type === 'boolean') {
      flags[name] = negated ? false : value === undefined ? true : convert(spec, value, 'flag');
      continue;
    }
    if (value === undefined) {
      value = argv[++i];
      if (value === undefined) throw new PortalError('PORTAL_CONFIG_INVALID', `--${name}: missing value`);
    }
    if (spec.type === 'list') {
      const prev = flags[name];
      const more = convert(spec, value, 'flag');
      flags[name] = [...(Array.isArray(prev) ? prev : []), ...(Array.isArray(more) ? more : [])];
    } else flags[name] = convert(spec, value, 'flag');
  }
  for (const spec of specs) {
    if (flags[spec.name] === undefined && spec.env && env[spec.env] !== undefined)
      flags[spec.name] = convert(spec, env[spec.env], `env ${spec.env}`);
    else if (flags[spec.name] === undefined && spec.secret && spec.env && env[`${spec.env}_FILE`])
      flags[spec.name] = fromSecretFile(spec, env[`${spec.env}_FILE`]!, `env ${spec.env}_FILE`);
  }
  const configPath = flags.config;
  if (typeof configPath === 'string' && configPath) {
    let file: unknown;
    try {
      file = JSON.parse(readFileSync(configPath, 'utf8'));
    } catch (cause) {
      throw new PortalError('PORTAL_CONFIG_INVALID', `--config ${configPath}: cannot read a JSON object`, {
        cause,
      });
    }
    if (typeof file !== 'object' || file === null || Array.isArray(file))
      throw new PortalError('PORTAL_CONFIG_INVALID', `--config ${configPath}: expected a JSON object`);
    for (const [k, v] of Object.entries(file)) {
      const spec = byName.get(k);
      if (!spec)
        throw new PortalError('PORTAL_CONFIG_INVALID', `--config ${configPath}: unknown field "${k}"`);
      if (flags[k] === undefined) flags[k] = convert(spec, v, `config ${configPath}`);
    }
  }
  for (const spec of specs)
    if (flags[spec.name] === undefined && spec.default !== undefined)
      flags[spec.name] = typeof spec.default === 'object' ? [...spec.default] : spec.default;
  // Every flag was converted by convert() to the kind its spec names (or is absent), which is what FlagValues<F>
  // states; the compiler cannot follow a loop over `specs`, so this one assertion carries it.
  return { flags: flags as FlagValues<F>, positionals };
}

/** Where the help text of each flag starts in --help, in characters. */
const HELP_COLUMN = 30;

/** The --help text of a command. */
export function helpText(cmd: Pick<CommandSpec, 'name' | 'summary' | 'usage' | 'flags'>): string {
  const lines = [`portal ${cmd.name} — ${cmd.summary}`, '', `usage: ${cmd.usage}`, '', 'flags:'];
  for (const f of cmd.flags) {
    const v =
      f.type === 'boolean'
        ? ''
        : f.type === 'list'
          ? f.split === false
            ? ' <value> (repeat)'
            : ' <a,b,…>'
          : f.type === 'number'
            ? ' <n>'
            : ' <value>';
    const extra = [
      f.choices ? `one of ${f.choices.join(', ')}` : '',
      f.default !== undefined && f.default !== false ? `default ${JSON.stringify(f.default)}` : '',
      f.env ? `env ${f.env}` : '',
      f.secret
        ? `or from a file: --${f.name}-file FILE${f.env ? ` or env ${f.env}_FILE` : ''}; a value on the command line is visible to local users in ps`
        : '',
    ]
      .filter(Boolean)
      .join('; ');
    const flag = `  --${f.name}${v}`;
    const text = f.help + (extra ? ` (${extra})` : '');
    // at least two spaces between the columns: a flag too long for its column gets a line of its own
    if (flag.length <= HELP_COLUMN - 2) lines.push(flag.padEnd(HELP_COLUMN) + text);
    else lines.push(flag, ' '.repeat(HELP_COLUMN) + text);
  }
  return lines.join('\n');
}
