import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { commonFlags, parseArgs } from '../../cli/args.js';
import { runPortal } from '../helpers/portal-cli.js';

// A trial ran `portal fetch … --log-level verbose`: the transfer had started (its journal folder made) when pino
// refused the level, and the run ended PORTAL_INTERNAL with pino's stack, exit 4; `manifest` took any level
// silently. --log-level (and PORTAL_LOG_LEVEL) is now checked with the other flags, before any work.

/** Each command that takes --log-level, with the arguments it would otherwise run with. */
const RUNS: Record<string, string[]> = {
  fetch: ['fetch', 'http://127.0.0.1:9/f.bin'],
  serve: ['serve', '--runtime', 'embedded', '--app-port', '0', '--backend', 'cpu'],
  edge: ['edge', '--port', '0'],
  manifest: ['manifest', 'f.bin'],
  demo: ['demo', '--size', '1', '--no-dashboard'],
};

const LEVELS = 'fatal, error, warn, info, debug, trace, silent';

describe('log level: an unknown level is a usage error naming where it came from, before anything is created', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'portal-log-level-'));
    writeFileSync(path.join(dir, 'f.bin'), 'data');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test.each(Object.keys(RUNS))(
    '%s --log-level verbose exits 2 with PORTAL_CONFIG_INVALID naming the flag and the levels; the folder is untouched',
    async (name) => {
      const r = await runPortal([...RUNS[name], '--log-level', 'verbose', '--json'], { cwd: dir });
      expect(r.code).toBe(2);
      const message = `--log-level (flag): expected one of ${LEVELS}, got "verbose"`;
      expect(r.stderr).toBe(`portal: ${message} [PORTAL_CONFIG_INVALID]\n`);
      expect(JSON.parse(r.stdout)).toEqual({ error: { code: 'PORTAL_CONFIG_INVALID', message } });
      expect(readdirSync(dir)).toEqual(['f.bin']);
    },
  );

  test.each(Object.keys(RUNS))(
    '%s with PORTAL_LOG_LEVEL=loud exits 2 naming the environment variable; the folder is untouched',
    async (name) => {
      const r = await runPortal(RUNS[name], { cwd: dir, env: { PORTAL_LOG_LEVEL: 'loud' } });
      expect(r.code).toBe(2);
      expect(r.stderr).toBe(
        `portal: --log-level (env PORTAL_LOG_LEVEL): expected one of ${LEVELS}, got "loud" [PORTAL_CONFIG_INVALID]\n`,
      );
      expect(readdirSync(dir)).toEqual(['f.bin']);
    },
  );

  test('a known level in any case is accepted and handed out as pino spells it', () => {
    expect(parseArgs(['--log-level', 'Info'], commonFlags, {}).flags['log-level']).toBe('info');
    expect(parseArgs([], commonFlags, { PORTAL_LOG_LEVEL: 'DEBUG' }).flags['log-level']).toBe('debug');
    expect(parseArgs([], commonFlags, {}).flags['log-level']).toBe('warn');
  });
});
