import { rmdir } from 'node:fs/promises';
import { PortalError } from '../common/errors.js';
import { escapeControl } from '../common/redact.js';
import { lockOutput, type OutputLock } from '../transfer/output-target.js';

/**
 * Which transfer of this host writes which output, and the per-output lock `portal fetch` takes as well
 * (`<output>.portal/lock`, transfer/output-target.ts lockOutput: pid and host, taken over once its process is gone):
 * two transfers of one host never share an output, nor a serve transfer and a fetch. Keyed by the output's final
 * path (the name it is published as).
 */
export class OutputClaims {
  private readonly owners = new Map<string, { transferId: string; lock: Promise<OutputLock> }>();

  /**
   * Claims `output` for `transferId` until release: a no-op when that transfer holds it already. Rejects
   * PORTAL_TRANSFER_CONFLICT naming the transfer of this host that holds it, PORTAL_OUTPUT_LOCKED naming the process
   * (a `portal fetch`, another serve) that holds its lock, PORTAL_OUTPUT_REFUSED when the lock cannot be created.
   */
  async claim(output: string, transferId: string): Promise<void> {
    const held = this.owners.get(output);
    if (held?.transferId === transferId) return void (await held.lock);
    if (held)
      throw new PortalError(
        'PORTAL_TRANSFER_CONFLICT',
        `output ${escapeControl(output)} is being written by transfer ${JSON.stringify(held.transferId)}; wait until it ends, cancel it, or choose another output`,
      );
    // taken synchronously: a second claim in the same turn sees it
    const lock = lockOutput(output, `${output}.portal`);
    this.owners.set(output, { transferId, lock });
    try {
      await lock;
    } catch (err) {
      if (this.owners.get(output)?.lock === lock) this.owners.delete(output);
      throw err;
    }
  }

  /** Releases `output` when `transferId` holds it: its lock goes, and its lock folder when empty. */
  async release(output: string, transferId: string): Promise<void> {
    const held = this.owners.get(output);
    if (held?.transferId !== transferId) return;
    this.owners.delete(output);
    const lock = await held.lock.catch(() => undefined);
    await lock?.release();
    await rmdir(`${output}.portal`).catch(() => undefined);
  }

  /** The transfer holding `output`, if any. */
  ownerOf(output: string): string | undefined {
    return this.owners.get(output)?.transferId;
  }
}
