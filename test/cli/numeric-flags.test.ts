import { parseArgs, type CommandSpec, type FlagSpec } from '../../cli/args.js';
import { isPortalError } from '../../common/errors.js';
import { freePort } from '../../common/net.js';
import { runPortal } from '../helpers/portal-cli.js';

// A trial ran `serve --max-running 1.5` and got "maxRunning: expected an integer ≥ 1 [PORTAL_INVALID_ARGUMENT]"
// from the admission code, while `--max-running 0` got "--max-running (flag): … [PORTAL_CONFIG_INVALID]": a count,
// port, size or seed flag now says it takes an integer (FlagSpec.integer) and parseArgs refuses a fraction like
// any other out-of-range value, naming the flag, with one code.

/** Every command's spec, as cli/main.ts loads them. */
async function allCommands(): Promise<CommandSpec[]> {
  return [
    (await import('../../cli/commands/demo.js')).demoCommand,
    (await import('../../cli/commands/fetch.js')).fetchCommand,
    (await import('../../cli/commands/manifest.js')).manifestCommand,
    (await import('../../cli/commands/edge.js')).edgeCommand,
    (await import('../../cli/commands/serve.js')).serveCommand,
    (await import('../../cli/commands/executor.js')).executorCommand,
    (await import('../../cli/commands/coord-demo.js')).coordDemoCommand,
    (await import('../../cli/commands/peer.js')).peerCommand,
  ] as CommandSpec[];
}

/** The message parseArgs throws for `--name value` of `specs`, with its code. */
function refusal(specs: readonly FlagSpec[], name: string, value: string): string {
  try {
    parseArgs([`--${name}`, value], specs, {});
  } catch (err) {
    return `${isPortalError(err) ? err.code : 'not a PortalError'}: ${(err as Error).message}`;
  }
  return 'accepted';
}

describe('numeric flags: a fraction where a whole number is meant is refused naming the flag, as an out-of-range value is', () => {
  test('every integer flag of every command: a fraction and a value below its minimum get PORTAL_CONFIG_INVALID naming the flag', async () => {
    const integer: string[] = [];
    for (const cmd of await allCommands())
      for (const f of cmd.flags) {
        if (f.type !== 'number' || !f.integer) continue;
        integer.push(`${cmd.name} --${f.name}`);
        const low = f.min ?? 0;
        expect(refusal(cmd.flags, f.name, String(low + 0.5))).toBe(
          `PORTAL_CONFIG_INVALID: --${f.name} (flag): expected an integer${f.min !== undefined ? ` ≥ ${f.min}` : ''}${f.max !== undefined ? `${f.min !== undefined ? ' and' : ''} ≤ ${f.max}` : ''}, got "${low + 0.5}"`,
        );
        if (f.min !== undefined)
          expect(refusal(cmd.flags, f.name, String(f.min - 1))).toBe(
            `PORTAL_CONFIG_INVALID: --${f.name} (flag): expected an integer ≥ ${f.min}, got "${f.min - 1}"`,
          );
        expect(refusal(cmd.flags, f.name, String(low))).toBe('accepted');
      }
    // the counts, ports, sizes and seeds (a new one belongs here and gets `integer: true`)
    expect(integer.sort()).toEqual(
      [
        'coord-demo --repeats',
        'coord-demo --seed',
        'coord-demo --tasks',
        'coord-demo --tasks-per-hour',
        'demo --chunk-size',
        'demo --dashboard-port',
        'demo --max-parallel',
        'demo --size',
        'edge --manifest-dir-max-bytes',
        'edge --manifest-dir-max-files',
        'edge --port',
        'edge --seed',
        'executor --concurrency',
        'fetch --dashboard-port',
        'fetch --k',
        'fetch --max-redirects',
        'fetch --serve',
        'fetch --swarm-port',
        'manifest --chunk-size',
        'peer --concurrency',
        'peer --max-in-flight',
        'peer --seed',
        'serve --app-port',
        'serve --concurrency',
        'serve --dapr-http-port',
        'serve --dashboard-port',
        'serve --max-body',
        'serve --max-edges',
        'serve --max-queued',
        'serve --max-running',
      ].sort(),
    );
    // a flag that takes fractions (seconds, rates, a pace) still does
    const fetchCmd = (await import('../../cli/commands/fetch.js')).fetchCommand as CommandSpec;
    expect(refusal(fetchCmd.flags, 'connect-timeout', '1.5')).toBe('accepted');
  });

  test('portal serve --max-running 1.5 / 0 and PORTAL_MAX_RUNNING=2.5: exit 2, one line naming the flag, PORTAL_CONFIG_INVALID (real CLI)', async () => {
    const port = String(await freePort());
    const base = ['serve', '--runtime', 'embedded', '--backend', 'cpu', '--app-port', port];
    const runs = [
      {
        args: ['--max-running', '1.5'],
        env: {},
        line: '--max-running (flag): expected an integer ≥ 1 and ≤ 1000000, got "1.5"',
      },
      {
        args: ['--max-running', '0'],
        env: {},
        line: '--max-running (flag): expected an integer ≥ 1, got "0"',
      },
      {
        args: [],
        env: { PORTAL_MAX_RUNNING: '2.5' },
        line: '--max-running (env PORTAL_MAX_RUNNING): expected an integer ≥ 1 and ≤ 1000000, got "2.5"',
      },
    ];
    for (const { args, env, line } of runs) {
      const r = await runPortal([...base, ...args], { env, timeoutMs: 30_000 });
      expect({ code: r.code, stderr: r.stderr.trim() }).toEqual({
        code: 2,
        stderr: `portal: ${line} [PORTAL_CONFIG_INVALID]`,
      });
    }
  }, 100_000);
});
