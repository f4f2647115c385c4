import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { constants as bufferConstants } from 'node:buffer';
import { PortalError } from '../common/errors.js';
import { CidTable, CID_BYTES } from './cid-table.js';
import {
  MAX_CHUNK_SIZE,
  MIN_CHUNK_SIZE,
  manifestId,
  refuseUnknownHashes,
  writeManifestParts,
  type PackedManifest,
} from './manifest.js';

/**
 * The binary chunk-hash manifest (docs/manifest-format.md): a 72-byte header, the name, then 32 bytes (the raw
 * sha-256) per chunk. Big-endian integers. The magic starts with a byte above 0x7f and holds CR LF, ^Z and LF
 * (as PNG's does) so that a text-mode transfer that rewrites line ends or drops the high bit is detected.
 */
export const BINARY_MANIFEST_MAGIC = Buffer.from([0x89, 0x50, 0x43, 0x4d, 0x0d, 0x0a, 0x1a, 0x0a]);
/** Media type of the binary manifest (HTTP `content-type`). */
export const BINARY_MANIFEST_MEDIA_TYPE = 'application/vnd.portal.manifest';
/** Format version this code reads and writes. */
export const BINARY_MANIFEST_VERSION = 1;
/** Bytes before the name: magic 8, version 2, name length 2, chunk size 4, file size 8, chunk count 8, id 8, file sha-256 32. */
export const BINARY_MANIFEST_HEADER_BYTES = 72;
/**
 * Most chunks a binary manifest may list by default: one table of 32 B per chunk must fit in one typed array
 * (Node 20: at most 2^32 bytes), so 2^27 = 134,217,728 chunks (32 TiB at 256 KiB chunks).
 */
export const BINARY_MANIFEST_MAX_CHUNKS = Math.floor(bufferConstants.MAX_LENGTH / CID_BYTES);

function invalid(message: string): PortalError {
  return new PortalError('PORTAL_MANIFEST_INVALID', `binary manifest: ${message}`);
}

/** The header and name of `p` in the binary format; PORTAL_MANIFEST_INVALID for a name over 65535 UTF-8 bytes. */
export function encodeBinaryManifestHeader(p: PackedManifest): Buffer {
  const name = Buffer.from(p.name, 'utf8');
  if (name.length > 0xffff) throw invalid(`name: at most 65535 UTF-8 bytes, got ${name.length}`);
  const h = Buffer.alloc(BINARY_MANIFEST_HEADER_BYTES + name.length);
  BINARY_MANIFEST_MAGIC.copy(h, 0);
  h.writeUInt16BE(BINARY_MANIFEST_VERSION, 8);
  h.writeUInt16BE(name.length, 10);
  h.writeUInt32BE(p.chunkSize, 12);
  h.writeBigUInt64BE(BigInt(p.fileSize), 16);
  h.writeBigUInt64BE(BigInt(p.cids.count), 24);
  h.write(p.id, 32, 8, 'hex');
  h.write(p.fileSha256, 40, 32, 'hex');
  name.copy(h, BINARY_MANIFEST_HEADER_BYTES);
  return h;
}

/** The binary encoding of `p` as slices (the header, then views of the CID table of at most 1 MiB), without copying the table. */
export function* binaryManifestParts(p: PackedManifest): Generator<Uint8Array> {
  yield encodeBinaryManifestHeader(p);
  const SLICE = 1 << 20;
  for (let o = 0; o < p.cids.byteLength; o += SLICE) yield p.cids.bytes.subarray(o, o + SLICE);
}

/** The whole binary encoding in one buffer (for small manifests; large ones go by `binaryManifestParts`). */
export function encodeBinaryManifest(p: PackedManifest): Buffer {
  return Buffer.concat([...binaryManifestParts(p)]);
}

/** The content id of a binary manifest: lowercase hex sha-256 of its bytes (what edges serve it by). */
export function binaryManifestCid(p: PackedManifest): string {
  const h = createHash('sha256');
  for (const part of binaryManifestParts(p)) h.update(part);
  return h.digest('hex');
}

/** True when `prefix` (the first bytes of a body or file, at least 8) starts with the binary manifest's magic. */
export function isBinaryManifest(prefix: Uint8Array): boolean {
  return (
    prefix.length >= BINARY_MANIFEST_MAGIC.length &&
    Buffer.from(prefix.buffer, prefix.byteOffset, BINARY_MANIFEST_MAGIC.length).equals(BINARY_MANIFEST_MAGIC)
  );
}

