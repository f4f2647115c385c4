import { createHash, randomBytes } from 'node:crypto';
import { open, readdir, rename, stat, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { PortalError } from '../common/errors.js';
import { withPath } from '../common/local-write-error.js';
import { notOwnFolderReason, openOwnFile, readOwnFile } from '../common/own-file.js';
import { parseStateKey } from './state-keys.js';
import { CommitLog, readCommitLog, type CommitLogStats, type WalRecord } from './file-state-store-wal.js';
import type { StateStore } from './types.js';
import { makeDirs } from '../common/make-dirs.js';
import { forEachLimited } from '../common/for-each-limited.js';

/**
 * How the store's files are opened (openOwnFile): never through a symbolic link, only regular files of this user,
 * written only when no other hard link shares them. A link planted at a snapshot, log, blob or commit log name
 * (to another file of the user's, or to a file an attacker wants overwritten or read into the state) is refused
 * with PORTAL_STATE_CORRUPT naming the file; renames and unlinks act on the name itself and never follow one.
 */
export const STATE_FILE = { code: 'PORTAL_STATE_CORRUPT', what: 'state file' } as const;

/** Version tag of the per-actor file format. */
const FORMAT_VERSION = 1;

/** Suffix of files being written; a crash can leave them behind and loading ignores them. */
export const TMP_SUFFIX = '.tmp';

/**
 * One actor's snapshot as kept on disk: `{ v, actor, entries: { key: value }, blobs?: { key: sha256 } }`, values
 * being the stored strings. A value of BLOB_MIN_BYTES or more lives in its own content-addressed file (written
 * once) and the snapshot names it in `blobs`: a transfer's manifest is written once, not with every change.
 * Transactions after the snapshot are appended to the actor's log (see LogRecord) until compaction folds them
 * into a new snapshot.
 */
interface ActorFile {
  readonly v: number;
  /** `${actorType}||${actorId}||` */
  readonly actor: string;
  readonly entries: Record<string, string>;
  readonly blobs?: Record<string, string>;
}

/** Values at least this long are stored once in a blob file instead of inside the snapshot or log. */
export const BLOB_MIN_BYTES = 64 * 1024;

/**
 * The log is folded into a new snapshot when it would grow past the larger of this and twice the snapshot: the
 * bytes written per transaction stay proportional to its change (amortized, at most 1.5 times the log's bytes).
 */
export const LOG_MIN_BYTES = 64 * 1024;

/**
 * Actors written back at once by a checkpoint of the commit log and by the recovery of a crashed one (each a
 * snapshot written, fsynced and renamed into place). One at a time, every fsync waited for the one before: on the
 * dev machine's virtio disk a checkpoint of ~2 000 actors took 8.7–13.6 s, and `serve --state-dir` restarted after
 * a SIGKILL with 3 000 queued transfers in the log took 21–33 s to be ready. Four at a time the device merges the
 * flushes (1 000 small files: 6.8 s one by one, 0.57 s four at once): checkpoints 1.5–2.4 s, that restart
 * 6.4–6.9 s, and libuv's pool (4 threads, shared with the host's other file work) still serves the commit log
 * between them (BENCHMARKS.md, "Issue 15 at the end of session 13").
 */
export const WRITE_BACK_CONCURRENCY = 4;

/** Actors known to have no files that a store remembers, per actor it caches (see createFileStateStore). */
const ABSENT_PER_CACHED = 4;

/** Actors whose keys a store keeps in memory at most, by default (least recently used ones are dropped). */
export const DEFAULT_MAX_CACHED_ACTORS = 1024;

/**
 * One operation of a log record: `["u", key, value]` sets a value, `["b", key, sha256]` sets a value kept in
 * a blob, `["d", key]` deletes. A log line is `<sha256 hex of the JSON> <JSON array of operations>\n`: a line
 * that is incomplete or whose hash does not match (a write cut by a crash) ends the log, and is cut off before
 * the next append.
 */
type LogOp = ['u', string, string] | ['b', string, string] | ['d', string];

type Op = Parameters<StateStore['transaction']>[0][number];

/** What the store keeps in memory of one actor: its keys (blob values stay on disk) and its files' sizes. */
interface ActorRecord {
  /** Values stored inline. */
  readonly inline: Map<string, string>;
  /** Keys whose value is in a blob, with its sha256. */
  readonly blobs: Map<string, string>;
  /** Bytes of the snapshot file; 0 when the actor has none. */
  snapshotBytes: number;
  /** Bytes of the log that hold whole records. */
  logBytes: number;
  /** The log has bytes past logBytes (a torn record) to cut before the next append. */
  logTorn: boolean;
  /** Blobs the snapshot or the log still name but the current state does not: removed at compaction. */
  readonly garbage: Set<string>;
}

/** Counters of a file state store (bytes written to snapshots, logs and blobs). */
export interface FileStateStoreStats {
  /** Bytes written to files (snapshots, log records, blobs), temporary files included. */
  bytesWritten: number;
  /** Records appended to actor logs. */
  logAppends: number;
  /** Snapshots written (first write of an actor, and compactions). */
  snapshots: number;
  /** Blob files written. */
  blobs: number;
  /** Actors whose keys are held in memory now (those not written back included). */
  cachedActors: number;
  /** Snapshot files read, or looked for (a new actor's first read looks for none: see createFileStateStore). */
  snapshotReads: number;
  /** Group-commit mode only: actors whose committed state is newer than their files (written back at checkpoints). */
  unwrittenActors?: number;
  /** Group-commit mode only: the shared commit log's counters (commits = fdatasyncs of the log). */
  commitLog?: CommitLogStats;
}

/** A StateStore kept in files, with its write counters. */
export interface FileStateStore extends StateStore {
  stats(): FileStateStoreStats;
}

/** Options of createFileStateStore. */
export interface FileStateStoreOptions {
  /** Actors whose keys stay in memory at most (default DEFAULT_MAX_CACHED_ACTORS); the others are read again. */
  readonly maxCachedActors?: number;
  /**
   * Group commit (default false): transactions are made durable by a shared commit log, one fdatasync for all
   * the transactions that arrive while the previous one runs, instead of one or more fsyncs each. A transaction
   * resolves once its record is durable in the log; the actor's files are not written then: the committed state
   * stays in memory (not evicted) until the log's segment is checkpointed, which writes back each actor it
   * changed, once, as a durable snapshot (file-state-store-wal.ts). For hosts with many actors writing at once
   * (serve): a transaction costs one shared log write instead of its own file writes.
   */
  readonly groupCommit?: boolean;
  /** Group commit: bytes of a commit log segment before the next is started (default WAL_SEGMENT_BYTES, 4 MiB). */
  readonly commitLogSegmentBytes?: number;
}

/**
 * Writes `data` to `path` so that after a crash the file holds either the old or the new content, never a
 * mix: write a temporary file beside it, fsync it, rename it over `path`, fsync the directory. Rejects with
 * the file system's error (the temporary file is removed on failure). The file is created 0600 (owner only):
 * journals may hold what a user would not share.
 */
export async function writeFileAtomic(path: string, data: string): Promise<void> {
  await replaceFile(path, data);
}

/**
 * writeFileAtomic; with `syncDir` false the directory is not fsynced (the caller fsyncs it once for many files:
 * the new content is durable once it is, the rename until then may be lost in a power cut, never torn).
 */
async function replaceFile(path: string, data: string, syncDir = true): Promise<void> {
  const tmp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}${TMP_SUFFIX}`;
  const fh = await openOwnFile(tmp, 'create', STATE_FILE);
  try {
    await fh.writeFile(data, 'utf8');
    await fh.sync();
  } catch (err) {
    await fh.close();
    await unlink(tmp).catch(() => undefined); // best effort: the write error below is what matters
    throw withPath(err, path); // a FileHandle's error names no file: the one it was meant to replace
  }
  await fh.close();
  await rename(tmp, path);
  if (syncDir) await fsyncDir(dirname(path));
}

/** Removes `path`; a file already gone is fine. */
async function unlinkIfPresent(path: string): Promise<void> {
  await unlink(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
}

/** Removes `path` (missing is fine) and makes the removal durable. */
async function unlinkDurable(path: string, dir: string): Promise<void> {
  try {
    await unlink(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    return;
  }
  await fsyncDir(dir);
}

/** fsyncs a directory so a rename or unlink in it survives power loss (Linux; other platforms may refuse). */
async function fsyncDir(dir: string): Promise<void> {
  const dh = await open(dir, 'r');
  try {
    await dh.sync();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // Some platforms cannot fsync a directory handle; the rename is still atomic there.
    if (code !== 'EISDIR' && code !== 'EINVAL' && code !== 'EPERM') throw err;
  } finally {
    await dh.close();
  }
}

/** File name stem of an actor's files: base64url of its key prefix, or a sha256 when that would be too long. */
function fileStemFor(prefix: string): string {
  const b64 = Buffer.from(prefix, 'utf8').toString('base64url');
  if (b64.length <= 200) return `a-${b64}`;
  return `h-${createHash('sha256').update(prefix).digest('hex')}`;
}

/** File name of the blob holding a value with this sha256 (hex) for the actor with this key prefix. */
function blobNameFor(prefix: string, sha: string): string {
  return `b-${createHash('sha256').update(prefix).digest('hex').slice(0, 32)}-${sha}.blob`;
}

/** File name of a blob written by an earlier version, shared by every actor holding the same value. */
const legacyBlobName = (sha: string): string => `b-${sha}.blob`;

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

function corrupt(path: string, why: string, cause?: unknown): PortalError {
  return new PortalError(
    'PORTAL_STATE_CORRUPT',
    `state file ${path} is corrupt: ${why}`,
    cause === undefined ? undefined : { cause },
  );
}

/** Parses and checks one actor file; throws PORTAL_STATE_CORRUPT naming the file. */
function parseActorFile(path: string, text: string, expectedPrefix?: string): ActorFile {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw corrupt(path, 'not valid JSON', err);
  }
  if (typeof doc !== 'object' || doc === null) throw corrupt(path, 'not a JSON object');
  const { v, actor, entries } = doc as Partial<ActorFile>;
  if (v !== FORMAT_VERSION) throw corrupt(path, `unknown format version ${JSON.stringify(v)}`);
  if (typeof actor !== 'string' || parseStateKey(actor)?.key !== '')
    throw corrupt(path, 'missing or malformed "actor"');
  if (expectedPrefix !== undefined && actor !== expectedPrefix)
    throw corrupt(path, `holds actor ${JSON.stringify(actor)}, expected ${JSON.stringify(expectedPrefix)}`);
  if (typeof entries !== 'object' || entries === null || Array.isArray(entries))
    throw corrupt(path, 'missing "entries" object');
  for (const value of Object.values(entries)) {
    if (typeof value !== 'string') throw corrupt(path, 'an entry value is not a string');
  }
  const { blobs } = doc as Partial<ActorFile>;
  if (blobs !== undefined) {
    if (typeof blobs !== 'object' || blobs === null || Array.isArray(blobs))
      throw corrupt(path, '"blobs" is not an object');
    for (const sha of Object.values(blobs))
      if (typeof sha !== 'string' || !/^[0-9a-f]{64}$/.test(sha))
        throw corrupt(path, 'a blob reference is not a sha256');
  }
  return { v, actor, entries, blobs };
}

/** Parses the log `text` (see LogOp): the operations of its whole records and the bytes they take. */
function parseLog(text: string): { records: LogOp[][]; bytes: number } {
  const records: LogOp[][] = [];
  let at = 0;
  for (;;) {
    const nl = text.indexOf('\n', at);
    if (nl < 0) break;
    const line = text.slice(at, nl);
    const space = line.indexOf(' ');
    const json = line.slice(space + 1);
    if (space !== 64 || sha256(json) !== line.slice(0, 64)) break;
    let ops: unknown;
    try {
      ops = JSON.parse(json);
    } catch {
      break;
    }
    if (!Array.isArray(ops)) break;
    records.push(ops as LogOp[]);
    at = nl + 1;
  }
  return { records, bytes: Buffer.byteLength(text.slice(0, at), 'utf8') };
}

/**
 * Creates a durable StateStore in directory `dir` (created if missing), keyed by the Dapr layout
 * `${actorType}||${actorId}||${key}`; keys that do not follow it are rejected with PORTAL_INVALID_ARGUMENT.
 *
 * Each actor has a snapshot file (`a-….json`) and a log (`a-….log`): a transaction on one actor is one log
 * record, appended and fsynced, so its bytes on disk are those of the keys it changes; when the log outgrows
 * max(LOG_MIN_BYTES, twice the snapshot) the actor's state is written as a new snapshot (see writeFileAtomic) and
 * the log removed. Values of BLOB_MIN_BYTES or more are written once to their own file. A transaction's
 * operations on one actor are atomic (a record cut by a crash fails its hash and is ignored); a transaction
 * spanning several actors is atomic per actor only. The keys of the last `maxCachedActors` actors used are kept
 * in memory (blob values are read from disk), so the directory must have a single owning process: the names of
 * the snapshots in it are listed once when it is opened and kept up to date, so a read of an actor without files
 * (every new actor's first read) looks for none. In group-commit mode (`opts.groupCommit`) a transaction writes
 * only its record in the shared commit log, and the actors' files are written back at the log's checkpoints.
 * A snapshot that cannot be parsed rejects the read with PORTAL_STATE_CORRUPT naming it; leftover `*.tmp` files
 * from a crash are ignored. After `close()` every call rejects with PORTAL_STORE_CLOSED.
 */
export function createFileStateStore(dir: string, opts: FileStateStoreOptions = {}): FileStateStore {
  const maxCached = opts.maxCachedActors ?? DEFAULT_MAX_CACHED_ACTORS;
  if (!Number.isInteger(maxCached) || maxCached < 1)
    throw new PortalError(
      'PORTAL_INVALID_ARGUMENT',
      `opts.maxCachedActors: expected an integer ≥ 1, got ${String(maxCached)}`,
    );
  /**
   * Loaded actors by key prefix, least recently used first (a Map keeps insertion order: re-inserting on use
   * makes it an LRU list in a few lines, without a cache dependency). An actor without files is not kept.
   */
  const actors = new Map<string, Promise<ActorRecord>>();
  /**
   * Actors a read found without files and that nothing wrote since, oldest first, at most ABSENT_PER_CACHED ×
   * maxCached: a new actor's first reads (its request, journal, reminders) then cost no file system call.
   */
  const absent = new Set<string>();
  /** Reads in flight of actors not in memory, by prefix; `written`: a transaction on it began meanwhile. */
  const reading = new Map<string, { count: number; written: boolean }>();
  /** Per-actor write chains, so two transactions on one actor never race their appends and renames. */
  const writes = new Map<string, Promise<void>>();
  const counters = { bytesWritten: 0, logAppends: 0, snapshots: 0, blobs: 0, snapshotReads: 0 };
  /** File stems of the actors with a snapshot in the directory (listed when it is opened, then kept up to date). */
  const onDisk = new Set<string>();
  /**
   * Group-commit mode: actors whose committed state is newer than their files, with the sequence number of the
   * last commit log segment holding one of their records. Not evicted: their files are written back (and they
   * leave this map) when that segment is checkpointed.
   */
  const unwritten = new Map<string, { rec: ActorRecord; seq: number }>();
  let ready: Promise<void> | undefined;
  let closed = false;
  /** The shared commit log in group-commit mode, once the directory is open (see recover). */
  let wal: CommitLog | undefined;

  const init = (): Promise<void> =>
    (ready ??= makeDirs(dir, 0o700)
      .then(() => stat(dir))
      .then((st) => {
        // anyone who may write in the folder may plant or replace the files in it
        const foreign = notOwnFolderReason(st);
        if (foreign !== undefined)
          throw new PortalError(STATE_FILE.code, `state folder ${dir} is refused: it ${foreign}`);
      })
      .then(() => readdir(dir))
      .then((names) => {
        for (const name of names)
          if (name.endsWith('.json') && !name.endsWith(TMP_SUFFIX))
            onDisk.add(name.slice(0, -'.json'.length));
      })
      .then(recover));

  const checkOpen = (): void => {
    if (closed) throw new PortalError('PORTAL_STORE_CLOSED', `file state store ${dir} is closed`);
  };

  const parseKey = (key: string) => {
    const parsed = typeof key === 'string' ? parseStateKey(key) : undefined;
    if (!parsed)
      throw new PortalError(
        'PORTAL_INVALID_ARGUMENT',
        `key: expected "<actorType>||<actorId>||<key>", got ${JSON.stringify(key)}`,
      );
    return parsed;
  };

  const snapshotPath = (prefix: string): string => join(dir, `${fileStemFor(prefix)}.json`);
  const logPath = (prefix: string): string => join(dir, `${fileStemFor(prefix)}.log`);

  const writeAtomic = async (path: string, data: string): Promise<void> => {
    await writeFileAtomic(path, data);
    counters.bytesWritten += Buffer.byteLength(data, 'utf8');
  };

  /** Reads an actor's snapshot and replays its log (blob values stay on disk). */
  const readRecord = async (prefix: string, path: string, text: string): Promise<ActorRecord> => {
    const file = parseActorFile(path, text, prefix);
    const rec: ActorRecord = {
      inline: new Map(Object.entries(file.entries)),
      blobs: new Map(Object.entries(file.blobs ?? {})),
      snapshotBytes: Buffer.byteLength(text, 'utf8'),
      logBytes: 0,
      logTorn: false,
      garbage: new Set(),
    };
    let log: string;
    try {
      log = await readOwnFile(logPath(prefix), STATE_FILE);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return rec;
      throw err;
    }
    const { records, bytes } = parseLog(log);
    for (const ops of records) applyOps(rec, ops);
    rec.logBytes = bytes;
    rec.logTorn = bytes < Buffer.byteLength(log, 'utf8');
    return rec;
  };

  const applyOps = (rec: ActorRecord, ops: readonly LogOp[]): void => {
    for (const op of ops) {
      const old = rec.blobs.get(op[1]);
      if (old !== undefined) rec.garbage.add(old);
      rec.blobs.delete(op[1]);
      rec.inline.delete(op[1]);
      if (op[0] === 'u') rec.inline.set(op[1], op[2]);
      else if (op[0] === 'b') {
        rec.blobs.set(op[1], op[2]);
        rec.garbage.delete(op[2]);
      }
    }
  };

  /** The actor's record; undefined when it has no snapshot (a log without one is left over from a removal). */
  const readActor = async (prefix: string): Promise<ActorRecord | undefined> => {
    await init();
    return readActorFiles(prefix);
  };

  const readActorFiles = async (prefix: string): Promise<ActorRecord | undefined> => {
    if (!onDisk.has(fileStemFor(prefix))) return undefined;
    counters.snapshotReads++;
    const path = snapshotPath(prefix);
    let text: string;
    try {
      text = await readOwnFile(path, STATE_FILE);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    return readRecord(prefix, path, text);
  };

  const touch = (prefix: string, p: Promise<ActorRecord>): void => {
    absent.delete(prefix); // written (a write's own first read may have found no files)
    actors.delete(prefix);
    actors.set(prefix, p);
    if (actors.size <= maxCached) return;
    for (const key of actors.keys()) {
      if (actors.size <= maxCached) break;
      if (!writes.has(key)) actors.delete(key); // an actor being written stays until its write ends
    }
  };

  /** The actor's record from memory or disk; a fresh empty one (not kept) when it has no files. */
  const emptyRecord = (): ActorRecord => ({
    inline: new Map(),
    blobs: new Map(),
    snapshotBytes: 0,
    logBytes: 0,
    logTorn: false,
    garbage: new Set(),
  });

  const loadActor = async (prefix: string): Promise<ActorRecord> => {
    const dirty = unwritten.get(prefix);
    if (dirty) return dirty.rec;
    const cached = actors.get(prefix);
    if (cached) {
      touch(prefix, cached);
      return cached;
    }
    if (absent.has(prefix)) return emptyRecord();
    let r = reading.get(prefix);
    if (!r) reading.set(prefix, (r = { count: 0, written: false }));
    r.count++;
    let rec: ActorRecord | undefined;
    try {
      rec = await readActor(prefix);
    } finally {
      if (--r.count === 0) reading.delete(prefix);
    }
    if (!rec) {
      // not when a write began during the read: its files may exist now
      if (!r.written && !actors.has(prefix)) {
        absent.add(prefix);
        if (absent.size > ABSENT_PER_CACHED * maxCached)
          absent.delete(absent.values().next().value as string);
      }
      return emptyRecord();
    }
    const again = actors.get(prefix); // a write that ended meanwhile is newer than what was read
    if (again) return again;
    touch(prefix, Promise.resolve(rec));
    return rec;
  };

  const readBlob = async (prefix: string, key: string, sha: string): Promise<string> => {
    const path = snapshotPath(prefix);
    let value: string;
    try {
      value = await readOwnFile(join(dir, blobNameFor(prefix, sha)), STATE_FILE);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      try {
        value = await readOwnFile(join(dir, legacyBlobName(sha)), STATE_FILE);
      } catch (err2) {
        throw corrupt(
          path,
          `its blob ${blobNameFor(prefix, sha)} for key ${JSON.stringify(key)} cannot be read`,
          err2,
        );
      }
    }
    if (sha256(value) !== sha)
      throw corrupt(path, `its blob for key ${JSON.stringify(key)} does not match its hash`);
    return value;
  };

  /**
   * Writes the actor's state as a new snapshot (durable; with `syncDir` false the directory is not fsynced, see
   * replaceFile), and returns its bytes.
   */
  const writeSnapshot = async (prefix: string, rec: ActorRecord, syncDir = true): Promise<number> => {
    const doc: ActorFile = {
      v: FORMAT_VERSION,
      actor: prefix,
      entries: Object.fromEntries(rec.inline),
      ...(rec.blobs.size > 0 ? { blobs: Object.fromEntries(rec.blobs) } : {}),
    };
    const text = JSON.stringify(doc);
    await replaceFile(snapshotPath(prefix), text, syncDir);
    onDisk.add(fileStemFor(prefix));
    const bytes = Buffer.byteLength(text, 'utf8');
    counters.bytesWritten += bytes;
    counters.snapshots++;
    return bytes;
  };

  /** Writes the actor's state as a new durable snapshot, removes its log, then the blobs nothing names any more. */
  const compact = async (prefix: string, rec: ActorRecord): Promise<void> => {
    const bytes = await writeSnapshot(prefix, rec);
    // a crash before the log is gone replays records the snapshot already holds: their values are absolute (a
    // first snapshot also removes a log left over from a removal cut short)
    await unlinkDurable(logPath(prefix), dir);
    for (const sha of rec.garbage) await unlinkDurable(join(dir, blobNameFor(prefix, sha)), dir);
    rec.garbage.clear();
    rec.snapshotBytes = bytes;
    rec.logBytes = 0;
    rec.logTorn = false;
  };

  /** Removes the actor's files (the snapshot first: a log without a snapshot is ignored when read); `durable`: each removal fsynced. */
  const removeActorFiles = async (prefix: string, rec: ActorRecord, durable: boolean): Promise<void> => {
    const remove = durable ? (path: string) => unlinkDurable(path, dir) : unlinkIfPresent;
    await remove(snapshotPath(prefix));
    onDisk.delete(fileStemFor(prefix));
    await remove(logPath(prefix));
    for (const sha of rec.garbage) await remove(join(dir, blobNameFor(prefix, sha)));
    rec.garbage.clear();
  };

  /** Appends one record to the actor's log and fsyncs it (the directory too when the log is new). */
  const append = async (prefix: string, rec: ActorRecord, line: string): Promise<void> => {
    const path = logPath(prefix);
    if (rec.logTorn) {
      const torn = await openOwnFile(path, 'write', STATE_FILE);
      try {
        await torn.truncate(rec.logBytes);
      } finally {
        await torn.close();
      }
      rec.logTorn = false;
    }
    const bytes = Buffer.byteLength(line, 'utf8');
    const fh = await openOwnFile(path, 'append', STATE_FILE);
    try {
      await fh.writeFile(line, 'utf8');
      await fh.datasync();
    } catch (err) {
      rec.logTorn = true; // whatever part of the line reached the file is cut before the next append
      throw withPath(err, path);
    } finally {
      await fh.close();
    }
    if (rec.logBytes === 0) await fsyncDir(dir);
    rec.logBytes += bytes;
    counters.bytesWritten += bytes;
    counters.logAppends++;
  };

  const writeActor = async (prefix: string, ops: Op[]): Promise<void> => {
    const current = await loadActor(prefix);
    // the actor's state before this record is empty: recovery can rebuild it from here (see recover)
    const first = current.snapshotBytes === 0 && current.inline.size === 0 && current.blobs.size === 0;
    const rec: ActorRecord = {
      ...current,
      inline: new Map(current.inline),
      blobs: new Map(current.blobs),
      garbage: new Set(current.garbage),
    };
    const logOps: LogOp[] = [];
    for (const op of ops) {
      const key = op.key.slice(prefix.length);
      if (op.op === 'delete') {
        if (rec.inline.has(key) || rec.blobs.has(key)) logOps.push(['d', key]);
      } else if (op.value.length < BLOB_MIN_BYTES) {
        logOps.push(['u', key, op.value]);
      } else {
        const sha = sha256(op.value);
        // content-addressed: written (and fsynced) before the record that names it; an unchanged value is not rewritten
        if (rec.blobs.get(key) !== sha) {
          await writeAtomic(join(dir, blobNameFor(prefix, sha)), op.value);
          counters.blobs++;
        }
        logOps.push(['b', key, sha]);
      }
    }
    applyOps(rec, logOps);
    if (!wal) {
      await writeActorFiles(prefix, rec, logOps);
      return;
    }
    if (logOps.length === 0) return;
    // group commit: the record is durable in the shared log; the actor's files are written back at the segment's
    // checkpoint, from memory, which holds the actor until then (write-ahead: its files never run ahead of the log)
    const entry = wal.begin({ prefix, ops: logOps, first });
    try {
      await entry.committed;
    } catch (err) {
      entry.finish(false);
      throw err;
    }
    unwritten.set(prefix, { rec, seq: entry.seq });
    absent.delete(prefix);
    entry.finish(true);
  };

  /** Writes a transaction's effect on the actor's files (see writeActor), each write fsynced: without group commit. */
  const writeActorFiles = async (prefix: string, rec: ActorRecord, logOps: LogOp[]): Promise<void> => {
    if (rec.inline.size === 0 && rec.blobs.size === 0) {
      await removeActorFiles(prefix, rec, true);
      actors.delete(prefix);
      return;
    }
    if (logOps.length > 0) {
      const json = JSON.stringify(logOps);
      const line = `${sha256(json)} ${json}\n`;
      const limit = Math.max(LOG_MIN_BYTES, 2 * rec.snapshotBytes);
      if (rec.snapshotBytes === 0 || rec.logBytes + Buffer.byteLength(line, 'utf8') > limit)
        await compact(prefix, rec);
      else await append(prefix, rec, line);
    }
    touch(prefix, Promise.resolve(rec));
  };

  /**
   * Group-commit mode, the checkpoint of commit log segment `seq` (see CommitLog): writes the actors of `prefixes`
   * as they are in memory now, each a durable snapshot (or its files removed when it holds no key), fsyncs the
   * directory, then removes their logs (left by a store without group commit) and the blobs they no longer name,
   * and fsyncs it again. An actor leaves `unwritten` when no later segment holds a record of it.
   */
  const writeBack = async (prefixes: ReadonlySet<string>, seq: number): Promise<void> => {
    const written: Array<[string, ActorRecord]> = [];
    await forEachLimited(prefixes, WRITE_BACK_CONCURRENCY, async (prefix) => {
      const entry = unwritten.get(prefix);
      if (!entry) return;
      const rec = entry.rec;
      if (rec.inline.size === 0 && rec.blobs.size === 0) await removeActorFiles(prefix, rec, false);
      else rec.snapshotBytes = await writeSnapshot(prefix, rec, false);
      written.push([prefix, rec]);
    });
    await fsyncDir(dir);
    for (const [prefix, rec] of written) {
      // only once the snapshot replacing it is durable: a log left beside an older snapshot would be replayed
      await unlinkIfPresent(logPath(prefix));
      rec.logBytes = 0;
      rec.logTorn = false;
    }
    await Promise.all(written.map(([prefix, rec]) => serialize(prefix, () => dropGarbage(prefix, rec))));
    await fsyncDir(dir);
    for (const [prefix] of written) {
      const entry = unwritten.get(prefix);
      if (!entry || entry.seq > seq) continue; // a later segment's checkpoint writes it again
      unwritten.delete(prefix);
      if (entry.rec.inline.size === 0 && entry.rec.blobs.size === 0) actors.delete(prefix);
      else touch(prefix, Promise.resolve(entry.rec));
    }
  };

  /**
   * Removes the blobs `rec` (as written back) no longer names, unless the actor changed since: its newer state
   * may name them again, and its own write-back removes them. Runs in the actor's write chain, so no transaction
   * is writing a blob of it meanwhile.
   */
  const dropGarbage = async (prefix: string, rec: ActorRecord): Promise<void> => {
    const now = unwritten.get(prefix)?.rec;
    if (now !== undefined && now !== rec) return;
    for (const sha of rec.garbage) await unlinkIfPresent(join(dir, blobNameFor(prefix, sha)));
    rec.garbage.clear();
  };

  /**
   * When the directory is opened (in either mode: a store opened without group commit still replays what one with
   * it left): re-applies the records of the commit log's segments left by
   * a crash to the actors' files (values are absolute: a record the files already hold changes nothing), writes
   * each touched actor as a durable snapshot (or removes it when empty), then removes the segments and opens a
   * new one. An actor whose snapshot is unreadable but whose creation the log holds is rebuilt from the log.
   */
  const recover = async (): Promise<void> => {
    const { records, segments, nextSeq } = await readCommitLog(dir);
    const byActor = new Map<string, WalRecord[]>();
    for (const r of records) {
      let list = byActor.get(r.prefix);
      if (!list) byActor.set(r.prefix, (list = []));
      list.push(r);
    }
    const rebuilt: Array<[string, ActorRecord]> = [];
    await forEachLimited(byActor, WRITE_BACK_CONCURRENCY, async ([prefix, list]) => {
      let rec: ActorRecord | undefined;
      let from = 0;
      try {
        rec = await readActorFiles(prefix);
      } catch (err) {
        // the snapshot written (without an fsync) when the actor was created: rebuilt from its creation on
        from = -1;
        for (let i = list.length - 1; i >= 0 && from < 0; i--) if (list[i].first) from = i;
        if (from < 0) throw err;
      }
      rec ??= emptyRecord();
      for (const r of list.slice(from)) applyOps(rec, r.ops);
      if (rec.inline.size === 0 && rec.blobs.size === 0) await removeActorFiles(prefix, rec, false);
      else rec.snapshotBytes = await writeSnapshot(prefix, rec, false);
      rebuilt.push([prefix, rec]);
    });
    // As a checkpoint does (writeBack), with one directory fsync per step instead of two per actor: the snapshots'
    // names are durable before the logs and blobs they replace go, and those are gone before the segments go (a
    // crash until then replays the segments again: their values are absolute).
    if (rebuilt.length > 0) await fsyncDir(dir);
    await forEachLimited(rebuilt, WRITE_BACK_CONCURRENCY, async ([prefix, rec]) => {
      await unlinkIfPresent(logPath(prefix));
      for (const sha of rec.garbage) await unlinkIfPresent(join(dir, blobNameFor(prefix, sha)));
      rec.garbage.clear();
      rec.logBytes = 0;
      rec.logTorn = false;
    });
    if (rebuilt.length > 0) await fsyncDir(dir);
    for (const name of segments) await unlink(join(dir, name));
    if (segments.length > 0) await fsyncDir(dir);
    if (opts.groupCommit)
      wal = new CommitLog(dir, nextSeq, writeBack, () => fsyncDir(dir), opts.commitLogSegmentBytes);
  };

  /** Every actor with a snapshot in the directory: from memory when loaded, else read (and not kept). */
  const allActors = async (): Promise<Array<[string, ActorRecord]>> => {
    await init();
    const out: Array<[string, ActorRecord]> = [];
    for (const name of await readdir(dir)) {
      if (!name.endsWith('.json') || name.endsWith(TMP_SUFFIX)) continue;
      const path = join(dir, name);
      const text = await readOwnFile(path, STATE_FILE);
      const file = parseActorFile(path, text);
      if (unwritten.has(file.actor)) continue; // newer in memory: below
      const cached = actors.get(file.actor);
      out.push([file.actor, cached ? await cached : await readRecord(file.actor, path, text)]);
    }
    for (const [prefix, { rec }] of unwritten) out.push([prefix, rec]);
    return out;
  };

  /** Runs `job` after the actor's writes queued before it (and `onError` if it fails); see `writes`. */
  const serialize = (prefix: string, job: () => Promise<void>, onError?: () => void): Promise<void> => {
    const prev = writes.get(prefix) ?? Promise.resolve();
    const p = prev.then(job);
    const tail = p.catch(() => onError?.());
    writes.set(prefix, tail);
    void tail.then(() => {
      if (writes.get(prefix) === tail) writes.delete(prefix);
    });
    return p;
  };

  const keysOf = (rec: ActorRecord): string[] => [...rec.inline.keys(), ...rec.blobs.keys()];

  return {
    async get(key) {
      checkOpen();
      const { prefix, key: local } = parseKey(key);
      const rec = await loadActor(prefix);
      const inline = rec.inline.get(local);
      if (inline !== undefined) return inline;
      const sha = rec.blobs.get(local);
      return sha === undefined ? undefined : readBlob(prefix, local, sha);
    },

    async transaction(ops) {
      checkOpen();
      const byActor = new Map<string, Op[]>();
      for (const op of ops) {
        const { prefix } = parseKey(op.key);
        let list = byActor.get(prefix);
        if (!list) byActor.set(prefix, (list = []));
        list.push(op);
      }
      for (const prefix of byActor.keys()) {
        absent.delete(prefix);
        const r = reading.get(prefix);
        if (r) r.written = true;
      }
      await init();
      const done: Promise<void>[] = [];
      for (const [prefix, list] of byActor)
        done.push(
          serialize(
            prefix,
            () => writeActor(prefix, list),
            () => {
              actors.delete(prefix); // after a failed write, what is on disk is read again
              absent.delete(prefix);
            },
          ),
        );
      await Promise.all(done);
    },

    async keys(prefix) {
      checkOpen();
      const parsed = parseStateKey(prefix);
      if (parsed) {
        const rec = await loadActor(parsed.prefix);
        return keysOf(rec)
          .map((k) => parsed.prefix + k)
          .filter((full) => full.startsWith(prefix));
      }
      const out: string[] = [];
      for (const [actor, rec] of await allActors()) {
        if (!actor.startsWith(prefix) && !prefix.startsWith(actor)) continue;
        for (const key of keysOf(rec)) {
          const full = actor + key;
          if (full.startsWith(prefix)) out.push(full);
        }
      }
      return out;
    },

    async close() {
      closed = true;
      await Promise.all([...writes.values()]);
      await wal?.close();
    },

    stats() {
      return {
        ...counters,
        cachedActors: actors.size + unwritten.size,
        ...(wal ? { commitLog: wal.stats(), unwrittenActors: unwritten.size } : {}),
      };
    },
  };
}
