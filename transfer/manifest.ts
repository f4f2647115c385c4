import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { readFile, rename, stat, unlink } from 'node:fs/promises';
import { basename } from 'node:path';
import { constants as bufferConstants } from 'node:buffer';
import { Readable, promises as streams } from 'node:stream';
import { PortalError } from '../common/errors.js';
import { CidTable, CID_BYTES } from './cid-table.js';
import { NO_CID } from './cid.js';

/** Describes one file as a list of fixed-size chunks, each named by its sha256 CID. */
export interface Manifest {
  version: 1;
  /** sha256 of `${fileSha256}:${chunkSize}`, first 16 hex characters. */
  id: string;
  name: string;
  fileSize: number;
  chunkSize: number;
  fileSha256: string;
  /** sha256 hex of each chunk, in file order; the last chunk may be shorter. */
  chunks: string[];
}

/** A manifest whose CIDs are packed 32 bytes each (the scheduler's and the binary format's form). */
export interface PackedManifest extends Omit<Manifest, 'chunks'> {
  cids: CidTable;
}

/** Number of chunks of a manifest in either form; never throws for a manifest. */
export function manifestChunkCount(m: Manifest | PackedManifest): number {
  return 'cids' in m ? m.cids.count : m.chunks.length;
}

/** Packs a validated manifest (see parseManifest); PORTAL_MANIFEST_INVALID for a CID that is not 64 hex characters. */
export function packManifest(m: Manifest): PackedManifest {
  const { chunks, ...head } = m;
  return { ...head, cids: CidTable.fromHex(chunks) };
}

/** The manifest with hex CIDs (about 80 B of heap per chunk: for small manifests and JSON answers). */
export { resolveLimits as resolveManifestLimits };

export function unpackManifest(p: PackedManifest): Manifest {
  const { cids, ...head } = p;
  return { ...head, chunks: cids.toHexArray() };
}

/** Size limits enforced when creating, parsing or loading a manifest. */
export interface ManifestLimits {
  /** Most chunks a manifest may list (default 50,000,000). */
  maxChunks?: number;
  /**
   * Largest manifest JSON `loadManifest` and a manifestUrl read, in bytes (default: what `maxChunks` chunks take,
   * jsonManifestMaxBytes; MAX_JSON_MANIFEST_BYTES with the default chunk cap).
   */
  maxJsonBytes?: number;
}

/** Smallest chunk size a manifest may use (4 KiB). */
export const MIN_CHUNK_SIZE = 4 * 1024;
/** Largest chunk size a manifest may use (64 MiB). */
export const MAX_CHUNK_SIZE = 64 * 1024 * 1024;
/** Default chunk cap of a manifest: 50,000,000 chunks. */
const DEFAULT_MAX_CHUNKS = 50_000_000;

/**
 * Most bytes one chunk takes in a manifest's JSON: its CID as a JSON string (64 hex digits and 2 quotes), the comma
 * after it and up to 8 bytes of whitespace (a pretty printer's line break and indentation). `portal manifest` writes
 * 67.
 */
export const JSON_MANIFEST_BYTES_PER_CHUNK = 64 + 2 + 1 + 8;

/** Most bytes of a manifest's JSON besides its chunk list (version, id, name, sizes, file hash, whitespace): 64 KiB. */
export const JSON_MANIFEST_HEAD_BYTES = 64 * 1024;

/**
 * The most bytes a JSON manifest of at most `maxChunks` chunks can take: JSON_MANIFEST_HEAD_BYTES + maxChunks ×
 * JSON_MANIFEST_BYTES_PER_CHUNK, and never more than this runtime can parse at all: JSON.parse takes one string, of
 * at most buffer.constants.MAX_STRING_LENGTH characters (2^29 − 24 = 536,870,888 on 64-bit V8). Anything longer is
 * not a manifest that could load, so a reader stops there instead of buffering more.
 */
export function jsonManifestMaxBytes(maxChunks: number): number {
  return Math.min(
    JSON_MANIFEST_HEAD_BYTES + maxChunks * JSON_MANIFEST_BYTES_PER_CHUNK,
    bufferConstants.MAX_STRING_LENGTH,
  );
}

/**
 * The default cap on a manifest's JSON, from the default chunk cap: 65,536 + 50,000,000 × 75 = 3,750,065,536 bytes
 * for the chunk list, more than the string limit, so the string limit binds: 536,870,888 bytes (~512 MiB; a JSON
 * manifest carries at most ~7.1 million chunks; larger files take the binary manifest, 32 bytes a chunk, streamed).
 * It was 4 GiB: a manifestUrl answering an endless body was buffered up to 4 GiB before it was refused.
 */
