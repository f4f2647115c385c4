import { PortalError } from '../common/errors.js';
import { isNoCid, NO_CID } from './cid.js';
import { DEFAULT_MANIFEST_LIMITS, manifestId, MIN_CHUNK_SIZE, type Manifest } from './manifest.js';
import { parseContentRange, parseRetryAfter, transportFault } from './http-fetch.js';
import { redactUrl, type HttpClient } from './http-client.js';

/** What one source said about the file when probed. */
export interface SourceProbe {
  url: string;
  ok: boolean;
  size?: number;
  etag?: string;
  lastModified?: string;
  /** Its Date header (tells whether Last-Modified is a strong validator: RFC 9110 §8.8.2.2). */
  date?: string;
  /** The source answered a Range request with 206. */
  ranges?: boolean;
  /** RFC 6249 `Link: <…>; rel=duplicate` mirrors it named. */
  duplicates: string[];
  /** RFC 3230 `Digest: SHA-256=<base64>` (as RFC 6249 uses it), as hex. */
  sha256?: string;
  /** Why the probe failed (ok false). */
  error?: string;
  /** The source never answered: its probe timed out, or was abandoned (with ok false). */
  noAnswer?: boolean;
  /**
   * The source answered busy (503 or 429) to its probe with a Retry-After it kept asking past the wait
   * (PROBE_BUSY_WAIT_MS or the caller's), with ok false: `error` says `busy: HTTP <status>, Retry-After …`.
   */
  busy?: boolean;
  /**
   * The source answered 200 without a size (no Content-Length, Range ignored, none from HEAD either: a dynamic
   * endpoint), with ok false: it cannot be cut into chunks, only read as one stream (`portal fetch` does that
   * when no source gives a size).
   */
  unsized?: boolean;
}

const first = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v);

/**
 * Largest file a source may report when probed: as many chunks as a manifest may list
 * (DEFAULT_MANIFEST_LIMITS.maxChunks) of the largest size chooseChunkSize picks (16 MiB), ~763 TiB. A larger (or
 * non-integer) size is a broken or hostile source: it is excluded with the reason instead of sizing a manifest.
 */
export const MAX_PROBED_FILE_SIZE = DEFAULT_MANIFEST_LIMITS.maxChunks * 16 * 1024 * 1024;

/** The probe of a source that answered `size`: ok, or failed naming an impossible size. */
function sized<T extends Omit<SourceProbe, 'ok' | 'size' | 'ranges'>>(
  base: T,
  size: number,
  ranges: boolean,
): SourceProbe {
  if (!Number.isSafeInteger(size) || size < 0 || size > MAX_PROBED_FILE_SIZE)
    return {
      ...base,
      ok: false,
      error: `reports a file size of ${size} bytes, more than the ${MAX_PROBED_FILE_SIZE} a transfer can hold`,
    };
  return { ...base, ok: true, size, ranges };
}

/**
 * The RFC 6249 `Link: <URI>; rel=duplicate; pri=N` mirrors of a response, from every Link header line and every
 * comma-separated value in one (MirrorBrain sends one line per mirror), resolved against `base`, in `pri` order
 * (lower first; a value without pri comes last, RFC 6249 §3.4's default 999999), then in the order sent. A URI
 * that is not http(s) (file:, ftp:) or not a valid URL is left out: Portal fetches only http(s).
 */
export function duplicateLinks(link: string | string[] | undefined, base: string): string[] {
  const found: { url: string; pri: number }[] = [];
  for (const line of [link ?? []].flat())
    for (const value of line.split(/,(?=\s*<)/)) {
      const m = /^\s*<([^>]+)>(.*)$/.exec(value);
      if (!m || !/;\s*rel="?duplicate"?(?:\s*;|\s*$)/i.test(m[2])) continue;
      let url: URL;
      try {
        url = new URL(m[1], base);
      } catch {
        continue;
      }
      if (url.protocol !== 'http:' && url.protocol !== 'https:') continue;
      const pri = /;\s*pri="?(\d+)"?/i.exec(m[2]);
      found.push({ url: url.href, pri: pri ? Number(pri[1]) : 999_999 });
    }
  return found.sort((a, b) => a.pri - b.pri).map((d) => d.url);
}

