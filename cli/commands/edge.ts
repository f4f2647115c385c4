import { readFileSync, existsSync, statSync } from 'node:fs';
import {
  createEdgeServer,
  loadManifestRef,
  unpackManifest,
  hashCheck,
  type Manifest,
  MANIFEST_DIR_MAX_BYTES,
  MANIFEST_DIR_MAX_FILES,
} from '../../transfer/index.js';
import { resolve } from 'node:path';
import { createBusFromEnv, type Bus } from '../../bus/index.js';
import { PortalError, isPortalError } from '../../common/errors.js';
import { createLogger } from '../../common/logger.js';
import { resolveLogFormat } from '../../common/log-format.js';
import { commonFlags, defineCommand } from '../args.js';
import { checkIdFlag } from '../edge-spec.js';
import { createProgress, formatBytes } from '../progress.js';

/** Files at least this large show a progress line while the start's hash check reads them. */
export const HASH_CHECK_PROGRESS_BYTES = 64 * 1024 * 1024;

/**
 * The chunks of `--file` the edge may advertise and serve: those of `holds` whose bytes hash to their CID
 * ('all' when holds was and every chunk matched; hashCheck: one read and sha256 pass of the file, ~0.6 s per GiB per core). Throws PORTAL_CONFIG_INVALID
 * naming --file when it cannot be read, and PORTAL_MANIFEST_MISMATCH naming --file and --manifest when its
 * size differs or, without --accept, no chunk matches. Some chunks failing is one warning line on stderr.
 */
export async function verifiedHoldings(
  file: string,
  manifestPath: string,
  manifest: Manifest,
  holds: Set<number> | 'all',
  opts: { accept: boolean; quiet: boolean },
): Promise<Set<number> | 'all'> {
  let size: number;
  try {
    const st = statSync(file);
    if (st.isDirectory())
      throw new PortalError('PORTAL_CONFIG_INVALID', `--file ${file}: is a folder, not a file`);
    size = st.size;
  } catch (cause) {
    if (isPortalError(cause)) throw cause;
    const code = (cause as NodeJS.ErrnoException).code;
    const what = code === 'ENOENT' ? 'no such file' : (code ?? (cause as Error).message);
    throw new PortalError('PORTAL_CONFIG_INVALID', `--file ${file}: cannot open it (${what})`, { cause });
  }
  if (size !== manifest.fileSize)
    throw new PortalError(
      'PORTAL_MANIFEST_MISMATCH',
      `--file ${file} has ${size} bytes; --manifest ${manifestPath} (${manifest.id}) says ${manifest.fileSize}`,
    );
  const progress =
    size >= HASH_CHECK_PROGRESS_BYTES
      ? createProgress('hash check', size, {
          quiet: opts.quiet,
          format: (d, t) => `${formatBytes(d)}/${formatBytes(t)}`,
        })
      : undefined;
  const r = await hashCheck(file, manifest, {
    only: holds === 'all' ? undefined : holds,
    onProgress: (done) => progress?.update(done),
  });
  progress?.done();
  const wanted = holds === 'all' ? manifest.chunks.length : holds.size;
  const m = r.firstMismatch;
  const why = m ? `chunk ${m.index} hashes to ${m.actual}, the manifest says ${m.expected}` : '';
  if (r.verified.size === 0 && wanted > 0 && !opts.accept)
    throw new PortalError(
      'PORTAL_MANIFEST_MISMATCH',
      `--file ${file}: none of its ${wanted} chunks matches --manifest ${manifestPath} (${why})`,
    );
  if (r.verified.size < wanted)
    process.stderr.write(
      `portal edge: --file ${file}: ${r.verified.size} of ${wanted} chunks match --manifest ${manifestPath}; serving only those (${why})\n`,
    );
  return holds === 'all' && r.verified.size === wanted ? 'all' : r.verified;
}

/** Parses `--holds`: `all` or ranges like `0-99,200,300-310`. */
export function parseHolds(v: string, chunks: number): Set<number> | 'all' {
  if (v === 'all') return 'all';
  if (v === 'none') return new Set();
  const out = new Set<number>();
  for (const part of v.split(',').filter(Boolean)) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) throw new PortalError('PORTAL_CONFIG_INVALID', `--holds: "${part}" is not N or N-M`);
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    if (a > b || b >= chunks)
      throw new PortalError('PORTAL_CONFIG_INVALID', `--holds: range ${part} is outside 0-${chunks - 1}`);
    for (let i = a; i <= b; i++) out.add(i);
  }
  return out;
}

/**
 * The flag of each createEdgeServer option `portal edge` sets from one, and the prefix its errors begin with
 * (transfer/edge-server.ts names the option; the manifest store its folder).
 */
