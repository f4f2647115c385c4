import { rmdir } from 'node:fs/promises';
import path from 'node:path';
import { PortalError } from '../common/errors.js';
import { escapeControl } from '../common/redact.js';
import { JOURNAL_SUFFIX, lockOutput, type OutputLock } from '../transfer/output-target.js';

/**
 * Which transfer of this host writes which output, and the per-output lock `portal fetch` takes as well
 * (`<output>.portal/lock`, transfer/output-target.ts lockOutput: pid and host, taken over once its process is gone):
 * two transfers of one host never share an output, nor a running serve transfer and a fetch. Keyed by the output's
 * final path (the name it is published as).
 *
 * Two steps: `reserve` (in memory, synchronous) names the transfer that will write an output, so a second transfer
 * of this host on it is refused at once, queued or running; `lock` takes the lock on disk, and is taken only by a
 * transfer that runs (one that only waits in the admission queue writes nothing: a burst of 1,000 starts on a host
 * with 16 running slots creates 16 lock folders, not 1,000 — bench:load measured ~0.4 ms of main-thread time per start
 * for the folder, file and their removal, session 11).
 *
 * A claim covers every file the transfer writes besides its output (ClaimedFile: its partial file, its partial-chunk
 * log, its lock folder `<output>.portal` and whatever lies directly in it): a transfer whose output or side file is
 * one of another's files, or lies directly in another's lock folder, is refused naming that transfer and the file,
 * so no transfer of this host publishes over another's partial file or lock.
 */
/** A file a claim covers besides its output: its path (final, as the transfer opens it) and what it is. */
export interface ClaimedFile {
  readonly path: string;
  /** What the file is to its transfer, for the refusal ("the partial file"). */
  readonly what: string;
  /** A folder: a path directly in it is covered too (the lock folder `<output>.portal`). */
  readonly folder?: boolean;
}

interface Owner {
  transferId: string;
  output: string;
  files: readonly ClaimedFile[];
  lock?: Promise<OutputLock>;
}

export class OutputClaims {
  private readonly owners = new Map<string, Owner>();
  /** Every path a claim covers (outputs and side files), with its owner and what it is to that owner. */
  private readonly paths = new Map<string, { owner: Owner; what: string; folder: boolean }>();

  /**
   * Reserves `output` and its side files `files` for `transferId` until release: a no-op when that transfer holds it
   * already. Throws PORTAL_TRANSFER_CONFLICT naming the transfer of this host that holds the output, or one whose
   * output or side file is one of these paths (or whose lock folder holds one of them directly). Writes nothing.
   */
  reserve(output: string, transferId: string, files: readonly ClaimedFile[] = []): void {
    const held = this.owners.get(output);
    if (held?.transferId === transferId) return;
    const mine: ClaimedFile[] = [{ path: output, what: 'the output' }, ...files];
    for (const f of mine) this.refuseTaken(output, f.path, transferId);
    const owner: Owner = { transferId, output, files: mine };
    this.owners.set(output, owner);
    for (const f of mine) this.paths.set(f.path, { owner, what: f.what, folder: f.folder === true });
  }

  /**
   * Throws PORTAL_TRANSFER_CONFLICT when `file` (one of the files a transfer writing `output` would write) is covered
   * by the claim of another transfer than `transferId` (coverOf), naming that transfer, its output and what the file
   * is to it. Changes nothing.
   */
  refuseTaken(output: string, file: string, transferId: string): void {
    const other = this.coverOf(file, transferId);
    if (other)
      throw new PortalError(
        'PORTAL_TRANSFER_CONFLICT',
        other.what === 'the output' && file === output
          ? `output ${escapeControl(output)} is being written by transfer ${JSON.stringify(other.owner.transferId)}; wait until it ends, cancel it, or choose another output`
          : `output ${escapeControl(output)}: ${escapeControl(file)} is ${other.what} of transfer ${JSON.stringify(other.owner.transferId)} (output ${escapeControl(other.owner.output)}); wait until it ends, cancel it, or choose another output`,
      );
  }

  /**
   * The claim of another transfer than `transferId` that covers `file`: the same path, or its folder when that is a
   * claimed lock folder. Undefined when none.
   */
  private coverOf(
    file: string,
    transferId: string,
  ): { owner: Owner; what: string; folder: boolean } | undefined {
    const same = this.paths.get(file);
    if (same && same.owner.transferId !== transferId) return same;
    const dir = this.paths.get(path.dirname(file));
    if (dir?.folder && dir.owner.transferId !== transferId) return { ...dir, what: `a file in ${dir.what}` };
    return undefined;
  }

  /**
   * Reserves `output` for `transferId` (reserve: the same refusals) and takes its lock on disk, once: a no-op when
   * that transfer holds both already. Rejects PORTAL_OUTPUT_LOCKED naming the process (a `portal fetch`, another
   * serve) that holds the lock, PORTAL_OUTPUT_REFUSED or PORTAL_NO_SPACE when it cannot be created; the reservation
   * stays then (release frees it).
   */
  async claim(output: string, transferId: string, files: readonly ClaimedFile[] = []): Promise<void> {
    this.reserve(output, transferId, files);
    const held = this.owners.get(output)!;
    // taken synchronously: a second claim in the same turn waits for the same lock
    held.lock ??= lockOutput(output, `${output}${JOURNAL_SUFFIX}`);
    const lock = held.lock;
    try {
      await lock;
    } catch (err) {
      // a failed lock is not remembered: the next claim tries again
      if (this.owners.get(output)?.lock === lock) held.lock = undefined;
      throw err;
    }
  }

  /** Releases `output` when `transferId` holds it: its reservation, its lock, and its lock folder when empty. */
  async release(output: string, transferId: string): Promise<void> {
    const held = this.owners.get(output);
    if (held?.transferId !== transferId) return;
    this.owners.delete(output);
    for (const f of held.files) if (this.paths.get(f.path)?.owner === held) this.paths.delete(f.path);
    if (!held.lock) return;
    const lock = await held.lock.catch(() => undefined);
    if (!lock) return;
    await lock.release();
    await rmdir(`${output}${JOURNAL_SUFFIX}`).catch(() => undefined);
  }

  /** The transfer holding `output`, if any. */
  ownerOf(output: string): string | undefined {
    return this.owners.get(output)?.transferId;
  }
}
