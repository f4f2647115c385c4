import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { PortalError } from '../common/errors.js';
import { httpUrl } from '../common/source-url.js';
import { fileNameFromUrl } from '../transfer/output-target.js';
import {
  agreeOnSources,
  loadManifest,
  loadMetalink,
  manifestFromMetalink,
  metalinkPiecesUnused,
  probeSources,
  majoritySize,
  probedManifest,
  NO_CID,
  type HttpClient,
  type Manifest,
  type MetalinkFile,
  type ProbeRound,
  type SourceProbe,
  type DigestCandidate,
  redactUrl,
} from '../transfer/index.js';
import type { ChecksumOrigin, TransferEdge } from '../actors/index.js';

/** What `portal fetch` was pointed at, resolved: the manifest, the edges it gives, and notes for the user. */
export interface ResolvedSources {
  manifest: Manifest;
  /** Mirrors named by the input itself (URLs, a Metalink's <url>s); `--edge` flags add to them. */
  edges: TransferEdge[];
  /** `manifest` (a Portal manifest file), `metalink` or `urls` (mirrors without a manifest). */
  kind: 'manifest' | 'metalink' | 'urls';
  /** Sources left out, with why (probe failed, size differs…). */
  excluded: { url: string; why: string }[];
  /** Things the user should know (ETags differ, no checksum…). */
  warnings: string[];
  /** What gave the manifest's whole-file sha-256 (named when the finished file does not match it). */
  checksumFrom: ChecksumOrigin;
  /**
   * A whole-file hash of another type than sha-256 (a Metalink's sha-1, sha-512…), to check the complete file
   * against when no sha-256 is known (checkOtherHash).
   */
  otherHash?: MetalinkFile['otherHash'];
  /**
   * The sources' Digest sha-256 values when they tie (1 vs 1) and no checksum was given (SourceAgreement.
   * digestCandidates): the complete file must match one of them (checkDigestCandidates).
   */
  digestCandidates?: DigestCandidate[];
  /** Sources whose probe had not answered when the answers decided the file (probeSources). */
  late?: LateSources;
  /**
   * The validator of each mirror in `edges` that has one (strongValidator), by edge id (TransferRequest.validators)
   * and by URL (HttpClientOptions.ifRange); mirrors given by URL only.
   */
  validators?: { byId: Record<string, string>; byUrl: Record<string, string> };
}

/**
 * The validator a probe reported that can guard a resume (RFC 9110 §13.1.5 If-Range): a strong ETag, else the
 * Last-Modified date when it is strong, at least a second before the response's Date (§8.8.2.2: a file modified
 * within the second it was served may change again under the same date); undefined for a weak ETag (`W/"…"`: the
 * same for different bytes; If-Range then takes no date either), for none, or for a source that ignores Range (it
 * would answer 200 whatever If-Range says).
 */
export function strongValidator(p: SourceProbe): string | undefined {
  if (p.ranges !== true) return undefined;
  if (p.etag !== undefined) return /^W\//.test(p.etag) ? undefined : p.etag;
  if (p.lastModified === undefined || p.date === undefined) return undefined;
  const age = Date.parse(p.date) - Date.parse(p.lastModified);
  return age >= 1000 ? p.lastModified : undefined;
}

/**
 * The sources still being probed when the transfer starts: each joins it once its probe answers, if it serves the
 * file the transfer started with (`refusal` says why not otherwise).
 */
export interface LateSources {
  pending: { url: string; edge: TransferEdge; probe: Promise<SourceProbe> }[];
  /** Why a late answer cannot join (its probe failed, another size, another Digest); undefined when it agrees. */
  refusal(p: SourceProbe): string | undefined;
  /** Stops waiting: the pending probes resolve at once as not answered ("had not answered … when the transfer ended"). */
  abandon(): void;
}

/**
 * A file no source gives the size of (each answered 200 without Content-Length, ignoring Range, HEAD giving none: a
 * dynamic endpoint): it cannot be cut into chunks, so it is read as one stream from `url`, the first such source
 * in the order given (fetchStream). `notUsed` names the other sources of that kind, `excluded` those whose probe
 * failed otherwise.
 */
