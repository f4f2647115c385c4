import { escapeControl } from '../common/redact.js';
import { sameSource } from '../actors/scheduler-actor.js';
import type { TransferEdge } from '../actors/index.js';
import { discardJournal, type JournaledTransfer } from '../node/journaled-transfer.js';
import { mentionsVersionChanged, redactUrl, type Manifest } from '../transfer/index.js';
import type { ResolvedSources } from './sources.js';

/** True when some chunk of `m` has no hash (a file known only from its sources): a resume cannot check it. */
const hasUnhashedChunks = (m: Manifest): boolean => m.chunks.some((c) => /^0{64}$/.test(c));

/**
 * Decides what a rerun keeps of a journal whose chunks have no hash (RFC 9110 §13.1.5, as curl -C -, wget -c and
 * aria2c keep a partial file): they are kept (SchedulerActor, TransferRequest.validators) when every source the
 * journal recorded a validator for reports the same one now (`src.validators`, from the probes). When one reports
 * another, the file changed since the first run: the journal and the partial files (`sideFiles`) are discarded and
 * the fetch starts over, saying so on stderr (true is returned: the run is a first run). With no validator recorded
 * (the sources sent none, only a weak ETag, or ignore Range) the chunks are fetched again, as before, and one line
 * says why. Does nothing for a journal of another file, a finished one, or one whose chunks all have hashes.
 */
export async function reconcileValidators(
  j: JournaledTransfer,
  src: ResolvedSources,
  edges: readonly TransferEdge[],
  { output, sideFiles }: { output: string; sideFiles: string[] },
): Promise<boolean> {
  if (j.manifest.id !== src.manifest.id || j.state === 'done' || !hasUnhashedChunks(j.manifest)) return false;
  const recorded = j.validators ?? {};
  const now = src.validators?.byId ?? {};
  const taken = new Set<number>();
  let compared = 0;
  for (const e of edges) {
    const i = sameSource(j.edges, e, taken);
    if (i < 0) continue;
    taken.add(i);
    const was = recorded[j.edges[i].id];
    if (was === undefined) continue;
    const is = now[e.id];
    if (is === was) {
      compared++;
      continue;
    }
    process.stderr.write(
      `portal: ${escapeControl(redactUrl(e.config.url))} now serves another version of the file (${is === undefined ? `no validator now; ${escapeControl(was)} at the first run` : `${escapeControl(is)} now, ${escapeControl(was)} at the first run`}): the chunks kept from the first run are discarded; starting over\n`,
    );
    await discardJournal(output, sideFiles);
    return true;
  }
  // printed with --json too (on stderr): it explains why the rerun downloads everything again
  if (compared === 0)
    process.stderr.write(
      `portal: resuming: the chunks kept so far have no hash and the sources gave no strong validator to vouch for them (a strong ETag or Last-Modified, with Range support) at the first run: they are fetched again\n`,
    );
  return false;
}

/**
 * The rejection handler of a transfer (runTransfer) whose journal beside `output` is discarded, with the partial
 * files `sideFiles`, when a source answered 200 to If-Range during the run (versionChangedDetail): the file changed,
 * so no chunk kept so far belongs to the new version and the next run starts over; stderr says so. Rethrows the
 * error either way (the run fails naming the source).
 */
export function forgetChangedVersion(output: string, sideFiles: string[]): (err: unknown) => Promise<never> {
  return async (err) => {
    const sources = (err as { sources?: { url?: string; lastError?: string }[] }).sources ?? [];
    const changed = sources.find((s) => mentionsVersionChanged(s.lastError));
    if (changed) {
      await discardJournal(output, sideFiles);
      process.stderr.write(
        `portal: ${escapeControl(changed.url ?? 'a source')} now serves another version of the file (it answered 200 to If-Range): the chunks kept so far are discarded; run the command again to fetch the new version\n`,
      );
    }
    throw err;
  };
}