export const MAX_JSON_MANIFEST_BYTES = jsonManifestMaxBytes(DEFAULT_MAX_CHUNKS);

/** Default limits: 50M chunks, MAX_JSON_MANIFEST_BYTES of JSON. */
export const DEFAULT_MANIFEST_LIMITS: Readonly<Required<ManifestLimits>> = Object.freeze({
  maxChunks: DEFAULT_MAX_CHUNKS,
  maxJsonBytes: MAX_JSON_MANIFEST_BYTES,
});

const HEX64 = /^[0-9a-fA-F]{64}$/;
const HEX16 = /^[0-9a-fA-F]{16}$/;

/** Computes a manifest id from the file hash and chunk size; never fails for string/number input. */
export function manifestId(fileSha256: string, chunkSize: number): string {
  return createHash('sha256').update(`${fileSha256}:${chunkSize}`).digest('hex').slice(0, 16);
}

/** Number of chunks in `m`; throws PORTAL_INVALID_ARGUMENT when `m` is not a manifest-shaped object. */
export function chunkCount(m: Manifest | PackedManifest): number {
  if (m && 'cids' in m && m.cids instanceof CidTable) return m.cids.count;
  if (!m || !Array.isArray((m as Manifest).chunks))
    throw new PortalError('PORTAL_INVALID_ARGUMENT', 'manifest: expected a Manifest with a chunks array');
  return (m as Manifest).chunks.length;
}

/** Byte range of chunk `index` in the file (the last chunk is shorter); throws PORTAL_UNKNOWN_CHUNK for an index outside the manifest. */
export function chunkRange(m: Manifest | PackedManifest, index: number): { offset: number; length: number } {
  const n = chunkCount(m);
  if (!Number.isInteger(index) || index < 0 || index >= n) {
    throw new PortalError(
      'PORTAL_UNKNOWN_CHUNK',
      `index: expected an integer in [0, ${n}), got ${String(index)}`,
    );
  }
  const offset = index * m.chunkSize;
  return { offset, length: Math.min(m.chunkSize, m.fileSize - offset) };
}

function resolveLimits(limits?: ManifestLimits): Required<ManifestLimits> {
  const maxChunks = limits?.maxChunks ?? DEFAULT_MAX_CHUNKS;
  const l = {
    maxChunks,
    maxJsonBytes:
      limits?.maxJsonBytes ??
      (Number.isInteger(maxChunks) ? jsonManifestMaxBytes(maxChunks) : MAX_JSON_MANIFEST_BYTES),
  };
  if (!Number.isInteger(l.maxChunks) || l.maxChunks < 0)
    throw new PortalError(
      'PORTAL_INVALID_ARGUMENT',
      `limits.maxChunks: expected a non-negative integer, got ${String(l.maxChunks)}`,
    );
  if (!Number.isInteger(l.maxJsonBytes) || l.maxJsonBytes < 0)
    throw new PortalError(
      'PORTAL_INVALID_ARGUMENT',
      `limits.maxJsonBytes: expected a non-negative integer, got ${String(l.maxJsonBytes)}`,
    );
  return l;
}

function checkChunkSize(
  chunkSize: unknown,
  name: string,
  code: 'PORTAL_INVALID_ARGUMENT' | 'PORTAL_MANIFEST_INVALID',
): asserts chunkSize is number {
  if (
    typeof chunkSize !== 'number' ||
    !Number.isInteger(chunkSize) ||
    chunkSize < MIN_CHUNK_SIZE ||
    chunkSize > MAX_CHUNK_SIZE
  ) {
    throw new PortalError(
      code,
      `${name}: expected an integer between ${MIN_CHUNK_SIZE} and ${MAX_CHUNK_SIZE} (4 KiB..64 MiB), got ${JSON.stringify(chunkSize)}`,
    );
  }
}

/** Options for createManifest. */
export interface CreateManifestOptions {
  chunkSize: number;
  /** Name recorded in the manifest (default: the file's base name). */
  name?: string;
  /** Called after each read with bytes hashed so far and the file size. */
  onProgress?: (bytesDone: number, total: number) => void;
  limits?: ManifestLimits;
}

/**
 * Builds the manifest of the file at `path` by streaming it once (constant memory apart from the CID list).
 * Throws PORTAL_INVALID_ARGUMENT for bad options, PORTAL_MANIFEST_TOO_LARGE when the file needs more chunks
 * than `limits.maxChunks`, PORTAL_MANIFEST_MISMATCH when the file changes size while being read, and
 * PORTAL_MANIFEST_INVALID (with the fs error as cause) when the file cannot be read.
 */
