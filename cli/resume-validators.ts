import { escapeControl } from '../common/redact.js';
import { sameSource } from '../actors/scheduler-actor.js';
import type { TransferEdge } from '../actors/index.js';
import { discardJournal, type JournaledTransfer } from '../node/journaled-transfer.js';
import { mentionsVersionChanged, redactUrl, versionChangedAnswer, type Manifest } from '../transfer/index.js';
import { strongValidator, type ResolvedSources } from './sources.js';

/** True when some chunk of `m` has no hash (a file known only from its sources): a resume cannot check it. */
const hasUnhashedChunks = (m: Manifest): boolean => m.chunks.some((c) => /^0{64}$/.test(c));

/** What reconcileValidators decided: start over (the journal is discarded), and the sources to leave out. */
export interface ValidatorDecision {
  /** The journal and the partial files were discarded: the run is a first run. */
  startOver: boolean;
  /** Sources (edge ids of `edges`) that serve another version than the one kept: left out of the run. */
  drop: string[];
  /** Why each dropped source is left out, by URL (redacted), for `src.excluded` and `--json`. */
  excluded: { url: string; why: string }[];
}

/**
 * Decides what a rerun keeps of a journal whose chunks have no hash (RFC 9110 §13.1.5, as curl -C -, wget -c and
 * aria2c keep a partial file): they are kept (SchedulerActor, TransferRequest.validators) when the sources the
 * journal recorded a validator for report the same one now (`src.validators`, from the probes). A source that
 * reports another serves another version of the file: when some source still serves the journal's version, the
 * changed ones are left out (`drop`, named on stderr with both validators) and the run resumes from those that
 * still serve it, so no byte of the other version is mixed in; when none does, the journal and the partial files
 * (`sideFiles`) are discarded and the fetch starts over, saying so on stderr (`startOver`). With no validator
 * recorded (the sources sent none, only a weak ETag, or ignore Range) the chunks are fetched again, as before,
 * and one line says why. Does nothing for a journal of another file, a finished one, or one whose chunks all
 * have hashes.
 */
export async function reconcileValidators(
  j: JournaledTransfer,
  src: ResolvedSources,
  edges: readonly TransferEdge[],
  { output, sideFiles }: { output: string; sideFiles: string[] },
): Promise<ValidatorDecision> {
  const none: ValidatorDecision = { startOver: false, drop: [], excluded: [] };
  if (j.manifest.id !== src.manifest.id || j.state === 'done' || !hasUnhashedChunks(j.manifest)) return none;
  const recorded = j.validators ?? {};
  const now = src.validators?.byId ?? {};
  const taken = new Set<number>();
  const same: TransferEdge[] = [];
  const changed: { e: TransferEdge; was: string; is: string | undefined }[] = [];
  for (const e of edges) {
    const i = sameSource(j.edges, e, taken);
    if (i < 0) continue;
    taken.add(i);
    const was = recorded[j.edges[i].id];
    if (was === undefined) continue;
    const is = now[e.id];
    if (is === was) same.push(e);
    else changed.push({ e, was, is });
  }
  const versions = (c: (typeof changed)[number]): string =>
    c.is === undefined
      ? `no validator now; ${escapeControl(c.was)} at the first run`
      : `${escapeControl(c.is)} now, ${escapeControl(c.was)} at the first run`;
  if (changed.length > 0 && same.length > 0) {
    // one version only: the one the kept chunks belong to, which some source still serves
    const still = same.map((e) => escapeControl(redactUrl(e.config.url))).join(', ');
    const excluded = changed.map((c) => ({
      url: redactUrl(c.e.config.url),
      why: `it now serves another version of the file (${versions(c)}) than ${still}, which the kept chunks belong to: the versions are not mixed`,
    }));
    for (const x of excluded)
      process.stderr.write(`portal: excluded ${escapeControl(x.url)}: ${escapeControl(x.why)}\n`);
    guardLateVersions(src, recordedByUrl(j), true);
    return { startOver: false, drop: changed.map((c) => c.e.id), excluded };
  }
  if (changed.length > 0) {
    const c = changed[0];
    process.stderr.write(
      `portal: ${escapeControl(redactUrl(c.e.config.url))} now serves another version of the file (${versions(c)}): the chunks kept from the first run are discarded; starting over\n`,
    );
    await discardJournal(output, sideFiles);
    guardLateVersions(src, recordedByUrl(j), false);
    return { ...none, startOver: true };
  }
  if (same.length > 0) {
    guardLateVersions(src, recordedByUrl(j), true);
    return none;
  }
  // Nothing vouches for the kept chunks now: none of the sources that recorded a validator is named (or none
  // recorded one). They are fetched again. So that they really are, the journal of hash-less chunks is discarded
  // when something would still keep them: the validators the first run recorded (an interrupted run resumes with
  // its own request), or the new sources' (a failed run starts again with the new request, whose validators would
  // vouch for bytes another source served). Printed with --json too (on stderr): it explains the full download.
  const recordedAny = Object.keys(recorded).length > 0;
  const discard = (recordedAny || j.state === 'failed') && j.manifest.chunks.every((c) => /^0{64}$/.test(c));
  process.stderr.write(
    `portal: resuming: the chunks kept so far have no hash and ${recordedAny ? 'none of the sources whose validators vouched for them at the first run is named now' : 'the sources gave no strong validator to vouch for them (a strong ETag or Last-Modified, with Range support) at the first run'}: they are fetched again${discard ? '; starting over' : ''}\n`,
  );
  if (!discard) return none;
  await discardJournal(output, sideFiles);
  return { ...none, startOver: true };
}

