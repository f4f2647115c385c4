import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readFile, readdir, rename, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { PortalError } from '../common/errors.js';
import { parseStateKey } from './state-keys.js';
import type { StateStore } from './types.js';

/** Version tag of the per-actor file format. */
const FORMAT_VERSION = 1;

/** Suffix of files being written; a crash can leave them behind and loading ignores them. */
export const TMP_SUFFIX = '.tmp';

/**
 * One actor's keys as kept on disk: `{ v, actor, entries: { key: value }, blobs?: { key: sha256 } }`, values
 * being the stored strings. A value of BLOB_MIN_BYTES or more lives in its own content-addressed file
 * (`b-<sha256>.blob`, written once) and the actor file names it in `blobs`: rewriting the actor file for a small
 * change (a journal's bitmap) then costs the small entries, not the large ones (a transfer's manifest).
 */
interface ActorFile {
  readonly v: number;
  /** `${actorType}||${actorId}||` */
  readonly actor: string;
  readonly entries: Record<string, string>;
  readonly blobs?: Record<string, string>;
}

/** Values at least this long are stored once in a blob file instead of inside the actor file. */
export const BLOB_MIN_BYTES = 64 * 1024;

/** File name of the blob holding a value with this sha256 (hex). */
const blobName = (sha: string): string => `b-${sha}.blob`;

type Op = Parameters<StateStore['transaction']>[0][number];

/**
 * Writes `data` to `path` so that after a crash the file holds either the old or the new content, never a
 * mix: write a temporary file beside it, fsync it, rename it over `path`, fsync the directory. Rejects with
 * the file system's error (the temporary file is removed on failure). The file is created 0600 (owner only):
 * journals may hold what a user would not share.
 */
