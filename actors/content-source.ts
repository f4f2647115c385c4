import { EventEmitter } from 'node:events';
import type { ContentSource } from '../transfer/content-server.js';
import type { ContentInfo } from './types.js';
import { actorProxy, type ActorRefSource } from './api.js';
import { hasBit, setBit } from '../common/bitset.js';

/**
 * The content of transfer `transferId` as a content server reads it: reads go to its SchedulerActor
 * (`read`: verified chunks, priorities, read-ahead), the manifest and output path come from `contentInfo`
 * (asked once, then kept: they do not change while the transfer exists). With `verifiedChunks` (the host's
 * SchedulerServices.verifiedChunks) a waiting read is woken by the chunk's event instead of asking again.
 *
 * With `o.remember` (a source that lives as long as its transfer, as `fetch --serve` keeps one) it also keeps a
 * bitmap of the chunks it has seen verified, from those events and from `read` answers, and answers `known`
 * from it: a read of a chunk known verified is served at once, its `read` call (the reader's position and rate
 * for read-ahead) sent beside it instead of waited for. The events are sent once a chunk is verified and written,
 * and the content server hashes every chunk it serves again, so a wrong bit could only cut a response, never
 * serve an unverified byte. Call `close` when the transfer ends (it stops listening).
 *
 * With `o.passive` as well (a reader that wants the whole file as fast as the transfer runs: `fetch --out -`), a
 * read changes no priority: it is answered from that bitmap, with the state from the actor's `status`. A read
 * raises its chunks to DEMAND, which runs at most DEMAND_PER_EDGE fetches on an edge and nothing beside them: right
 * for a player waiting on its next bytes, a third of the throughput for a pipe that reads everything (a 64 MiB
 * fetch from two rate-limited nginx mirrors took 4.3 s instead of 1.9 s). It knows only the chunks announced after
 * it was made (make it before the transfer starts) until the transfer stops running: then `read` asks the actor.
 */
export function transferContentSource(
  from: ActorRefSource,
  transferId: string,
  verifiedChunks?: EventEmitter,
  o: { remember?: boolean; passive?: boolean } = {},
): ContentSource & { close(): void } {
  const actor = actorProxy(from, 'SchedulerActor', transferId);
  let info: Promise<ContentInfo> | undefined;
  let seen = new Uint8Array(0);
  const mark = (chunk: number): void => {
    if (chunk >> 3 >= seen.length) {
      const grown = new Uint8Array(Math.max(64, seen.length * 2, (chunk >> 3) + 1));
      grown.set(seen);
      seen = grown;
    }
    setBit(seen, chunk);
  };
  const remember = o.remember === true && verifiedChunks !== undefined;
  if (remember) verifiedChunks.on(transferId, mark);
  const passive = remember && o.passive === true;
  const contentInfo = async (): Promise<ContentInfo> => {
    info ??= actor.invoke('contentInfo');
    const i = await info.catch((err: unknown) => {
      info = undefined;
      throw err;
    });
    return i;
  };
  return {
    info: contentInfo,
    read: passive
      ? async (q) => {
          const { state } = await actor.invoke('status');
          // once the scheduler no longer runs, its read changes nothing and knows chunks no event announced here
          if (state !== 'running') return actor.invoke('read', q);
          const size = (await contentInfo()).manifest.chunkSize;
          const first = Math.floor(q.offset / size);
          const last = Math.floor((q.offset + q.length - 1) / size);
          const complete: number[] = [];
          for (let c = first; c <= last; c++) if (hasBit(seen, c)) complete.push(c);
          return { state, first, last, complete };
        }
      : remember
        ? async (q) => {
            const plan = await actor.invoke('read', q);
            for (const k of plan.complete) mark(k);
            return plan;
          }
        : (q) => actor.invoke('read', q),
    ...(remember ? { known: (chunk: number) => hasBit(seen, chunk) } : {}),
    ...(verifiedChunks
      ? {
          onVerified(listener: (chunk: number) => void) {
            verifiedChunks.on(transferId, listener);
            return () => verifiedChunks.off(transferId, listener);
          },
        }
      : {}),
    close() {
      if (remember) verifiedChunks.off(transferId, mark);
    },
  };
}

/**
 * A host's SchedulerServices.verifiedChunks: an EventEmitter without the listener limit (every reader of
 * a transfer listens while its response runs; Node warns past 10 listeners by default).
 */
export function createVerifiedChunkEvents(): EventEmitter {
  return new EventEmitter().setMaxListeners(0);
}
