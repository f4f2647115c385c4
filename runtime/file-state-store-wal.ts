import { createHash } from 'node:crypto';
import { readdir, unlink, type FileHandle } from 'node:fs/promises';
import { openOwnFile, readOwnFile } from '../common/own-file.js';
import { withPath } from '../common/local-write-error.js';
import { join } from 'node:path';

/**
 * The shared commit log (write-ahead log) of a file state store in group-commit mode.
 *
 * Every transaction's operations on one actor are appended to the current segment as one hash-checked line,
 * `<sha256 hex of the JSON> <JSON>\n`, the JSON being `[actorPrefix, ops, first]` (`first`: the actor had no
 * files before this record). Lines that arrive while a write of the segment is in flight wait for it and are
 * then written together, with one `fdatasync` for all of them: group commit, as databases do (PostgreSQL's
 * `commit_delay`, InnoDB's group commit); the window is the time the previous fsync took, so one transaction
 * alone waits one fsync, and N concurrent ones share one instead of N. A transaction's caller is answered once
 * its line is durable; the actors' own files are not written then (the store keeps the committed state in
 * memory) but written back when the segment is checkpointed, as a database writes dirty pages back at its
 * checkpoints.
 *
 * Segments are named `wal-<12-digit sequence>.log`. When one grows past `segmentBytes` the next is started, and
 * the old one is checkpointed once every record begun in it was committed and taken into the store's memory
 * (`finish`): the store writes back every actor those records changed and makes the files durable (`writeBack`),
 * then the segment is removed. Segments are checkpointed in sequence order, so the segments on disk always hold
 * every record whose actor files may not be durable yet.
 *
 * Recovery (`readCommitLog`) returns the records of every segment, oldest first, each segment read up to its
 * first incomplete or mismatching line (a write cut by a crash); the store re-applies them (their values are
 * absolute, so applying a record twice is harmless) and makes the result durable before removing the segments.
 *
 * Hand-written: it is the store's durability protocol (what is durable when a call is answered), ~150 lines,
 * and no maintained Node library offers a group-committed log over the store's own per-actor files.
 */

/** One operation as the store logs it (see file-state-store.ts LogOp). */
export type WalOp = ['u', string, string] | ['b', string, string] | ['d', string];

/** One record: an actor's key prefix, the operations of one transaction on it, and whether it had no files. */
export interface WalRecord {
  readonly prefix: string;
  readonly ops: WalOp[];
  readonly first: boolean;
}

/** Bytes of a segment after which the next one is started (and the full one checkpointed). */
export const WAL_SEGMENT_BYTES = 4 * 2 ** 20;

const SEGMENT_RE = /^wal-(\d{12})\.log$/;
/** How commit log segments are opened: no symbolic link, only this user's regular files (openOwnFile). */
const COMMIT_LOG_FILE = { code: 'PORTAL_STATE_CORRUPT', what: 'commit log segment' } as const;
const segmentName = (seq: number): string => `wal-${String(seq).padStart(12, '0')}.log`;
const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

/** A record handed to the log: `committed` resolves once it is durable; `finish` hands it to the checkpoint. */
export interface WalEntry {
  readonly committed: Promise<void>;
  /** Sequence number of the segment whose checkpoint writes this record's actor back. */
  readonly seq: number;
  /**
   * Called once the committed record is in the store's memory (with `written` true), or once its commit failed
   * (false): the segment's checkpoint waits for every record begun in it, and writes back the actors of those
   * finished with `written` true.
   */
  finish(written: boolean): void;
}

/**
 * Writes back the actors with these key prefixes (the store's in-memory state of each, as it is now) and makes
 * their files and the directory durable; the checkpoint of segment `seq` removes the segment once it resolves.
 */
export type WriteBack = (prefixes: ReadonlySet<string>, seq: number) => Promise<void>;

interface Segment {
  readonly seq: number;
  readonly path: string;
  fh: FileHandle | undefined;
  bytes: number;
  /** Records begun in this segment and not finished. */
  open: number;
  /** Actors (key prefixes) this segment's records changed: written back at its checkpoint. */
  readonly dirty: Set<string>;
  full: boolean;
  /** Resolves when open reaches 0 after the segment is full. */
  drained?: () => void;
}

/** Counters of a commit log. */
export interface CommitLogStats {
  /** Group commits (one write and one fdatasync each). */
  commits: number;
  /** Records committed. */
  records: number;
  /** Bytes written to segments. */
  bytes: number;
  /** Segments checkpointed and removed. */
  checkpoints: number;
}

/**
 * Reads the segments in `dir`: their records in order and their file names. A segment's torn or mismatching
 * line ends that segment (what follows it was never acknowledged).
 */
