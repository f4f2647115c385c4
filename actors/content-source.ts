import { EventEmitter } from 'node:events';
import type { ContentSource } from '../transfer/content-server.js';
import type { ContentInfo } from './types.js';
import { actorProxy, type ActorRefSource } from './api.js';

/**
 * The content of transfer `transferId` as a content server reads it: reads go to its SchedulerActor
 * (`read`: verified chunks, priorities, read-ahead), the manifest and output path come from `contentInfo`
 * (asked once, then kept: they do not change while the transfer exists). With `verifiedChunks` (the host's
 * SchedulerServices.verifiedChunks) a waiting read is woken by the chunk's event instead of asking again.
 */
export function transferContentSource(
  from: ActorRefSource,
  transferId: string,
  verifiedChunks?: EventEmitter,
): ContentSource {
  const actor = actorProxy(from, 'SchedulerActor', transferId);
  let info: Promise<ContentInfo> | undefined;
  return {
    async info() {
      info ??= actor.invoke('contentInfo');
      const i = await info.catch((err: unknown) => {
        info = undefined;
        throw err;
      });
      return i;
    },
    read: (q) => actor.invoke('read', q),
    ...(verifiedChunks
      ? {
          onVerified(listener: (chunk: number) => void) {
            verifiedChunks.on(transferId, listener);
            return () => verifiedChunks.off(transferId, listener);
          },
        }
      : {}),
  };
}

/**
 * A host's SchedulerServices.verifiedChunks: an EventEmitter without the listener limit (every reader of
 * a transfer listens while its response runs; Node warns past 10 listeners by default).
 */
export function createVerifiedChunkEvents(): EventEmitter {
  return new EventEmitter().setMaxListeners(0);
}
