import { readdir, rm, unlink } from 'node:fs/promises';
import path from 'node:path';
import { createFileStateStore } from '../runtime/file-state-store.js';
import { JOURNAL_KEY } from '../actors/journal-pages.js';
import type { ChecksumOrigin, TransferEdge, TransferRequest, TransferStatus } from '../actors/types.js';
import type { Manifest } from '../transfer/manifest.js';
import { journalDir } from './embedded-node.js';

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
      } | null;
      if (!req?.manifest || !journal?.state) continue;
      found.push({
        transferId: req.transferId,
        manifest: req.manifest,
        edges: req.edges,
        state: journal.state,
        ...(req.checksumFrom ? { checksumFrom: req.checksumFrom } : {}),
        ...(req.validators ? { validators: req.validators } : {}),
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
