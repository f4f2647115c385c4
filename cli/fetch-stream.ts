import { createHash, type Hash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { open, rmdir, unlink } from 'node:fs/promises';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { PortalError, isPortalError } from '../common/errors.js';
import { escapeControl } from '../common/redact.js';
import { journalDir } from '../node/embedded-node.js';
import { redactUrl, type HttpClient } from '../transfer/index.js';
import { transportFault } from '../transfer/http-fetch.js';
import { checkOutputTarget, lockOutput, PART_SUFFIX } from '../transfer/output-target.js';
import { publishPart } from '../transfer/publish-part.js';
import { createProgress, formatBytes } from './progress.js';
import type { StreamSource } from './sources.js';

/** What fetchStream did: the published file (`-` for stdout), its size, and whether a sha-256 checked it. */
export interface StreamResult {
  output: string;
  bytes: number;
  seconds: number;
  verified: boolean;
  /** Streaming to stdout: the reader closed the pipe first (EPIPE: `| head`, which wanted no more). */
  closed?: boolean;
}

/**
 * Bytes of a stream to stdout held back until the whole-file check passed, when there is a sha-256 to check: the
 * reader of a file that fails it never gets it whole (as `--out -` holds back the last chunk of a sized file).
 * Memory stays bounded: this, plus the piece being read.
 */
export const STDOUT_HOLD_BYTES = 65536;

/**
 * Downloads a file of unknown size (StreamSource: every source answered 200 without Content-Length, ignoring Range)
 * as one stream from `s.url`, as curl and wget do: no chunks, no resume, progress without a total. To a file, the
 * body goes to `<output>.portal-part` while its sha-256 follows it; the file takes the name `output` only when the
 * stream ended cleanly (chunked encoding's last chunk, or the Content-Length reached: undici rejects a body cut
 * before either) and, with `s.sha256`, matched it, and never over a file another program created at `output` meanwhile
 * unless `o.force` (PORTAL_OUTPUT_REFUSED; the file is then kept as `<output>.portal-part`). Nothing is kept otherwise. With `o.stdout` (`--out -`) the bytes
 * go there as they arrive, with its backpressure (bounded memory; see streamToStdout). Writes the notes (sources
 * left out or not used, the missing checksum) on stderr. Rejects PORTAL_OUTPUT_REFUSED / PORTAL_OUTPUT_LOCKED for
 * the output, PORTAL_TRANSFER_FAILED naming the source and the cause when the request or the stream fails (a cut
 * body included), PORTAL_VERIFY_FAILED naming both hashes on a mismatch.
 */
export async function fetchStream(
  s: StreamSource,
  o: { client: HttpClient; output: string; force: boolean; quiet: boolean; stdout?: NodeJS.WritableStream },
): Promise<StreamResult> {
  const shown = escapeControl(redactUrl(s.url));
  for (const e of s.excluded)
    process.stderr.write(`portal: excluded ${escapeControl(redactUrl(e.url))}: ${escapeControl(e.why)}\n`);
  for (const e of s.notUsed)
    process.stderr.write(`portal: ${escapeControl(redactUrl(e.url))} not used: ${escapeControl(e.why)}\n`);
  const warn = (): void => {
    if (o.quiet) return;
    process.stderr.write(
      `portal: warning: no source gives the file's size: it is read as one stream from ${shown} (no chunks, no resume)\n`,
    );
    if (s.sha256 === undefined)
      process.stderr.write(
        o.stdout
          ? 'portal: warning: no checksum: the bytes go to stdout as they arrive, checked by nothing but a clean end of the stream (give --checksum sha-256=HEX to verify it)\n'
          : 'portal: warning: no checksum: the file is checked by nothing but a clean end of the stream (give --checksum sha-256=HEX to verify it)\n',
      );
  };
  if (o.stdout) {
    warn();
    return streamToStdout(s, o.client, o.stdout, o.quiet, shown);
  }
  const part = `${o.output}${PART_SUFFIX}`;
  const jdir = journalDir(o.output);
  await checkOutputTarget(o.output, {
    force: o.force,
    journalDir: jdir,
    hasJournal: async () => false,
    sideFiles: [part],
  });
  const lock = await lockOutput(o.output, jdir);
  // the warnings once the output is known to be writable: a refusal of it is the run's one line
  warn();
  const started = Date.now();
  let keep = false;
  try {
    const body = await openStream(s, o.client, shown);
    const t = tally(o.quiet, 0);
    try {
      await pipeline(body, t.tap, createWriteStream(part, { mode: 0o644 }));
    } catch (err) {
      throw brokenStream(shown, t.got(), err, 'nothing was kept');
    }
    t.bar.done();
    const sha = t.hash.digest('hex');
    if (s.sha256 !== undefined && sha !== s.sha256)
      throw new PortalError(
        'PORTAL_VERIFY_FAILED',
        `the ${t.got()} bytes ${shown} streamed hash to sha-256 ${sha}, not the ${expectedHash(s)} ${s.sha256}: nothing was kept`,
      );
    const fh = await open(part, 'r');
    await fh.sync().finally(() => fh.close());
    // never over a file another program created at the output meanwhile, unless --force
    await publishPart(part, o.output, o.force).catch((err: unknown) => {
      if (!isPortalError(err, 'PORTAL_OUTPUT_REFUSED')) throw err;
      keep = true;
      throw new PortalError(
        err.code,
        `${err.message}: move it where you want it, or fetch again with --force to replace ${escapeControl(o.output)}`,
        { cause: err },
      );
    });
    return {
      output: o.output,
      bytes: t.got(),
      seconds: (Date.now() - started) / 1000,
      verified: s.sha256 !== undefined,
    };
  } catch (err) {
    // a verified file refused its name is kept under the partial file's
    if (!keep) await unlink(part).catch(() => undefined);
    throw err;
  } finally {
    await lock.release();
    await rmdir(jdir).catch(() => undefined);
  }
}

/**
 * `--out -` of a file of unknown size: the body goes to `sink` (stdout) as it arrives, as curl writes it, with
 * the sink's backpressure (nothing is kept on disk or piled up in memory). With a sha-256 to check, the last
 * STDOUT_HOLD_BYTES wait for the end: on a match they follow, on a mismatch they are withheld and the run fails
 * with PORTAL_VERIFY_FAILED saying how many bytes went out (like `curl … | sha256sum -c`, the check can only come
 * after the bytes). A reader that closed the pipe (EPIPE) ends it quietly (`closed`).
 */
async function streamToStdout(
  s: StreamSource,
  client: HttpClient,
  sink: NodeJS.WritableStream,
  quiet: boolean,
  shown: string,
): Promise<StreamResult> {
  const started = Date.now();
  const body = await openStream(s, client, shown);
  const t = tally(quiet, s.sha256 === undefined ? 0 : STDOUT_HOLD_BYTES);
  const result = (closed: boolean): StreamResult => ({
    output: '-',
    bytes: t.got(),
    seconds: (Date.now() - started) / 1000,
    verified: s.sha256 !== undefined && !closed,
    ...(closed ? { closed } : {}),
  });
  const written = (): string => `${t.passed()} bytes had been written to stdout`;
  try {
    await pipeline(body, t.tap, sink, { end: false });
    await drained(sink);
  } catch (err) {
    if (readerGone(err)) return result(true);
    throw brokenStream(shown, t.got(), err, `${written()}: the output is incomplete and not to be trusted`);
  }
  t.bar.done();
  const sha = t.hash.digest('hex');
  if (s.sha256 !== undefined && sha !== s.sha256)
    throw new PortalError(
      'PORTAL_VERIFY_FAILED',
      `the ${t.got()} bytes ${shown} streamed hash to sha-256 ${sha}, not the ${expectedHash(s)} ${s.sha256}; ${written()} (the last ${t.got() - t.passed()} were held back): the output is not to be trusted`,
    );
  try {
    for (const piece of t.held()) sink.write(piece);
    await drained(sink);
  } catch (err) {
    if (readerGone(err)) return result(true);
    throw err;
  }
  return result(false);
}

/**
 * Resolves once what `sink` buffers is written (rejects with its error, EPIPE included, if it fails first): the
 * callback of an empty write, which a Writable calls after every write queued before it. Not 'drain', which comes
 * only after a write that returned false: with less than the high-water mark buffered (a slow reader at the end),
 * it never came, the command never returned, and the process ended with exit code 0 when its loop emptied,
 * without the held-back tail.
 */
async function drained(sink: NodeJS.WritableStream): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    sink.write('', (err?: Error | null) => (err ? reject(err) : resolve()));
  });
}