export async function createManifest(path: string, opts: CreateManifestOptions): Promise<Manifest> {
  return unpackManifest(await createPackedManifest(path, opts));
}

/**
 * Builds the manifest of the file at `path` with its CIDs packed (32 B per chunk instead of a hex string each),
 * for the binary format and files of many chunks. Errors as createManifest.
 */
export async function createPackedManifest(
  path: string,
  opts: CreateManifestOptions,
): Promise<PackedManifest> {
  if (typeof path !== 'string' || path === '')
    throw new PortalError('PORTAL_INVALID_ARGUMENT', 'path: expected a non-empty string');
  if (!opts || typeof opts !== 'object')
    throw new PortalError('PORTAL_INVALID_ARGUMENT', 'opts: expected { chunkSize }');
  checkChunkSize(opts.chunkSize, 'opts.chunkSize', 'PORTAL_INVALID_ARGUMENT');
  if (opts.onProgress !== undefined && typeof opts.onProgress !== 'function')
    throw new PortalError('PORTAL_INVALID_ARGUMENT', 'opts.onProgress: expected a function');
  const limits = resolveLimits(opts.limits);
  const chunkSize = opts.chunkSize;

  let total: number;
  try {
    const st = await stat(path);
    if (!st.isFile()) throw new PortalError('PORTAL_INVALID_ARGUMENT', `path: ${path} is not a regular file`);
    total = st.size;
  } catch (err) {
    if (err instanceof PortalError) throw err;
    throw new PortalError('PORTAL_MANIFEST_INVALID', `cannot read ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const expectedChunks = Math.ceil(total / chunkSize);
  if (expectedChunks > limits.maxChunks) {
    throw new PortalError(
      'PORTAL_MANIFEST_TOO_LARGE',
      `${path}: ${expectedChunks} chunks of ${chunkSize} bytes exceed limits.maxChunks (${limits.maxChunks})`,
    );
  }

  const fileHash = createHash('sha256');
  const cids = new Uint8Array(expectedChunks * CID_BYTES);
  let filled = 0;
  let chunkHash = createHash('sha256');
  let inChunk = 0;
  let done = 0;
  const stream = createReadStream(path, { highWaterMark: Math.min(chunkSize, 1024 * 1024) });
  try {
    for await (const data of stream as AsyncIterable<Buffer>) {
      fileHash.update(data);
      let pos = 0;
      while (pos < data.length) {
        const take = Math.min(chunkSize - inChunk, data.length - pos);
        chunkHash.update(data.subarray(pos, pos + take));
        inChunk += take;
        pos += take;
        if (inChunk === chunkSize) {
          if (filled < expectedChunks) cids.set(chunkHash.digest(), filled * CID_BYTES);
          filled++;
          chunkHash = createHash('sha256');
          inChunk = 0;
        }
      }
      done += data.length;
      if (done > total) break;
      opts.onProgress?.(done, total);
    }
  } catch (err) {
    throw new PortalError('PORTAL_MANIFEST_INVALID', `cannot read ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  } finally {
    stream.destroy();
  }
  if (done !== total)
    throw new PortalError(
      'PORTAL_MANIFEST_MISMATCH',
      `${path} changed while hashing: expected ${total} bytes, read ${done}`,
    );
  if (inChunk > 0) cids.set(chunkHash.digest(), filled * CID_BYTES);
  const fileSha256 = fileHash.digest('hex');
  return {
    version: 1,
    id: manifestId(fileSha256, chunkSize),
    name: opts.name ?? basename(path),
    fileSize: total,
    chunkSize,
    fileSha256,
    cids: new CidTable(cids),
  };
}

function invalid(field: string, expectation: string, got?: unknown): PortalError {
  const shown = got === undefined ? '' : `, got ${describe(got)}`;
  return new PortalError('PORTAL_MANIFEST_INVALID', `manifest.${field}: expected ${expectation}${shown}`);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (typeof v === 'string') return v.length > 80 ? `${JSON.stringify(v.slice(0, 80))}…` : JSON.stringify(v);
  if (typeof v === 'object' || typeof v === 'function') return `an ${typeof v}`;
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint')
    return `${typeof v} ${v.toString()}`;
  return typeof v;
}

/**
 * Validates a decoded manifest (or its JSON text) and returns a normalized copy (hex lowercased).
 * Throws PORTAL_MANIFEST_INVALID naming the first bad field (type, range, hex form, chunk count,
 * id mismatch) and PORTAL_MANIFEST_TOO_LARGE when it lists more than `limits.maxChunks` chunks.
 */
export function parseManifest(json: unknown, limits?: ManifestLimits): Manifest {
  const l = resolveLimits(limits);
  let v = json;
  if (typeof v === 'string') {
    try {
      v = JSON.parse(v);
    } catch (err) {
      throw new PortalError(
        'PORTAL_MANIFEST_INVALID',
        `manifest: not valid JSON: ${(err as Error).message}`,
        { cause: err },
      );
    }
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v))
    throw new PortalError('PORTAL_MANIFEST_INVALID', `manifest: expected an object, got ${describe(v)}`);
  const o = v as Record<string, unknown>;
  if (o.version !== 1) throw invalid('version', '1', o.version);
  if (typeof o.name !== 'string') throw invalid('name', 'a string', o.name);
  if (typeof o.fileSize !== 'number' || !Number.isSafeInteger(o.fileSize) || o.fileSize < 0)
    throw invalid('fileSize', 'a non-negative safe integer', o.fileSize);
  checkChunkSize(o.chunkSize, 'manifest.chunkSize', 'PORTAL_MANIFEST_INVALID');
  if (typeof o.fileSha256 !== 'string' || !HEX64.test(o.fileSha256))
    throw invalid('fileSha256', '64 hex characters', o.fileSha256);
  if (typeof o.id !== 'string' || !HEX16.test(o.id)) throw invalid('id', '16 hex characters', o.id);
  if (!Array.isArray(o.chunks)) throw invalid('chunks', 'an array of 64-hex-character strings', o.chunks);
  const fileSize = o.fileSize;
  const chunkSize = o.chunkSize;
  const expected = Math.ceil(fileSize / chunkSize);
  if (o.chunks.length > l.maxChunks) {
    throw new PortalError(
      'PORTAL_MANIFEST_TOO_LARGE',
      `manifest.chunks: ${o.chunks.length} chunks exceed limits.maxChunks (${l.maxChunks})`,
    );
  }
  if (o.chunks.length !== expected) {
    throw invalid(
      'chunks',
      `${expected} entries (ceil(fileSize ${fileSize} / chunkSize ${chunkSize}))`,
      o.chunks,
    );
  }
  const chunks = new Array<string>(expected);
  for (let i = 0; i < expected; i++) {
    const c: unknown = o.chunks[i];
    if (typeof c !== 'string' || !HEX64.test(c)) throw invalid(`chunks[${i}]`, '64 hex characters', c);
    chunks[i] = c.toLowerCase();
  }
  const fileSha256 = o.fileSha256.toLowerCase();
  const id = o.id.toLowerCase();
  const want = manifestId(fileSha256, chunkSize);
  // A manifest of mirrors without a known file hash (fileSha256 all zeros, see NO_CID) has an id of its
  // sources instead, so two different files never share one.
  if (id !== want && !/^0{64}$/.test(fileSha256))
    throw invalid('id', `${want} (sha256 of "fileSha256:chunkSize", 16 hex)`, o.id);
  return { version: 1, id, name: o.name, fileSize, chunkSize, fileSha256, chunks };
}

