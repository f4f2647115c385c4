#!/usr/bin/env node
import { codeOf, isPortalError } from '../common/errors.js';
import { escapeControl, redactText } from '../common/redact.js';
import { exitCodeFor } from '../common/error-table.js';
import { parseArgs, helpText, type CommandSpec } from './args.js';
import { demoCommand } from './commands/demo.js';
import { edgeCommand } from './commands/edge.js';
import { fetchCommand } from './commands/fetch.js';
import { manifestCommand } from './commands/manifest.js';
import { executorCommand } from './commands/executor.js';
import { serveCommand } from './commands/serve.js';
import { coordDemoCommand } from './commands/coord-demo.js';
import { peerCommand } from './commands/peer.js';
import { ensureXdgRuntimeDir } from './env.js';

/**
 * Exit codes: 0 success; 1 the job ran but its result is wrong (demo not verified, resume refetched);
 * 2 bad usage or configuration (or a missing GPU adapter with `--backend webgpu`); 3 transfer failed or
 * not verified; 4 other errors. A failure's exit code comes from common/error-table.ts.
 */
export const commands: CommandSpec[] = [
  demoCommand,
  fetchCommand,
  manifestCommand,
  edgeCommand,
  serveCommand,
  executorCommand,
  coordDemoCommand,
  peerCommand,
];

function usage(): string {
  return [
    'portal — multi-source transfers scheduled by a virtual-actor cluster',
    '',
    'usage: portal <command> [flags]   (portal <command> --help for its flags)',
    '',
    'commands:',
    ...commands.map((c) => `  ${c.name.padEnd(10)} ${c.summary}`),
    '',
    'exit codes: 0 ok, 1 result wrong, 2 bad usage/config, 3 transfer failed, 4 other error',
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${usage()}\n`);
    return name ? 0 : 2;
  }
  const cmd = commands.find((c) => c.name === name);
  if (!cmd) {
    process.stderr.write(`portal: unknown command "${name}"\n\n${usage()}\n`);
    return 2;
  }
  const args = parseArgs(rest, cmd.flags);
  if (args.flags.help) {
    process.stdout.write(`${helpText(cmd)}\n`);
    return 0;
  }
  return cmd.run(args);
}

ensureXdgRuntimeDir();
main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
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