/** The Content-Length a HEAD of `url` answers with 200, if any. */
async function headSize(client: HttpClient, url: string, signal: AbortSignal): Promise<number | undefined> {
  const head = await client.sendMirror(url, { method: 'HEAD', signal });
  await head.body.dump().catch(() => undefined);
  const cl = first(head.headers['content-length']);
  return head.statusCode === 200 && cl !== undefined && /^\d+$/.test(cl) ? Number(cl) : undefined;
}

/**
 * Why a source that answers 200 with no Content-Length (to the Range probe and to HEAD) is not used when another
 * source gives the size: Portal cuts the file into chunks by its size before the download, and such a source can
 * only be read as one stream of unknown length. `te` is its Transfer-Encoding.
 */
function unknownSizeError(te: string | undefined): string {
  return `answered HTTP 200 without Content-Length${te ? ` (Transfer-Encoding: ${te})` : ''} and ignored Range, and HEAD gave no size either: the file size cannot be known before the download, so it can only be read as one stream, alone, when no source gives the size`;
}

/** How long a probe waits for a source's answer (ms), as the stall timeout waits for a chunk's. */
export const PROBE_TIMEOUT_MS = 15_000;

/** The abort reason of a probe its caller stopped waiting for (probeSource's `signal`). */
const ABANDONED = Symbol('probe abandoned');

/**
 * How long a probe waits, in all, for a source that answers busy (503 or 429) with a Retry-After before it gives
 * the source up (ms): 60 s, the default source budget (`portal fetch --source-budget`), which bounds the same wait
 * once the transfer runs. `portal fetch` passes its --source-budget instead.
 */
export const PROBE_BUSY_WAIT_MS = 60_000;

/** The least a probe waits before asking a busy source again, whatever its Retry-After says (0, a past date): 1 s. */
export const PROBE_BUSY_MIN_RETRY_MS = 1000;

/** A probe's busy answer (503 or 429) and the Retry-After it carried (ms; undefined: none or unreadable). */
interface BusyAnswer {
  status: number;
  retryAfterMs?: number;
}

/**
 * Probes a source with `GET` and `Range: bytes=0-0` (HEAD is often mishandled by CDNs; a one-byte range tells
 * the size through Content-Range and whether ranges work), following redirects. A source answering busy (503 or
 * 429) with a Retry-After (seconds or an HTTP-date) is asked again once that time has passed (at least
 * PROBE_BUSY_MIN_RETRY_MS), as long as the waits end within `busyWaitMs` (PROBE_BUSY_WAIT_MS) of the first answer:
 * past it the probe fails with `busy` and `error` `busy: HTTP 503, Retry-After 120 s …`. A busy answer without
 * Retry-After fails at once (`HTTP 503`), as before. Each request has its own `timeoutMs`. Never rejects: a failure
 * is `ok: false` with `error` naming the cause.
 */
export async function probeSource(
  client: HttpClient,
  url: string,
  timeoutMs = PROBE_TIMEOUT_MS,
  signal?: AbortSignal,
  busyWaitMs = PROBE_BUSY_WAIT_MS,
): Promise<SourceProbe> {
  const t0 = Date.now();
  for (;;) {
    const { retry: busy, ...probe } = await probeOnce(client, url, timeoutMs, signal);
    if (busy?.retryAfterMs === undefined) return probe;
    const waited = Date.now() - t0;
    const wait = Math.max(busy.retryAfterMs, PROBE_BUSY_MIN_RETRY_MS);
    if (waited + wait > busyWaitMs)
      return {
        ...probe,
        busy: true,
        error: `busy: HTTP ${busy.status}, Retry-After ${Math.round(busy.retryAfterMs / 1000)} s${waited >= 1000 ? ` (still busy after ${Math.round(waited / 1000)} s)` : ''}, past the ${Math.round(busyWaitMs / 1000)} s a probe waits for a busy source (the source budget)`,
      };
    if (!(await sleep(wait, signal)))
      return {
        url,
        ok: false,
        duplicates: [],
        noAnswer: true,
        error: 'had not answered the probe when the transfer ended',
      };
  }
}