const EDGE_OPTION_FLAGS: readonly [prefix: string, flag: string][] = [
  ['opts.source.path:', '--file:'],
  ['opts.source:', '--file:'],
  ['opts.accept.token:', '--put-token:'],
  ['opts.holds:', '--holds:'],
  ['opts.bandwidthBytesPerSec:', '--rate:'],
  ['opts.rttMs:', '--rtt:'],
  ['opts.faults.failRate:', '--fail-rate:'],
  ['opts.faults.corruptRate:', '--corrupt-rate:'],
  ['opts.faults.offlineAtMs:', '--offline-at:'],
  ['manifest dir ', '--manifest-dir '],
];

/**
 * An error of createEdgeServer with the option it names replaced by the flag that set it (`opts.source.path:
 * cannot open …` → `--file: cannot open …`), PORTAL_CONFIG_INVALID (a bad flag, exit 2) instead of
 * PORTAL_INVALID_ARGUMENT (a bad call); any other error as it is.
 */
export function edgeFlagError(err: unknown): unknown {
  if (!isPortalError(err)) return err;
  const hit = EDGE_OPTION_FLAGS.find(([prefix]) => err.message.startsWith(prefix));
  if (!hit) return err;
  return new PortalError(
    err.code === 'PORTAL_INVALID_ARGUMENT' ? 'PORTAL_CONFIG_INVALID' : err.code,
    `${hit[1]}${err.message.slice(hit[0].length)}`,
    { cause: err },
  );
}

/** Reads `--tls-cert`/`--tls-key` (both or neither); PORTAL_CONFIG_INVALID naming the flag otherwise. */
export function readTls(cert?: string, key?: string): { cert: Buffer; key: Buffer } | undefined {
  if (!cert && !key) return undefined;
  if (!cert || !key)
    throw new PortalError(
      'PORTAL_CONFIG_INVALID',
      `edge: --tls-cert and --tls-key go together (got only ${cert ? '--tls-cert' : '--tls-key'})`,
    );
  const read = (flag: string, path: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (cause) {
      const code = (cause as NodeJS.ErrnoException).code;
      throw new PortalError(
        'PORTAL_CONFIG_INVALID',
        `--${flag} ${path}: cannot read the file (${code === 'ENOENT' ? 'no such file' : (code ?? (cause as Error).message)})`,
        { cause },
      );
    }
  };
  return { cert: read('tls-cert', cert), key: read('tls-key', key) };
}