/**
 * Refuses a manifest read from an input (a file, a manifestUrl, a manifestCid, an uploaded binary manifest) whose
 * file sha-256 or a chunk CID is 64 zeros: that is NO_CID, Portal's own "no hash known" marker (only manifests Portal
 * builds for sources without hashes use it), and taken as given it would switch that check off. Throws
 * PORTAL_MANIFEST_INVALID naming `where` and the first such hash; returns `m` otherwise. Cost: one pass over the
 * CIDs.
 */
export function refuseUnknownHashes<M extends Manifest | PackedManifest>(m: M, where: string): M {
  const bad = (what: string): PortalError =>
    new PortalError(
      'PORTAL_MANIFEST_INVALID',
      `manifest ${where}: ${what} is all zeros, which is no real sha-256 (Portal reads it as "no hash known" and would check nothing)`,
    );
  if (m.fileSha256 === NO_CID) throw bad('fileSha256');
  if ('cids' in m) {
    for (let i = 0; i < m.cids.count; i++) if (m.cids.isUnknown(i)) throw bad(`the CID of chunk ${i}`);
  } else {
    const i = m.chunks.indexOf(NO_CID);
    if (i >= 0) throw bad(`chunks[${i}]`);
  }
  return m;
}

/**
 * Writes `m` as JSON to `path`, streaming the chunk list so huge manifests never become one string.
 * Validates first (PORTAL_MANIFEST_INVALID / PORTAL_MANIFEST_TOO_LARGE); fs failures reject with the fs error as cause of PORTAL_MANIFEST_INVALID.
 */
