import { closeSync, constants, fstatSync, openSync, readSync, statSync } from 'node:fs';
import {
  LOCAL_DATA_THREADS,
  SMALL_TRANSFER_BYTES,
  prestartDataThreads,
} from '../transfer/data-thread-prestart.js';

/** Bytes of a file argument read for its size hint: a manifest or Metalink names its size in its first lines. */
const HINT_READ_BYTES = 4096;

/**
 * The file size (bytes) a `portal fetch` is about to download, as far as its arguments tell before anything is
 * parsed: the first `"fileSize": N` (a Portal manifest as saveManifest writes it) or `<size>N</size>` (a
 * Metalink) in the first 4 KiB of an argument that is a readable file; undefined when none says (URLs without a
 * manifest, a binary manifest). A hint only: a wrong one changes when the data threads start, never what is
 * fetched or verified (the CLI parses the manifest itself). Only regular files are read: anything else (a FIFO, a
 * socket, a device: `--out pipe` is also an argument here) is skipped after a stat, never opened, since opening a
 * FIFO for reading waits for a writer forever; the open itself is non-blocking and its fstat checked again.
 */
export function fetchSizeHint(args: readonly string[]): number | undefined {
  const buf = Buffer.alloc(HINT_READ_BYTES);
  for (const a of args) {
    if (a.startsWith('-') || /^[a-z][a-z0-9+.-]*:\/\//i.test(a)) continue;
    let n: number;
    try {
      if (!statSync(a).isFile()) continue;
      const fd = openSync(a, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
      try {
        if (!fstatSync(fd).isFile()) continue;
        n = readSync(fd, buf, 0, HINT_READ_BYTES, 0);
      } finally {
        closeSync(fd);
      }
    } catch {
      continue; // not a readable file (a flag's value, a missing path, a folder): it says nothing about the size
    }
    const head = buf.toString('latin1', 0, n);
    const m = /"fileSize"\s*:\s*(\d+)/.exec(head) ?? /<size>\s*(\d+)\s*<\/size>/.exec(head);
    if (m) return Number(m[1]);
  }
  return undefined;
}

/**
 * Whether `portal fetch <args…>` starts its data threads first thing (prestartLocalDataThreads, called by
 * cli/launch.ts and cli/main.ts): when its arguments (`args`, the command's) name a file of at least
 * SMALL_TRANSFER_BYTES (fetchSizeHint), and not for `--help`. A smaller transfer moves its bytes on the main
 * thread, and a thread started for nothing would cost a 1 MiB fetch ~0.1 s of CPU.
 */
export function fetchStartsDataThreads(args: readonly string[]): boolean {
  if (args.includes('--help') || args.includes('-h')) return false;
  const size = fetchSizeHint(args);
  return size !== undefined && size >= SMALL_TRANSFER_BYTES;
}

/**
 * Starts LOCAL_DATA_THREADS data threads for the data plane this process creates later (once: see
 * prestartDataThreads). When the worker script is not built nothing is started: the data plane then starts its
 * own thread and reports the missing script itself (PORTAL_CONFIG_INVALID), so the error is not reported twice.
 */
export function prestartLocalDataThreads(): void {
  try {
    prestartDataThreads(LOCAL_DATA_THREADS);
  } catch (err) {
    if ((err as { code?: unknown })?.code !== 'PORTAL_CONFIG_INVALID') throw err;
  }
}
