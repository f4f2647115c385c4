export { Actor } from './types.js';
export type { ActorContext, ActorStateManager, ActorRef, ActorServices, ActorClass, StateStore, ActorHost, ActorHostStats } from './types.js';
