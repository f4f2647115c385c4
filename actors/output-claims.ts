import { rmdir } from 'node:fs/promises';
import { PortalError } from '../common/errors.js';
import { escapeControl } from '../common/redact.js';
import { lockOutput, type OutputLock } from '../transfer/output-target.js';

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
 */
export class OutputClaims {
  private readonly owners = new Map<string, { transferId: string; lock?: Promise<OutputLock> }>();

  /**
   * Reserves `output` for `transferId` until release: a no-op when that transfer holds it already. Throws
   * PORTAL_TRANSFER_CONFLICT naming the transfer of this host that holds it. Writes nothing.
   */
  reserve(output: string, transferId: string): void {
    const held = this.owners.get(output);
    if (held?.transferId === transferId) return;
    if (held)
      throw new PortalError(
        'PORTAL_TRANSFER_CONFLICT',
        `output ${escapeControl(output)} is being written by transfer ${JSON.stringify(held.transferId)}; wait until it ends, cancel it, or choose another output`,
      );
    this.owners.set(output, { transferId });
  }

  /**
   * Reserves `output` for `transferId` (reserve: the same refusal) and takes its lock on disk, once: a no-op when
   * that transfer holds both already. Rejects PORTAL_OUTPUT_LOCKED naming the process (a `portal fetch`, another
   * serve) that holds the lock, PORTAL_OUTPUT_REFUSED or PORTAL_NO_SPACE when it cannot be created; the reservation
   * stays then (release frees it).
   */
  async claim(output: string, transferId: string): Promise<void> {
    this.reserve(output, transferId);
    const held = this.owners.get(output)!;
    // taken synchronously: a second claim in the same turn waits for the same lock
    held.lock ??= lockOutput(output, `${output}.portal`);
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
    if (!held.lock) return;
    const lock = await held.lock.catch(() => undefined);
    if (!lock) return;
    await lock.release();
    await rmdir(`${output}.portal`).catch(() => undefined);
  }

  /** The transfer holding `output`, if any. */
  ownerOf(output: string): string | undefined {
    return this.owners.get(output)?.transferId;
  }
}
