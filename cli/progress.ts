/**
 * A progress bar on stderr. On a terminal it redraws one line; elsewhere (CI, pipes) it prints a
 * plain line at most every `plainEveryMs`, so logs stay readable. Disabled entirely when `quiet`.
 */
export interface Progress {
  update(done: number, detail?: string): void;
  /** The last line, at `at` bytes (a transfer that ended early stops where it was); default the total, or the last update with unknownTotal. */
  done(detail?: string, at?: number): void;
}

/** Formats bytes as B/KiB/MiB/GiB. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

export function createProgress(
  label: string,
  total: number,
  opts: {
    quiet?: boolean;
    stream?: NodeJS.WriteStream;
    plainEveryMs?: number;
    format?: (done: number, total: number) => string;
    /** The total is not known (a stream of unknown length): no bar nor percentage, only `format`'s figures. */
    unknownTotal?: boolean;
  } = {},
): Progress {
  const stream = opts.stream ?? process.stderr;
  const tty = stream.isTTY === true;
  const fmt = opts.format ?? ((d: number, t: number) => `${d}/${t}`);
  let last = 0;
  let lastDone = 0;
  const render = (done: number, detail: string | undefined, final: boolean): void => {
    if (opts.quiet) return;
    const now = Date.now();
    if (!final && !tty && now - last < (opts.plainEveryMs ?? 1000)) return;
    if (!final && tty && now - last < 100) return;
    last = now;
    const frac = total > 0 ? Math.min(1, done / total) : 1;
    const width = 30;
    const fill = Math.round(frac * width);
    const bar = `[${'#'.repeat(fill)}${'-'.repeat(width - fill)}]`;
    const line = `${label.padEnd(10)} ${opts.unknownTotal ? '' : `${bar} ${(frac * 100).toFixed(1).padStart(5)}% `}${fmt(done, total)}${detail ? `  ${detail}` : ''}`;
    if (tty) stream.write(`\r\x1b[2K${line}${final ? '\n' : ''}`);
    else stream.write(`${line}\n`);
  };
  return {
    update: (d, detail) => {
      lastDone = d;
      render(d, detail, false);
    },
    done: (detail, at) => render(at ?? (opts.unknownTotal ? lastDone : total), detail, true),
  };
}
