/**
 * Runs `fn` on every item of `items`, at most `limit` at once, starting them in their order. After a failure no
 * further item starts; the ones running end, then the first error is thrown (never before every started call has
 * settled, so nothing runs on behind the caller's back). Throws RangeError for a `limit` that is not a positive
 * integer.
 *
 * Our own rather than p-limit or p-map: a dozen lines with exactly these failure semantics, for a few callers that
 * walk a known set (the state store's checkpoint and recovery).
 */
export async function forEachLimited<T>(
  items: Iterable<T>,
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  if (!Number.isInteger(limit) || limit < 1)
    throw new RangeError(`limit: expected a positive integer, got ${limit}`);
  const it = items[Symbol.iterator]();
  let failure: { error: unknown } | undefined;
  const lane = async (): Promise<void> => {
    for (let next = it.next(); !failure && !next.done; next = it.next()) {
      try {
        await fn(next.value);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: limit }, lane));
  if (failure) throw failure.error;
}
