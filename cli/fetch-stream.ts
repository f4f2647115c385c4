import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { open, rename, rmdir, unlink } from 'node:fs/promises';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { PortalError } from '../common/errors.js';
import { escapeControl } from '../common/redact.js';
import { journalDir } from '../node/embedded-node.js';
import { redactUrl, type HttpClient } from '../transfer/index.js';
import { transportFault } from '../transfer/http-fetch.js';
import { checkOutputTarget, lockOutput } from '../transfer/output-target.js';
import { createProgress, formatBytes } from './progress.js';
import type { StreamSource } from './sources.js';

/** What fetchStream did: the published file, its size, and whether a sha-256 checked it. */
export interface StreamResult {
  output: string;
  bytes: number;
  seconds: number;
  verified: boolean;
}

/**
 * Downloads a file of unknown size (StreamSource: every source answered 200 without Content-Length, ignoring Range)
 * as one stream from `s.url`, as curl and wget do: no chunks, no resume, progress without a total. The body goes
 * to `<output>.portal-part` while its sha-256 follows it; the file takes the name `output` only when the stream
 * ended cleanly (chunked encoding's last chunk, or the Content-Length reached: undici rejects a body cut before
 * either) and, with `s.sha256`, matched it. Nothing is kept otherwise. Writes the notes (sources left out or not
 * used, the missing checksum) on stderr. Rejects PORTAL_OUTPUT_REFUSED / PORTAL_OUTPUT_LOCKED for the output,
 * PORTAL_TRANSFER_FAILED naming the source and the cause when the request or the stream fails (a cut body
 * included), PORTAL_VERIFY_FAILED naming both hashes on a mismatch.
 */
export async function fetchStream(
  s: StreamSource,
  o: { client: HttpClient; output: string; force: boolean; quiet: boolean },
): Promise<StreamResult> {
  const shown = escapeControl(redactUrl(s.url));
  for (const e of s.excluded)
    process.stderr.write(`portal: excluded ${escapeControl(redactUrl(e.url))}: ${escapeControl(e.why)}\n`);
  for (const e of s.notUsed)
    process.stderr.write(`portal: ${escapeControl(redactUrl(e.url))} not used: ${escapeControl(e.why)}\n`);
  if (!o.quiet) {
    process.stderr.write(
      `portal: warning: no source gives the file's size: it is read as one stream from ${shown} (no chunks, no resume)\n`,
    );
    if (s.sha256 === undefined)
      process.stderr.write(
        'portal: warning: no checksum: the file is checked by nothing but a clean end of the stream (give --checksum sha-256=HEX to verify it)\n',
      );
  }
  const part = `${o.output}.portal-part`;
  const jdir = journalDir(o.output);
  await checkOutputTarget(o.output, {
    force: o.force,
    journalDir: jdir,
    hasJournal: async () => false,
    sideFiles: [part],
  });
  const lock = await lockOutput(o.output, jdir);
  const started = Date.now();
  let got = 0;
  try {
    const r = await o.client.sendMirror(s.url, { headers: { 'accept-encoding': 'identity' } });
    if (r.statusCode !== 200) {
      await r.body.dump().catch(() => undefined);
      throw new PortalError(
        'PORTAL_TRANSFER_FAILED',
        `${shown} answered HTTP ${r.statusCode} to the download`,
      );
    }
    const enc = r.headers['content-encoding'];
    if (enc !== undefined && String(enc).toLowerCase() !== 'identity') {
      await r.body.dump().catch(() => undefined);
      throw new PortalError(
        'PORTAL_TRANSFER_FAILED',
        `${shown} sent a ${String(enc)}-encoded body (Content-Encoding: ${String(enc)}) though asked for identity`,
      );
    }
    const hash = createHash('sha256');
    const bar = createProgress('fetch', 0, {
      quiet: o.quiet,
      format: (d) => `${formatBytes(d)} (size unknown)`,
      unknownTotal: true,
    });
    const tap = new Transform({
      transform(piece: Buffer, _enc, done) {
        hash.update(piece);
        got += piece.length;
        bar.update(got);
        done(null, piece);
      },
    });
    try {
      await pipeline(r.body, tap, createWriteStream(part, { mode: 0o644 }));
    } catch (err) {
      const cause = err instanceof PortalError ? err.message : transportFault(err, got, true).what;
      throw new PortalError(
        'PORTAL_TRANSFER_FAILED',
        `${shown}: the stream broke after ${got} bytes (${cause}); a file of unknown size cannot be resumed, so nothing was kept: run the command again`,
        { cause: err },
      );
    }
    bar.done();
    const sha = hash.digest('hex');
    if (s.sha256 !== undefined && sha !== s.sha256)
      throw new PortalError(
        'PORTAL_VERIFY_FAILED',
        `the ${got} bytes ${shown} streamed hash to sha-256 ${sha}, not the ${s.checksumFrom === 'digest-header' ? "source's Digest" : 'expected'} ${s.sha256}: nothing was kept`,
      );
    const fh = await open(part, 'r');
    await fh.sync().finally(() => fh.close());
    await rename(part, o.output);
    return {
      output: o.output,
      bytes: got,
      seconds: (Date.now() - started) / 1000,
      verified: s.sha256 !== undefined,
    };
  } catch (err) {
    await unlink(part).catch(() => undefined);
    throw err;
  } finally {
    await lock.release();
    await rmdir(jdir).catch(() => undefined);
  }
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