/** Resolves true after `ms`, or false as soon as `signal` aborts (at once when it already has). */
function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const done = (v: boolean): void => {
      clearTimeout(t);
      signal?.removeEventListener('abort', stop);
      resolve(v);
    };
    const stop = (): void => done(false);
    const t = setTimeout(() => done(true), ms);
    signal?.addEventListener('abort', stop, { once: true });
  });
}

/** One probe request of probeSource; a 503 or 429 answer also gives its Retry-After as `retry`. */
async function probeOnce(
  client: HttpClient,
  url: string,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<SourceProbe & { retry?: BusyAnswer }> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), timeoutMs);
  // the caller stopped waiting (the transfer ended before this source answered)
  const stop = (): void => ac.abort(ABANDONED);
  if (signal?.aborted) stop();
  else signal?.addEventListener('abort', stop, { once: true });
  try {
    const r = await client.sendMirror(url, {
      signal: ac.signal,
      headers: { range: 'bytes=0-0', 'accept-encoding': 'identity', 'want-digest': 'SHA-256' },
    });
    await r.body.dump({ limit: 1 << 16 }).catch(() => undefined);
    const h = r.headers;
    const duplicates = duplicateLinks(h.link, r.url);
    const digest = /(?:^|,)\s*sha-256=([A-Za-z0-9+/=]+)/i.exec(String(first(h.digest) ?? ''));
    const base = {
      url,
      duplicates,
      etag: first(h.etag),
      lastModified: first(h['last-modified']),
      date: first(h.date),
      ...(digest ? { sha256: Buffer.from(digest[1], 'base64').toString('hex') } : {}),
    };
    const enc = first(h['content-encoding']);
    if (
      enc !== undefined &&
      enc.trim().toLowerCase() !== 'identity' &&
      (r.statusCode === 200 || r.statusCode === 206)
    )
      // asked for identity: an encoded body's Content-Length is not the file's size (a gzip source's compressed
      // length became the size, and every chunk then failed), and no chunk of it can be placed (mirrorBodyMode)
      return {
        ...base,
        ok: false,
        error: `sent a ${enc}-encoded body (Content-Encoding: ${enc}) though asked for identity (Accept-Encoding: identity): its length is not the file's size and its bytes are not the file's; serve the file unencoded`,
      };
    if (r.statusCode === 206) {
      if (first(h['content-range']) === undefined)
        // RFC 9110 §15.3.7: a 206 names its range. Without it the bytes this source sends for a Range past offset
        // 0 cannot be told from the file's first ones (a broken cache): only chunk hashes could check them, so the
        // probe fails (a Metalink with piece hashes keeps a source whose probe failed; its chunks are verified).
        return {
          ...base,
          ok: false,
          error: `answered 206 without Content-Range for bytes=0-0: RFC 9110 §15.3.7 requires one, and without it nothing tells where the bytes it sends for a range belong (a misbehaving mirror or cache; leave it out or give a manifest with chunk hashes)`,
        };
      const cr = parseContentRange(first(h['content-range']));
      if (cr?.total !== undefined) return sized(base, cr.total, true);
      // No size in Content-Range (missing, or `/*`): ask HEAD for the Content-Length.
      const size = await headSize(client, url, ac.signal);
      if (size !== undefined) return sized(base, size, true);
      return { ...base, ok: false, error: 'answered 206 without the file size, and HEAD gave none either' };
    }
    if (r.statusCode === 200) {
      const cl = first(h['content-length']);
      if (/^text\/html/i.test(first(h['content-type']) ?? ''))
        return { ...base, ok: false, error: `served an HTML page (HTTP 200, ${first(h['content-type'])})` };
      if (cl === undefined) {
        // A streamed answer (Transfer-Encoding: chunked, a dynamic server) that ignored the Range: HEAD may still
        // tell the size; then the mirror is read as one stream like any mirror that ignores Range.
        const size = await headSize(client, url, ac.signal);
        if (size !== undefined) return sized(base, size, false);
        return { ...base, ok: false, unsized: true, error: unknownSizeError(first(h['transfer-encoding'])) };
      }
      return sized(base, Number(cl), false);
    }
    if (r.statusCode === 416) {
      // An empty file: no byte 0 to give.
      const cr = /\/(\d+)/.exec(first(h['content-range']) ?? '');
      if (cr && Number(cr[1]) === 0) return { ...base, ok: true, size: 0, ranges: true };
    }
    const retryAfterMs =
      r.statusCode === 503 || r.statusCode === 429 ? parseRetryAfter(h['retry-after']) : undefined;
    return {
      ...base,
      ok: false,
      error: `HTTP ${r.statusCode}${r.proxy ? ` through proxy ${r.proxy}` : ''}`,
      ...(retryAfterMs !== undefined ? { retry: { status: r.statusCode, retryAfterMs } } : {}),
    };
  } catch (err) {
    return {
      url,
      ok: false,
      duplicates: [],
      ...(ac.signal.aborted ? { noAnswer: true } : {}),
      error: ac.signal.aborted
        ? ac.signal.reason === ABANDONED
          ? 'had not answered the probe when the transfer ended'
          : `no answer within ${timeoutMs} ms`
        : err instanceof PortalError
          ? err.message
          : transportFault(err, 0, false, url).what,
    };
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', stop);
  }
}

