import { Actor } from '../runtime/types.js';
import { PortalError } from '../common/errors.js';
import type { TickEngine, TickEngineStats } from '../engine/index.js';
import type { GpuWorkerActorApi } from './api.js';

/** The services GpuWorkerActor (and SchedulerActor) take: the process-local tick engine. */
export interface TickEngineServices {
  readonly tickEngine?: TickEngine;
}

/**
 * One per host process (id = host id): owns the compute device through the process-local
 * TickEngine (`services.tickEngine`) that schedulers on this host run their ticks on, and reports
 * which backend runs the kernels. Chunk tables never cross an actor call: a scheduler hands its
 * tables to the engine of its own process.
 */
export class GpuWorkerActor extends Actor<TickEngineServices> implements GpuWorkerActorApi {
  /** Backend and counters of this host's engine. */
  async describe(): Promise<TickEngineStats> {
    return engineOf(this.ctx.services).stats();
  }
}

/** The TickEngine a host was configured with; a typed error if none. */
export function engineOf(services: TickEngineServices): TickEngine {
  const e = services.tickEngine;
  if (!e) throw new PortalError('PORTAL_CONFIG_INVALID', 'no tickEngine service configured on this host');
  return e;
}