/** `portal edge`: serves a file's chunks over HTTP until SIGINT/SIGTERM, with optional caps and faults. */
export const edgeCommand = defineCommand({
  name: 'edge',
  summary: 'serve the chunks of a file over HTTP (by CID, and as a Range mirror at /file)',
  usage:
    'portal edge --file FILE --manifest FILE.manifest.json [--port N] [--tls-cert PEM --tls-key PEM] [--rate BYTES_PER_S] [--rtt MS] [--holds all|none|N-M,…] [--accept] [--location LABEL] [--manifest-dir DIR [--manifest-dir-max-files N] [--manifest-dir-max-bytes B]] [--put-token T] [--announce] [--fail-rate F] [--corrupt-rate F] [--offline-at MS]',
  flags: [
    { name: 'file', type: 'string', help: 'the file to serve' },
    { name: 'manifest', type: 'string', help: 'its manifest (JSON or binary)' },
    { name: 'host', type: 'string', help: 'listen address', default: '127.0.0.1' },
    {
      name: 'port',
      type: 'number',
      integer: true,
      help: 'listen port (0 = any free port)',
      default: 0,
      min: 0,
      max: 65535,
    },
    { name: 'id', type: 'string', help: 'edge id reported by /health' },
    {
      name: 'location',
      type: 'string',
      help: 'where the edge is, a label such as eu-west/ams (reported by /health, announced with --announce); reads from a location no edge there holds the file for are replicated to an --accept edge with that label',
    },
    {
      name: 'rate',
      type: 'number',
      help: 'bandwidth cap over all responses, bytes/s (0 = none)',
      default: 0,
      min: 0,
    },
    { name: 'rtt', type: 'number', help: 'added delay before the first byte, ms', default: 0, min: 0 },
    {
      name: 'holds',
      type: 'string',
      help: 'chunks this edge holds: all, none or N-M,… (default: all, or none for a --file that --accept creates)',
    },
    {
      name: 'accept',
      type: 'boolean',
      help: 'accept chunks by PUT /v1/chunks/<cid> (checked against the CID; a missing --file is created)',
      default: false,
    },
    {
      name: 'put-token',
      type: 'string',
      secret: true,
      help: 'a PUT (of a chunk with --accept, of a manifest with --manifest-dir) needs Authorization: Bearer <token>',
      env: 'PORTAL_EDGE_PUT_TOKEN',
    },
    {
      name: 'manifest-dir',
      type: 'string',
      help: 'keep binary manifests PUT to /v1/manifests/<sha-256> here (checked against the id) and serve them; the own manifest is served without it',
    },
    {
      name: 'manifest-dir-max-files',
      type: 'number',
      integer: true,
      min: 1,
      help: `manifests --manifest-dir keeps at most; a PUT of another is answered 507 (default ${MANIFEST_DIR_MAX_FILES})`,
    },
    {
      name: 'manifest-dir-max-bytes',
      type: 'number',
      integer: true,
      min: 1,
      help: `bytes of manifests --manifest-dir keeps at most; a PUT that would go past it is answered 413 before its body is read (default ${MANIFEST_DIR_MAX_BYTES}, 1 GiB)`,
    },
    {
      name: 'announce',
      type: 'boolean',
      help: 'announce the edge and its holdings on the NATS bus (NATS_URL): portal.edge.<id>.telemetry|have',
      default: false,
    },
    {
      name: 'fail-rate',
      type: 'number',
      help: 'fraction of chunk requests answered 503',
      default: 0,
      min: 0,
      max: 1,
    },
    {
      name: 'corrupt-rate',
      type: 'number',
      help: 'fraction of chunks served with flipped bytes',
      default: 0,
      min: 0,
      max: 1,
    },
    { name: 'offline-at', type: 'number', help: 'go offline this many ms after start', min: 0 },
    { name: 'seed', type: 'number', integer: true, help: 'PRNG seed for the fault rates', min: 0 },
    {
      name: 'tls-cert',
      type: 'string',
      help: 'serve HTTPS with this PEM certificate (chain); needs --tls-key',
    },
    { name: 'tls-key', type: 'string', help: 'PEM private key of --tls-cert' },
    ...commonFlags,
  ],
  async run({ flags }) {
    if (!flags.file || !flags.manifest)
      throw new PortalError('PORTAL_CONFIG_INVALID', 'edge: --file and --manifest are required');
    if (flags.id !== undefined) checkIdFlag(flags.id, '--id');
    const manifest = unpackManifest(await loadManifestRef(resolve(flags.manifest)));
    const tls = readTls(flags['tls-cert'], flags['tls-key']);
    const logger = createLogger({
      level: flags['log-level'],
      format: resolveLogFormat(flags['log-format'], 'json'),
    });
    const accept = flags.accept;
    const created = accept && !existsSync(flags.file);
    let bus: Bus | undefined;
    if (flags.announce) {
      if (!process.env.NATS_URL)
        throw new PortalError(
          'PORTAL_CONFIG_INVALID',
          'edge: --announce needs NATS_URL (the bus to announce on)',
        );
      bus = await createBusFromEnv({ logger, name: `portal-edge-${process.pid}` });
    }
    const requested = parseHolds(flags.holds ?? (created ? 'none' : 'all'), manifest.chunks.length);
    // a --file that --accept creates holds nothing yet; any other is hash-checked, so the edge never claims or
    // serves bytes that do not hash to their CID (a wrong file, a restarted --accept edge's unfilled chunks)
    const holds = created
      ? requested
      : await verifiedHoldings(flags.file, flags.manifest, manifest, requested, {
          accept,
          quiet: flags.json,
        });
    const server = await createEdgeServer({
      id: flags.id,
      location: flags.location,
      source: { path: flags.file, manifest },
      holds,
      accept: accept ? { token: flags['put-token'] } : undefined,
      announce: bus ? { bus } : undefined,
      manifests: {
        dir: flags['manifest-dir'],
        token: flags['put-token'],
        maxFiles: flags['manifest-dir-max-files'],
        maxBytes: flags['manifest-dir-max-bytes'],
      },
      bandwidthBytesPerSec: flags.rate || undefined,
      rttMs: flags.rtt,
      faults: {
        failRate: flags['fail-rate'],
        corruptRate: flags['corrupt-rate'],
        offlineAtMs: flags['offline-at'],
        seed: flags.seed,
      },
      host: flags.host,
      port: flags.port,
      tls,
      logger,
    }).catch((err: unknown) => {
      throw edgeFlagError(err);
    });
    if (flags.json)
      process.stdout.write(
        `${JSON.stringify({ id: server.id, url: server.url, port: server.port, manifestId: manifest.id, manifestCid: server.manifestCid, ...(flags.location ? { location: flags.location } : {}) })}\n`,
      );
    else
      process.stdout.write(`edge ${server.id} serving ${manifest.name} (${manifest.id}) at ${server.url}\n`);
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    await server.close();
    await bus?.close();
    return 0;
  },
});