/** Options of readBinaryManifest. */
export interface ReadBinaryManifestOptions {
  /** Most chunks accepted (default BINARY_MANIFEST_MAX_CHUNKS); more is PORTAL_MANIFEST_TOO_LARGE. */
  maxChunks?: number;
  /** Where the bytes come from, for error messages (e.g. a redacted URL). */
  source?: string;
  /**
   * Accept an all-zero file sha-256 or chunk CID as "not known" (NO_CID): only for a manifest Portal built itself
   * (an edge's own manifest of sources without hashes). Default false: PORTAL_MANIFEST_INVALID (refuseUnknownHashes).
   */
  allowUnknownHashes?: boolean;
}

/** What readBinaryManifest read: the manifest, the sha-256 of all its bytes (its content id) and their count. */
export interface BinaryManifestRead {
  manifest: PackedManifest;
  cid: string;
  bytes: number;
}

interface Header {
  nameLength: number;
  chunkSize: number;
  fileSize: number;
  count: number;
  id: string;
  fileSha256: string;
}

/** Throws PORTAL_MANIFEST_INVALID when the first bytes of `h` (up to 8) differ from the magic. */
function checkMagic(h: Buffer): void {
  const n = Math.min(8, h.length);
  if (!h.subarray(0, n).equals(BINARY_MANIFEST_MAGIC.subarray(0, n)))
    throw invalid(
      `bad magic ${h.subarray(0, n).toString('hex')} (expected ${BINARY_MANIFEST_MAGIC.toString('hex')}): not a Portal binary manifest`,
    );
}

function parseHeader(h: Buffer, maxChunks: number): Header {
  checkMagic(h);
  const version = h.readUInt16BE(8);
  if (version !== BINARY_MANIFEST_VERSION)
    throw invalid(`version ${version} is not supported (this reader knows ${BINARY_MANIFEST_VERSION})`);
  const chunkSize = h.readUInt32BE(12);
  if (chunkSize < MIN_CHUNK_SIZE || chunkSize > MAX_CHUNK_SIZE)
    throw invalid(`chunk size ${chunkSize}: expected ${MIN_CHUNK_SIZE}..${MAX_CHUNK_SIZE} (4 KiB..64 MiB)`);
  const fileSize64 = h.readBigUInt64BE(16);
  if (fileSize64 > BigInt(Number.MAX_SAFE_INTEGER))
    throw invalid(`file size ${fileSize64}: more than 2^53 − 1 bytes`);
  const fileSize = Number(fileSize64);
  const count64 = h.readBigUInt64BE(24);
  const expected = Math.ceil(fileSize / chunkSize);
  if (count64 !== BigInt(expected))
    throw invalid(
      `wrong chunk count ${count64}: a file of ${fileSize} bytes in chunks of ${chunkSize} has ${expected}`,
    );
  if (expected > maxChunks)
    throw new PortalError(
      'PORTAL_MANIFEST_TOO_LARGE',
      `binary manifest: ${expected} chunks exceed the limit of ${maxChunks}`,
    );
  const id = h.toString('hex', 32, 40);
  const fileSha256 = h.toString('hex', 40, 72);
  // a manifest of mirrors without a known file hash (all zeros) has an id of its sources instead
  if (!/^0{64}$/.test(fileSha256) && id !== manifestId(fileSha256, chunkSize))
    throw invalid(
      `id ${id} does not match the file sha-256 and chunk size (expected ${manifestId(fileSha256, chunkSize)})`,
    );
  return { nameLength: h.readUInt16BE(10), chunkSize, fileSize, count: expected, id, fileSha256 };
}

/**
 * Reads a binary manifest from a stream of bytes (a file, an HTTP body) without holding more than its CID table:
 * the header is checked as soon as it arrives (so a wrong file fails on its first bytes), then the CIDs are
 * copied into one table of `count × 32` bytes, and every byte is hashed on the way (the manifest's content id).
 * Throws PORTAL_MANIFEST_INVALID naming the cause — bad magic, unsupported version, chunk size out of range,
 * a chunk count that does not match the file size, an id that does not match the file hash, a name that is not
 * UTF-8, truncated (how many bytes of how many), bytes after the end, an all-zero hash unless
 * `allowUnknownHashes` (refuseUnknownHashes) — and PORTAL_MANIFEST_TOO_LARGE over
 * `maxChunks`. Errors of the stream itself propagate as they are.
 */