/**
 * How long the start waits for more probe answers after the first source answered (ms). A mirror that is up
 * answers a one-byte Range GET within a few round trips of the first one (TCP, TLS 1.3 and the request are 3
 * RTTs: 0.9 s at a 300 ms intercontinental RTT), so the answers that can form a size majority are in by then;
 * a source that accepts TCP and never answers held the start for the whole PROBE_TIMEOUT_MS (15 s) before. A
 * source answering later still joins the running transfer when it agrees (probeSources' `pending`).
 */
export const PROBE_GRACE_MS = 1000;

/** What probeSources knew when it decided (resolved), and the probes still under way. */
export interface ProbeRound {
  /** The probes that had answered (ok or not), in the order of the URLs, then the duplicates they named. */
  answered: SourceProbe[];
  /**
   * The sources still unanswered: each `probe` resolves (never rejects) with its probe once it answers, times
   * out (PROBE_TIMEOUT_MS) or is abandoned (`abandon`); `index` is its place among all the candidates.
   */
  pending: { url: string; index: number; probe: Promise<SourceProbe> }[];
  /** Every candidate URL (given and duplicates found before the decision), by index. */
  urls: string[];
  /** Stops waiting for the pending probes: they resolve at once, failed as not answered. */
  abandon(): void;
}

/**
 * Probes `urls` in parallel (probeSource) and resolves once the answers decide the file, without waiting for a
 * source that does not answer: when every probe has answered; or when `enough(answered ok)` says the ok answers
 * so far decide it (a known size: the first agreeing answer suffices); or `graceMs` (PROBE_GRACE_MS) after the
 * first ok answer, so a silent mirror holds the start a second instead of its 15 s timeout. The RFC 6249
 * `Link: rel=duplicate` mirrors the given URLs name join the round (once, not recursively) as their answers
 * arrive before the decision. Never rejects.
 */
