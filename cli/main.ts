#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { codeOf, isPortalError } from '../common/errors.js';
import { escapeControl, redactText } from '../common/redact.js';
import { exitCodeFor } from '../common/error-table.js';
import { resolveLogFormat } from '../common/log-format.js';
import { parseArgs, helpText, type CommandSpec } from './args.js';
import { ensureXdgRuntimeDir } from './env.js';
import { explainSystemError } from './system-errors.js';
import { fetchStartsDataThreads, prestartLocalDataThreads } from './prestart.js';
import { takesFetchMemoryFlags, useBaselineWasm, useFetchMemoryFlags } from './v8-flags.js';

/**
 * Exit codes: 0 success; 1 the job ran but its result is wrong (demo not verified, resume refetched);
 * 2 bad usage or configuration (or a missing GPU adapter with `--backend webgpu`); 3 transfer failed or
 * not verified; 4 other errors. A failure's exit code comes from common/error-table.ts.
 */
/**
 * The commands by name, each loaded on use: a command's module and what it imports (the actor hosts, the
 * Dapr SDK, the dashboard, the NATS client…) load only when that command runs, so `portal fetch` starts in
 * a fraction of the time ("fast start"). `portal --help` loads them all for their summaries.
 */
export const commands: Record<string, () => Promise<CommandSpec>> = {
  demo: async () => (await import('./commands/demo.js')).demoCommand,
  fetch: async () => (await import('./commands/fetch.js')).fetchCommand,
  manifest: async () => (await import('./commands/manifest.js')).manifestCommand,
  edge: async () => (await import('./commands/edge.js')).edgeCommand,
  serve: async () => (await import('./commands/serve.js')).serveCommand,
  executor: async () => (await import('./commands/executor.js')).executorCommand,
  'coord-demo': async () => (await import('./commands/coord-demo.js')).coordDemoCommand,
  peer: async () => (await import('./commands/peer.js')).peerCommand,
};

async function usage(): Promise<string> {
  const all = await Promise.all(Object.values(commands).map((load) => load()));
  return [
    'portal — multi-source transfers scheduled by a virtual-actor cluster',
    '',
    'usage: portal <command> [flags]   (portal <command> --help for its flags; portal --version)',
    '',
    'commands:',
    ...all.map((c) => `  ${c.name.padEnd(10)} ${c.summary}`),
    '',
    'exit codes: 0 ok, 1 result wrong, 2 bad usage/config, 3 transfer failed, 4 other error',
  ].join('\n');
}

/** Portal's version: package.json's, read when asked (`portal --version`), next to dist/ as in the source tree. */
function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

/** The running command's parsed flags (with defaults), so a raw system error can be traced to its flag. */
let parsedFlags: Record<string, unknown> | undefined;

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${await usage()}\n`);
    return name ? 0 : 2;
  }
  if (name === '--version' || name === '-V') {
    process.stdout.write(`portal ${version()}\n`);
    return 0;
  }
  if (!Object.hasOwn(commands, name)) {
    process.stderr.write(`portal: unknown command "${name}"\n\n${await usage()}\n`);
    return 2;
  }
  // one transfer, then exit: its main thread keeps a small heap (see FETCH_MEMORY_FLAGS), unless it serves a swarm;
  // the flags first, then the data threads (none of it again when the launcher did it: cli/launch.ts)
  const threads = name === 'fetch' && fetchStartsDataThreads(rest);
  if (takesFetchMemoryFlags(name, rest)) useFetchMemoryFlags(threads);
  if (threads) prestartLocalDataThreads();
  const cmd = await commands[name]();
  const args = parseArgs(rest, cmd.flags);
  parsedFlags = args.flags;
  // a wrong --log-format is a usage error before anything runs (each command resolves `auto` its own way)
  resolveLogFormat(args.flags['log-format'] as string | undefined, 'json');
  if (args.flags.help) {
    process.stdout.write(`${helpText(cmd)}\n`);
    return 0;
  }
  return cmd.run(args);
}

/**
 * Ends the process with `code` once stdout and stderr have written what they hold (their write callbacks), instead
 * of waiting for the event loop to empty. `portal fetch` has awaited all its work when its command returns (the
 * file verified, renamed and closed, its journal and the HTTP client closed); the natural exit then only tore down
 * the data thread and the main isolate: 89–175 ms from the 'exit' event to the process's end, against 54–105 ms
 * with process.exit (a 128 MiB fetch from the throttled mirrors of issue 15, 6 interleaved pairs at load 9–11).
 * 'exit' listeners run either way (the output's lock, the code cache). process.exitCode stays set, so a stream
 * whose callback never comes still exits with the code as before.
 */
function exitOnceWritten(code: number): void {
  process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
}

ensureXdgRuntimeDir();
// before any command loads undici (its HTTP parser is WebAssembly): see BASELINE_WASM_FLAGS
useBaselineWasm();
main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    if (process.argv[2] === 'fetch') exitOnceWritten(code);
  },
  (thrown: unknown) => {
    const err = explainSystemError(thrown, parsedFlags);
    const json = process.argv.includes('--json');
    const code = codeOf(err);
    // messages may quote manifest names, edge answers or URLs: no secrets, no terminal escapes (a failed
    // transfer's message has one line per source: the line breaks are ours and kept)
    const message = redactText(err instanceof Error ? err.message : String(err))
      .split('\n')
      .map(escapeControl)
      .join('\n');
    // a failed transfer carries each source's last cause (`sources`), for scripts as for people
    const sources = (err as { sources?: unknown } | undefined)?.sources;
    if (json)
      process.stdout.write(
        `${JSON.stringify({ error: { code, message, ...(sources ? { sources } : {}) } })}\n`,
      );
    // a PortalError is one line naming the cause; anything else is a bug and gets its stack
    process.stderr.write(`portal: ${message}${isPortalError(err) ? ` [${code}]` : ''}\n`);
    if (!isPortalError(err) && err instanceof Error && err.stack)
      process.stderr.write(`${redactText(err.stack)}\n`);
    process.exitCode = exitCodeFor(code);
    // A failed command exits even when something it started (a socket, a timer) is still open.
    setTimeout(() => process.exit(), 2000).unref();
  },
);
