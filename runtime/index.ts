export { Actor } from './types.js';
export type { ActorContext, ActorStateManager, ActorRef, ActorServices, ActorClass, StateStore, ActorHost, ActorHostStats } from './types.js';
export { createMemoryStateStore } from './memory-state-store.js';
export { createFileStateStore, writeFileAtomic } from './file-state-store.js';
export { createEmbeddedHost } from './embedded-host.js';
export type { EmbeddedHost, EmbeddedHostOptions } from './embedded-host.js';
export { actorKeyPrefix, parseStateKey, KEY_SEPARATOR, REMINDERS_KEY } from './state-keys.js';
export type { ParsedStateKey } from './state-keys.js';
export { createRoutedStateStore } from './routed-state-store.js';