export function probeSources(
  client: HttpClient,
  urls: readonly string[],
  opts: {
    graceMs?: number;
    enough?: (ok: SourceProbe[]) => boolean;
    timeoutMs?: number;
    /** How long a probe waits for a busy source's Retry-After (probeSource; default PROBE_BUSY_WAIT_MS). */
    busyWaitMs?: number;
  } = {},
): Promise<ProbeRound> {
  // one controller per probe (a signal shared by many probes would pass EventTarget's listener warning limit)
  const stops: AbortController[] = [];
  const all: { url: string; probe: Promise<SourceProbe>; result?: SourceProbe }[] = [];
  const seen = new Set<string>();
  let grace: NodeJS.Timeout | undefined;
  let decided = false;
  return new Promise<ProbeRound>((resolve) => {
    const decide = (): void => {
      if (decided) return;
      decided = true;
      clearTimeout(grace);
      resolve({
        answered: all.flatMap((c) => (c.result ? [c.result] : [])),
        pending: all.flatMap((c, index) => (c.result ? [] : [{ url: c.url, index, probe: c.probe }])),
        urls: all.map((c) => c.url),
        abandon: () => {
          for (const c of stops) c.abort();
        },
      });
    };
    const check = (): void => {
      if (decided) return;
      const ok = all.flatMap((c) => (c.result?.ok ? [c.result] : []));
      if (all.every((c) => c.result) || (ok.length > 0 && opts.enough?.(ok) === true)) return decide();
      if (ok.length > 0 && grace === undefined) grace = setTimeout(decide, opts.graceMs ?? PROBE_GRACE_MS);
    };
    const add = (url: string, given: boolean): void => {
      if (seen.has(url)) return;
      seen.add(url);
      const stop = new AbortController();
      stops.push(stop);
      const c: (typeof all)[number] = {
        url,
        probe: probeSource(client, url, opts.timeoutMs, stop.signal, opts.busyWaitMs).then((p) => {
          c.result = p;
          if (given && !decided) for (const d of p.duplicates) add(d, false);
          check();
          return p;
        }),
      };
      all.push(c);
    };
    for (const u of urls) add(u, true);
    if (all.length === 0) decide();
  });
}

/** The sources that agree, the file size they agree on, and those left out with the reason. */
export interface SourceAgreement {
  size: number;
  agreed: SourceProbe[];
  excluded: { url: string; why: string }[];
  /** Differences noted but not excluded for (ETag / Last-Modified differ between mirrors). */
  warnings: string[];
  /** A sha-256 of the whole file the sources announced (Digest header), when they agree on one. */
  sha256?: string;
  /**
   * The Digest sha-256 values tied for the most sources (1 vs 1…), with the sources giving each, when no checksum was
   * given: no source is excluded for them, and the finished file must match one (checkDigestCandidates).
   */
  digestCandidates?: DigestCandidate[];
}

/** A whole-file sha-256 (hex) some sources announced in their Digest header, and those sources' URLs. */
export interface DigestCandidate {
  sha256: string;
  urls: string[];
}

/**
 * The file size most of the answered `probes` report, and how many report it (a tie goes to the smaller size;
 * agreeOnSources refuses ties).
 * Throws on an empty list.
 */
export function majoritySize(probes: readonly SourceProbe[]): { size: number; sources: number } {
  if (probes.length === 0) throw new Error('majoritySize: no probe answered');
  const bySize = new Map<number, number>();
  for (const p of probes) bySize.set(p.size!, (bySize.get(p.size!) ?? 0) + 1);
  const [size, sources] = [...bySize.entries()].sort((a, b) => b[1] - a[1] || a[0] - b[0])[0];
  return { size, sources };
}

