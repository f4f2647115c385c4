import { lstat, open, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { PortalError } from '../common/errors.js';
import { openOwnFile } from '../common/own-file.js';
import { type Logger } from '../common/logger.js';
import {
  BINARY_MANIFEST_HEADER_BYTES,
  BINARY_MANIFEST_MEDIA_TYPE,
  binaryManifestParts,
  readBinaryManifest,
} from './manifest-binary.js';
import { MANIFEST_CID } from './manifest-ref.js';
import type { PackedManifest } from './manifest.js';
import { makeDirs } from '../common/make-dirs.js';
import { continueBody } from '../common/expect-continue.js';

/** A file system error in a few words: its code with what it means (`ENOTDIR: not a directory`), else its message. */
function osCause(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return typeof e?.message === 'string' ? e.message.replace(/, \w+ '.*'$/, '') : String(err);
}

/**
 * Manifests a manifest folder keeps at most, by default (`portal edge --manifest-dir-max-files`): a PUT of another
 * is answered 507 naming the cap, before its body is read.
 */
export const MANIFEST_DIR_MAX_FILES = 1000;

/**
 * Bytes of manifests a manifest folder keeps at most, by default: 1 GiB (`portal edge --manifest-dir-max-bytes`).
 * A PUT whose Content-Length, header chunk count or streamed bytes would take the folder past it is answered 413
 * naming the cap, before more of its body is read or its chunk table allocated (1 GiB holds the manifests of a
 * 1 TB file in 256 KiB chunks eight times over).
 */
export const MANIFEST_DIR_MAX_BYTES = 1024 ** 3;

/** Name of a PUT's temporary file in the folder (`.<cid>.<12 hex>.tmp`); a crash can leave one behind. */
const TMP_NAME = /^\.[0-9a-f]{64}\.[0-9a-f]{12}\.tmp$/;

/** Options of createManifestStore. */
export interface ManifestStoreOptions {
  /** The edge's own manifest: always served, by the sha-256 of its binary encoding. */
  own?: PackedManifest;
  /** Folder that keeps manifests PUT to the edge (`<cid>.pcm`); without it a PUT is refused with 405. */
  dir?: string;
  /** A PUT needs `Authorization: Bearer <token>` (401 otherwise). */
  authorized?: (req: IncomingMessage) => boolean;
  /** Manifests `dir` keeps at most (default MANIFEST_DIR_MAX_FILES); a PUT past it is a 507. */
  maxFiles?: number;
  /** Bytes of manifests `dir` keeps at most (default MANIFEST_DIR_MAX_BYTES); a PUT past it is a 413. */
  maxBytes?: number;
  logger: Logger;
}

/** Binary manifests served by content id on an edge: `GET|HEAD /v1/manifests/<cid>`, `PUT /v1/manifests/<cid>`. */
export interface ManifestStore {
  /** The content id of the edge's own manifest (undefined without `own`). */
  readonly ownCid: string | undefined;
  /** Answers one request under `/v1/manifests/`; `cid` is the path's last segment. */
  handle(req: IncomingMessage, res: ServerResponse, cid: string): Promise<void>;
}

function send(res: ServerResponse, status: number, body: Record<string, unknown>, close = false): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    ...(close ? { connection: 'close' } : {}),
  });
  res.end(text);
}

/**
 * Creates the manifest store of an edge. The own manifest is encoded once (held in memory, header + 32 B per
 * chunk). A PUT body is streamed to a temporary file in `dir` while it is parsed (readBinaryManifest: magic,
 * counts, truncation) and hashed; it is kept under its id only when it is a valid binary manifest whose sha-256
 * is the id in the path (422 otherwise, naming the cause; nothing is kept). The folder holds at most `maxFiles`
 * manifests (507 past it) of `maxBytes` in all (413 for a body that would go past it, refused by its
 * Content-Length or its header's chunk count before it is read, or as soon as its bytes do); what the folder holds
 * is counted when the store is created, and temporary files a crash left are removed then. Rejects with
 * PORTAL_CONFIG_INVALID when `dir` cannot be created or read, or a cap is not a positive integer.
 */
