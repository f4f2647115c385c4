import { readdir, rm, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { createFileStateStore } from '../runtime/file-state-store.js';
import { JOURNAL_KEY } from '../actors/journal-pages.js';
import type { ChecksumOrigin, TransferEdge, TransferRequest, TransferStatus } from '../actors/types.js';
import type { Manifest } from '../transfer/manifest.js';
import { journalDir } from './embedded-node.js';
import { hashFile } from '../transfer/chunk-writer.js';
import { NO_CID } from '../transfer/cid.js';
import { publishPart } from '../transfer/publish-part.js';
import { isPortalError } from '../common/errors.js';

/** A transfer a journal beside an output holds: what a rerun of `portal fetch` resumes. */
export interface JournaledTransfer {
  transferId: string;
  /** The manifest it was started with (inline in its journaled request). */
  manifest: Manifest;
  /** Its sources as journaled (URLs redacted). */
  edges: TransferEdge[];
  state: TransferStatus['state'];
  /** What gave its manifest's sha-256. */
  checksumFrom?: ChecksumOrigin;
  /** Its mirrors' validators when it started, by edge id (TransferRequest.validators). */
  validators?: Record<string, string>;
  /** sha256 of the finished output, when its manifest had none to check it against. */
  sha256?: string;
  /** Size and modification time (ms) of the output when it was finished. */
  output?: { size: number; mtimeMs: number };
}

const PREFIX = 'SchedulerActor||';

/**
 * The transfer the journal beside `output` (`<output>.portal/`, journalDir) holds, read before the fetch's node
 * opens that journal: undefined when there is none, or none with its manifest inline (the local fetch always
 * journals it so). When the folder holds several (an older file's journal left beside a newer one), one not yet
 * done is preferred. The caller must hold the output's lock (lockOutput): the journal has one owning process.
 */
export async function readJournaledTransfer(output: string): Promise<JournaledTransfer | undefined> {
  const store = createFileStateStore(journalDir(output));
  try {
    const found: JournaledTransfer[] = [];
    for (const key of await store.keys(PREFIX)) {
      if (!key.endsWith('||request')) continue;
      const actor = key.slice(0, -'request'.length);
      const req = JSON.parse((await store.get(key)) ?? 'null') as TransferRequest | null;
      const journal = JSON.parse((await store.get(`${actor}${JOURNAL_KEY}`)) ?? 'null') as {
        state?: TransferStatus['state'];
        sha256?: string;
        output?: { size: number; mtimeMs: number };
      } | null;
      if (!req?.manifest || !journal?.state) continue;
      found.push({
        transferId: req.transferId,
        manifest: req.manifest,
        edges: req.edges,
        state: journal.state,
        ...(req.checksumFrom ? { checksumFrom: req.checksumFrom } : {}),
        ...(req.validators ? { validators: req.validators } : {}),
        ...(journal.sha256 ? { sha256: journal.sha256 } : {}),
        ...(journal.output ? { output: journal.output } : {}),
      });
    }
    return found.find((t) => t.state !== 'done') ?? found[0];
  } finally {
    await store.close();
  }
}

/**
 * Discards the journal beside `output` and the partial files a fetch of another file left (`sideFiles`): every
 * entry of the journal folder but its `lock` (held by the caller), so the next start is a first start. Files
 * that are already gone are no error.
 */
export async function discardJournal(output: string, sideFiles: readonly string[]): Promise<void> {
  const dir = journalDir(output);
  for (const name of await readdir(dir).catch(() => [] as string[]))
    if (name !== 'lock') await rm(path.join(dir, name), { recursive: true, force: true });
  for (const f of sideFiles)
    await unlink(f).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
}

/** What a rerun finds of the output of a finished transfer (finishedOutput). */
export type FinishedOutput =
  | { kind: 'complete'; sha256: string | undefined }
  | { kind: 'gone' }
  | { kind: 'changed'; size: number; sha256: string | undefined; expected: string | undefined };

/**
 * Checks the output of the finished transfer `j` (state done) as a rerun finds it at `output`: `complete` when it
 * has the size and sha256 the transfer finished with (the manifest's, or the one taken at the end when the manifest
 * had none; an unchanged size and modification time are taken as the same bytes, as the actor does), `gone` when
 * it is no longer there, `changed` otherwise (another size, or other bytes: someone wrote to it), with what it is
 * and what it was.
 */
export async function finishedOutput(j: JournaledTransfer, output: string): Promise<FinishedOutput> {
  const st = await stat(output).catch(() => undefined);
  if (!st) return { kind: 'gone' };
  const expected = j.manifest.fileSha256 === NO_CID ? j.sha256 : j.manifest.fileSha256;
  if (!st.isFile() || st.size !== j.manifest.fileSize)
    return { kind: 'changed', size: st.size, sha256: undefined, expected };
  if (j.output && j.output.size === st.size && j.output.mtimeMs === st.mtimeMs)
    return { kind: 'complete', sha256: expected };
  const sha = await hashFile(output).catch(() => undefined);
  return sha !== undefined && sha === expected
    ? { kind: 'complete', sha256: sha }
    : { kind: 'changed', size: st.size, sha256: sha, expected };
}

/**
 * Publishes the partial file `part` that the failed run of journal `j` left beside `output` (its whole-file check
 * failed against the sha-256 the user gave, e.g. a mistyped --checksum) when its bytes hash to `m`'s sha-256 (the
 * checksum given now): `part` takes the name `output` and the journal becomes that of a finished transfer of `m`
 * (request manifest `m`, its sha-256 from `checksumFrom`; state done, with the output's size and modification time),
 * so a rerun finds it "already complete". Returns the sha-256 of `part` and whether it was published (false, with
 * nothing changed, when its size or sha-256 is not `m`'s, or when `output` exists).
 */
export async function publishVerifiedPart(
  j: JournaledTransfer,
  m: Manifest,
  { output, part, checksumFrom }: { output: string; part: string; checksumFrom: ChecksumOrigin },
): Promise<{ published: boolean; sha256?: string }> {
  const st = await stat(part).catch(() => undefined);
  if (!st?.isFile() || st.size !== m.fileSize) return { published: false };
  const sha256 = await hashFile(part);
  if (sha256 !== m.fileSha256) return { published: false, sha256 };
  if (await stat(output).catch(() => undefined)) return { published: false, sha256 };
  const store = createFileStateStore(journalDir(output));
  try {
    const actor = `${PREFIX}${j.transferId}||`;
    const req = JSON.parse((await store.get(`${actor}request`)) ?? 'null') as TransferRequest | null;
    const journal = JSON.parse((await store.get(`${actor}${JOURNAL_KEY}`)) ?? 'null') as Record<
      string,
      unknown
    > | null;
    if (!req || !journal) return { published: false, sha256 };
    // link, not rename: a file created at `output` since the check above is not replaced
    try {
      await publishPart(part, output, false, sha256);
    } catch (err) {
      if (isPortalError(err, 'PORTAL_OUTPUT_REFUSED')) return { published: false, sha256 };
      throw err;
    }
    const out = await stat(output);
    await store.transaction([
      { op: 'upsert', key: `${actor}request`, value: JSON.stringify({ ...req, manifest: m, checksumFrom }) },
      {
        op: 'upsert',
        key: `${actor}${JOURNAL_KEY}`,
        value: JSON.stringify({
          ...journal,
          state: 'done',
          sha256,
          output: { size: out.size, mtimeMs: out.mtimeMs },
        }),
      },
      { op: 'delete', key: `${actor}__reminders` },
    ]);
    return { published: true, sha256 };
  } finally {
    await store.close();
  }
}
