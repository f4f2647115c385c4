import type { SchedulerServices } from './scheduler-actor.js';
import type { EdgeServices } from './edge-actor.js';
import type { StreamServices } from './gpu-stream-actor.js';
import type { CoordinatorServices } from './coordinator-actor.js';

/**
 * Everything Portal's actors take from their host (`ctx.services`), each field optional: a host builds the part
 * its registered actors need (a transfer node: bus, tick engine, edge prober, transfer registry; a stream node
 * adds the stream transport and kernels; the coordinator demo its peer transport and sink). Each actor class
 * declares the part it reads (`Actor<SchedulerServices>`…), so no lookup needs a cast.
 */
export type PortalServices = SchedulerServices & EdgeServices & StreamServices & CoordinatorServices;