export interface StreamSource {
  kind: 'stream';
  url: string;
  /** The file's name (the URL's last path segment, or the Metalink's). */
  name: string;
  /** The sha-256 (hex) the file must hash to: --checksum, a Metalink's, or the source's Digest header. */
  sha256?: string;
  checksumFrom: ChecksumOrigin;
  notUsed: { url: string; why: string }[];
  excluded: { url: string; why: string }[];
}

/** What a rerun knows of the file it resumes: the journal's manifest, and what gave its sha-256. */
export interface ResumedFile {
  manifest: Manifest;
  checksumFrom?: ChecksumOrigin;
}

/** The options of resolveSources and the functions it calls. */
interface ResolveOptions {
  client: HttpClient;
  checksum?: string;
  name?: string;
  checksumFrom?: ChecksumOrigin;
  /** The file a journal beside the output holds: sources serving its size are used, the others excluded. */
  resume?: ResumedFile;
  /** The size the file is known to have (a Metalink's <size>): the first answer with it decides the start. */
  knownSize?: number;
  /** `--file`: the file of a Metalink listing several to fetch (selectMetalinkFile). */
  file?: string;
  /** `--out` was given: a URL's name is not the output's, so one that decodes to no file name is not refused. */
  outGiven?: boolean;
  /**
   * How long a probe waits for a source answering busy with a Retry-After (ms; `--source-budget`, default
   * PROBE_BUSY_WAIT_MS): probeSource.
   */
  busyWaitMs?: number;
}

/**
 * Parses `--checksum sha-256=HEX` (also `sha256:HEX`); PORTAL_CONFIG_INVALID naming the value otherwise
 * (only sha-256 is supported: it is what Portal's chunk and file ids are made of).
 */
export function parseChecksum(v: string | undefined): string | undefined {
  if (v === undefined || v === '') return undefined;
  const m = /^sha-?256[=:]([0-9a-fA-F]{64})$/i.exec(v.trim());
  if (!m)
    throw new PortalError(
      'PORTAL_CONFIG_INVALID',
      `--checksum ${JSON.stringify(v)}: expected sha-256=<64 hex characters>`,
    );
  // all zeros is NO_CID, the manifests' "no hash" marker: taken as given it would silently check nothing
  if (/^0{64}$/.test(m[1]))
    throw new PortalError(
      'PORTAL_CONFIG_INVALID',
      `--checksum ${JSON.stringify(v)}: an all-zero sha-256 means "no hash" to Portal and would check nothing; give the file's sha-256`,
    );
  return m[1].toLowerCase();
}

/**
 * Parses `--header 'Name: value'` values into a header object; PORTAL_CONFIG_INVALID naming the value when one
 * has no `:` or an invalid name (RFC 9110 token).
 */
export function parseHeaders(values: string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  // each --header is one header ('Accept: a, b' keeps its comma: the flag is not split)
  for (const v of values ?? []) {
    const i = v.indexOf(':');
    const name = i > 0 ? v.slice(0, i).trim() : '';
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name))
      throw new PortalError('PORTAL_CONFIG_INVALID', `--header ${headerLabel(v)}: expected 'Name: value'`);
    const value = v.slice(i + 1).trim();
    // RFC 9110 §5.5: a field value is visible characters, spaces and tabs; CR, LF and NUL would split the request
    // (undici refuses them only once the transfer runs: UND_ERR_INVALID_ARG, exit 3)
    if (/[\0\r\n]/.test(value))
      throw new PortalError(
        'PORTAL_CONFIG_INVALID',
        `--header ${JSON.stringify(name)}: its value holds a CR, LF or NUL character, which a header value may not contain`,
      );
    if (FRAMING_HEADERS.has(name.toLowerCase()))
      throw new PortalError(
        'PORTAL_CONFIG_INVALID',
        `--header ${JSON.stringify(name)}: Portal sets this header itself (it frames or routes each request), so it cannot be given`,
      );
    out[name.toLowerCase()] = value;
  }
  return out;
}