export async function writeFileAtomic(path: string, data: string): Promise<void> {
  const tmp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}${TMP_SUFFIX}`;
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(data, 'utf8');
    await fh.sync();
  } catch (err) {
    await fh.close();
    await unlink(tmp).catch(() => undefined); // best effort: the write error below is what matters
    throw err;
  }
  await fh.close();
  await rename(tmp, path);
  await fsyncDir(dirname(path));
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

/** File name of an actor's file: base64url of its key prefix, or a sha256 when that would be too long. */
function fileNameFor(prefix: string): string {
  const b64 = Buffer.from(prefix, 'utf8').toString('base64url');
  if (b64.length <= 200) return `a-${b64}.json`;
  return `h-${createHash('sha256').update(prefix).digest('hex')}.json`;
}

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

/**
 * Creates a durable StateStore in directory `dir` (created if missing): one JSON file per actor, keyed by the
 * Dapr layout `${actorType}||${actorId}||${key}`; keys that do not follow it are rejected with
 * PORTAL_INVALID_ARGUMENT. A transaction's operations on one actor are written atomically (see
 * writeFileAtomic); a transaction spanning several actors is atomic per actor only. Files are cached in memory
 * after the first read, so the directory must have a single owning process. A file that cannot be parsed
 * rejects the read with PORTAL_STATE_CORRUPT naming it; leftover `*.tmp` files from a crash are ignored.
 * After `close()` every call rejects with PORTAL_STORE_CLOSED.
 */
export function createFileStateStore(dir: string): StateStore {
  /** Loaded actor files by prefix (a file that does not exist loads as an empty map). */
  const actors = new Map<string, Promise<Map<string, string>>>();
  /** Per-actor write chains, so two transactions on one actor never race their renames. */
  const writes = new Map<string, Promise<void>>();
  let ready: Promise<void> | undefined;
  let scanned: Promise<void> | undefined;
  let closed = false;

  const init = (): Promise<void> =>
    (ready ??= mkdir(dir, { recursive: true, mode: 0o700 }).then(() => undefined));

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

  /** Per actor: the blob each large key is stored in, with the value it holds (so unchanged values are not re-hashed). */
  const blobsOf = new Map<string, Map<string, { sha: string; value: string }>>();

  /** An actor file's entries with its blobs read back in (PORTAL_STATE_CORRUPT when a blob is missing or altered). */
  const entriesOf = async (path: string, file: ActorFile): Promise<Map<string, string>> => {
    const out = new Map(Object.entries(file.entries));
    const refs = new Map<string, { sha: string; value: string }>();
    for (const [key, sha] of Object.entries(file.blobs ?? {})) {
      let value: string;
      try {
        value = await readFile(join(dir, blobName(sha)), 'utf8');
      } catch (err) {
        throw corrupt(path, `its blob ${blobName(sha)} for key ${JSON.stringify(key)} cannot be read`, err);
      }
      if (createHash('sha256').update(value).digest('hex') !== sha)
        throw corrupt(path, `its blob ${blobName(sha)} does not match its hash`);
      out.set(key, value);
      refs.set(key, { sha, value });
    }
    blobsOf.set(file.actor, refs);
    return out;
  };

  const readActor = async (prefix: string): Promise<Map<string, string>> => {
    await init();
    const path = join(dir, fileNameFor(prefix));
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
      throw err;
    }
    return entriesOf(path, parseActorFile(path, text, prefix));
  };

  const loadActor = (prefix: string): Promise<Map<string, string>> => {
    let p = actors.get(prefix);
    if (!p) {
      p = readActor(prefix);
      actors.set(prefix, p);
      // A failed read is not cached: the next call reads (and reports) again.
      p.catch(() => {
        if (actors.get(prefix) === p) actors.delete(prefix);
      });
    }
    return p;
  };

  /** Loads every actor file in the directory (once), for key listings that span actors. */
  const scanAll = (): Promise<void> => {
    scanned ??= (async () => {
      await init();
      const names = await readdir(dir);
      for (const name of names) {
        if (!name.endsWith('.json') || name.endsWith(TMP_SUFFIX)) continue;
        const path = join(dir, name);
        const file = parseActorFile(path, await readFile(path, 'utf8'));
        if (!actors.has(file.actor)) actors.set(file.actor, Promise.resolve(await entriesOf(path, file)));
      }
    })();
    scanned.catch(() => {
      scanned = undefined;
    });
    return scanned;
  };

  const writeActor = async (prefix: string, ops: Op[]): Promise<void> => {
    const current = await loadActor(prefix);
    const next = new Map(current);
    for (const op of ops) {
      const key = op.key.slice(prefix.length);
      if (op.op === 'upsert') next.set(key, op.value);
      else next.delete(key);
    }
    const path = join(dir, fileNameFor(prefix));
    const before = blobsOf.get(prefix) ?? new Map<string, { sha: string; value: string }>();
    const refs = new Map<string, { sha: string; value: string }>();
    if (next.size === 0) {
      await unlinkDurable(path, dir);
    } else {
      const entries: Record<string, string> = {};
      const blobs: Record<string, string> = {};
      for (const [key, value] of next) {
        if (value.length < BLOB_MIN_BYTES) {
          entries[key] = value;
          continue;
        }
        // an unchanged value keeps its blob: no hashing, no writing (the same string as last time)
        let ref = before.get(key);
        if (!ref || ref.value !== value) {
          ref = { sha: createHash('sha256').update(value).digest('hex'), value };
          // content-addressed: written before the actor file that names it, so a crash leaves no dangling name
          await writeFileAtomic(join(dir, blobName(ref.sha)), value);
        }
        refs.set(key, ref);
        blobs[key] = ref.sha;
      }
      const doc: ActorFile = {
        v: FORMAT_VERSION,
        actor: prefix,
        entries,
        ...(refs.size > 0 ? { blobs } : {}),
      };
      await writeFileAtomic(path, JSON.stringify(doc));
    }
    blobsOf.set(prefix, refs);
    // blobs this actor no longer names (another actor may hold the same content: keep those)
    const inUse = new Set([...blobsOf.values()].flatMap((m) => [...m.values()].map((r) => r.sha)));
    for (const { sha } of before.values())
      if (!inUse.has(sha)) await unlinkDurable(join(dir, blobName(sha)), dir);
    actors.set(prefix, Promise.resolve(next));
  };

  return {
    async get(key) {
      checkOpen();
      const { prefix, key: local } = parseKey(key);
      return (await loadActor(prefix)).get(local);
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
      await init();
      const done: Promise<void>[] = [];
      for (const [prefix, list] of byActor) {
        const prev = writes.get(prefix) ?? Promise.resolve();
        const p = prev.then(() => writeActor(prefix, list));
        const tail = p.catch(() => undefined); // the chain continues; the error reaches this transaction's caller
        writes.set(prefix, tail);
        void tail.then(() => {
          if (writes.get(prefix) === tail) writes.delete(prefix);
        });
        done.push(p);
      }
      await Promise.all(done);
    },

    async keys(prefix) {
      checkOpen();
      const parsed = parseStateKey(prefix);
      const out: string[] = [];
      if (parsed) {
        for (const key of (await loadActor(parsed.prefix)).keys()) {
          const full = parsed.prefix + key;
          if (full.startsWith(prefix)) out.push(full);
        }
        return out;
      }
      await scanAll();
      for (const [actor, entries] of actors) {
        if (!actor.startsWith(prefix) && !prefix.startsWith(actor)) continue;
        for (const key of (await entries).keys()) {
          const full = actor + key;
          if (full.startsWith(prefix)) out.push(full);
        }
      }
      return out;
    },

    async close() {
      closed = true;
      await Promise.all([...writes.values()]);
    },
  };
}