/** The reader of stdout went away: EPIPE, or a write to stdout after that destroyed it. */
const readerGone = (err: unknown): boolean => {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'EPIPE' || code === 'ERR_STREAM_DESTROYED';
};

/** How the sha-256 a stream is checked against is named: the source's Digest, or the expected one. */
const expectedHash = (s: StreamSource): string =>
  s.checksumFrom === 'digest-header' ? "source's Digest" : 'expected';

/** The GET of the stream: its body, once the answer is a 200 with an identity body (else PORTAL_TRANSFER_FAILED). */
async function openStream(s: StreamSource, client: HttpClient, shown: string): Promise<Readable> {
  const r = await client.sendMirror(s.url, { headers: { 'accept-encoding': 'identity' } });
  if (r.statusCode !== 200) {
    await r.body.dump().catch(() => undefined);
    throw new PortalError('PORTAL_TRANSFER_FAILED', `${shown} answered HTTP ${r.statusCode} to the download`);
  }
  const enc = r.headers['content-encoding'];
  if (enc !== undefined && String(enc).toLowerCase() !== 'identity') {
    await r.body.dump().catch(() => undefined);
    throw new PortalError(
      'PORTAL_TRANSFER_FAILED',
      `${shown} sent a ${String(enc)}-encoded body (Content-Encoding: ${String(enc)}) though asked for identity`,
    );
  }
  return r.body;
}