/**
 * Headers that frame or route a request (RFC 9110 §7.6.1 connection options, RFC 9112 message framing, Host,
 * Range and If-Range, which Portal sends per chunk): set by the HTTP client or by Portal, never by `--header`.
 */
const FRAMING_HEADERS = new Set([
  'host',
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'content-length',
  'te',
  'trailer',
  'upgrade',
  'expect',
  'range',
  'if-range',
]);

/**
 * How an invalid `--header` value is named in its error: its first word only (what would be the header's name),
 * never the rest, which may be a secret ('Authorization Bearer TOKEN' lacks its ':'); then why it is invalid.
 */
function headerLabel(v: string): string {
  const word = /^\s*([!#$%&'*+.^_`|~0-9A-Za-z-]{0,40})/.exec(v)?.[1] ?? '';
  const more = v.trim().length > word.length ? ' …' : '';
  const why = v.includes(':') ? 'an invalid header name' : "missing ':'";
  return `${JSON.stringify(`${word}${more}`)} (${why})`;
}

/** An edge id for a mirror URL: `mirror-<host><path>` made of safe characters (no credentials, no query). */
function mirrorId(url: string, i: number): string {
  const u = new URL(url);
  return `mirror-${i}-${u.host}${u.pathname}`.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 120);
}

/** Mirror edges for URLs (kind mirror, holds all; 8 connections each). */
export function mirrorEdges(urls: string[]): TransferEdge[] {
  return urls.map((url, i) => mirrorEdge(url, i));
}

/** The mirror edge of `url`, the `i`-th candidate source of the run (its id tells apart two on one path). */
function mirrorEdge(url: string, i: number): TransferEdge {
  return { id: mirrorId(url, i), config: { url, kind: 'mirror', flags: 0, maxParallel: 8 }, holds: 'all' };
}

/** The late sources of probe round `round`: each pending probe with its edge, judged by `refusal`. */
function lateSources(round: ProbeRound, refusal: LateSources['refusal']): LateSources | undefined {
  if (round.pending.length === 0) return undefined;
  return {
    pending: round.pending.map((p) => ({ url: p.url, edge: mirrorEdge(p.url, p.index), probe: p.probe })),
    refusal: (p) => (p.ok ? refusal(p) : (p.error ?? 'failed')),
    abandon: () => round.abandon(),
  };
}

const isUrl = (s: string): boolean => /^https?:\/\//i.test(s);

/**
 * Refuses a positional that is a URL Portal cannot fetch, before anything is probed: PORTAL_CONFIG_INVALID
 * (exit 2) naming it (userinfo hidden) and why — not a valid URL (a port over 65535…), or a scheme other than
 * http/https (ftp:, file:), which would otherwise be read as a missing manifest file.
 */
function checkUrlPositional(p: string): void {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(p)?.[1];
  if (!scheme) return;
  const shown = JSON.stringify(p.replace(/^([^:]+:\/\/)[^/@]*@/, '$1***@'));
  if (!/^https?$/i.test(scheme))
    throw new PortalError(
      'PORTAL_CONFIG_INVALID',
      `fetch: ${shown}: the ${scheme.toLowerCase()}: scheme is not supported (Portal fetches http and https URLs)`,
    );
  try {
    new URL(p);
  } catch {
    throw new PortalError(
      'PORTAL_CONFIG_INVALID',
      `fetch: ${shown} is not a valid URL (check the host and the port, 1-65535)`,
    );
  }
}

/**
 * Resolves `portal fetch` positionals: one Portal manifest file (`*.json`), one Metalink file (`*.meta4`,
 * `*.metalink`), or one or more http(s) URLs of the same file. URLs (and a Metalink without sha-256 pieces)
 * are probed: the size most sources agree on wins, a source that disagrees is excluded and named, RFC 6249
 * `Link: rel=duplicate` mirrors join, and the whole file is verified by `checksum` (or a sha-256 the
 * sources announced with `Digest`). When no source gives the size and one answers with an unsized stream, a
 * StreamSource is the answer. Throws PORTAL_CONFIG_INVALID for a mix of kinds, PORTAL_MANIFEST_INVALID
 * for an unreadable file, PORTAL_TRANSFER_FAILED listing each source's cause when none answers.
 */
export async function resolveSources(
  positionals: string[],
  opts: {
    client: HttpClient;
    checksum?: string;
    resume?: ResumedFile;
    file?: string;
    outGiven?: boolean;
    busyWaitMs?: number;
  },
): Promise<ResolvedSources | StreamSource> {
  if (positionals.length === 0)
    throw new PortalError(
      'PORTAL_CONFIG_INVALID',
      'fetch: give a manifest file, a Metalink file (.meta4) or the URLs of a file',
    );
  for (const p of positionals) checkUrlPositional(p);
  // HTTP://… is http://… (RFC 3986 §3.1): one spelling for the probe, the edges and the messages
  const urls = positionals.filter(isUrl).map((u) => httpUrl(u) ?? u);
  if (urls.length > 0 && urls.length !== positionals.length)
    throw new PortalError(
      'PORTAL_CONFIG_INVALID',
      `fetch: give either URLs or one manifest/Metalink file, not both (got ${positionals.filter((p) => !isUrl(p)).join(', ')})`,
    );
  if (urls.length === 0) {
    if (positionals.length > 1)
      throw new PortalError('PORTAL_CONFIG_INVALID', `fetch: one manifest or Metalink file at a time`);
    const file = positionals[0];
    if (/\.(meta4|metalink)$/i.test(file)) return fromMetalink(await loadMetalink(file), opts);
    if (opts.file !== undefined)
      throw new PortalError('PORTAL_CONFIG_INVALID', '--file selects a file of a Metalink (.meta4)');
    const manifest = await loadManifest(file);
    if (opts.checksum && opts.checksum !== manifest.fileSha256)
      throw new PortalError(
        'PORTAL_CONFIG_INVALID',
        `--checksum ${opts.checksum} differs from the manifest's sha256 ${manifest.fileSha256}`,
      );
    return { manifest, edges: [], kind: 'manifest', excluded: [], warnings: [], checksumFrom: 'manifest' };
  }
  if (opts.file !== undefined)
    throw new PortalError('PORTAL_CONFIG_INVALID', '--file selects a file of a Metalink (.meta4)');
  return fromUrls(urls, opts, 'urls');
}

/**
 * The file of a Metalink to fetch: its only one, or the one `--file` names (its name in the Metalink, or that
 * name's last part). PORTAL_CONFIG_INVALID listing the files when there are several and none is selected, or
 * when `--file` names none of them: fetching the first alone and exiting 0 looked like the whole download.
 */
function selectMetalinkFile(files: MetalinkFile[], selected: string | undefined): MetalinkFile {
  const list = files.map((f) => `  ${f.name}${f.size !== undefined ? ` (${f.size} bytes)` : ''}`).join('\n');
  if (selected === undefined) {
    if (files.length === 1) return files[0];
    throw new PortalError(
      'PORTAL_CONFIG_INVALID',
      `the Metalink lists ${files.length} files; Portal fetches one file per run: select it with --file NAME (one run per file):\n${list}`,
    );
  }
  const f = files.find((x) => x.name === selected) ?? files.find((x) => x.name.split('/').pop() === selected);
  if (!f)
    throw new PortalError(
      'PORTAL_CONFIG_INVALID',
      `--file ${JSON.stringify(selected)}: the Metalink has no such file; it lists:\n${list}`,
    );
  return f;
}

async function fromMetalink(
  files: MetalinkFile[],
  opts: ResolveOptions,
): Promise<ResolvedSources | StreamSource> {
  const warnings: string[] = [];
  const f = selectMetalinkFile(files, opts.file);
  const urls = f.urls.map((u) => u.url);
  if (opts.checksum && f.sha256 && opts.checksum !== f.sha256)
    throw new PortalError(
      'PORTAL_CONFIG_INVALID',
      `--checksum ${opts.checksum} differs from the Metalink's sha-256 ${f.sha256}`,
    );
  // pieces without a whole-file hash: --checksum is that hash (the file is checked against it at the end)
  const withChecksum = !f.sha256 && opts.checksum !== undefined;
  const manifest = manifestFromMetalink(withChecksum ? { ...f, sha256: opts.checksum } : f);
  // no sha-256 at all: the file is checked against the Metalink's hash of another type once complete
  const otherHash = !f.sha256 && opts.checksum === undefined ? f.otherHash : undefined;
  if (manifest) {
    const { edges, excluded, late } = await mirrorsServingSize(opts.client, urls, f, opts.busyWaitMs);
    return {
      manifest,
      edges,
      kind: 'metalink',
      excluded,
      warnings,
      checksumFrom: withChecksum ? 'checksum-flag' : 'metalink',
      ...(otherHash ? { otherHash } : {}),
      ...(late ? { late } : {}),
    };
  }
  const r = await fromUrls(
    urls,
    {
      ...opts,
      checksum: opts.checksum ?? f.sha256,
      name: f.name,
      checksumFrom: opts.checksum ? 'checksum-flag' : 'metalink',
      knownSize: f.size,
    },
    'metalink',
  );
  if (r.kind === 'stream') return r;
  if (f.size !== undefined && f.size !== r.manifest.fileSize)
    throw metalinkSizeDiffers(f, r.manifest.fileSize, r.edges.length);
  // says what is true: no pieces, or pieces it cannot use (a length outside 4 KiB–64 MiB, no size), and what checks
  // the file instead
  const whole = opts.checksum ?? f.sha256 ?? otherHash;
  r.warnings.unshift(
    ...warnings,
    `${metalinkPiecesUnused(f)}: chunks are checked by length only${whole ? ', the whole file by its hash once complete' : ''}`,
  );
  if (!otherHash) return r;
  // the 'no checksum' warning is wrong: the whole file is checked, by the other hash
  return {
    ...r,
    otherHash,
    warnings: r.warnings.filter((w) => !w.startsWith('no checksum')),
  };
}

/** PORTAL_MANIFEST_INVALID: the Metalink's `<size>` is not the `served` bytes `mirrors` mirror(s) answered with. */
const metalinkSizeDiffers = (f: MetalinkFile, served: number, mirrors: number): PortalError =>
  new PortalError(
    'PORTAL_MANIFEST_INVALID',
    `the Metalink's <size> of ${f.name} (${f.size} bytes) differs from the ${served} bytes ${mirrors === 1 ? 'its mirror serves' : `its ${mirrors} mirrors serve`} (Content-Range / Content-Length); the Metalink is stale or wrong`,
  );

/**
 * A Metalink with piece hashes is a manifest of its own, but its `<size>` is only a claim: every chunk of a
 * wrong size fails its hash on every mirror, which reads as corrupt mirrors long after the start. So the
 * mirrors are probed (one `Range: bytes=0-0` each, in parallel: probeSources, which decides at the first answer
 * reporting `<size>`, so a silent mirror does not hold the start) and the size they report decides: a mirror
 * reporting another size than `<size>` is excluded and named; when none that answered reports `<size>`, the
 * Metalink is refused (PORTAL_MANIFEST_INVALID naming both sizes). A mirror whose probe failed is kept: the
 * transfer retries it and names its cause if it stays down (as before the probe). One that had not answered is
 * `late`: it joins when it answers with `<size>`.
 */
async function mirrorsServingSize(
  client: HttpClient,
  urls: string[],
  f: MetalinkFile,
  busyWaitMs?: number,
): Promise<{ edges: TransferEdge[]; excluded: ResolvedSources['excluded']; late?: LateSources }> {
  const round = await probeSources(client, urls, {
    enough: (ok) => ok.some((p) => p.size === f.size),
    ...(busyWaitMs !== undefined ? { busyWaitMs } : {}),
  });
  const answered = round.answered.filter((p) => p.ok && p.size !== undefined);
  if (answered.length > 0 && answered.every((p) => p.size !== f.size)) {
    round.abandon();
    const { size: served, sources: mirrors } = majoritySize(answered);
    throw metalinkSizeDiffers(f, served, mirrors);
  }
  const excluded = answered
    .filter((p) => p.size !== f.size)
    .map((p) => ({ url: p.url, why: `size ${p.size} differs from the Metalink's <size> ${f.size}` }));
  const kept = round.answered.filter((p) => !excluded.some((e) => e.url === p.url));
  return {
    edges: kept.map((p) => mirrorEdge(p.url, round.urls.indexOf(p.url))),
    excluded,
    late: lateSources(round, (p) =>
      p.size === f.size ? undefined : `size ${p.size} differs from the Metalink's <size> ${f.size}`,
    ),
  };
}

/**
 * Mirrors without a manifest: probed (probeSources; the start waits for every answer, or PROBE_GRACE_MS past
 * the first, or only for the first answer with a known size: the resumed file's or a Metalink's), then
 * agreeOnSources decides the size and the sources. A resumed file (`opts.resume`) keeps its manifest when the
 * sources serve its size and no other sha-256 is given, so the rerun resumes it; otherwise the manifest is the
 * sources' (and the caller finds it differs from the journal's).
 */
async function fromUrls(
  urls: string[],
  opts: ResolveOptions,
  kind: 'urls' | 'metalink',
): Promise<ResolvedSources | StreamSource> {
  const resumed = opts.resume?.manifest;
  const known = resumed?.fileSize ?? opts.knownSize;
  // A resume of chunks without hashes keeps them on the sources' validators (cli/resume-validators.ts): it waits
  // for every answer (or PROBE_GRACE_MS past the first), not only the first of the size, so that a source still
  // serving the journal's version is heard beside one that changed
  const vouching = resumed !== undefined && resumed.chunks.includes(NO_CID);
  const round = await probeSources(opts.client, urls, {
    ...(opts.busyWaitMs !== undefined ? { busyWaitMs: opts.busyWaitMs } : {}),
    ...(known !== undefined && !vouching ? { enough: (ok) => ok.some((p) => p.size === known) } : {}),
  });
  const stream = streamSource(round, opts);
  if (stream) return stream;
  const expectedSize =
    resumed && round.answered.some((p) => p.ok && p.size === resumed.fileSize) ? resumed.fileSize : undefined;
  let a;
  try {
    a = agreeOnSources(round.answered, { checksum: opts.checksum !== undefined, expectedSize });
  } catch (err) {
    round.abandon();
    throw err;
  }
  const sha256 = opts.checksum ?? a.sha256;
  const agreedUrls = a.agreed.map((p) => p.url);
  const keep =
    resumed !== undefined &&
    expectedSize !== undefined &&
    (sha256 === undefined || sha256 === resumed.fileSha256);
  const name = opts.name ?? urlName(agreedUrls[0], opts);
  const manifest = keep
    ? resumed
    : probedManifest({
        name,
        size: a.size,
        sha256,
        // The name and size (in the id already) identify it, not the URLs: a rerun with a corrected URL resumes.
        identity: name,
      });
  const checksum = manifest.fileSha256 === NO_CID ? undefined : manifest.fileSha256;
  const warnings = [...a.warnings];
  // disagreeing Digests check the file once complete (a warning says so)
  if (!checksum && !a.digestCandidates)
    warnings.push(
      'no checksum: the file is checked by length only (give --checksum sha-256=HEX to verify it)',
    );
  const edges = agreedUrls.map((u) => mirrorEdge(u, round.urls.indexOf(u)));
  const validators: NonNullable<ResolvedSources['validators']> = { byId: {}, byUrl: {} };
  a.agreed.forEach((p, i) => {
    const v = strongValidator(p);
    if (v === undefined) return;
    validators.byId[edges[i].id] = v;
    validators.byUrl[p.url] = v;
  });
  return {
    manifest,
    edges,
    validators,
    kind,
    ...(!checksum && a.digestCandidates ? { digestCandidates: a.digestCandidates } : {}),
    excluded: a.excluded,
    warnings,
    checksumFrom:
      keep && opts.checksum === undefined && a.sha256 === undefined
        ? (opts.resume?.checksumFrom ?? 'checksum-flag')
        : opts.checksum
          ? (opts.checksumFrom ?? 'checksum-flag')
          : 'digest-header',
    ...(a.agreed.length > 0
      ? {
          late: lateSources(round, (p) =>
            p.size !== a.size
              ? `size ${p.size} differs from the ${a.size} bytes ${expectedSize !== undefined ? 'of the file being resumed (its journal)' : 'the transfer started with'}`
              : p.sha256 !== undefined && checksum !== undefined && p.sha256 !== checksum
                ? `Digest sha-256 ${p.sha256} differs from ${checksum}`
                : undefined,
          ),
        }
      : {}),
  };
}

/** The file name `url` gives (fileNameFromUrl: percent-decoded; refused when unusable and no --out is given). */
const urlName = (url: string, opts: ResolveOptions): string =>
  fileNameFromUrl(url, redactUrl(url), opts.outGiven !== true);

/**
 * The StreamSource of probe round `round` when no source that answered gives a size and one answered with an
 * unsized stream (SourceProbe.unsized): the first of those in the order of the URLs; undefined otherwise.
 */
function streamSource(round: ProbeRound, opts: ResolveOptions): StreamSource | undefined {
  if (round.answered.some((p) => p.ok)) return undefined;
  const [used, ...others] = round.answered.filter((p) => p.unsized);
  if (!used) return undefined;
  round.abandon();
  const sha256 = opts.checksum ?? used.sha256;
  return {
    kind: 'stream',
    url: used.url,
    name: opts.name ?? urlName(used.url, opts),
    ...(sha256 !== undefined ? { sha256 } : {}),
    checksumFrom: opts.checksum ? (opts.checksumFrom ?? 'checksum-flag') : 'digest-header',
    notUsed: others.map((p) => ({
      url: p.url,
      why: `it gives no size either; a file of unknown size is read as one stream from one source (${redactUrl(used.url)})`,
    })),
    excluded: round.answered.filter((p) => !p.unsized).map((p) => ({ url: p.url, why: p.error ?? 'failed' })),
  };
}

/**
 * Checks the complete file at `file` against the sources' disagreeing Digest sha-256 values (ResolvedSources.
 * digestCandidates): returns the sentence naming the sources whose Digest matched and those whose Digest was
 * wrong; throws PortalError(PORTAL_VERIFY_FAILED) naming every value and the file's own sha-256 when none matches.
 */
export async function checkDigestCandidates(file: string, candidates: DigestCandidate[]): Promise<string> {
  const digest = createHash('sha256');
  for await (const piece of createReadStream(file, { highWaterMark: 1 << 20 }))
    digest.update(piece as Buffer);
  const got = digest.digest('hex');
  const named = (d: DigestCandidate): string => `${d.urls.map(redactUrl).join(', ')} (sha-256 ${d.sha256})`;
  const right = candidates.find((d) => d.sha256 === got);
  if (!right)
    throw new PortalError(
      'PORTAL_VERIFY_FAILED',
      `${file} matches the Digest of none of its sources: its sha-256 is ${got}, the Digests gave ${candidates.map(named).join(' and ')}; the sources served other bytes than they announce: give --checksum sha-256=HEX with the right value, or leave out the wrong source`,
    );
  const wrong = candidates.filter((d) => d !== right);
  return `the file's sha-256 matches the Digest of ${named(right)}; the Digest of ${wrong.map(named).join(' and ')} was wrong`;
}

/**
 * Checks the complete file at `file` against a whole-file hash of another type than sha-256 (ResolvedSources.
 * otherHash). Throws PortalError(PORTAL_VERIFY_FAILED) naming the hash type, the expected and the actual value.
 */
export async function checkOtherHash(
  file: string,
  h: NonNullable<ResolvedSources['otherHash']>,
): Promise<void> {
  const digest = createHash(h.type.replace('-', ''));
  for await (const piece of createReadStream(file, { highWaterMark: 1 << 20 }))
    digest.update(piece as Buffer);
  const got = digest.digest('hex');
  if (got !== h.hex)
    throw new PortalError(
      'PORTAL_VERIFY_FAILED',
      `${file} does not match the Metalink's ${h.type} ${h.hex} (its ${h.type} is ${got}): it is not the file the Metalink describes`,
    );
}