/**
 * Decides which probed sources serve the same file: the size most of them report wins and a source with
 * another size is excluded and named — but only when a checksum (`opts.checksum`, i.e. --checksum, or a
 * Digest header) will verify the result: sources disagreeing on the size with no checksum, or with no size
 * reported by more sources than any other (a tie, e.g. 1 vs 1; a checksum cannot break it before the
 * download), throw PORTAL_TRANSFER_FAILED naming each source and its size (aria2c likewise fails on a size
 * mismatch between its sources). So is a source whose Digest sha-256 differs from the majority's or is all zeros. ETag and
 * Last-Modified are compared too, but differences only warn: independent mirrors legitimately give the same
 * bytes different ETags and dates (nginx derives its ETag from the file's mtime); without a checksum the warning
 * says that nothing can then tell two versions apart. With `opts.expectedSize` (the
 * size of a file being resumed, from its journal) that size decides instead of a majority: a source with another
 * size is excluded naming it, and none is refused for disagreeing (agreed is empty when none serves it). Throws
 * PORTAL_TRANSFER_FAILED listing each source's cause when none answered.
 */
export function agreeOnSources(
  probes: SourceProbe[],
  opts: { checksum?: boolean; expectedSize?: number } = {},
): SourceAgreement {
  const excluded: SourceAgreement['excluded'] = [];
  const ok = probes.filter((p) => {
    if (!p.ok) excluded.push({ url: p.url, why: p.error ?? 'failed' });
    return p.ok;
  });
  if (ok.length === 0)
    // `sources` as a failed transfer carries them (cli/main.ts prints them with --json): each probed URL
    // (redacted) and its cause; none delivered a chunk
    throw Object.assign(
      new PortalError(
        'PORTAL_TRANSFER_FAILED',
        `${probes.some((p) => p.busy) ? 'no source could be used' : 'no source answered'}:${excluded.map((e) => `\n  ${redactUrl(e.url)}: ${e.why}`).join('')}`,
      ),
      {
        sources: excluded.map((e) => ({
          url: redactUrl(e.url),
          kind: 'mirror',
          lastError: e.why,
          retired: true,
          chunks: 0,
        })),
      },
    );
  // a resumed file's size is known (its journal's): the sources are checked against it, no majority needed
  const expected = opts.expectedSize;
  const { size, sources } = expected !== undefined ? { size: expected, sources: 0 } : majoritySize(ok);
  const sizes = new Set(ok.map((p) => p.size));
  if (sizes.size > 1 && expected === undefined) {
    const tie = ok.filter((p) => p.size !== size && ok.filter((q) => q.size === p.size).length === sources);
    const hashed = opts.checksum === true || ok.some((p) => p.size === size && p.sha256 !== undefined);
    if (tie.length > 0 || !hashed)
      throw new PortalError(
        'PORTAL_TRANSFER_FAILED',
        `the sources disagree on the file size${tie.length > 0 ? ' and no size has a majority' : ' and no checksum can tell which is right'}:${ok
          .map((p) => `\n  ${redactUrl(p.url)}: ${p.size} bytes`)
          .join('')}\n${
          tie.length > 0
            ? 'leave out the source(s) serving the wrong file'
            : 'give --checksum sha-256=HEX to use the majority and verify the file, or leave out the source(s) serving the wrong file'
        }`,
      );
  }
  let agreed = ok.filter((p) => {
    if (p.size !== size)
      excluded.push({
        url: p.url,
        why: `size ${p.size} differs from the ${size} bytes ${expected !== undefined ? 'of the file being resumed (its journal)' : 'most sources report'}`,
      });
    return p.size === size;
  });
  // an all-zero Digest is NO_CID, "no hash known": taken as the file's sha-256 it would check nothing
  agreed = agreed.filter((p) => {
    const bad = p.sha256 !== undefined && isNoCid(p.sha256);
    if (bad)
      excluded.push({
        url: p.url,
        why: 'its Digest header gives an all-zero sha-256, which is no real hash (Portal would check nothing)',
      });
    return !bad;
  });
  const digests = new Map<string, number>();
  for (const p of agreed) if (p.sha256) digests.set(p.sha256, (digests.get(p.sha256) ?? 0) + 1);
  const ranked = [...digests.entries()].sort((a, b) => b[1] - a[1]);
  // Digests tied for the most sources (1 vs 1): nothing before the download tells which header is wrong, so no
  // source is excluded for it (the first answer used to win, and the file then failed though it matched the
  // other's). With --checksum the checksum decides; without, the finished file must match one of them.
  const tied = ranked.length > 1 && ranked[0][1] === ranked[1][1];
  const digestCandidates: DigestCandidate[] | undefined =
    tied && !opts.checksum
      ? ranked
          .filter(([, n]) => n === ranked[0][1])
          .map(([hex]) => ({ sha256: hex, urls: agreed.filter((p) => p.sha256 === hex).map((p) => p.url) }))
      : undefined;
  const sha256 = tied ? undefined : ranked[0]?.[0];
  if (sha256)
    agreed = agreed.filter((p) => {
      const bad = p.sha256 !== undefined && p.sha256 !== sha256;
      if (bad) excluded.push({ url: p.url, why: `Digest sha-256 ${p.sha256} differs from ${sha256}` });
      return !bad;
    });
  const warnings: string[] = [];
  if (digestCandidates)
    warnings.push(
      `the sources' Digest headers disagree and no value has a majority (${digestCandidates
        .map((d) => `sha-256 ${d.sha256} from ${d.urls.map(redactUrl).join(', ')}`)
        .join(
          '; ',
        )}): all are used, and the finished file must match one of them (give --checksum sha-256=HEX to decide up front)`,
    );
  for (const field of ['etag', 'lastModified'] as const) {
    const values = new Set(agreed.map((p) => p[field]).filter((v): v is string => v !== undefined));
    if (values.size > 1)
      warnings.push(
        `sources report different ${field === 'etag' ? 'ETags' : 'Last-Modified dates'} (${[...values].join(', ')}); the size agrees, so all are used and ${
          opts.checksum || sha256 || digestCandidates
            ? 'the checksum decides'
            : 'nothing can check the result: with no checksum, chunks of two versions of the file could be mixed (give --checksum, or name one source)'
        }`,
      );
  }
  return { size, agreed, excluded, warnings, sha256, ...(digestCandidates ? { digestCandidates } : {}) };
}