/** The validators a journal recorded, by the URL of their source. */
function recordedByUrl(j: JournaledTransfer): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of j.edges) {
    const v = j.validators?.[e.id];
    if (v !== undefined) out[e.config.url] = v;
  }
  return out;
}

/**
 * Makes the sources that answer their probe after the start (`src.late`) keep to one version of the file, by the
 * validators `known` (by URL, redacted or not): with `keep` (the run keeps chunks of that version) a source with
 * a known validator that reports another now is refused; without (the run left that version behind: started over
 * or restarted) one that still reports it is refused. Either way it is named as excluded, with both validators.
 */
function guardLateVersions(src: ResolvedSources, known: Record<string, string>, keep: boolean): void {
  const late = src.late;
  if (!late) return;
  const base = late.refusal.bind(late);
  const was = (url: string): string | undefined =>
    known[url] ?? Object.entries(known).find(([u]) => redactUrl(u) === redactUrl(url))?.[1];
  late.refusal = (p) => {
    const why = base(p);
    const v = was(p.url);
    if (why !== undefined || v === undefined || !p.ok) return why;
    const is = strongValidator(p);
    if (keep && is !== v)
      return `it now serves another version of the file (${is === undefined ? 'no validator' : escapeControl(is)} now, ${escapeControl(v)} when the chunks kept were fetched): the versions are not mixed`;
    if (!keep && is === v)
      return `it still serves the version the run left behind (${escapeControl(v)}): the versions are not mixed`;
    return undefined;
  };
}

/** Times a run starts again from zero because its sources changed version while it ran (VersionRestart). */
export const MAX_VERSION_RESTARTS = 2;

/**
 * Thrown by forgetChangedVersion's handler when a run is to start again from zero: `changed` are the sources that
 * answered 200 to If-Range (redacted URLs, with the validator each was asked for), `gaveUp` the validators the run
 * used by URL (to tell, at the new probes, a source that still serves the old version), `size` the file size the
 * run had, `count` how many restarts this one makes.
 */
export class VersionRestart extends Error {
  constructor(
    readonly changed: { url: string; validator: string | undefined }[],
    readonly gaveUp: Record<string, string>,
    readonly size: number,
    readonly count: number,
  ) {
    super(`the file changed version at ${changed.map((c) => c.url).join(', ')}: starting again from zero`);
    this.name = 'VersionRestart';
  }
}

/**
 * The rejection handler of a transfer (runTransfer) whose journal beside `output` is discarded, with the partial
 * files `sideFiles`, when a source answered 200 to If-Range during the run, or a 206 with another validator than
 * the one the run started with (versionChangedDetail, named as the source answered): the file
 * changed, so no chunk kept so far belongs to the new version. When `o.restart` allows it (the restarts made so
 * far, `o.restarts`, are under MAX_VERSION_RESTARTS), stderr names the source and the validator it no longer
 * matches and says the run restarts from zero; `o.release` frees what the run held (its output lock) and a
 * VersionRestart is thrown. Otherwise stderr says the next run starts over, and `err` is rethrown (the run fails
 * naming the source), as it is when no source changed.
 */
