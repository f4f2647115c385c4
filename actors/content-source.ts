import type { ContentSource } from '../transfer/content-server.js';
import type { ContentInfo } from './types.js';
import { actorProxy, type ActorRefSource } from './api.js';

/**
 * The content of transfer `transferId` as a content server reads it: reads go to its SchedulerActor
 * (`read`: verified chunks, priorities, read-ahead), the manifest and output path come from `contentInfo`
 * (asked once, then kept: they do not change while the transfer exists).
 */
export function transferContentSource(from: ActorRefSource, transferId: string): ContentSource {
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
  };
}