/**
 * A chunk size for a file of `size` bytes fetched without a manifest: a power of two giving about 64 chunks,
 * within 256 KiB..16 MiB (enough chunks to spread over mirrors, few enough requests to stay cheap); never
 * below MIN_CHUNK_SIZE.
 */
export function chooseChunkSize(size: number): number {
  let c = 256 * 1024;
  while (c < 16 * 1024 * 1024 && size / c > 64) c *= 2;
  return Math.max(MIN_CHUNK_SIZE, c);
}

/**
 * The manifest of a file known only from its sources: its size, a chosen chunk size and no chunk hashes
 * (NO_CID: length-checked only). `sha256` (from `--checksum` or the sources' Digest) verifies the whole file;
 * without it the file is complete but unverified. The id also covers `identity` (the source URLs, ETag…) so that
 * two different files fetched to the same output never share a journal.
 */
export function probedManifest(opts: {
  name: string;
  size: number;
  chunkSize?: number;
  sha256?: string;
  identity: string;
}): Manifest {
  const chunkSize = opts.chunkSize ?? chooseChunkSize(opts.size);
  const fileSha256 = opts.sha256?.toLowerCase() ?? NO_CID;
  return {
    version: 1,
    id: opts.sha256
      ? manifestId(fileSha256, chunkSize)
      : manifestId(`${NO_CID}:${opts.size}:${opts.identity}`, chunkSize),
    name: opts.name,
    fileSize: opts.size,
    chunkSize,
    fileSha256,
    chunks: new Array<string>(Math.ceil(opts.size / chunkSize)).fill(NO_CID),
  };
}
