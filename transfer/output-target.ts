import { randomUUID } from 'node:crypto';
import { constants, lstatSync, readFileSync, unlinkSync, type Stats } from 'node:fs';
import { lstat, mkdir, open, readFile, realpath, rmdir, stat, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import { PortalError } from '../common/errors.js';
import { BIDI_CONTROL, escapeControl } from '../common/redact.js';
import { localWriteError, withPath } from '../common/local-write-error.js';
import { notOwnFileReason, notOwnFolderReason } from '../common/own-file.js';

/**
 * Where a transfer may write, checked before it writes: the output name a manifest suggests, the
 * file `--out` points at (never an unrelated file, a planted symlink or a folder nobody made), the
 * output root a server or an executor confines writes to, and the exclusive lock one fetch holds on
 * its output. Every refusal is a PortalError naming the path and the reason.
 */

/** C0 and C1 control characters and DEL (NUL, ESC, CR, LF…). */
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/**
 * The file name a manifest's `name` stands for, as a plain base name in the current folder. A
 * name with a path separator (`/` or `\`), NUL or another control character, a bidi control (BIDI_CONTROL), or that is empty,
 * `.` or `..`, is refused with PORTAL_MANIFEST_INVALID (the manifest chooses a name, never a place).
 */
export function outputNameFromManifest(name: unknown): string {
  const shown = typeof name === 'string' ? `"${escapeControl(name)}"` : String(name);
  const why = fileNameProblem(name);
  if (why !== undefined)
    throw new PortalError(
      'PORTAL_MANIFEST_INVALID',
      `manifest name ${shown} ${why}; give --out FILE to choose the output`,
    );
  return name as string;
}

/** Why `name` cannot be a plain base name (outputNameFromManifest's rules), or undefined when it can. */
function fileNameProblem(name: unknown): string | undefined {
  if (typeof name !== 'string' || name.length === 0) return 'is empty';
  if (CONTROL.test(name)) return 'contains a control character (NUL, ESC, newline…)';
  if (BIDI_CONTROL.test(name))
    return 'contains a bidi control character (U+202E…), which reorders how the name is shown (a<U+202E>nib.exe shows as aexe.bin)';
  if (name.includes('/') || name.includes('\\')) return 'contains a path separator';
  if (name === '.' || name === '..') return 'is not a file name';
  if (Buffer.byteLength(name) > 255) return 'is longer than 255 bytes';
  return undefined;
}

/**
 * The file name a source URL gives: its last path segment percent-decoded (`a%20b.bin` → `a b.bin`, `caf%C3%A9.bin`
 * → `café.bin`, as wget and browsers do (curl -O keeps it encoded); `download` for the path `/`). A segment that
 * does not decode (a lone `%`) is kept as written. One that decodes to a name outputNameFromManifest refuses (`%2F`,
 * `%2E%2E`, `%00`, a control character) is refused with PORTAL_CONFIG_INVALID naming the URL (`shown`, redacted by
 * the caller) when `refuse`, since the output would be named after it; otherwise (an --out is given) the segment
 * is kept as written, which names nothing outside the folder.
 */
export function fileNameFromUrl(url: string, shown: string, refuse: boolean): string {
  const raw = path.posix.basename(new URL(url).pathname);
  if (raw === '') return 'download';
  let name: string;
  try {
    name = decodeURIComponent(raw);
  } catch {
    return raw;
  }
  const why = fileNameProblem(name);
  if (why === undefined) return name;
  if (!refuse) return raw;
  throw new PortalError(
    'PORTAL_CONFIG_INVALID',
    `the file name "${escapeControl(name)}" decoded from ${shown} ${why}; give --out FILE to choose the output`,
  );
}

/** Suffix of the partial file Portal writes an output `<out>` to until it is verified: `<out>.portal-part`. */
export const PART_SUFFIX = '.portal-part';
/** Suffix of the folder beside an output `<out>` holding its lock (and a fetch's journal): `<out>.portal`. */
export const JOURNAL_SUFFIX = '.portal';

/**
 * Why `file` bears a name Portal gives the side files of another output, or undefined: `<x>.portal-part` (x's partial
 * file), `<x>.portal-part.partial` (that file's partial-chunk log), `<x>.portal` (x's lock and journal folder), or a
 * file directly in such a folder (`<x>.portal/lock`, the journal's files). A transfer that wrote there would replace
 * another transfer's partial file, log, lock or journal (a fetch's, or a serve transfer's of another host) when it
 * publishes. Other names are not refused: `.partial` alone is also the log of a file written in place under a name
 * its caller chose (a start with its own `publishAs`), which the host's claims cover (actors/output-claims.ts).
 */
export function portalSideFileName(file: string): string | undefined {
  const name = path.basename(file);
  const dir = path.basename(path.dirname(file));
  const of = (suffix: string, n = name): string => JSON.stringify(escapeControl(n.slice(0, -suffix.length)));
  if (name.endsWith(`${PART_SUFFIX}.partial`))
    return `the partial-chunk log Portal keeps for the partial file of ${of(`${PART_SUFFIX}.partial`)}`;
  if (name.endsWith(PART_SUFFIX)) return `the partial file Portal writes ${of(PART_SUFFIX)} to`;
  if (name.endsWith(JOURNAL_SUFFIX))
    return `the folder of the lock and journal Portal keeps for ${of(JOURNAL_SUFFIX)}`;
  if (dir.endsWith(JOURNAL_SUFFIX) && dir.length > JOURNAL_SUFFIX.length)
    return `in the folder of the lock and journal Portal keeps for ${of(JOURNAL_SUFFIX, dir)}`;
  return undefined;
}

/**
 * Refuses (PORTAL_OUTPUT_REFUSED) an output `file` that bears the name of another output's side file
 * (portalSideFileName); `asked` is the output as given, for the message.
 */
export function refuseSideFileName(asked: string, file: string): void {
  const why = portalSideFileName(file);
  if (why !== undefined)
    throw refused(
      asked,
      `is ${why}: Portal keeps that name for its own files (another transfer's would be replaced); choose another name`,
    );
}

/**
 * Refuses (PORTAL_OUTPUT_REFUSED) an output whose name (`file`'s base name) holds a control character (newline, ESC,
 * DEL…: what `outputNameFromManifest` refuses in a manifest's name, as it breaks every log line, listing and shell
 * command that shows the name) or a bidi control (BIDI_CONTROL: it reorders how the name is shown), or that was asked (`asked`, the output as given) with a trailing path separator: to
 * most tools `x.bin/` names a folder, not a file `x.bin` (trial L1: serve wrote `x.bin`).
 */
export function refuseUnsafeOutputName(asked: string, file: string): void {
  if (CONTROL.test(path.basename(file)))
    throw refused(
      JSON.stringify(escapeControl(asked)),
      'has a control character (newline, ESC…) in its name: such a name breaks log lines and shell commands; choose another',
    );
  if (BIDI_CONTROL.test(path.basename(file)))
    throw refused(
      JSON.stringify(escapeControl(asked)),
      'has a bidi control character (U+202E…) in its name: it reorders how the name is shown (a<U+202E>nib.exe shows as aexe.bin); choose another',
    );
  if (asked.endsWith('/'))
    throw refused(
      asked,
      'ends with a path separator, which names a folder: give the path of the file to write (e.g. ' +
        `${asked}file.bin)`,
    );
}

/** NAME_MAX of Linux file systems (ext4, XFS, Btrfs, tmpfs; limits.h): the longest file name, in bytes. */
export const NAME_MAX = 255;
/** The longest suffix Portal adds to an output's name for a side file: the partial file's log. */
export const LONGEST_SIDE_SUFFIX = `${PART_SUFFIX}.partial`;
/** The longest output name, in bytes, whose side files all fit in NAME_MAX: 255 − 20 = 235. */
export const MAX_OUTPUT_NAME_BYTES = NAME_MAX - Buffer.byteLength(LONGEST_SIDE_SUFFIX);

/**
 * Refuses (PORTAL_OUTPUT_REFUSED) an output whose own name or whose side files' names (`files`: every path the
 * transfer writes, output included) would be longer than NAME_MAX bytes, before anything is written: the file system
 * would answer ENAMETOOLONG for the first side file, after the sources were probed. `asked` is the output as given,
 * for the message, which names the longest file, the limit and the longest name that fits (MAX_OUTPUT_NAME_BYTES).
 */
export function refuseLongNames(asked: string, files: readonly string[]): void {
  let longest = '';
  for (const f of files)
    if (Buffer.byteLength(path.basename(f)) > Buffer.byteLength(longest)) longest = path.basename(f);
  const bytes = Buffer.byteLength(longest);
  if (bytes <= NAME_MAX) return;
  const own = Buffer.byteLength(path.basename(asked));
  throw refused(
    asked,
    `has a name of ${own} bytes: Portal writes ${escapeControl(longest.slice(path.basename(asked).length) || longest)} beside it, a name of ${bytes} bytes, and a file name may have at most ${NAME_MAX} bytes (NAME_MAX); choose an output name of at most ${MAX_OUTPUT_NAME_BYTES} bytes`,
  );
}

/** Options of checkOutputTarget. */
export interface OutputTargetOptions {
  /** Overwrite an existing unrelated file, or replace a symbolic link (the link, never its target). */
  force: boolean;
  /** The journal folder that would belong to this output (`<output>.portal`). */
  journalDir: string;
  /** True when `journalDir` holds a journal of this transfer (then the existing output is ours to resume). */
  hasJournal: () => Promise<boolean>;
  /**
   * The other files the fetch writes beside the output (fetch: `<out>.portal-part` and its partial-chunk log
   * `<out>.portal-part.partial`); each must be absent or a regular file. Absent: none.
   */
  sideFiles?: readonly string[];
}

/** What checkOutputTarget found. */
export type OutputTargetState = 'new' | 'resume' | 'replace';

const refused = (output: string, why: string, cause?: unknown): PortalError =>
  new PortalError(
    'PORTAL_OUTPUT_REFUSED',
    `output ${escapeControl(output)} ${why}`,
    cause === undefined ? undefined : { cause },
  );

/**
 * Checks that the folder `output` (an absolute path) would be created in exists and is a folder; no folder is
 * created. `who` names the writer in the message ("fetch", "serve"). Rejects PORTAL_OUTPUT_REFUSED naming the
 * missing folder or the part of the path that is not a folder.
 */
export async function checkOutputFolder(output: string, who: string): Promise<void> {
  const dir = path.dirname(output);
  try {
    const st = await stat(dir);
    if (!st.isDirectory()) throw refused(output, `cannot be created: ${escapeControl(dir)} is not a folder`);
  } catch (err) {
    if (err instanceof PortalError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT')
      throw refused(
        output,
        `cannot be created: folder ${escapeControl(dir)} does not exist (${who} creates no folders)`,
        err,
      );
    if (code === 'ENOTDIR')
      throw refused(output, `cannot be created: a part of ${escapeControl(dir)} is not a folder`, err);
    throw refused(output, `cannot be checked: ${(err as Error).message}`, err);
  }
}

/**
 * Checks one file a fetch writes beside `output` (its partial file, a partial-chunk log): absent or a
 * regular file passes; a symbolic link is refused unless `force` (then the link is removed, never followed:
 * the fetch would otherwise fail only after downloading, with ELOOP on every chunk); anything else is refused.
 */
async function checkSideFile(output: string, file: string, force: boolean): Promise<void> {
  let st;
  try {
    st = await lstat(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw refused(
      output,
      `cannot check its side-file ${escapeControl(file)}: ${(err as Error).message}`,
      err,
    );
  }
  if (st.isFile()) {
    const foreign = notOwnFileReason(st);
    if (foreign === undefined) return;
    if (force) {
      await unlink(file); // the name goes; the file it shared bytes with is left as it was
      return;
    }
    throw refused(
      output,
      `has a side-file ${escapeControl(file)} that ${foreign}: fetch writes only into files it owns alone (remove it, or --force replaces it)`,
    );
  }
  if (st.isSymbolicLink() && force) {
    await unlink(file);
    return;
  }
  throw refused(
    output,
    `has a side-file ${escapeControl(file)} that is ${st.isSymbolicLink() ? 'a symbolic link; fetch does not write through links (remove it, or --force replaces the link)' : 'not a regular file; remove it'}`,
  );
}

/**
 * Checks that `output` (an absolute path) can be written by a fetch, without creating anything:
 * its folder must exist and be a folder (no folder is created); an existing symbolic link, hard
 * link or unrelated regular file is refused unless `force` (then a link is removed, never followed);
 * something else (folder, device, FIFO) is always refused; a file whose journal is beside it is
 * resumed. The journal folder must be a real folder when it exists, and each of `sideFiles` absent or a
 * regular file (a link there is removed under `force`). An output bearing the name of another output's side file
 * (portalSideFileName: `<x>.portal-part`, `<x>.portal`…) is refused, and so is one whose side files' names would
 * exceed NAME_MAX (refuseLongNames). Rejects PORTAL_OUTPUT_REFUSED naming the path.
 */
export async function checkOutputTarget(output: string, o: OutputTargetOptions): Promise<OutputTargetState> {
  refuseUnsafeOutputName(output, output);
  refuseSideFileName(output, output);
  refuseLongNames(output, [output, o.journalDir, ...(o.sideFiles ?? [])]);
  await checkOutputFolder(output, 'fetch');
  try {
    const j = await lstat(o.journalDir);
    if (!j.isDirectory())
      throw refused(
        output,
        `has a journal path ${escapeControl(o.journalDir)} that is not a plain folder (a symbolic link or a file); remove it`,
      );
    const foreign = notOwnFolderReason(j);
    if (foreign !== undefined)
      throw refused(
        output,
        `has a journal folder ${escapeControl(o.journalDir)} that ${foreign}: its files could be replaced; remove it`,
      );
  } catch (err) {
    if (err instanceof PortalError) throw err;
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
      throw refused(output, `cannot check its journal: ${(err as Error).message}`, err);
  }
  for (const file of o.sideFiles ?? []) await checkSideFile(output, file, o.force);
  let st;
  try {
    st = await lstat(output);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'new';
    throw refused(output, `cannot be checked: ${(err as Error).message}`, err);
  }
  if (st.isSymbolicLink()) {
    if (!o.force)
      throw refused(
        output,
        'is a symbolic link; fetch does not write through links (--force replaces the link)',
      );
    await unlink(output);
    return 'replace';
  }
  // a folder is the commonest mistake here (--out downloads/): said as such, with what to give instead
  if (st.isDirectory())
    throw refused(
      output,
      'is a folder, not a file: give the path of a file inside it (the folder must exist)',
    );
  if (!st.isFile()) throw refused(output, 'exists and is not a regular file');
  if (await o.hasJournal()) {
    const foreign = notOwnFileReason(st);
    if (foreign !== undefined && !o.force)
      throw refused(output, `${foreign} (--force replaces it with a new file)`);
    if (foreign === undefined) return 'resume';
  }
  if (!o.force)
    throw refused(
      output,
      'already exists and no journal of this transfer is beside it; fetch does not overwrite (use --force, or another --out)',
    );
  // a hard link shares its bytes with another name, another user's file stays theirs: write a new file
  if (notOwnFileReason(st) !== undefined) await unlink(output);
  return 'replace';
}

/** A held output lock; `release()` / `releaseSync()` remove it (idempotent; the sync one for an 'exit' handler). */
export interface OutputLock {
  readonly path: string;
  release(): Promise<void>;
  releaseSync(): void;
}

/** True when process `pid` exists on this machine (signal 0 probes without signalling). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * When process `pid` started: field 22 of /proc/<pid>/stat (`starttime`, clock ticks after boot; proc(5)), as a
 * string; undefined where there is no /proc (not Linux) or the process is gone. With the pid it names one process
 * for as long as the machine runs: a pid reused later has another start time.
 */
export function processStartTime(pid: number): string | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // the command name (field 2) is in parentheses and may hold spaces: count the fields after its last ')'
    return text.slice(text.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

let self: { pid: number; started: string | undefined; nonce: string } | undefined;
/**
 * This process's identity in the locks it writes (pid, start time, a nonce no other process has), made at its first
 * lock rather than at import: `portal fetch` imports this module on its start-up path, where the RNG's first use
 * costs (see cli/code-cache.ts cacheName).
 */
const selfIdentity = (): { pid: number; started: string | undefined; nonce: string } =>
  (self ??= { pid: process.pid, started: processStartTime(process.pid), nonce: randomUUID() });

/**
 * Whether a lock naming `holder` (read back from its file, same host) is held by no running process: its pid is not
 * alive, or that pid now belongs to another process. The second case is a restarted container: `portal serve` as
 * pid 1 with the pod's hostname again, finding the locks its previous incarnation (also pid 1) left at a crash.
 * That holder is told apart by its nonce when the pid is this process's (only this process writes its nonce), and
 * by its start time (processStartTime) for any other pid. A holder written without these fields (older Portal) is
 * judged by its pid alone, as before.
 */
function staleHolder(holder: { pid?: unknown; started?: unknown; nonce?: unknown }, pid: number): boolean {
  if (!alive(pid)) return true;
  const me = selfIdentity();
  if (pid === me.pid) return typeof holder.nonce === 'string' && holder.nonce !== me.nonce;
  if (typeof holder.started !== 'string') return false;
  const now = processStartTime(pid);
  return now !== undefined && now !== holder.started;
}

/** The process a lock file names: its pid and host as read back, whichever could be read. */
export interface LockHolder {
  pid?: number;
  host?: string;
  /** True when the holder runs on this machine. */
  sameHost: boolean;
}

/**
 * Takes an exclusive lock: `file` created with O_EXCL | O_NOFOLLOW (0600) holding `{pid, host, started, nonce}`.
 * A lock whose process is gone (same host, pid not alive: a process killed with SIGKILL; or the pid now another
 * process's, as after a container's restart: see staleHolder) is taken over, once. Rejects with
 * `held(holder)` when another live process (or one on another host, or one that cannot be read) holds it, and
 * with `cannot(err)` when the file cannot be created. The folder of `file` must exist.
 */
export async function lockFile(
  file: string,
  held: (holder: LockHolder, cause: unknown) => PortalError,
  cannot: (err: unknown) => PortalError,
): Promise<OutputLock> {
  const { pid: myPid, started, nonce } = selfIdentity();
  const me = JSON.stringify({ pid: myPid, host: hostname(), started, nonce });
  for (let attempt = 0; ; attempt++) {
    try {
      const fh = await open(
        file,
        constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
        0o600,
      );
      try {
        await fh.writeFile(me);
      } catch (err) {
        // a full disk: no empty lock is left behind (it would read as held by nobody the next time)
        await fh.close().catch(() => undefined);
        await unlink(file).catch(() => undefined);
        throw withPath(err, file);
      }
      await fh.close();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw cannot(err);
      let holder: { pid?: unknown; host?: unknown; started?: unknown; nonce?: unknown } = {};
      try {
        holder = JSON.parse(await readFile(file, 'utf8')) as typeof holder;
      } catch {
        /* being written right now, or garbage: judged below as held */
      }
      const pid = typeof holder.pid === 'number' ? holder.pid : undefined;
      const sameHost = holder.host === hostname();
      if (attempt === 0 && pid !== undefined && sameHost && staleHolder(holder, pid)) {
        await unlink(file).catch(() => undefined); // stale: its process is gone (or its pid is another's now)
        continue;
      }
      throw held({ pid, host: typeof holder.host === 'string' ? holder.host : undefined, sameHost }, err);
    }
  }
  let released = false;
  return {
    path: file,
    async release() {
      if (released) return;
      released = true;
      await unlink(file).catch(() => undefined);
    },
    releaseSync() {
      if (released) return;
      released = true;
      try {
        unlinkSync(file);
      } catch {
        /* already gone */
      }
    },
  };
}

/** ` (pid N)` or ` (pid N on HOST)` for a lock's holder, empty when its pid could not be read. */
export function lockHolderText(h: LockHolder): string {
  return h.pid !== undefined ? ` (pid ${h.pid}${h.sameHost ? '' : ` on ${String(h.host)}`})` : '';
}

/**
 * Takes the exclusive lock of one output: the file `<journalDir>/lock` (lockFile). Creates `journalDir` (one level,
 * never its parents). Rejects PORTAL_OUTPUT_LOCKED naming the process that holds it, PORTAL_OUTPUT_REFUSED when the
 * lock cannot be created.
 */
export async function lockOutput(output: string, journalDir: string): Promise<OutputLock> {
  let created = false;
  try {
    await mkdir(journalDir, { mode: 0o700 });
    created = true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST')
      throw (
        noSpace(err, journalDir) ??
        refused(output, `cannot create its journal folder: ${(err as Error).message}`, err)
      );
  }
  const file = path.join(journalDir, 'lock');
  // a lock that cannot be taken leaves no folder this call created behind
  const taken = lockFile(
    file,
    (h, cause) =>
      new PortalError(
        'PORTAL_OUTPUT_LOCKED',
        `output ${escapeControl(output)} is being written by another portal process${lockHolderText(h)}; wait for it to finish, or remove ${escapeControl(file)} if no such process runs`,
        { cause },
      ),
    (err) =>
      noSpace(err, file) ??
      refused(output, `cannot take its lock ${escapeControl(file)}: ${(err as Error).message}`, err),
  );
  if (created) await taken.catch(() => rmdir(journalDir).catch(() => undefined));
  return taken;
}

/** A full disk (ENOSPC, EDQUOT) as PORTAL_NO_SPACE naming `file` (exit 3, not a refused output's 2); else undefined. */
function noSpace(err: unknown, file: string): PortalError | undefined {
  const e = localWriteError(err, file);
  return e?.code === 'PORTAL_NO_SPACE' ? e : undefined;
}

/** A file path confined to an output root by confineOutputFile, and what is there now. */
export interface ConfinedOutput {
  /** The path to open (the output root's real path, links in the existing part of the path resolved). */
  path: string;
  /** lstat of `path`: undefined when nothing is there yet. */
  existing: Stats | undefined;
}

/**
 * Real paths of output roots, resolved once per process: a host confines every start's output to the same
 * root, and resolving it again each time costs a file-system round trip per start. A root is an operator's
 * folder given at start-up; re-pointing a link above it while the host runs is not followed (the host keeps
 * writing where the root was when it started). Bounded: a process has one root or a few.
 */
const realRoots = new Map<string, Promise<string>>();

/** The real path of `root` (an existing folder), from realRoots; a failed resolution is not remembered. */
function realRootOf(root: string): Promise<string> {
  let p = realRoots.get(root);
  if (!p) {
    p = realpath(root);
    if (realRoots.size >= 64) realRoots.clear();
    realRoots.set(root, p);
    p.catch(() => realRoots.delete(root));
  }
  return p;
}

/** realRootOf, or PORTAL_CONFIG_INVALID naming a root that does not exist. */
async function existingRealRoot(root: string): Promise<string> {
  try {
    return await realRootOf(root);
  } catch (cause) {
    throw new PortalError('PORTAL_CONFIG_INVALID', `output root ${escapeControl(root)} does not exist`, {
      cause,
    });
  }
}

/**
 * `target` confined to `root` as resolveInsideRoot does, its folder checked as checkOutputFolder does, and the
 * lstat of the result. Same refusals and errors as those two (PORTAL_OUTPUT_OUTSIDE_ROOT, PORTAL_OUTPUT_REFUSED,
 * PORTAL_CONFIG_INVALID for a root that does not exist). The root's real path is resolved once per process
 * (realRoots), so a target directly in the root (the common case: `<root>/<name>` or a bare `<name>`) costs one
 * `lstat`, made synchronously: one metadata lookup in a folder of the host's own (~2 µs on a local file
 * system) costs less than a thread-pool round trip, which on a busy host also hands the CPU to a pool thread
 * in the middle of the caller's turn (an output root on a network file system would make each start block
 * the event loop for one lookup). A target in a sub-folder, or one that is a symbolic link, takes
 * resolveInsideRoot's walk (a `realpath` per missing part plus one), a `stat` of its folder and an `lstat`.
 * `who` names the writer in messages ("serve").
 */
export async function confineOutputFile(root: string, target: string, who: string): Promise<ConfinedOutput> {
  const direct = await directlyInRoot(root, target);
  if (direct !== undefined) return direct;
  const file = await resolveInsideRoot(root, target);
  await checkOutputFolder(file, who);
  return { path: file, existing: lstatIfPresent(file) };
}

/**
 * The lstat of `file`, made synchronously (a file in a folder of the host's own: see confineOutputFile); undefined
 * when nothing is there or it cannot be looked at. An absent file costs no error: an async `lstat` that fails
 * builds an Error with its stack on the main thread, after a thread-pool round trip.
 */
export function lstatIfPresent(file: string): Stats | undefined {
  try {
    return lstatSync(file, { throwIfNoEntry: false });
  } catch {
    return undefined;
  }
}

/**
 * confineOutputFile's and resolveInsideRoot's common case without their walk: `target` directly in the root
 * (`<root>/<name>` or a bare `<name>`), the root's real path known (realRoots), and that name not a symbolic link
 * (absent, or anything else): then its real path is `<real root>/<name>`, as the walk would find, for one
 * synchronous `lstat`. Undefined for every other case (a sub-folder, a link, a root not resolved), which takes the
 * walk and its refusals.
 */
async function directlyInRoot(root: string, target: string): Promise<ConfinedOutput | undefined> {
  if (typeof target !== 'string' || target.length === 0 || target.includes('\0')) return undefined;
  let realRoot: string;
  try {
    realRoot = await realRootOf(root);
  } catch {
    return undefined; // resolveInsideRoot names the missing root
  }
  const abs = path.resolve(realRoot, target);
  const dir = path.dirname(abs);
  const name = path.basename(abs);
  if ((dir !== realRoot && dir !== path.resolve(root)) || name === '' || name === '.' || name === '..')
    return undefined;
  // in the root itself: the folder is the root (a folder), and the file is the only part left to look at
  const file = path.join(realRoot, name);
  let st: Stats | undefined;
  try {
    st = lstatSync(file, { throwIfNoEntry: false });
  } catch {
    return undefined; // another error than ENOENT: the walk reports it with its cause
  }
  // a link is resolved (and confined) by the walk
  return st?.isSymbolicLink() ? undefined : { path: file, existing: st };
}

/**
 * `target` resolved inside `root`: both made absolute, symbolic links in the existing part of the
 * path resolved (realpath of the deepest existing ancestor, then the rest appended), and refused
 * with PORTAL_OUTPUT_OUTSIDE_ROOT when the result is not `root` itself or below it. `root` must
 * exist when it is first used (PORTAL_CONFIG_INVALID otherwise): its real path is resolved once per process
 * (realRoots). The returned path is the one to open; callers open it with O_NOFOLLOW so that a link
 * planted after this check is not followed either.
 */
export async function resolveInsideRoot(root: string, target: string): Promise<string> {
  if (typeof target !== 'string' || target.length === 0 || target.includes('\0'))
    throw new PortalError(
      'PORTAL_OUTPUT_OUTSIDE_ROOT',
      `output ${JSON.stringify(escapeControl(String(target)))} is not a file path`,
    );
  // directly in the root and not a link: one lstat, no walk (the executor confines each output it opens)
  const direct = await directlyInRoot(root, target);
  if (direct !== undefined) return direct.path;
  const realRoot = await existingRealRoot(root);
  const abs = path.resolve(realRoot, target);
  // realpath of the deepest ancestor that exists; the missing tail cannot hold links yet
  let existing = abs;
  const tail: string[] = [];
  let real: string | undefined;
  for (;;) {
    try {
      real = await realpath(existing);
      break;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR')
        throw new PortalError(
          'PORTAL_OUTPUT_OUTSIDE_ROOT',
          `output ${escapeControl(target)} cannot be resolved: ${(err as Error).message}`,
          { cause: err },
        );
      const parent = path.dirname(existing);
      if (parent === existing) break;
      tail.unshift(path.basename(existing));
      existing = parent;
    }
  }
  const resolved = path.join(real ?? existing, ...tail);
  const rel = path.relative(realRoot, resolved);
  if (rel === '')
    throw new PortalError(
      'PORTAL_OUTPUT_OUTSIDE_ROOT',
      `output ${escapeControl(target)} is the output root ${escapeControl(realRoot)} itself: name a file inside it`,
    );
  if (rel === '..' || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel))
    throw new PortalError(
      'PORTAL_OUTPUT_OUTSIDE_ROOT',
      `output ${escapeControl(target)} resolves to ${escapeControl(resolved)}, outside the output root ${escapeControl(realRoot)}`,
    );
  return resolved;
}

/**
 * Checks again that `file`, a path confineOutputFile or resolveInsideRoot returned for `root` (so below the
 * root's real path, links resolved when it was confined), still lies inside the root, for a writer about to
 * (re)open it or a file beside it: a restart, a resume after a host restart, an executor opening its output again,
 * the final datasync and rename. A folder of the path may have been replaced meanwhile by a symbolic link to a
 * place outside the root, which O_NOFOLLOW on the last component does not see. Each component below the root is
 * lstat'ed in turn: a symbolic link anywhere (a folder's place or the file's), or a part that is not a folder, is
 * refused; a missing part ends the walk (nothing below it exists, and no folder is created). Rejects
 * PORTAL_OUTPUT_OUTSIDE_ROOT naming the file and the component, PORTAL_CONFIG_INVALID for a root that is gone.
 *
 * What remains: Node has no openat(2)/openat2(RESOLVE_BENEATH), so the open that follows resolves the path
 * again by name. A local user who can write inside the root and swaps a folder for a link between this walk and
 * that open (microseconds) still wins the race; this check closes the window that stays open between a start and
 * every later open (minutes to days: a cancel and a restart, a host restart).
 */
export async function checkStillConfined(root: string, file: string): Promise<void> {
  checkStillConfinedSync(await existingRealRoot(root), file);
}

/**
 * checkStillConfined's walk, synchronous, against `realRoot` (the root's real path, resolved by the caller): for a
 * data-plane thread about to open an output or its partial-chunk log (a few lstats, once per file and thread, off
 * the main thread), and for the actor, whose check precedes a reopen that costs far more. Same refusals.
 */
export function checkStillConfinedSync(realRoot: string, file: string): void {
  const outside = (why: string): PortalError =>
    new PortalError(
      'PORTAL_OUTPUT_OUTSIDE_ROOT',
      `output ${escapeControl(file)} is no longer confined to the output root ${escapeControl(realRoot)}: ${why}; refusing to write there`,
    );
  const rel = path.relative(realRoot, path.resolve(realRoot, file));
  if (rel === '' || rel === '..' || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel))
    throw outside('it is not below the root');
  const parts = rel.split(path.sep);
  let at = realRoot;
  for (const [i, part] of parts.entries()) {
    at = path.join(at, part);
    let st: Stats | undefined;
    try {
      st = lstatSync(at, { throwIfNoEntry: false });
    } catch (err) {
      throw outside(`${escapeControl(at)} cannot be checked (${(err as Error).message})`);
    }
    if (st === undefined) return;
    const last = i === parts.length - 1;
    if (st.isSymbolicLink())
      throw outside(`${escapeControl(at)} is now a symbolic link${last ? '' : ' where a folder was'}`);
    if (!last && !st.isDirectory()) throw outside(`${escapeControl(at)} is not a folder`);
  }
}

/** A file or folder the host itself owns (its state folder, its code, its code cache), where no output may go. */
export interface HostOwnedPath {
  /** Its real path (links resolved), or the absolute path when it does not exist yet. */
  readonly path: string;
  /** What it is, for the refusal ("the state folder (--state-dir)"). */
  readonly what: string;
}

/**
 * Refuses with PORTAL_OUTPUT_OUTSIDE_ROOT (HTTP 403) when any of `files` (real paths a transfer would write: its
 * output, its partial file, its partial-chunk log, its lock folder) is one of `owned` or lies below it. An output
 * root may hold the host's own files (`--state-dir ./state` under the default `--output-root .`): a start writing
 * there would replace the host's lock, write-ahead log or actor snapshots with a mirror's bytes.
 */
export function refuseHostOwned(
  output: string,
  files: readonly string[],
  owned: readonly HostOwnedPath[],
): void {
  for (const o of owned)
    for (const file of files) {
      const rel = path.relative(o.path, file);
      if (rel === '' || (rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel)))
        throw new PortalError(
          'PORTAL_OUTPUT_OUTSIDE_ROOT',
          `output ${escapeControl(output)}: ${escapeControl(file)} lies in ${o.what} ${escapeControl(o.path)}, which this host owns; refusing to write there (choose a path outside it)`,
        );
    }
}

/** Real path of `p` (links resolved), or its absolute path when it does not exist (yet). */
export async function realPathOrAbsolute(p: string): Promise<string> {
  return realpath(p).catch(() => path.resolve(p));
}
