import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { PORTAL_MAIN } from './portal-cli.js';

/** A `portal executor` process started by startExecutorProcess. */
export interface ExecutorProcess {
  proc: ChildProcess;
  /** Every line it wrote so far, stdout and stderr (its ready and stopped lines, pino records). */
  lines: string[];
  /** Resolves at its ready line; rejects with the end of its stderr when it exits first. */
  ready: Promise<void>;
  /** Its exit code. */
  exited: Promise<number | null>;
}

/** Starts `portal executor <args>` (the built CLI) as a real process; the caller stops it. */
export function startExecutorProcess(args: string[]): ExecutorProcess {
  const proc = spawn(process.execPath, [PORTAL_MAIN, 'executor', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let stderr = '';
  createInterface({ input: proc.stderr }).on('line', (l) => {
    stderr = (stderr + l + '\n').slice(-4000);
    lines.push(l);
  });
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  const ready = new Promise<void>((resolve, reject) => {
    createInterface({ input: proc.stdout }).on('line', (l) => {
      lines.push(l);
      if (l.includes('"ready"')) resolve();
    });
    void exited.then((code) => reject(new Error(`executor exited (${code}) before ready: ${stderr}`)));
  });
  ready.catch(() => undefined);
  return { proc, lines, ready, exited };
}

/** The JSON records among `lines` (pino records and the CLI's own lines); other lines are left out. */
export function jsonRecords(lines: string[]): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const l of lines)
    try {
      out.push(JSON.parse(l) as Record<string, unknown>);
    } catch {
      // a line of text, not a record
    }
  return out;
}