export function forgetChangedVersion(
  output: string,
  sideFiles: string[],
  o: {
    validators?: Record<string, string>;
    size: number;
    restarts: number;
    restart: () => boolean;
    release: () => Promise<void>;
  },
): (err: unknown) => Promise<never> {
  return async (err) => {
    const sources = (err as { sources?: { url?: string; lastError?: string }[] }).sources ?? [];
    const changed = sources
      .filter((s) => mentionsVersionChanged(s.lastError))
      .map((s) => {
        const url = s.url ?? 'a source';
        const key = Object.keys(o.validators ?? {}).find((u) => redactUrl(u) === url);
        return {
          url,
          validator: key === undefined ? undefined : o.validators![key],
          answer: versionChangedAnswer(s.lastError),
        };
      });
    if (changed.length === 0) throw err;
    await discardJournal(output, sideFiles);
    const first = changed[0];
    // `answered HTTP 200 to If-Range: "v1"`, or `answered HTTP 206 with ETag "v2" to If-Range: "v1"` (it ignores If-Range)
    const answer =
      first.answer ??
      `answered HTTP 200 to If-Range${first.validator === undefined ? '' : `: ${first.validator}`}`;
    const what = `${escapeControl(first.url)} now serves another version of the file (it ${escapeControl(answer)})`;
    if (o.restart() && o.restarts < MAX_VERSION_RESTARTS) {
      process.stderr.write(
        `portal: ${what}: the chunks kept so far are discarded; restarting from zero against the new version\n`,
      );
      await o.release();
      throw new VersionRestart(
        changed.map(({ url, validator }) => ({ url, validator })),
        o.validators ?? {},
        o.size,
        o.restarts + 1,
      );
    }
    process.stderr.write(
      `portal: ${what}: the chunks kept so far are discarded${o.restarts > 0 ? ` (it changed again after ${o.restarts} restart${o.restarts === 1 ? '' : 's'} from zero)` : ''}; run the command again to fetch the new version\n`,
    );
    throw err;
  };
}

/**
 * After a VersionRestart, the sources of the new probes (`src`) that still report the validator the run gave up
 * (`r.gaveUp`), while another now reports a new one, serve the old version: they are left out (removed from
 * `src.edges` and `src.validators`, named in `src.excluded`, which the caller prints), so the restart fetches one version.
 * Then one line says what the restart fetches: the changed source's validator now, and the size (with the old one
 * when it differs). Sources without a validator cannot be told apart and stay.
 */
export function excludeOldVersion(src: ResolvedSources, r: VersionRestart): void {
  const v = src.validators ?? { byId: {}, byUrl: {} };
  const old = (e: TransferEdge): boolean =>
    r.gaveUp[e.config.url] !== undefined && v.byId[e.id] === r.gaveUp[e.config.url];
  const fresh = src.edges.filter((e) => v.byId[e.id] !== undefined && !old(e));
  if (fresh.length > 0) {
    const names = fresh.map((e) => escapeControl(redactUrl(e.config.url))).join(', ');
    const stale = src.edges.filter(old);
    for (const e of stale) {
      const why = `it still serves the version the run gave up (${escapeControl(r.gaveUp[e.config.url])}), which ${names} no longer serve${fresh.length === 1 ? 's' : ''}: the versions are not mixed`;
      src.excluded.push({ url: e.config.url, why });
      delete v.byId[e.id];
      delete v.byUrl[e.config.url];
    }
    src.edges = src.edges.filter((e) => !stale.includes(e));
  }
  guardLateVersions(src, r.gaveUp, false);
  const url = r.changed[0].url;
  const key = Object.keys(v.byUrl).find((u) => redactUrl(u) === url);
  const now = key === undefined ? 'no validator' : `validator ${escapeControl(v.byUrl[key])}`;
  const size = src.manifest.fileSize;
  process.stderr.write(
    `portal: restarting from zero (restart ${r.count} of at most ${MAX_VERSION_RESTARTS}): ${escapeControl(url)} now serves ${now}, ${size} bytes${size !== r.size ? ` (the version given up had ${r.size})` : ''}\n`,
  );
}
