import {
  createPackedManifest,
  saveBinaryManifest,
  saveManifest,
  writeManifestParts,
  unpackManifest,
  toMetalink,
  MIN_CHUNK_SIZE,
  MAX_CHUNK_SIZE,
} from '../../transfer/index.js';
import { createReadStream, rmSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { PortalError } from '../../common/errors.js';
import { commonFlags, defineCommand } from '../args.js';
import { makeTempDir } from '../env.js';
import { createProgress, formatBytes, type Progress } from '../progress.js';

/**
 * Throws PORTAL_CONFIG_INVALID naming --out (or the default beside the file) when the folder `out` goes in does not
 * exist or is not a folder.
 */
function checkOutFolder(out: string, given: boolean): void {
  const folder = dirname(resolve(out));
  let isDir = false;
  try {
    isDir = statSync(folder).isDirectory();
  } catch {
    // missing: said below
  }
  if (!isDir)
    throw new PortalError(
      'PORTAL_CONFIG_INVALID',
      `${given ? '--out ' : ''}${out}: the folder ${folder} does not exist or is not a folder`,
    );
}

/**
 * Throws PORTAL_CONFIG_INVALID when `out` is the file being described: the same path, or the same file through a
 * symbolic or hard link (same device and inode); writing the manifest there would replace the data with it.
 */
function checkOutNotInput(out: string, file: string, given: boolean): void {
  let same = resolve(out) === resolve(file);
  if (!same) {
    try {
      const a = statSync(out);
      const b = statSync(file);
      same = a.dev === b.dev && a.ino === b.ino;
    } catch {
      // either one missing: not the same file (a missing input is said when it is read)
    }
  }
  if (same)
    throw new PortalError(
      'PORTAL_CONFIG_INVALID',
      `${given ? '--out ' : ''}${out} is ${file} itself: writing the manifest there would overwrite the data; give another --out`,
    );
}

/** `portal manifest <file>`: chunks a file and writes its manifest (sha256 CID per chunk and of the whole file). */
export const manifestCommand = defineCommand({
  name: 'manifest',
  summary: 'create the manifest of a file (chunk CIDs and whole-file sha256)',
  usage: 'portal manifest <file> [--chunk-size BYTES] [--out FILE] [--binary | --metalink --url URL …]',
  flags: [
    {
      name: 'chunk-size',
      type: 'number',
      integer: true,
      help: 'chunk size in bytes',
      default: 262144,
      min: MIN_CHUNK_SIZE,
      max: MAX_CHUNK_SIZE,
    },
    {
      name: 'out',
      type: 'string',
      help: "where to write the manifest (default <file>.manifest.json, <file>.manifest.bin with --binary, <file>.meta4 with --metalink); '-' writes it to stdout (the summary then goes to stderr)",
    },
    {
      name: 'binary',
      type: 'boolean',
      help: 'write the binary format (docs/manifest-format.md: 32 bytes per chunk) and print its content id, for manifestUrl or manifestCid',
      default: false,
    },
    {
      name: 'metalink',
      type: 'boolean',
      help: 'write a Metalink v4 (RFC 5854) file instead, with sha-256 file and piece hashes, for any Metalink client',
      default: false,
    },
    {
      name: 'url',
      type: 'list',
      split: false,
      help: 'a URL the file can be fetched from (for --metalink; in priority order)',
    },
    ...commonFlags,
  ],
  async run({ flags, positionals }) {
    const file = positionals[0];
    if (!file) throw new PortalError('PORTAL_CONFIG_INVALID', 'manifest: missing <file> argument');
    const urls = flags.url ?? [];
    if (flags.metalink && urls.length === 0)
      throw new PortalError(
        'PORTAL_CONFIG_INVALID',
        'manifest --metalink: give the URLs it is served at with --url',
      );
    // a manifest (JSON or binary) carries no URLs: --url without --metalink would be dropped without a word
    if (!flags.metalink && urls.length > 0)
      throw new PortalError(
        'PORTAL_CONFIG_INVALID',
        'manifest --url: only a Metalink lists URLs (add --metalink); a manifest carries the chunks, not where they are served',
      );
    if (flags.metalink && flags.binary)
      throw new PortalError('PORTAL_CONFIG_INVALID', 'manifest: --binary and --metalink exclude each other');
    // `--out -`: the manifest goes to stdout (as fetch --out - streams there), the summary to stderr
    const toStdout = flags.out === '-';
    if (toStdout && flags.json)
      throw new PortalError(
        'PORTAL_CONFIG_INVALID',
        'manifest: --json and --out - exclude each other (both would write stdout)',
      );
    const tmpDir = toStdout ? makeTempDir('portal-manifest-', '--out -') : undefined;
    if (tmpDir) process.once('exit', () => rmSync(tmpDir, { recursive: true, force: true }));
    const out = tmpDir
      ? join(tmpDir, 'manifest')
      : (flags.out ??
        `${file}${flags.metalink ? '.meta4' : flags.binary ? '.manifest.bin' : '.manifest.json'}`);
    // checked before the file is hashed (minutes for a big one), not when the result is written
    for (const url of urls)
      if (!/^https?:\/\//i.test(url))
        throw new PortalError(
          'PORTAL_CONFIG_INVALID',
          `--url ${JSON.stringify(url)}: expected an http(s):// URL`,
        );
    if (!toStdout) {
      checkOutFolder(out, flags.out !== undefined);
      checkOutNotInput(out, file, flags.out !== undefined);
    }
    // the bar counts bytes, so it is made once the file's size is known (the first read's report): a bar of
    // total 1 fed fractions ended with "1 B" as its last figure
    const bar = (total: number): Progress =>
      createProgress('hashing', total, {
        quiet: flags.json,
        format: (d, t) => `${formatBytes(d)}/${formatBytes(t)}`,
      });
    let progress: Progress | undefined;
    const packed = await createPackedManifest(file, {
      chunkSize: flags['chunk-size'],
      onProgress: (done, total) => (progress ??= bar(total)).update(done),
    });
    (progress ?? bar(packed.fileSize)).done();
    const { cids, ...m } = packed;
    const chunks = cids.count;
    let manifestCid: string | undefined;
    if (flags.binary) manifestCid = await saveBinaryManifest(out, packed);
    else if (flags.metalink)
      await writeManifestParts(out, [
        toMetalink(
          unpackManifest(packed),
          urls.map((url) => ({ url })),
        ),
      ]);
    else await saveManifest(out, unpackManifest(packed));
    if (toStdout) {
      await pipeline(createReadStream(out), process.stdout, { end: false });
      await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
    }
    if (flags.json)
      process.stdout.write(
        `${JSON.stringify({ manifest: out, id: m.id, fileSize: m.fileSize, chunkSize: m.chunkSize, chunks, fileSha256: m.fileSha256, ...(manifestCid ? { manifestCid } : {}) })}\n`,
      );
    else
      (toStdout ? process.stderr : process.stdout).write(
        `wrote ${toStdout ? 'stdout' : out}: ${chunks} chunks of ${formatBytes(m.chunkSize)}, sha256 ${m.fileSha256}, id ${m.id}${manifestCid ? `, manifestCid ${manifestCid}` : ''}\n`,
      );
    return 0;
  },
});