export async function saveManifest(path: string, m: Manifest, limits?: ManifestLimits): Promise<void> {
  if (typeof path !== 'string' || path === '')
    throw new PortalError('PORTAL_INVALID_ARGUMENT', 'path: expected a non-empty string');
  const v = parseManifest(m, limits);
  function* parts(): Generator<string> {
    yield `{"version":1,"id":${JSON.stringify(v.id)},"name":${JSON.stringify(v.name)},"fileSize":${v.fileSize},"chunkSize":${v.chunkSize},"fileSha256":${JSON.stringify(v.fileSha256)},"chunks":[`;
    const BATCH = 4096;
    for (let i = 0; i < v.chunks.length; i += BATCH) {
      const part = v.chunks
        .slice(i, i + BATCH)
        .map((c) => `"${c}"`)
        .join(',');
      yield i === 0 ? part : `,${part}`;
    }
    yield ']}\n';
  }
  await writeManifestParts(path, parts());
}

/**
 * Writes `parts` to a new file at `path` with backpressure (stream.pipeline): into a temporary file created
 * exclusively beside it, then renamed onto `path`, so a link (symbolic or hard) planted at `path` is replaced,
 * never written through, and a reader never sees half a manifest. fs failures reject with
 * PORTAL_MANIFEST_INVALID with the fs error as cause; an error thrown by `parts` propagates as it is.
 */
export async function writeManifestParts(path: string, parts: Iterable<string | Uint8Array>): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const out = createWriteStream(tmp, { flags: 'wx', mode: 0o644 });
  let writeError: unknown;
  out.once('error', (err) => (writeError = err));
  try {
    await streams.pipeline(Readable.from(parts, { objectMode: false }), out);
    await rename(tmp, path).catch((err: unknown) => {
      writeError = err;
      throw err;
    });
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    if (writeError === undefined) throw err;
    throw new PortalError(
      'PORTAL_MANIFEST_INVALID',
      `cannot write manifest to ${path}: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
}

/**
 * Reads and validates the manifest JSON at `path`. Throws PORTAL_MANIFEST_TOO_LARGE when the file exceeds
 * `limits.maxJsonBytes` (checked before reading) or the JS string limit, PORTAL_MANIFEST_INVALID for
 * unreadable files, bad JSON or bad fields (see parseManifest), and for an all-zero hash (refuseUnknownHashes).
 */
export async function loadManifest(path: string, limits?: ManifestLimits): Promise<Manifest> {
  if (typeof path !== 'string' || path === '')
    throw new PortalError('PORTAL_INVALID_ARGUMENT', 'path: expected a non-empty string');
  const l = resolveLimits(limits);
  let size: number;
  try {
    size = (await stat(path)).size;
  } catch (err) {
    throw new PortalError(
      'PORTAL_MANIFEST_INVALID',
      `cannot read manifest ${path}: ${(err as Error).message}`,
      { cause: err },
    );
  }
  if (size > l.maxJsonBytes)
    throw new PortalError(
      'PORTAL_MANIFEST_TOO_LARGE',
      `${path}: ${size} bytes of JSON exceed limits.maxJsonBytes (${l.maxJsonBytes})`,
    );
  if (size > bufferConstants.MAX_STRING_LENGTH) {
    throw new PortalError(
      'PORTAL_MANIFEST_TOO_LARGE',
      `${path}: ${size} bytes of JSON exceed this runtime's string limit (${bufferConstants.MAX_STRING_LENGTH})`,
    );
  }
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new PortalError(
      'PORTAL_MANIFEST_INVALID',
      `cannot read manifest ${path}: ${(err as Error).message}`,
      { cause: err },
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new PortalError('PORTAL_MANIFEST_INVALID', `manifest ${path}: ${jsonSyntaxError(err)}`);
  }
  return refuseUnknownHashes(parseManifest(json, l), path);
}

/**
 * "not valid JSON", without the input snippet V8's SyntaxError quotes (`Unexpected token 'r', "root:*:0:0"...`):
 * a manifest named by a caller may be a file the caller cannot read, and its bytes must not come back in an error
 * (or a log). The character position is kept where V8 gives one.
 */
export function jsonSyntaxError(err: unknown): string {
  const at = /position (\d+)/.exec(err instanceof Error ? err.message : '');
  return at ? `not valid JSON (at character ${at[1]})` : 'not valid JSON';
}