/** PORTAL_TRANSFER_FAILED for a stream that broke after `got` bytes: the cause, and what became of the bytes. */
function brokenStream(shown: string, got: number, err: unknown, kept: string): PortalError {
  const cause = err instanceof PortalError ? err.message : transportFault(err, got, true).what;
  return new PortalError(
    'PORTAL_TRANSFER_FAILED',
    `${shown}: the stream broke after ${got} bytes (${cause}); a file of unknown size cannot be resumed, so ${kept}: run the command again`,
    { cause: err },
  );
}

/**
 * The Transform a stream passes through: it hashes and counts the bytes and moves the progress line; with
 * `hold` > 0 it keeps the last `hold` bytes (or a little more: whole pieces) back, for `held()` to hand over once
 * the stream ended. `passed()` counts the bytes it let through.
 */
function tally(
  quiet: boolean,
  hold: number,
): {
  tap: Transform;
  hash: Hash;
  bar: ReturnType<typeof createProgress>;
  got: () => number;
  passed: () => number;
  held: () => Buffer[];
} {
  const hash = createHash('sha256');
  const bar = createProgress('fetch', 0, {
    quiet,
    format: (d) => `${formatBytes(d)} (size unknown)`,
    unknownTotal: true,
  });
  let got = 0;
  let passed = 0;
  const held: Buffer[] = [];
  let heldBytes = 0;
  const tap = new Transform({
    transform(piece: Buffer, _enc, done) {
      hash.update(piece);
      got += piece.length;
      bar.update(got);
      if (hold === 0) {
        passed += piece.length;
        return done(null, piece);
      }
      held.push(piece);
      heldBytes += piece.length;
      while (heldBytes - held[0].length >= hold) {
        const out = held.shift()!;
        heldBytes -= out.length;
        passed += out.length;
        this.push(out);
      }
      done();
    },
  });
  return { tap, hash, bar, got: () => got, passed: () => passed, held: () => held };
}

/** The result line of fetchStream's download: JSON (`--json`) on stdout, else a sentence on `to`. */
export function reportStream(
  s: StreamSource,
  r: StreamResult,
  o: { json: boolean; to: NodeJS.WritableStream; name: string },
): void {
  if (o.json) {
    process.stdout.write(
      `${JSON.stringify({
        type: 'result',
        output: r.output,
        verified: r.verified,
        bytes: r.bytes,
        seconds: r.seconds,
        source: 'stream',
        streamedFrom: redactUrl(s.url),
        ...(s.notUsed.length
          ? { notUsed: s.notUsed.map((e) => ({ url: redactUrl(e.url), why: e.why })) }
          : {}),
        ...(s.excluded.length
          ? { excluded: s.excluded.map((e) => ({ url: redactUrl(e.url), why: e.why })) }
          : {}),
      })}\n`,
    );
    return;
  }
  o.to.write(
    `${o.name}: ${formatBytes(r.bytes)} in ${r.seconds.toFixed(2)} s, ${r.verified ? 'sha256 verified' : 'complete, not verified (no checksum)'}, read as one stream (size unknown)\n`,
  );
}
