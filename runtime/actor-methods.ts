import { Actor, type ActorClass } from './types.js';

/** Names that are part of the actor lifecycle and cannot be invoked by callers. */
const RESERVED = new Set(['constructor', 'onActivate', 'onDeactivate', 'receiveReminder', 'mayInterleave']);

/** Per class, the method names already found invocable (only hits are cached: callers choose the names). */
const known = new WeakMap<ActorClass, Set<string>>();

/**
 * True when `name` is a method callers may invoke on actors of `cls`: a function defined on the prototype
 * chain of `cls` below `Actor` (so `constructor`, `toString`, getters and instance fields are excluded), not
 * starting with `_` and not a lifecycle method. Decided from the class alone, without an instance.
 */
export function isInvocableMethod(cls: ActorClass, name: unknown): name is string {
  if (typeof name !== 'string') return false;
  let hits = known.get(cls);
  if (hits?.has(name)) return true;
  if (name.length === 0 || name.startsWith('_') || RESERVED.has(name)) return false;
  for (
    let proto = cls.prototype as object | null;
    proto && proto !== Actor.prototype && proto !== Object.prototype;
    proto = Object.getPrototypeOf(proto) as object | null
  ) {
    const desc = Object.getOwnPropertyDescriptor(proto, name);
    if (!desc) continue;
    if (typeof desc.value !== 'function') return false;
    if (!hits) known.set(cls, (hits = new Set()));
    hits.add(name);
    return true;
  }
  return false;
}