export async function createManifestStore(opts: ManifestStoreOptions): Promise<ManifestStore> {
  const ownBytes = opts.own ? Buffer.concat([...binaryManifestParts(opts.own)]) : undefined;
  let ownCid: string | undefined;
  if (ownBytes) {
    // the edge's own manifest: one Portal built from sources without hashes has NO_CID ones
    const { cid } = await readBinaryManifest([ownBytes], { allowUnknownHashes: true });
    ownCid = cid;
  }
  const dir = opts.dir;
  const maxFiles = opts.maxFiles ?? MANIFEST_DIR_MAX_FILES;
  const maxBytes = opts.maxBytes ?? MANIFEST_DIR_MAX_BYTES;
  for (const [name, v] of [
    ['maxFiles', maxFiles],
    ['maxBytes', maxBytes],
  ] as const)
    if (!Number.isSafeInteger(v) || v < 1)
      throw new PortalError(
        'PORTAL_CONFIG_INVALID',
        `manifest store: ${name} must be a positive integer, got ${v}`,
      );
  /** What the folder holds (stored) and what PUTs being written have taken so far (pending). */
  const held = { files: 0, bytes: 0, pendingFiles: 0, pendingBytes: 0 };
  if (dir !== undefined) {
    await makeDirs(dir).catch((cause: unknown) => {
      throw new PortalError(
        'PORTAL_CONFIG_INVALID',
        `manifest dir ${dir}: cannot create it (${osCause(cause)})`,
        {
          cause,
        },
      );
    });
    const names = await readdir(dir).catch((cause: unknown) => {
      throw new PortalError(
        'PORTAL_CONFIG_INVALID',
        `manifest dir ${dir}: cannot read it (${osCause(cause)})`,
        {
          cause,
        },
      );
    });
    for (const name of names) {
      if (TMP_NAME.test(name)) await rm(join(dir, name), { force: true });
      else if (name.endsWith('.pcm')) {
        const st = await lstat(join(dir, name)).catch(() => undefined);
        if (st?.isFile()) {
          held.files++;
          held.bytes += st.size;
        }
      }
    }
  }
  const log = opts.logger;

  const get = async (req: IncomingMessage, res: ServerResponse, cid: string): Promise<void> => {
    const headers = {
      'content-type': BINARY_MANIFEST_MEDIA_TYPE,
      'cache-control': 'public, max-age=31536000, immutable',
    };
    if (cid === ownCid && ownBytes) {
      res.writeHead(200, { ...headers, 'content-length': ownBytes.length });
      res.end(req.method === 'HEAD' ? undefined : ownBytes);
      return;
    }
    const path = dir === undefined ? undefined : join(dir, `${cid}.pcm`);
    // never through a link planted at the name (it would serve any file the edge can read), nor a FIFO or device
    const fh = path
      ? await openOwnFile(path, 'read', { code: 'PORTAL_CONFIG_INVALID', what: 'stored manifest' }).catch(
          (err: unknown) => {
            if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
              log.warn({ err, manifestCid: cid }, 'stored manifest not served');
            return undefined;
          },
        )
      : undefined;
    if (!fh) {
      send(res, 404, { error: 'manifest not held by this edge', manifestCid: cid });
      return;
    }
    const size = (
      await fh.stat().catch(async (err: unknown) => {
        await fh.close();
        throw err;
      })
    ).size;
    res.writeHead(200, { ...headers, 'content-length': size });
    if (req.method === 'HEAD') {
      await fh.close();
      res.end();
      return;
    }
    const stream = fh.createReadStream({ end: Math.max(0, size - 1) });
    stream.on('error', (err) => {
      log.warn({ err, manifestCid: cid }, 'manifest read failed');
      res.destroy();
    });
    res.once('close', () => stream.destroy()); // a client gone mid-body: the descriptor is closed
    stream.pipe(res);
  };

  const put = async (req: IncomingMessage, res: ServerResponse, cid: string): Promise<void> => {
    if (dir === undefined) {
      send(res, 405, { error: 'this edge keeps no manifests (start it with --manifest-dir)' }, true);
      return;
    }
    if (opts.authorized && !opts.authorized(req)) {
      send(res, 401, { error: 'a PUT needs Authorization: Bearer <token>' }, true);
      return;
    }
    const final = join(dir, `${cid}.pcm`);
    // lstat: a link planted at the name is not a stored manifest; the rename below replaces it
    if (cid === ownCid || (await lstat(final).catch(() => undefined))?.isFile()) {
      continueBody(req, res);
      req.resume();
      send(res, 200, { manifestCid: cid, stored: false });
      return;
    }
    // the quotas, before the body is read: a peer may not fill the edge's disk (or memory: the chunk table)
    if (held.files + held.pendingFiles >= maxFiles) {
      send(
        res,
        507,
        {
          error: `this edge keeps at most ${maxFiles} manifests (--manifest-dir-max-files) and holds ${held.files}`,
          code: 'PORTAL_MANIFEST_TOO_LARGE',
        },
        true,
      );
      return;
    }
    const left = maxBytes - held.bytes - held.pendingBytes;
    const overQuota = (bytes: string): PortalError =>
      new PortalError(
        'PORTAL_MANIFEST_TOO_LARGE',
        `the manifest (${bytes}) is over the ${Math.max(0, left)} bytes left of this edge's manifest quota of ${maxBytes} bytes (--manifest-dir-max-bytes)`,
      );
    const declared = Number(req.headers['content-length'] ?? Number.NaN);
    if (left < BINARY_MANIFEST_HEADER_BYTES || declared > left) {
      const err = overQuota(Number.isFinite(declared) ? `${declared} bytes` : 'its body');
      send(res, 413, { error: err.message, code: err.code }, true);
      return;
    }
    held.pendingFiles++;
    let taken = 0;
    const tmp = join(dir, `.${cid}.${randomBytes(6).toString('hex')}.tmp`);
    let ok = false;
    const fh = await open(tmp, 'wx').catch((err: unknown) => {
      held.pendingFiles--;
      throw err;
    });
    continueBody(req, res);
    try {
      // each part is written to the temporary file as it is parsed and hashed: the body is never held whole
      async function* tee(): AsyncGenerator<Uint8Array> {
        for await (const part of req as AsyncIterable<Buffer>) {
          taken += part.length;
          held.pendingBytes += part.length;
          if (taken > left) throw overQuota(`more than ${left} bytes`);
          await fh.write(part);
          yield part;
        }
      }
      let read;
      try {
        read = await readBinaryManifest(tee(), {
          source: `PUT /v1/manifests/${cid}`,
          // a header announcing more chunks than the bytes left can hold is refused before its table is allocated
          maxChunks: Math.floor((left - BINARY_MANIFEST_HEADER_BYTES) / 32),
        });
      } catch (err) {
        if (!(err instanceof PortalError)) throw err;
        const quota =
          err.code === 'PORTAL_MANIFEST_TOO_LARGE' && !err.message.includes('--manifest-dir-max-bytes');
        const message = quota
          ? `${overQuota("its header's chunk count").message}: ${err.message}`
          : err.message;
        send(
          res,
          err.code === 'PORTAL_MANIFEST_TOO_LARGE' ? 413 : 422,
          { error: message, code: err.code },
          true,
        );
        return;
      }
      if (read.cid !== cid) {
        log.warn(
          { manifestCid: cid, actual: read.cid },
          'PUT manifest refused: body does not hash to its id',
        );
        send(
          res,
          422,
          { error: 'body does not hash to the manifest id', manifestCid: cid, sha256: read.cid },
          true,
        );
        return;
      }
      await fh.sync();
      await fh.close();
      await rename(tmp, final);
      ok = true;
      held.files++;
      held.bytes += taken;
      send(res, 201, {
        manifestCid: cid,
        stored: true,
        chunks: read.manifest.cids.count,
        manifestId: read.manifest.id,
      });
    } finally {
      held.pendingFiles--;
      held.pendingBytes -= taken;
      if (!ok) {
        await fh.close().catch(() => undefined);
        await rm(tmp, { force: true });
      }
    }
  };

  return {
    ownCid,
    async handle(req, res, cidIn) {
      const cid = cidIn.toLowerCase();
      if (!MANIFEST_CID.test(cid)) {
        if (req.method === 'PUT') {
          continueBody(req, res);
          req.resume();
        }
        send(res, 400, {
          error: 'a manifest id is the sha-256 of its binary encoding: 64 hex characters',
          manifestCid: cidIn,
        });
        return;
      }
      if (req.method === 'PUT') await put(req, res, cid);
      else await get(req, res, cid);
    },
  };
}