export async function readCommitLog(
  dir: string,
): Promise<{ records: WalRecord[]; segments: string[]; nextSeq: number }> {
  const names = (await readdir(dir)).filter((n) => SEGMENT_RE.test(n)).sort();
  const records: WalRecord[] = [];
  for (const name of names) {
    const text = await readOwnFile(join(dir, name), COMMIT_LOG_FILE);
    let at = 0;
    for (;;) {
      const nl = text.indexOf('\n', at);
      if (nl < 0) break;
      const line = text.slice(at, nl);
      const json = line.slice(65);
      if (line[64] !== ' ' || sha256(json) !== line.slice(0, 64)) break;
      let rec: unknown;
      try {
        rec = JSON.parse(json);
      } catch {
        break;
      }
      if (!Array.isArray(rec) || typeof rec[0] !== 'string' || !Array.isArray(rec[1])) break;
      records.push({ prefix: rec[0], ops: rec[1] as WalOp[], first: rec[2] === true });
      at = nl + 1;
    }
  }
  const last = names.length > 0 ? Number(SEGMENT_RE.exec(names[names.length - 1])![1]) : 0;
  return { records, segments: names, nextSeq: last + 1 };
}

/**
 * The group-committed log of one store directory, starting a new segment with sequence `nextSeq`.
 * `writeBack` writes the actors of a segment being checkpointed (the store's) and `fsyncDir()` makes the
 * directory durable. A failed segment write rejects the records of that commit with the file system's error; a
 * failed write-back leaves that segment and every later one on disk, for the next open to replay.
 */
export class CommitLog {
  private current: Segment;
  private buffer: string[] = [];
  private waiters: Array<{ resolve: () => void; reject: (err: unknown) => void }> = [];
  private writing: Promise<void> | undefined;
  private checkpoints: Promise<void> = Promise.resolve();
  /** A checkpoint failed: segments are no longer removed (see rotate). */
  private broken = false;
  private readonly counters: CommitLogStats = { commits: 0, records: 0, bytes: 0, checkpoints: 0 };

  constructor(
    private readonly dir: string,
    nextSeq: number,
    private readonly writeBack: WriteBack,
    private readonly fsyncDir: () => Promise<void>,
    private readonly segmentBytes = WAL_SEGMENT_BYTES,
  ) {
    this.current = this.newSegment(nextSeq);
  }

  /**
   * Appends one record; see WalEntry. Records of one actor must be begun in the order of its writes, and the
   * store's memory must hold a record's effect before `finish(true)`.
   */
  begin(rec: WalRecord): WalEntry {
    const json = JSON.stringify([rec.prefix, rec.ops, rec.first]);
    const line = `${sha256(json)} ${json}\n`;
    const seg = this.current;
    seg.open++;
    this.buffer.push(line);
    const committed = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    if (!this.writing) this.writing = this.flush();
    let finished = false;
    return {
      committed,
      seq: seg.seq,
      finish: (written) => {
        if (finished) return;
        finished = true;
        if (written) seg.dirty.add(rec.prefix);
        seg.open--;
        if (seg.open === 0) seg.drained?.();
      },
    };
  }

  /** Waits for pending commits, then checkpoints every segment (the current one too) and removes them. */
  async close(): Promise<void> {
    while (this.writing) await this.writing;
    this.rotate();
    await this.checkpoints;
  }

  stats(): CommitLogStats {
    return { ...this.counters };
  }

  private newSegment(seq: number): Segment {
    return {
      seq,
      path: join(this.dir, segmentName(seq)),
      fh: undefined,
      bytes: 0,
      open: 0,
      dirty: new Set(),
      full: false,
    };
  }

  /** Writes what is buffered, one write and one fdatasync, until nothing is; then clears `writing`. */
  private async flush(): Promise<void> {
    while (this.buffer.length > 0) {
      const lines = this.buffer;
      const waiters = this.waiters;
      this.buffer = [];
      this.waiters = [];
      const seg = this.current;
      const data = lines.join('');
      try {
        if (!seg.fh) {
          seg.fh = await openOwnFile(seg.path, 'append', COMMIT_LOG_FILE);
          await this.fsyncDir(); // the segment's name is durable before any record in it counts as committed
        }
        await seg.fh.write(data);
        await seg.fh.datasync();
      } catch (err) {
        withPath(err, seg.path);
        for (const w of waiters) w.reject(err);
        continue;
      }
      this.counters.commits++;
      this.counters.records += lines.length;
      const bytes = Buffer.byteLength(data, 'utf8');
      this.counters.bytes += bytes;
      seg.bytes += bytes;
      for (const w of waiters) w.resolve();
      if (seg.bytes >= this.segmentBytes) this.rotate();
    }
    this.writing = undefined;
  }

  /** Starts the next segment and queues the checkpoint of the current one (after the ones before it). */
  private rotate(): void {
    const seg = this.current;
    seg.full = true;
    this.current = this.newSegment(seg.seq + 1);
    this.checkpoints = this.checkpoints
      .then(() => this.checkpoint(seg))
      .catch(() => {
        // an fsync failed: this segment and every later one stay on disk, and the next open replays them
        this.broken = true;
      });
  }

  private async checkpoint(seg: Segment): Promise<void> {
    if (seg.open > 0) await new Promise<void>((r) => (seg.drained = r));
    if (this.broken) {
      await seg.fh?.close();
      return;
    }
    if (seg.dirty.size > 0) await this.writeBack(seg.dirty, seg.seq);
    else await this.fsyncDir();
    if (seg.fh) {
      await seg.fh.close();
      await unlink(seg.path).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
    }
    this.counters.checkpoints++;
  }
}
