import type { TransferEdge } from './types.js';

/**
 * The first edge id `edges` name twice: the id, the index of its first entry and of the repeat; undefined when every
 * id is named once. An edge id is one EdgeActor, so a second entry with the id would replace the first's
 * configuration for both (the start refuses it: refuseDuplicateEdgeIds; fetch: checkUniqueEdgeIds).
 */
export function repeatedEdgeId(
  edges: readonly Pick<TransferEdge, 'id'>[],
): { id: string; first: number; at: number } | undefined {
  const seen = new Map<string, number>();
  for (const [at, e] of edges.entries()) {
    const first = seen.get(e.id);
    if (first !== undefined) return { id: e.id, first, at };
    seen.set(e.id, at);
  }
  return undefined;
}
