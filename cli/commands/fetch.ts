import path from 'node:path';
import { readdir, rename, stat } from 'node:fs/promises';
import { createReadStream, existsSync, lstatSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { pipeline } from 'node:stream/promises';
import { once } from 'node:events';
import {
  createHttpClient,
  setDefaultHttpClient,
  redactUrl,
  NO_CID,
  DEFAULT_STALL_TIMEOUT_MS,
  DEFAULT_LOWEST_SPEED_BYTES_PER_SEC,
  DEFAULT_SPEED_TIME_MS,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_MAX_REDIRECTS,
  DEFAULT_MAX_IN_FLIGHT_BYTES,
  streamContent,
  type ContentServerStats,
  type StreamContentResult,
  emptyContentStats,
} from '../../transfer/index.js';
import {
  CHECKSUM_ORIGIN,
  DEFAULT_EDGE_BUDGET_MS,
  DROPPED_SOURCE,
  sameSource,
} from '../../actors/scheduler-actor.js';
import {
  checkOtherHash,
  checkDigestCandidates,
  resolveSources,
  parseChecksum,
  parseHeaders,
  type ResolvedSources,
} from '../sources.js';
import {
  discardJournal,
  finishedOutput,
  publishVerifiedPart,
  readJournaledTransfer,
  type JournaledTransfer,
} from '../../node/journaled-transfer.js';
import type { Manifest } from '../../transfer/index.js';
import {
  checkOutputFolder,
  checkOutputTarget,
  lockOutput,
  outputNameFromManifest,
  fileNameFromUrl,
  PART_SUFFIX,
  refuseLongNames,
  refuseSideFileName,
} from '../../transfer/output-target.js';
import { partialChunkLogPath } from '../../transfer/partial-chunks.js';
import {
  excludeOldVersion,
  forgetChangedVersion,
  reconcileValidators,
  VersionRestart,
} from '../resume-validators.js';
import { fetchStream, reportStream } from '../fetch-stream.js';
import { escapeControl } from '../../common/redact.js';
import { localWriteError, sameLocalWriteCause } from '../../common/local-write-error.js';
import { checkPortsFree } from '../system-errors.js';
import { PortalError, isPortalError } from '../../common/errors.js';
import { exitCodeFor } from '../../common/error-table.js';
import { createLogger } from '../../common/logger.js';
import { resolveLogFormat } from '../../common/log-format.js';
import { randomBytes } from 'node:crypto';
import { createBusFromEnv, natsOptionsFromEnv } from '../../bus/from-env.js';
import type { Bus } from '../../bus/types.js';
import type { ChecksumOrigin, TransferEdge, TransferStatus } from '../../actors/index.js';
import { caFlag, commonFlags, defineCommand, schedulingFlags } from '../args.js';
import {
  checkGivenHoldings,
  checkUniqueEdgeIds,
  edgeFileEntry,
  parseEdgeSpec,
  readEdgesFile,
} from '../edge-spec.js';
import { fetchHave, haveAnswerLimit } from '../../transfer/edge-have.js';
// the modules themselves, not node/index.js: that would load the serve node (Dapr SDK, dashboard) too
import { runTransfer, sourcesOf } from '../../node/run-transfer.js';
import { localTransferId } from '../../node/transfer-id.js';
import { parseBackend, journalDir } from '../../node/embedded-node.js';
import { cpuThreadsFromEnv, makeTempDir, requireGpuFromEnv } from '../env.js';
import { createProgress, formatBytes } from '../progress.js';

/**
 * The one-line summary a progress bar shows for a transfer: `12.0 MiB 4.0 MiB/s  edges 2/2 (1 delivered nothing)
 * failovers 0  corrupt 0`. A source still in use that was given work (chunks in flight, or failures) and has not
 * delivered a chunk yet is counted in the parenthesis; one the source budget gave up is not counted as in use, so a trickling or silent source is visible before the
 * lowest-speed limit or the source budget ends it ("edges 1/1" alone read as healthy at 0.0 %).
 */
export function progressDetail(s: TransferStatus, startedMs: number): string {
  const secs = (Date.now() - startedMs) / 1000;
  const rate = secs > 0 ? s.bytesDone / secs : 0;
  const edges = s.edges ?? [];
  // a source given up by the budget is not in use, though its edge may still be online
  const inUse = (e: (typeof edges)[number]): boolean => e.available && !e.retired;
  const alive = edges.filter(inUse).length;
  const idle = edges.filter(
    (e, i) =>
      inUse(e) &&
      (s.perEdgeChunks[i] ?? 0) === 0 &&
      ((e.queueDepth ?? 0) > 0 || (e.failuresSinceOk ?? 0) > 0),
  ).length;
  const none = idle > 0 ? ` (${idle} delivered nothing)` : '';
  return `${formatBytes(s.bytesDone)} ${formatBytes(rate)}/s  edges ${alive}/${edges.length}${none}  failovers ${s.counters.failovers}  corrupt ${s.counters.corrupt}`;
}

/**
 * Resolves which chunks each Portal edge holds (its /v1/have bitmap); mirrors hold everything. An edge whose
 * /v1/have fails (unreachable, TLS, no answer in time, an HTTP error, a malformed bitmap) is left out: `onExcluded`
 * hears its URL (without secrets) and why, as a mirror whose probe fails is. Only when no source is left does it
 * throw: PORTAL_TRANSFER_FAILED (exit 3) naming every edge left out and why.
 */
export async function resolveHoldings(
  edges: TransferEdge[],
  manifestId: string,
  chunks = 2 ** 24,
  onExcluded: (url: string, why: string) => void = () => undefined,
): Promise<TransferEdge[]> {
  const settled = await Promise.allSettled(
    edges.map(async (e) =>
      e.holds !== undefined || e.config.kind === 'mirror'
        ? e
        : { ...e, holds: await fetchHave(e.config.url, manifestId, 5000, haveAnswerLimit(chunks)) },
    ),
  );
  const kept: TransferEdge[] = [];
  const excluded: { url: string; why: string; cause: string }[] = [];
  for (const [i, r] of settled.entries()) {
    if (r.status === 'fulfilled') {
      kept.push(r.value);
      continue;
    }
    if (!isPortalError(r.reason)) throw r.reason;
    const url = redactUrl(edges[i].config.url);
    // the cause as the failure's line gives it: once, its URL once, no second code beside the line's own
    const cause = r.reason.message.includes(url) ? r.reason.message : `${url}: ${r.reason.message}`;
    excluded.push({ url, why: `${r.reason.message} [${r.reason.code}]`, cause });
  }
  if (kept.length === 0 && excluded.length > 0)
    throw new PortalError(
      'PORTAL_TRANSFER_FAILED',
      `no source left: every edge's /v1/have failed: ${excluded.map((x) => escapeControl(x.cause)).join('; ')}`,
    );
  // named one by one only when the others go on: with none left, the failure's one line names them
  for (const x of excluded) onExcluded(x.url, x.why);
  return kept;
}

/**
 * True when `err` is a local write failure (a full disk, EFBIG, EIO, EACCES…: localWriteError), raw or as the
 * transfer reported it, rather than a source's.
 */
function isLocalWriteFailure(err: unknown): boolean {
  if (localWriteError(err, '') !== undefined) return true;
  return (
    isPortalError(err) &&
    (err.code === 'PORTAL_NO_SPACE' ||
      err.message.includes('no space left on device') ||
      err.message.includes('the output cannot be written (a local error'))
  );
}

/** True when the journal folder `dir` holds actor state (a journal some fetch of this output wrote). */
async function hasJournalFiles(dir: string): Promise<boolean> {
  try {
    return (await readdir(dir)).some((n) => n.endsWith('.json'));
  } catch {
    return false;
  }
}

/** `portal fetch`: downloads a file described by a manifest from several edges; resumable. */
export const fetchCommand = defineCommand({
  name: 'fetch',
  summary:
    'download a file from mirrors, a Metalink or Portal edges (resumes from the journal beside the output)',
  usage:
    'portal fetch <manifest.json | file.meta4 | URL [URL…]> [--edge URL[#mirror,metered,battery,max=0..1024 (0 = no limit),bw=BYTES_PER_S,id=NAME] …] [--out FILE] [--checksum sha-256=HEX] [--ca FILE] [--header "Name: value"] [--serve PORT]',
  flags: [
    {
      name: 'edge',
      type: 'list',
      split: false,
      help: 'an edge or mirror URL[#options]; repeat the flag for several (a value is never split at commas: a signed URL may hold them)',
    },
    {
      name: 'edges-file',
      type: 'string',
      help: 'JSON array of edges ({id, config:{url,kind,flags,maxParallel}, holds})',
    },
    {
      name: 'out',
      type: 'string',
      help: "output file (default: the manifest name in the current folder); its folder must exist; '-' streams the file to stdout as its chunks are verified, in order (no resume; URLs without a Metalink or manifest have no chunk hashes: their stream is unverified until the end, and a failed check then exits 3; a file of unknown size goes out as it arrives, its last 64 KiB held back for a checksum)",
    },
    {
      name: 'force',
      type: 'boolean',
      help: "overwrite an existing file that is not this transfer's, or replace a symbolic link at --out; a rerun of a run that ended (finished or failed), or one whose journal cannot be read, starts over instead of reusing its journal",
      default: false,
    },
    {
      name: 'checksum',
      type: 'string',
      help: 'sha-256=HEX the whole file must hash to (URLs without a manifest)',
    },
    {
      name: 'file',
      type: 'string',
      help: 'the file of a Metalink listing several to fetch (its name in the Metalink); without it such a Metalink is refused, listing them',
    },
    caFlag,
    {
      name: 'insecure',
      type: 'boolean',
      help: 'skip TLS certificate verification (only when asked; chunk hashes still verify the bytes)',
      default: false,
    },
    {
      name: 'allow-downgrade',
      type: 'boolean',
      help: 'follow a redirect from an https: URL to an http: one (refused by default: the bytes would travel unprotected)',
      default: false,
    },
    { name: 'header', type: 'list', split: false, help: "'Name: value' sent to every source" },
    {
      name: 'stall-timeout',
      type: 'number',
      help: 'seconds without a response header or body byte before a request is retried as stalled',
      default: DEFAULT_STALL_TIMEOUT_MS / 1000,
      min: 0.1,
    },
    {
      name: 'lowest-speed',
      type: 'number',
      help: 'bytes/s a chunk fetch must average over --speed-time, else its source fails it as too slow (0 = off; curl --speed-limit)',
      default: DEFAULT_LOWEST_SPEED_BYTES_PER_SEC,
      min: 0,
    },
    {
      name: 'speed-time',
      type: 'number',
      help: 'seconds over which --lowest-speed is measured (curl --speed-time)',
      default: DEFAULT_SPEED_TIME_MS / 1000,
      min: 0.1,
    },
    {
      name: 'connect-timeout',
      type: 'number',
      help: 'seconds for a TCP+TLS connect',
      default: DEFAULT_CONNECT_TIMEOUT_MS / 1000,
      min: 0.1,
    },
    {
      name: 'source-budget',
      type: 'number',
      help: "seconds a source may fail without delivering a chunk before it is given up for this run (also the longest the first probe waits for a busy source's Retry-After)",
      default: DEFAULT_EDGE_BUDGET_MS / 1000,
      min: 0.1,
    },
    {
      name: 'max-redirects',
      type: 'number',
      integer: true,
      help: 'redirect hops followed per request',
      default: DEFAULT_MAX_REDIRECTS,
      min: 0,
      max: 50,
    },
    { name: 'tick-ms', type: 'number', help: 'scheduler tick period', default: 50, min: 1, max: 10000 },
    {
      name: 'k',
      type: 'number',
      integer: true,
      help: 'backup sources kept per chunk',
      default: 3,
      min: 1,
      max: 16,
    },
    {
      name: 'dashboard',
      type: 'boolean',
      help: 'serve the live dashboard while the transfer runs',
      default: false,
    },
    {
      name: 'dashboard-port',
      type: 'number',
      integer: true,
      help: 'dashboard port (0 = any free port)',
      default: 0,
      min: 0,
      max: 65535,
    },
    {
      name: 'serve',
      type: 'number',
      integer: true,
      help: 'serve the content while it arrives on this port (GET /content with Range; 0 = any free port)',
      min: 0,
      max: 65535,
    },
    {
      name: 'swarm',
      type: 'boolean',
      help: 'serve the chunks verified here to other fetchers and use theirs (announced on NATS_URL)',
      default: false,
    },
    {
      name: 'swarm-id',
      type: 'string',
      help: "this peer's edge id in the swarm (default: peer-<pid>-<random>)",
    },
    {
      name: 'swarm-port',
      type: 'number',
      integer: true,
      help: 'port the swarm peer serves chunks on (0 = any free port)',
      default: 0,
      min: 0,
      max: 65535,
    },
    {
      name: 'swarm-linger',
      type: 'number',
      help: 'seconds to keep serving the swarm after this transfer is done',
      default: 0,
      min: 0,
    },
    {
      name: 'max-in-flight',
      type: 'number',
      help: 'MiB of chunk fetches running at once on the data threads (memory: a constant plus these)',
      default: DEFAULT_MAX_IN_FLIGHT_BYTES / 2 ** 20,
      min: 1,
      max: 65536,
    },
    {
      name: 'progress-json',
      type: 'boolean',
      help: 'print a JSON status line to stdout every 250 ms ({type:"progress", complete, total, bytesDone, resumedChunks, counters, chunksByEdge (chunks each source delivered in this run, by id), backend, …})',
      default: false,
    },
    ...schedulingFlags,
    ...commonFlags,
  ],
  async run({ flags, positionals }) {
    // `--out -`: the file streams to stdout, its verified in-order prefix as it grows (see STDOUT_OUTPUT)
    const toStdout = flags.out === STDOUT_OUTPUT;
    if (toStdout) checkStdoutOutput(flags);
    // an empty --out (an unset shell variable) resolved to the current folder: "exists and is not a regular file"
    if (flags.out === '')
      throw new PortalError(
        'PORTAL_INVALID_ARGUMENT',
        "--out is empty: give a file name, or '-' to stream the file to stdout (without --out, the name comes from the manifest or URL)",
      );
    // an --out Portal cannot keep side files for (a side-file name, a name too long for them) is refused before any
    // source is probed (checkOutputTarget checks it again, with a name from the manifest or URL)
    if (flags.out !== undefined && !toStdout) {
      const out = path.resolve(flags.out);
      refuseSideFileName(out, out);
      refuseLongNames(out, [
        out,
        journalDir(out),
        `${out}${PART_SUFFIX}`,
        partialChunkLogPath(`${out}${PART_SUFFIX}`),
      ]);
    }
    // a write error of stdout (EPIPE: the reader went away) closes it; the stream sees the close and stops
    let stdoutError: NodeJS.ErrnoException | undefined;
    if (toStdout) process.stdout.on('error', (err: NodeJS.ErrnoException) => (stdoutError ??= err));
    // the ports to listen on are checked before anything is probed or written: a busy one is one line, exit 2
    await checkPortsFree([
      { flag: 'serve', port: flags.serve },
      { flag: 'dashboard-port', port: flags.dashboard ? flags['dashboard-port'] : undefined },
      { flag: 'swarm-port', port: flags.swarm ? flags['swarm-port'] : undefined },
    ]);
    // configuration the sources cannot change is checked before any source is probed (a probe may take the whole
    // --connect-timeout): --swarm's bus, and an --out that cannot be written (its folder missing, a file there
    // without this transfer's journal and no --force: the same refusal checkOutputTarget gives after the probes;
    // with --force nothing is removed before the sources answer)
    if (flags.swarm && !natsOptionsFromEnv())
      throw new PortalError(
        'PORTAL_CONFIG_INVALID',
        'fetch: --swarm needs NATS_URL (where peers announce chunks)',
      );
    if (!toStdout && flags.out !== undefined) {
      const out = path.resolve(flags.out);
      if (flags.force) await checkOutputFolder(out, 'fetch');
      else {
        const jdir = journalDir(out);
        const part = `${out}${PART_SUFFIX}`;
        await checkOutputTarget(out, {
          force: false,
          journalDir: jdir,
          hasJournal: () => hasJournalFiles(jdir),
          sideFiles: [part, partialChunkLogPath(part)],
        });
      }
    }
    // --edge values are checked before anything is read or probed, so a typo fails at once
    const given: TransferEdge[] = [];
    const givenWhere: string[] = [];
    if (flags['edges-file'])
      for (const [i, e] of readEdgesFile(flags['edges-file']).entries()) {
        given.push(e);
        givenWhere.push(edgeFileEntry(flags['edges-file'], i, e));
      }
    for (const [i, spec] of (flags.edge ?? []).entries()) {
      given.push(parseEdgeSpec(spec, i));
      givenWhere.push(`--edge ${spec}`);
    }
    checkUniqueEdgeIds(given, givenWhere);
    // One HTTP client (undici) for the whole run: probes, have bitmaps and chunk fetches.
    const client = createHttpClient({
      caFile: flags.ca,
      insecure: flags.insecure,
      headers: parseHeaders(flags.header),
      // --header credentials go to the origins named on the command line only, never to mirrors found on the
      // way (Link: rel=duplicate, a Metalink's <url>s): those are named by a server or a file, not the user
      credentialOrigins: namedOrigins(positionals, given),
      stallTimeoutMs: flags['stall-timeout'] * 1000,
      lowestSpeedBytesPerSec: flags['lowest-speed'],
      speedTimeMs: flags['speed-time'] * 1000,
      connectTimeoutMs: flags['connect-timeout'] * 1000,
      maxRedirects: flags['max-redirects'],
      allowDowngrade: flags['allow-downgrade'],
    });
    const previous = setDefaultHttpClient(client);
    let fabricBus: Bus | undefined;
    let src: ResolvedSources | undefined;
    // the journal folder this run created, removed at exit when the run fails on a local write before any chunk
    let newJournal: { dir: string; part: string; discard: boolean } | undefined;
    try {
      const checksum = parseChecksum(flags.checksum);
      // A source that answers 200 to If-Range during the run serves another version of the file: the run starts
      // again from zero against it (forgetChangedVersion throws VersionRestart; at most MAX_VERSION_RESTARTS times)
      let restart: VersionRestart | undefined;
      for (;;) {
        const restarted = restart;
        try {
          // A rerun resumes the file of the journal beside the output: the sources are checked against it (read
          // first, where the output is known before the probes: --out, or the name of the first URL).
          const early = toStdout ? undefined : (flags.out ?? firstUrlName(positionals));
          const earlyJournal = early === undefined ? undefined : await readEarlyJournal(path.resolve(early));
          const resolved = await resolveSources(positionals, {
            client,
            checksum,
            outGiven: flags.out !== undefined,
            busyWaitMs: flags['source-budget'] * 1000,
            ...(earlyJournal && earlyJournal.transfer.state !== 'done'
              ? {
                  resume: {
                    manifest: earlyJournal.transfer.manifest,
                    checksumFrom: earlyJournal.transfer.checksumFrom,
                  },
                }
              : {}),
            ...(flags.file !== undefined ? { file: flags.file } : {}),
          });
          if (resolved.kind === 'stream') {
            // no source gives the size: one stream from one source, as curl and wget read it (cli/fetch-stream.ts)
            // `--out -`: the bytes go to stdout as they arrive (no temporary file; a whole-file check comes last)
            const name = outputNameFromManifest(resolved.name);
            const output = toStdout ? STDOUT_OUTPUT : path.resolve(flags.out ?? name);
            const quiet = flags.json || flags['progress-json'];
            const r = await fetchStream(resolved, {
              client,
              output,
              force: flags.force,
              quiet,
              ...(toStdout ? { stdout: process.stdout } : {}),
            });
            if (r.closed) return 0;
            const to = toStdout ? process.stderr : process.stdout;
            reportStream(resolved, r, { json: quiet, to, name: toStdout ? 'stdout' : escapeControl(output) });
            return 0;
          }
          src = resolved;
          // a restart leaves out the sources that still serve the version it gave up, and says what it fetches
          if (restarted) excludeOldVersion(src, restarted);
          const manifest = src.manifest;
          checkGivenHoldings(given, givenWhere, manifest.chunks.length);
          let edges: TransferEdge[] = [...src.edges, ...given];
          if (edges.length === 0)
            throw new PortalError(
              'PORTAL_CONFIG_INVALID',
              'fetch: no source: give mirror URLs, a Metalink file, or --edge / --edges-file with a manifest',
            );
          const quietNotes = flags.json || flags['progress-json'];
          for (const e of src.excluded)
            process.stderr.write(
              `portal: excluded ${escapeControl(redactUrl(e.url))}: ${escapeControl(e.why)}\n`,
            );
          // the manifest suggests a name, never a place: a base name in the current folder; with `--out -` a private
          // folder of the temporary directory holds it (and its journal) while it streams to stdout, then goes
          const output = toStdout
            ? path.join(privateTempDir(), outputNameFromManifest(manifest.name))
            : path.resolve(flags.out ?? outputNameFromManifest(manifest.name));
          const jdir = journalDir(output);
          // The bytes land in a partial file beside the output, which takes the output's name only once verified.
          const part = `${output}${PART_SUFFIX}`;
          await checkOutputTarget(output, {
            force: flags.force,
            journalDir: jdir,
            hasJournal: () => hasJournalFiles(jdir),
            sideFiles: [part, partialChunkLogPath(part)],
          });
          // held until this process exits (however it ends; a lock left by a killed one is taken over)
          const journalIsNew = !existsSync(jdir);
          const lock = await lockOutput(output, jdir);
          newJournal = journalIsNew ? { dir: jdir, part, discard: false } : undefined;
          // the sources' warnings (no checksum…) once the output is known to be writable: a refusal of it is the
          // run's one line, not preceded by a warning about something else
          if (!quietNotes)
            for (const w of src.warnings) process.stderr.write(`portal: warning: ${escapeControl(w)}\n`);
          process.once('exit', () => {
            lock.releaseSync();
            if (newJournal?.discard) rmSync(newJournal.dir, { recursive: true, force: true });
          });
          // the journal read before the probes is this one, unless its files changed since (another fetch of this
          // output that ended meanwhile): read once, not again for each use
          const stamp = await journalStamp(jdir);
          const sideFiles = [part, partialChunkLogPath(part)];
          let journaled =
            stamp === undefined
              ? undefined
              : earlyJournal?.output === output && earlyJournal.stamp === stamp
                ? earlyJournal.transfer
                : await readJournalOrDiscard(output, { jdir, sideFiles, force: flags.force });
          let sourceChanges = journaled
            ? await reconcileJournal(journaled, src.manifest, edges, {
                output,
                sideFiles,
                force: flags.force,
                checksumFrom: src.checksumFrom,
                // named by the input, their probe still pending: they join when it answers (followLateSources)
                late: (src.late?.pending ?? []).map((p) => redactUrl(p.url)),
              })
            : { joined: [], dropped: [] };
          if (sourceChanges.complete) return reportComplete(sourceChanges.complete, flags);
          // another file's journal was discarded above, unless its run finished (its output is never replaced
          // without --force); the same file's, finished or failed, is decided here
          if (
            journaled &&
            journaled.manifest.id !== manifest.id &&
            (journaled.state !== 'done' || flags.force)
          )
            journaled = undefined;
          if (journaled && !toStdout) {
            const ended = await endedRun(journaled, manifest, {
              output,
              sideFiles,
              force: flags.force,
              checksumFrom: src.checksumFrom,
            });
            if (ended === 'discarded') journaled = undefined;
            else if (ended !== undefined) return reportComplete(ended, flags);
          }
          // chunks without a hash are kept when the sources' validators are still the first run's
          const decided = journaled
            ? await reconcileValidators(journaled, src, edges, { output, sideFiles })
            : undefined;
          if (decided?.startOver) sourceChanges = { joined: [], dropped: [] };
          // sources that changed version while others still serve the journal's: left out, never mixed in
          if (decided && decided.drop.length > 0) {
            edges = edges.filter((e) => !decided.drop.includes(e.id));
            for (const id of decided.drop) delete src.validators?.byId[id];
            src.excluded.push(...decided.excluded);
          }
          // Without a hash, every Range request then carries If-Range: a source whose file changed answers 200
          // instead of new bytes, and versions are never mixed. With a whole-file checksum (or a Metalink's other
          // hash) or per-chunk hashes, the hashes decide instead: a validator that differs between requests (a
          // load-balanced mirror whose nodes give their own ETag, as Apache's inode ETags do) is no version change,
          // and bytes of another version fail their chunk's hash or the whole file's check (curl and aria2c send
          // no If-Range either)
          const hashed =
            manifest.fileSha256 !== NO_CID ||
            src.otherHash !== undefined ||
            src.digestCandidates !== undefined ||
            !manifest.chunks.includes(NO_CID);
          client.options.ifRange = hashed ? undefined : src.validators?.byUrl;
          if (!quietNotes) {
            for (const u of sourceChanges.joined)
              process.stderr.write(
                `portal: resuming: ${escapeControl(redactUrl(u))} joins as a new source\n`,
              );
            for (const u of sourceChanges.dropped)
              process.stderr.write(
                `portal: resuming: ${escapeControl(u)} is no longer named as a source; dropped\n`,
              );
          }
          // Ctrl-C: the journal is written as chunks are verified (a kill at any moment resumes), so the process ends
          // at once, as a shell expects (128 + SIGINT), saying what is kept instead of vanishing silently.
          // It names only a file that exists: interrupted before the first chunk, nothing is kept.
          // Bytes written to stdout (`--out -`), and whether its chunks have hashes of their own (else they were
          // checked by their length only, and the whole stream only once it ends).
          const streamed = emptyContentStats();
          const chunkHashes = !manifest.chunks.includes(NO_CID);
          // SIGTERM (timeout, systemd, Kubernetes) is handled as Ctrl-C: its default action ended the process without
          // a word and without the exit listeners that release the output's lock. Exit code 128 + the signal's number.
          const onSigint = (signal: NodeJS.Signals): void => {
            process.off('SIGINT', onSigint);
            process.off('SIGTERM', onSigint);
            const kept = !toStdout && existsSync(part);
            // before the first chunk: the journal folder this run made goes too (at exit), so nothing is kept; one a
            // previous run left is kept, and said so
            if (!toStdout && !kept && newJournal) newJournal.discard = true;
            const journalKept = !toStdout && !kept && !newJournal && existsSync(jdir);
            if (flags.json || flags['progress-json'])
              process.stdout.write(
                `${JSON.stringify({ type: 'interrupted', signal, kept: kept ? part : journalKept ? jdir : null })}\n`,
              );
            process.stderr.write(
              toStdout
                ? `\nportal: interrupted; ${streamedBytes(streamed, chunkHashes)} had been written to stdout, the file is incomplete, and nothing is kept (--out - does not resume)\n`
                : kept
                  ? `\nportal: interrupted; the verified chunks are kept in ${escapeControl(part)} and its journal ${escapeControl(jdir)}: run the same command again to resume, or remove both to discard them\n`
                  : journalKept
                    ? `\nportal: interrupted before any chunk was written; the journal of the earlier run is kept in ${escapeControl(jdir)}: run the same command again to resume, or remove it to start over\n`
                    : `\nportal: interrupted before any chunk was written; nothing is kept: run the same command again to start\n`,
            );
            process.exit(signal === 'SIGTERM' ? 143 : 130);
          };
          process.once('SIGINT', onSigint);
          process.once('SIGTERM', onSigint);
          // an edge whose /v1/have fails is left out and named (as a mirror whose probe fails); the rest serve
          edges = await resolveHoldings(edges, manifest.id, manifest.chunks.length, (url, why) => {
            src!.excluded.push({ url, why });
            process.stderr.write(`portal: excluded ${escapeControl(url)}: ${escapeControl(why)}\n`);
          });
          const logger = createLogger({
            level: flags['log-level'],
            format: resolveLogFormat(flags['log-format'], 'text'),
            keep: fetchLogFilter(),
          });
          const started = Date.now();
          const quiet = flags.json || flags['progress-json'];
          const bar = createProgress('fetch', manifest.fileSize, {
            quiet,
            format: (d, t) => `${formatBytes(d)}/${formatBytes(t)}`,
          });
          if (flags.swarm) {
            if (!natsOptionsFromEnv())
              throw new PortalError(
                'PORTAL_CONFIG_INVALID',
                'fetch: --swarm needs NATS_URL (where peers announce chunks)',
              );
            fabricBus = await createBusFromEnv({ logger, name: `portal-swarm-${process.pid}` });
          }
          const swarmId = flags['swarm-id'] ?? `peer-${process.pid}-${randomBytes(3).toString('hex')}`;
          const late = followLateSources(src, quietNotes);
          // `--out -`: everything but the last chunk streams while the transfer runs; the last chunk goes out once the
          // whole file passed its check, so a file that fails it never reaches the reader whole (see stdoutTail)
          const tail = toStdout ? stdoutTail(manifest) : undefined;
          let stream: StreamContentResult | undefined;
          const status = await runTransfer({
            swarm: fabricBus
              ? {
                  fabricBus,
                  id: swarmId,
                  port: flags['swarm-port'],
                  lingerMs: flags['swarm-linger'] * 1000,
                  onUrl: (url) => {
                    if (flags['progress-json'])
                      process.stdout.write(`${JSON.stringify({ type: 'swarm', id: swarmId, url })}\n`);
                    else process.stderr.write(`swarm peer ${swarmId}: ${url}\n`);
                  },
                }
              : undefined,
            request: {
              transferId: localTransferId(manifest.id, output),
              manifest,
              // `--out -` reads the file while it is written: it keeps one name (its folder is private anyway)
              ...(toStdout ? { output } : { output: part, publishAs: output }),
              // the publish replaces a file another program created at --out meanwhile only under --force
              overwrite: flags.force,
              checksumFrom: src.checksumFrom,
              ...(src.validators && Object.keys(src.validators.byId).length > 0
                ? { validators: src.validators.byId }
                : {}),
              edges,
              edgeBudgetMs: flags['source-budget'] * 1000,
              tickMs: flags['tick-ms'],
              scheduler: { k: flags.k },
              learned: flags.learned,
              // a swarm member takes from the origin only what no peer holds, its own chunks first
              ...(flags.swarm ? { swarm: { selfId: swarmId } } : {}),
            },
            logger,
            backend: parseBackend(flags.backend),
            requireGpu: requireGpuFromEnv(),
            cpuThreads: cpuThreadsFromEnv(),
            maxInFlightBytes: Math.round(flags['max-in-flight'] * 2 ** 20),
            dashboard: flags.dashboard
              ? {
                  port: flags['dashboard-port'],
                  onUrl: (url) => {
                    if (!quiet) process.stderr.write(`dashboard: ${url}\n`);
                  },
                }
              : undefined,
            serve:
              flags.serve !== undefined
                ? {
                    port: flags.serve,
                    onUrl: (url) => {
                      if (flags['progress-json'])
                        process.stdout.write(`${JSON.stringify({ type: 'serving', url })}\n`);
                      else process.stderr.write(`content: ${url}\n`);
                    },
                    onClosed: (stats) => {
                      if (flags['progress-json'])
                        process.stdout.write(`${JSON.stringify({ type: 'content', ...stats })}\n`);
                    },
                  }
                : undefined,
            onJoinable: late.start,
            reader:
              tail && tail.offset > 0
                ? async (source) => {
                    stream = await streamContent(source, process.stdout, {
                      start: 0,
                      end: tail.offset - 1,
                      readerId: 'stdout',
                      stats: streamed,
                      logger,
                    });
                    // the reader went away (EPIPE: `| head`): the transfer stops, quietly
                    return stream.ended === 'closed' ? 'stop' : 'done';
                  }
                : undefined,
            onStarted: (s) => {
              if (flags['progress-json'])
                process.stdout.write(
                  `${JSON.stringify({ type: 'started', complete: s.complete, total: s.total })}\n`,
                );
            },
            onProgress: (s) => {
              if (flags['progress-json'])
                process.stdout.write(
                  `${JSON.stringify({ type: 'progress', complete: s.complete, total: s.total, bytesDone: s.bytesDone, resumedChunks: s.resumedChunks, counters: s.counters, ticks: s.ticks, tickMsP50: s.tickMsP50, tickMsP99: s.tickMsP99, chunksByEdge: s.chunksByEdge, backend: s.backend, ...(s.failingSources ? { failingSources: s.failingSources } : {}) })}\n`,
                );
              bar.update(s.bytesDone, progressDetail(s, started));
            },
          })
            .catch(
              forgetChangedVersion(output, sideFiles, {
                validators: src.validators?.byUrl,
                size: manifest.fileSize,
                restarts: restarted?.count ?? 0,
                // `--out -` starts again only while nothing went to stdout
                restart: () => streamed.bytesServed === 0,
                release: async () => {
                  process.off('SIGINT', onSigint);
                  process.off('SIGTERM', onSigint);
                  await late.end();
                  await lock.release();
                  await fabricBus?.close();
                  fabricBus = undefined;
                },
              }),
            )
            .catch((err: unknown) => {
              throw toStdout ? streamFailure(err, streamed, chunkHashes) : err;
            });
          bar.done(progressDetail(status, started), status.state === 'done' ? undefined : status.bytesDone);
          const { joinedLate, notAnswered } = await late.end();
          // the reader of stdout went away (| head): it wanted no more; any other write error is one
          if (stream?.ended === 'closed') {
            if (stdoutError && stdoutError.code !== 'EPIPE')
              throw new PortalError(
                'PORTAL_TRANSFER_FAILED',
                `--out -: writing to stdout failed: ${stdoutError.message}`,
              );
            return 0;
          }
          if (stream?.ended === 'cut') {
            // a read or write error of the stream (a cut by a failed transfer was thrown by runTransfer above)
            const cause = stream.detail.err instanceof Error ? `: ${stream.detail.err.message}` : '';
            throw streamFailure(
              new PortalError('PORTAL_TRANSFER_FAILED', `--out -: ${stream.why}${cause}`),
              streamed,
              chunkHashes,
            );
          }
          const checked = manifest.fileSha256 !== NO_CID;
          // no sha-256 known but a Metalink hash of another type: the complete file is checked against it (exit 3)
          const otherChecked = !checked && src.otherHash !== undefined;
          // the sources' Digests disagreed 1 vs 1: the file must match one of them (exit 3 naming both otherwise)
          const digestsChecked = !checked && !otherChecked && src.digestCandidates !== undefined;
          const wholeCheck = otherChecked
            ? checkOtherHash(output, src.otherHash!).then(() => undefined)
            : digestsChecked
              ? checkDigestCandidates(output, src.digestCandidates!)
              : undefined;
          const digestNote = await wholeCheck?.catch(async (err: unknown) => {
            if (toStdout) throw streamFailure(err, streamed, chunkHashes);
            if (!isPortalError(err)) throw err;
            // never left under the name asked for: back to the partial file, and its journal (which says done)
            // discarded, so that a rerun fetches it again
            await discardJournal(output, [partialChunkLogPath(part)]);
            await rename(output, part);
            throw new PortalError(
              err.code,
              `${err.message}; it is kept as ${escapeControl(part)} for inspection, not as ${escapeControl(output)}, and a rerun fetches it again`,
            );
          });
          if (digestNote && !flags.json && !flags['progress-json'])
            process.stderr.write(`portal: ${escapeControl(digestNote)}\n`);
          const seconds = (Date.now() - started) / 1000;
          // a source the rerun dropped is in sourcesDropped, not given up (it did not fail)
          const givenUp = sourcesOf(status).filter((x) => x.retired && x.retiredReason !== DROPPED_SOURCE);
          const result = {
            output,
            verified: status.verified || otherChecked || digestsChecked,
            ...(otherChecked ? { verifiedBy: src.otherHash!.type } : {}),
            ...(digestNote ? { verifiedBy: 'digest', digestNote } : {}),
            bytes: manifest.fileSize,
            seconds,
            throughputBytesPerSec: (status.bytesDone - status.resumedChunks * manifest.chunkSize) / seconds,
            resumedChunks: status.resumedChunks,
            fetchedChunks: status.counters.completed,
            hedges: status.counters.hedges,
            failovers: status.counters.failovers,
            corruptChunksDetected: status.counters.corrupt,
            // chunks each source delivered, by edge id (a swarm peer's share against the origin's)
            chunksBySource: Object.fromEntries(
              (status.edges ?? []).map((e, i) => [e.id, status.perEdgeChunks[i] ?? 0]),
            ),
            tickMsP50: status.tickMsP50,
            tickMsP99: status.tickMsP99,
            // the sources that were given up on the way (the file came from the others), with why
            ...(givenUp.length ? { sourcesGivenUp: givenUp } : {}),
            // CPU seconds of the process (every thread) up to here: user + system (process.cpuUsage)
            cpuSeconds: +((process.cpuUsage().user + process.cpuUsage().system) / 1e6).toFixed(2),
            backend: status.backend,
            source: src.kind,
            ...(src.excluded.length
              ? { excluded: src.excluded.map((e) => ({ url: redactUrl(e.url), why: e.why })) }
              : {}),
            // sources that joined once their probe answered after the start, and those that never answered it
            ...(joinedLate.length ? { sourcesJoinedLate: joinedLate.map((u) => redactUrl(u)) } : {}),
            ...(notAnswered.length ? { sourcesNotAnswered: notAnswered } : {}),
            // a rerun's changes to the journal's sources
            ...(sourceChanges.joined.length
              ? { sourcesJoined: sourceChanges.joined.map((u) => redactUrl(u)) }
              : {}),
            ...(sourceChanges.dropped.length ? { sourcesDropped: sourceChanges.dropped } : {}),
            ...(src.warnings.length ? { warnings: src.warnings } : {}),
            // the run started again from zero this many times: these sources answered 200 to If-Range (changed)
            ...(restarted ? { restartsFromZero: restarted.count, versionChangedAt: restarted.changed } : {}),
          };
          const ok = status.verified || !checked;
          // the last chunk goes out only once the file is verified (or complete, when nothing can verify it)
          if (toStdout && ok && !(await copyToStdout(output, tail!.offset))) return 0;
          if (toStdout && !ok)
            throw streamFailure(
              new PortalError(
                'PORTAL_VERIFY_FAILED',
                `${STDOUT_OUTPUT}: the file did not pass its sha256 check`,
              ),
              streamed,
              chunkHashes,
            );
          if (flags.json || flags['progress-json'])
            process.stdout.write(`${JSON.stringify({ type: 'result', ...result })}\n`);
          else
            (toStdout ? process.stderr : process.stdout).write(
              `${toStdout ? 'stdout' : escapeControl(output)}: ${formatBytes(manifest.fileSize)} in ${seconds.toFixed(2)} s, ${checked || digestsChecked ? 'sha256 verified' : otherChecked ? `${src.otherHash!.type} verified` : 'complete, not verified (no checksum)'}${status.resumedChunks ? `, ${status.resumedChunks} chunks resumed from the journal` : ''}\n`,
            );
          // an unverified end is the exit code of PORTAL_VERIFY_FAILED (3): the same table as thrown failures;
          // without any checksum to check against, a complete file is the best there is (a warning said so)
          return ok ? 0 : exitCodeFor('PORTAL_VERIFY_FAILED');
        } catch (err) {
          // a full disk (or EFBIG, EIO…) before the first chunk: the folder this run made holds nothing worth a rerun
          if (newJournal && !existsSync(newJournal.part) && isLocalWriteFailure(err))
            newJournal.discard = true;
          if (!(err instanceof VersionRestart)) throw err;
          restart = err;
        }
      }
    } catch (err) {
      // a failed transfer names every source: those whose probe never answered too
      const sources = (err as { sources?: unknown[] }).sources;
      if (Array.isArray(sources) && src?.late) {
        src.late.abandon();
        for (const p of await Promise.all(src.late.pending.map((x) => x.probe)))
          if (p.noAnswer)
            sources.push({
              url: redactUrl(p.url),
              kind: 'mirror',
              lastError: p.error,
              retired: true,
              chunks: 0,
            });
      }
      throw err;
    } finally {
      src?.late?.abandon();
      setDefaultHttpClient(previous);
      await client.close();
      await fabricBus?.close();
    }
  },
});

/** The base name of the first URL among `positionals` (where the output goes without --out), if it is one. */
function firstUrlName(positionals: string[]): string | undefined {
  try {
    const url = positionals[0] ?? '';
    // the name fromUrls gives the output (percent-decoded); an unusable one is refused there, naming the URL
    return /^https?:$/i.test(new URL(url).protocol) ? fileNameFromUrl(url, url, true) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The transfer the journal beside `output` holds (readJournaledTransfer), read under the output's lock. A journal
 * that cannot be read (PORTAL_STATE_CORRUPT: a file cut short by a disk error, edited by hand) is discarded with
 * `force`, together with the partial files `sideFiles` whose bytes only it vouched for, and the fetch starts over
 * (said on stderr); without `force` the error names the journal folder and the two ways out (--force, or removing
 * the folder and the partial file). Other errors are thrown as they are.
 */
async function readJournalOrDiscard(
  output: string,
  o: { jdir: string; sideFiles: string[]; force: boolean },
): Promise<JournaledTransfer | undefined> {
  try {
    return await readJournaledTransfer(output);
  } catch (err) {
    if (!isPortalError(err) || err.code !== 'PORTAL_STATE_CORRUPT') throw err;
    const dir = escapeControl(o.jdir);
    if (!o.force)
      throw new PortalError(
        'PORTAL_STATE_CORRUPT',
        `the journal of ${escapeControl(output)} cannot be read (${err.message}): run again with --force to discard it and its partial file ${escapeControl(o.sideFiles[0])} and start over, or remove ${dir} and that file yourself`,
        { cause: err },
      );
    await discardJournal(output, o.sideFiles);
    process.stderr.write(
      `portal: the journal in ${dir} could not be read (${escapeControl(err.message)}); --force: discarded it and the partial file, starting over\n`,
    );
    return undefined;
  }
}

/** The journal beside `output` as read before its lock is taken, and the stamp (journalStamp) of its files then. */
interface EarlyJournal {
  output: string;
  stamp: string;
  transfer: JournaledTransfer;
}

/**
 * The transfer the journal beside `output` holds, read before the probes (the file a rerun resumes) and without
 * the lock: undefined when there is none or it cannot be read now (the read under the lock then reports why).
 */
async function readEarlyJournal(output: string): Promise<EarlyJournal | undefined> {
  const stamp = await journalStamp(journalDir(output));
  if (stamp === undefined) return undefined;
  const transfer = await readJournaledTransfer(output).catch(() => undefined);
  return transfer && { output, stamp, transfer };
}

/**
 * Name, size and modification time of each file of the journal folder `dir` but its lock, in name order:
 * what tells whether the journal changed between two looks. Undefined when it holds no actor state (no folder,
 * or no `.json`: no fetch of this output wrote a journal).
 */
async function journalStamp(dir: string): Promise<string | undefined> {
  if (!(await hasJournalFiles(dir))) return undefined;
  const names = (await readdir(dir)).filter((n) => n !== 'lock').sort();
  const parts = await Promise.all(
    names.map(async (n) => {
      const st = await stat(path.join(dir, n)).catch(() => undefined);
      return st ? `${n}:${st.size}:${st.mtimeMs}` : `${n}:gone`;
    }),
  );
  return parts.join('/');
}

/** A rerun that fetched nothing: the output was already complete (endedRun), or the kept bytes were (reconcileJournal). */
interface AlreadyComplete {
  output: string;
  alreadyComplete: true;
  verified: boolean;
  bytes: number;
  fetchedChunks: 0;
  sha256?: string;
  /** What gave the sha-256 the output was checked against now (a rerun with a checksum the first run lacked). */
  checkedBy?: string;
  /** The partial file of a failed run whose bytes matched the checksum given now, published as the output. */
  publishedFrom?: string;
}

/** Writes the result of an already complete rerun (one line, or a JSON record with --json): exit status 0. */
function reportComplete(r: AlreadyComplete, flags: { json: boolean; 'progress-json': boolean }): number {
  if (flags.json || flags['progress-json'])
    process.stdout.write(`${JSON.stringify({ type: 'result', ...r })}\n`);
  else if (r.publishedFrom)
    process.stdout.write(
      `${escapeControl(r.output)}: complete (${formatBytes(r.bytes)}): the bytes the failed run kept in ${escapeControl(r.publishedFrom)} match sha256 ${r.sha256} as ${r.checkedBy} gives now; nothing fetched\n`,
    );
  else
    process.stdout.write(
      `${escapeControl(r.output)}: already complete (${formatBytes(r.bytes)}, ${r.sha256 ? `sha256 ${r.sha256} ${r.checkedBy ? `as ${r.checkedBy} gives` : `as when it was ${r.verified ? 'verified' : 'fetched'}`}` : 'as when it was fetched'}); nothing fetched\n`,
    );
  return 0;
}

/**
 * What a rerun does with the journal `j` when its run ended (wget -c, aria2c: a complete file is not fetched
 * again), the sources now giving manifest `m` (its sha-256 from `checksumFrom`). Finished, with the output still as
 * it was then (same size and sha256): the result to report (`alreadyComplete`), nothing is fetched, when `m` is the
 * journal's file, or when `m`'s sha-256 is the output's (`checkedBy` names what gave it). Finished but the output is
 * gone: the journal is discarded and the file fetched again. Finished but the output changed since (someone wrote
 * to it): refused with PORTAL_OUTPUT_REFUSED naming both sha256, unless `force`. Finished, and `m` another
 * transfer's file (another name, size or sha-256: nothing says it is the output's bytes): refused with
 * PORTAL_OUTPUT_REFUSED naming the output, both files and --force (fetch never replaces a file without --force).
 * `force` discards the journal of any ended run (finished or failed): the fetch starts over. Returns 'discarded'
 * when the journal was discarded, undefined to go on with it (a run that was interrupted, or that failed, without
 * `force`).
 */
async function endedRun(
  j: JournaledTransfer,
  m: Manifest,
  {
    output,
    sideFiles,
    force,
    checksumFrom,
  }: { output: string; sideFiles: string[]; force: boolean; checksumFrom: ChecksumOrigin },
): Promise<AlreadyComplete | 'discarded' | undefined> {
  if (j.state !== 'done' && j.state !== 'failed') return undefined;
  const discard = async (why: string): Promise<'discarded'> => {
    process.stderr.write(`portal: ${why}; starting over\n`);
    await discardJournal(output, sideFiles);
    return 'discarded';
  };
  if (j.state === 'failed')
    return force
      ? discard(`--force: discarding the journal of the failed run beside ${escapeControl(output)}`)
      : undefined;
  if (force) return discard(`--force: fetching ${escapeControl(output)} again`);
  const found = await finishedOutput(j, output);
  if (found.kind === 'gone')
    return discard(`${escapeControl(output)} was fetched before but is gone: fetching it again`);
  // no checksum now, and the journal's name and size (what identifies a file without one): the same file
  const sameUnchecked =
    m.fileSha256 === NO_CID && m.name === j.manifest.name && m.fileSize === j.manifest.fileSize;
  if (j.manifest.id !== m.id && !sameUnchecked) {
    // the sources' sha-256 (a flag's, a Metalink's, a Digest) is that of the finished output: it is that file
    if (
      found.kind === 'complete' &&
      m.fileSha256 !== NO_CID &&
      m.fileSize === j.manifest.fileSize &&
      found.sha256 === m.fileSha256
    )
      return {
        output,
        alreadyComplete: true,
        verified: true,
        bytes: m.fileSize,
        fetchedChunks: 0,
        sha256: found.sha256,
        checkedBy: CHECKSUM_ORIGIN[checksumFrom],
      };
    throw new PortalError(
      'PORTAL_OUTPUT_REFUSED',
      `output ${escapeControl(output)} exists: the finished download of another transfer (${describeFile(j.manifest, j.checksumFrom)}); ${checksumFrom === 'checksum-flag' ? 'the rerun asks for' : 'the sources now give'} ${describeFile(m, checksumFrom)}. fetch does not replace a file: use another --out, or --force to replace ${escapeControl(output)}`,
    );
  }
  if (found.kind === 'changed')
    throw new PortalError(
      'PORTAL_OUTPUT_REFUSED',
      `output ${escapeControl(output)} changed since it was fetched (${found.size} bytes${found.sha256 ? `, sha-256 ${found.sha256}` : ''} now; ${j.manifest.fileSize} bytes${found.expected ? `, sha-256 ${found.expected}` : ''} then). Use another --out, or --force to fetch it again over it`,
    );
  const verified = j.manifest.fileSha256 !== NO_CID;
  return {
    output,
    alreadyComplete: true,
    verified,
    bytes: j.manifest.fileSize,
    // the shape of a result that fetched: nothing was
    fetchedChunks: 0,
    ...(found.sha256 ? { sha256: found.sha256 } : {}),
  };
}

/**
 * How a file is named in messages: name, size, and sha-256 with what gave it (`from`: a flag is the user's, not a
 * source's), or the lack of one.
 */
const describeFile = (m: Manifest, from?: ChecksumOrigin): string =>
  `${escapeControl(m.name)}, ${m.fileSize} bytes, ${m.fileSha256 === NO_CID ? 'no checksum' : `sha-256 ${m.fileSha256}${from ? ` (from ${CHECKSUM_ORIGIN[from]})` : ''}`}`;

/**
 * Compares the transfer the journal beside `output` holds with the one of manifest `m` and sources `edges`. Another file (another size,
 * or another sha-256 where both have one) is refused with PORTAL_OUTPUT_REFUSED naming both, unless `force`; then,
 * or when the journal cannot be resumed under the new identity (a checksum given now, another chunk size: nothing
 * of it could be kept), the journal and the partial files (`sideFiles`) are discarded and the fetch starts again.
 * For the same file, returns the sources of `edges` the journal lacks (URLs) and the journal's that `edges` no longer names (redacted),
 * which SchedulerActor.start joins and drops; a journal's source among `late` (redacted URLs the input names whose
 * probe had not answered at the start) is not said to be dropped: it joins again when its probe answers. A
 * finished run's journal of another file is left to endedRun; a failed one checked against the user's --checksum,
 * rerun with another --checksum, has its kept bytes checked against the new one (publishVerifiedPart): `complete`
 * when they match.
 */
async function reconcileJournal(
  j: JournaledTransfer,
  m: Manifest,
  edges: readonly TransferEdge[],
  {
    output,
    sideFiles,
    force,
    checksumFrom,
    late = [],
  }: {
    output: string;
    sideFiles: string[];
    force: boolean;
    checksumFrom: ChecksumOrigin;
    late?: readonly string[];
  },
): Promise<{ joined: string[]; dropped: string[]; complete?: AlreadyComplete }> {
  if (j.manifest.id !== m.id) {
    // a finished output is never replaced without --force: endedRun decides, with the output
    if (j.state === 'done' && !force) return { joined: [], dropped: [] };
    const was = j.manifest;
    // The failed run's sha-256 was the user's --checksum, and so is the new one (a typo corrected): no source
    // gave either, the bytes kept are the sources'; they are checked against the new one (sideFiles[0]: the
    // .portal-part), published when they match, else fetched again
    const corrected =
      j.state === 'failed' &&
      j.checksumFrom === 'checksum-flag' &&
      checksumFrom === 'checksum-flag' &&
      was.fileSize === m.fileSize &&
      m.fileSha256 !== NO_CID &&
      !force;
    if (corrected) {
      const part = sideFiles[0];
      const p = await publishVerifiedPart(j, m, { output, part, checksumFrom });
      if (p.published)
        return {
          joined: [],
          dropped: [],
          complete: {
            output,
            alreadyComplete: true,
            verified: true,
            bytes: m.fileSize,
            fetchedChunks: 0,
            sha256: p.sha256,
            checkedBy: CHECKSUM_ORIGIN[checksumFrom],
            publishedFrom: part,
          },
        };
      process.stderr.write(
        `portal: the failed run beside ${escapeControl(output)} was checked against sha-256 ${was.fileSha256} (from --checksum); ${p.sha256 ? `the bytes it kept (sha-256 ${p.sha256}) do not match sha-256 ${m.fileSha256} (from --checksum) either` : `it kept no whole file to check against sha-256 ${m.fileSha256} (from --checksum)`}: discarding its journal; starting again\n`,
      );
      await discardJournal(output, sideFiles);
      return { joined: [], dropped: [] };
    }
    const other =
      was.fileSize !== m.fileSize ||
      (was.fileSha256 !== NO_CID && m.fileSha256 !== NO_CID && was.fileSha256 !== m.fileSha256);
    if (other && !force)
      throw new PortalError(
        'PORTAL_OUTPUT_REFUSED',
        `output ${escapeControl(output)} has the journal of another file (${describeFile(was, j.checksumFrom)}); ${checksumFrom === 'checksum-flag' ? 'the rerun asks for' : 'the sources now give'} ${describeFile(m, checksumFrom)}. Use another --out, or --force to discard the journal and fetch the new file`,
      );
    process.stderr.write(
      `portal: discarding the journal beside ${escapeControl(output)} (${describeFile(was, j.checksumFrom)}): ${other ? '--force' : 'it cannot be resumed as'} ${describeFile(m, checksumFrom)}; starting again\n`,
    );
    await discardJournal(output, sideFiles);
    return { joined: [], dropped: [] };
  }
  if (j.state === 'done') return { joined: [], dropped: [] };
  const taken = new Set<number>();
  const joined: string[] = [];
  for (const e of edges) {
    const i = sameSource(j.edges, e, taken);
    if (i >= 0) taken.add(i);
    else joined.push(e.config.url);
  }
  // a source the input still names whose probe had not answered at the start is not dropped: it joins late
  const dropped = j.edges
    .filter((e, i) => !taken.has(i) && !e.announced && !late.includes(redactUrl(e.config.url)))
    .map((e) => e.config.url);
  return { joined, dropped };
}

/**
 * Follows the sources whose probe had not answered when the transfer started (ResolvedSources.late): `start`
 * (runTransfer's onJoinable) joins each that answers and agrees, and names each that answers otherwise as
 * excluded (stderr, and `src.excluded` for --json); `end` stops waiting and resolves with the late joiners and the
 * sources that never answered (`{url, why}`, URLs redacted).
 */
function followLateSources(
  src: ResolvedSources,
  quiet: boolean,
): {
  start: (join: (edges: TransferEdge[]) => Promise<string[]>) => void;
  end: () => Promise<{ joinedLate: string[]; notAnswered: { url: string; why: string }[] }>;
} {
  const joinedLate: string[] = [];
  const notAnswered: { url: string; why: string }[] = [];
  const handled: Promise<void>[] = [];
  return {
    start: (join) => {
      for (const p of src.late?.pending ?? [])
        handled.push(
          p.probe.then(async (probe) => {
            const why = src.late!.refusal(probe);
            if (probe.noAnswer) {
              notAnswered.push({ url: redactUrl(p.url), why: why ?? 'no answer' });
              if (!quiet)
                process.stderr.write(
                  `portal: ${escapeControl(redactUrl(p.url))} did not answer its probe (${escapeControl(why ?? '')}): not used\n`,
                );
            } else if (why !== undefined) {
              src.excluded.push({ url: p.url, why });
              process.stderr.write(
                `portal: excluded ${escapeControl(redactUrl(p.url))}: ${escapeControl(why)}\n`,
              );
            } else if ((await join([p.edge])).length > 0) {
              joinedLate.push(p.url);
              if (!quiet)
                process.stderr.write(
                  `portal: ${escapeControl(redactUrl(p.url))} answered after the start and joins as a source\n`,
                );
            }
          }),
        );
    },
    end: async () => {
      src.late?.abandon();
      await Promise.all(handled);
      return { joinedLate, notAnswered };
    },
  };
}

/** The origins of the URLs given on the command line (positionals, --edge / --edges-file): where --header credentials go. */
function namedOrigins(positionals: string[], given: TransferEdge[]): string[] {
  const out: string[] = [];
  for (const u of [...positionals, ...given.map((e) => e.config.url)]) {
    if (!/^https?:\/\//i.test(u)) continue;
    try {
      out.push(new URL(u).origin);
    } catch {
      /* an invalid URL is refused by resolveSources, naming it */
    }
  }
  return out;
}

/** The `--out` value that means stdout, as in curl -o - and wget -O -. A file of that name is `--out ./-`. */
const STDOUT_OUTPUT = '-';

/**
 * Refuses what `--out -` cannot do, with PORTAL_INVALID_ARGUMENT (exit 2): --json and --progress-json, which write
 * to stdout too, and a terminal as stdout unless --force (binary bytes on a terminal garble it; curl refuses as
 * well).
 */
function checkStdoutOutput(flags: { json?: boolean; 'progress-json'?: boolean; force?: boolean }): void {
  if (flags.json || flags['progress-json'])
    throw new PortalError(
      'PORTAL_INVALID_ARGUMENT',
      `--out - writes the file to stdout: --${flags.json ? 'json' : 'progress-json'} cannot write there too`,
    );
  if (process.stdout.isTTY && !flags.force)
    throw new PortalError(
      'PORTAL_INVALID_ARGUMENT',
      '--out - would write binary data to the terminal: pipe or redirect stdout, or add --force',
    );
}

/**
 * Where the last chunk of the file begins (bytes; 0 for a file of at most one chunk): `--out -` streams the bytes
 * before it while the transfer runs, and the rest once the whole file passed its check.
 */
function stdoutTail(m: { fileSize: number; chunkSize: number; chunks: readonly string[] }): {
  offset: number;
} {
  return { offset: m.chunks.length > 1 ? (m.chunks.length - 1) * m.chunkSize : 0 };
}

/** `12.0 MiB (12582912 bytes)` of stdout, with `unverified` when the chunks have no hashes of their own. */
function streamedBytes(s: ContentServerStats, chunkHashes: boolean): string {
  const n = s.bytesServed;
  return `${formatBytes(n)} (${n} bytes${n > 0 && !chunkHashes ? ', unverified: checked by length only' : ''})`;
}

/**
 * The error of a `--out -` run that failed after bytes went to stdout: `err`'s message (code and `sources` kept)
 * followed by how many bytes the reader got and that the stream is not to be trusted. `err` itself when none went.
 */
function streamFailure(err: unknown, s: ContentServerStats, chunkHashes: boolean): unknown {
  if (s.bytesServed === 0 || !(err instanceof Error)) return err;
  err.message += `; ${streamedBytes(s, chunkHashes)} had been written to stdout: the output stream is incomplete and not to be trusted`;
  return err;
}

/**
 * A folder of our own in the temporary directory (0700, `portal-stdout-<pid>-XXXXXX`), removed when the process
 * exits. A process killed with SIGKILL runs no exit handler: the folders such processes left are removed first
 * (removeStaleTempDirs).
 */
function privateTempDir(): string {
  removeStaleTempDirs(tmpdir());
  const dir = makeTempDir(`${STDOUT_TEMP_PREFIX}${process.pid}-`, '--out - (the file is assembled there)');
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The name of a `--out -` temporary folder: the prefix, the pid of the process that made it, mkdtemp's suffix. */
const STDOUT_TEMP_PREFIX = 'portal-stdout-';
const STDOUT_TEMP_NAME = /^portal-stdout-(\d+)-[A-Za-z0-9]{6}$/;

/**
 * Removes the `--out -` folders of `dir` whose process no longer exists (killed with SIGKILL, or by a power loss):
 * only a real folder (lstat: a symbolic link of that name is left alone, and rm follows no link inside) owned by
 * this user, named with a pid no process has (kill(pid, 0) fails with ESRCH; EPERM is another user's live
 * process). Another user's folder, a live process's and anything it cannot read are left; errors are ignored
 * (a folder another run removes at the same time).
 */
function removeStaleTempDirs(dir: string): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  const uid = process.getuid?.();
  for (const name of names) {
    const m = STDOUT_TEMP_NAME.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid === process.pid || !(pid > 0) || processExists(pid)) continue;
    const full = path.join(dir, name);
    try {
      const st = lstatSync(full);
      if (!st.isDirectory() || (uid !== undefined && st.uid !== uid)) continue;
      rmSync(full, { recursive: true, force: true });
    } catch {
      /* gone meanwhile, or not ours to remove */
    }
  }
}

/** Whether a process `pid` exists (signal 0 checks without sending; EPERM: it exists, another user's). */
function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/**
 * Copies the finished `file` from byte `start` on to stdout, in order. Resolves false when the reader closed the
 * pipe first (EPIPE: `| head`, which wanted no more), true otherwise; rejects with any other write error.
 */
async function copyToStdout(file: string, start = 0): Promise<boolean> {
  if (process.stdout.destroyed) return false;
  try {
    await pipeline(createReadStream(file, { start }), process.stdout, { end: false });
    // what stdout still buffers is written before the process exits
    if (process.stdout.writableLength > 0) await once(process.stdout, 'drain');
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EPIPE') return false;
    throw err;
  }
}

/**
 * What a fetch's log lines leave out, because the fetch says it itself as its last line (with the code and the exit
 * status): the transfer's own 'transfer failed' and 'transfer verification failed' lines, and, once the transfer failed on a local write error (a full
 * disk, EFBIG, EIO…), every later line whose error has that cause again — the failed turn's journal and reminders,
 * the actor's deactivation, the reports still arriving: they write beside the output and fail the same way, and
 * read like further losses when they are not (a rerun after freeing space resumes from the journal as it was).
 * Lines before the failure are all kept.
 */
export function fetchLogFilter(): (record: Record<string, unknown>) => boolean {
  let failedBecause: string | undefined;
  return (r) => {
    if (r.msg === 'transfer failed') {
      failedBecause = typeof r.reason === 'string' ? r.reason : '';
      return false;
    }
    // a whole-file mismatch: the fetch's own line names both hashes and what to do
    if (r.msg === 'transfer verification failed') return false;
    const code = (r.err as { code?: unknown } | undefined)?.code;
    return failedBecause === undefined || !sameLocalWriteCause(failedBecause, code);
  };
}
