import { subjectTokenId, type Bus } from '../bus/index.js';
import type { Executor } from '../transfer/index.js';
import type { Logger } from '../common/logger.js';

/** The report subject's transfer id (`portal.transfer.<id>.report`), or undefined for other subjects. */
function reportTransferId(subject: string): string | undefined {
  const m = /^portal\.transfer\.([^.]+)\.report$/.exec(subject);
  return m ? subjectTokenId(m[1]) : undefined;
}

/**
 * The bus actors on this instance see: the in-process bus, where a SchedulerActor subscribing to its transfer's
 * reports also attaches this instance's executor to that transfer (and unsubscribing detaches it). So every
 * transfer is executed by the instance its scheduler is active on; when the scheduler moves (rebalancing, a
 * crash), the executor of its new instance takes over. A cluster-wide bus (NATS) replaces this later.
 */
export function createExecutorAttachingBus(bus: Bus, executor: Executor, log: Logger): Bus {
  return {
    publish: (subject, msg) => bus.publish(subject, msg),
    subscribe(subject, handler, opts) {
      const transferId = reportTransferId(subject);
      if (transferId) executor.attach(transferId);
      const sub = bus.subscribe(subject, handler, opts);
      if (!transferId) return sub;
      return {
        subject: sub.subject,
        unsubscribe() {
          sub.unsubscribe();
          executor
            .detach(transferId)
            .catch((err: unknown) => log.warn({ err, transferId }, 'executor detach failed'));
        },
      };
    },
    close: () => bus.close(),
  };
}