export async function readBinaryManifest(
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  opts: ReadBinaryManifestOptions = {},
): Promise<BinaryManifestRead> {
  const maxChunks = opts.maxChunks ?? BINARY_MANIFEST_MAX_CHUNKS;
  const where = opts.source ? ` (${opts.source})` : '';
  const hash = createHash('sha256');
  let head: Buffer = Buffer.alloc(0);
  let header: Header | undefined;
  let name: string | undefined;
  let table: Uint8Array | undefined;
  let filled = 0;
  let total = 0;
  const withWhere = (err: unknown): never => {
    if (err instanceof PortalError && where) err.message += where;
    throw err;
  };
  try {
    for await (const raw of source) {
      const part = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
      hash.update(part);
      total += part.length;
      let rest = part;
      if (table === undefined) {
        head = head.length === 0 ? Buffer.from(rest) : Buffer.concat([head, rest]);
        rest = Buffer.alloc(0);
        checkMagic(head);
        if (head.length < BINARY_MANIFEST_HEADER_BYTES) continue;
        header ??= parseHeader(head, maxChunks);
        const nameEnd = BINARY_MANIFEST_HEADER_BYTES + header.nameLength;
        if (head.length < nameEnd) continue;
        try {
          name = new TextDecoder('utf-8', { fatal: true }).decode(
            head.subarray(BINARY_MANIFEST_HEADER_BYTES, nameEnd),
          );
        } catch (cause) {
          throw new PortalError('PORTAL_MANIFEST_INVALID', 'binary manifest: the name is not UTF-8', {
            cause,
          });
        }
        table = new Uint8Array(header.count * CID_BYTES);
        rest = head.subarray(nameEnd);
        head = Buffer.alloc(0);
      }
      if (filled + rest.length > table.length)
        throw invalid(
          `more bytes than its ${header!.count} chunks need: expected ${BINARY_MANIFEST_HEADER_BYTES + header!.nameLength + table.length} bytes`,
        );
      table.set(rest, filled);
      filled += rest.length;
    }
  } catch (err) {
    withWhere(err);
  }
  if (!header || table === undefined) {
    const need = header ? BINARY_MANIFEST_HEADER_BYTES + header.nameLength : BINARY_MANIFEST_HEADER_BYTES;
    withWhere(invalid(`truncated: ${total} bytes, the header alone needs ${need}`));
  }
  const h = header!;
  if (filled !== table!.length)
    withWhere(
      invalid(
        `truncated: ${total} of ${BINARY_MANIFEST_HEADER_BYTES + h.nameLength + table!.length} bytes (${Math.floor(filled / CID_BYTES)} of ${h.count} chunk hashes)`,
      ),
    );
  const manifest: PackedManifest = {
    version: 1,
    id: h.id,
    name: name!,
    fileSize: h.fileSize,
    chunkSize: h.chunkSize,
    fileSha256: h.fileSha256,
    cids: new CidTable(table!),
  };
  if (!opts.allowUnknownHashes) refuseUnknownHashes(manifest, opts.source ?? '(binary)');
  return { manifest, cid: hash.digest('hex'), bytes: total };
}

/** Decodes a binary manifest held in one buffer; errors as readBinaryManifest. */
export async function decodeBinaryManifest(
  bytes: Uint8Array,
  opts: ReadBinaryManifestOptions = {},
): Promise<BinaryManifestRead> {
  return readBinaryManifest([bytes], opts);
}

/** Reads the binary manifest file at `path` as a stream; fs errors are PORTAL_MANIFEST_INVALID with the error as cause. */
export async function loadBinaryManifest(
  path: string,
  opts: ReadBinaryManifestOptions = {},
): Promise<BinaryManifestRead> {
  try {
    return await readBinaryManifest(createReadStream(path, { highWaterMark: 1 << 20 }), {
      source: path,
      ...opts,
    });
  } catch (err) {
    if (err instanceof PortalError) throw err;
    throw new PortalError(
      'PORTAL_MANIFEST_INVALID',
      `cannot read manifest ${path}: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
}

/**
 * Writes `p` in the binary format to `path`, streaming the CID table (never copied). Resolves to the manifest's
 * content id. fs failures reject with PORTAL_MANIFEST_INVALID with the fs error as cause.
 */
export async function saveBinaryManifest(path: string, p: PackedManifest): Promise<string> {
  const hash = createHash('sha256');
  function* hashed(): Generator<Uint8Array> {
    for (const part of binaryManifestParts(p)) {
      hash.update(part);
      yield part;
    }
  }
  await writeManifestParts(path, hashed());
  return hash.digest('hex');
}
