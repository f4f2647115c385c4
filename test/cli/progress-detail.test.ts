import { progressDetail } from '../../cli/commands/fetch.js';
import type { EdgeView, TransferStatus } from '../../actors/index.js';

const edge = (o: Partial<EdgeView>): EdgeView =>
  ({ available: true, queueDepth: 0, failuresSinceOk: 0, ...o }) as EdgeView;
const status = (edges: EdgeView[], perEdgeChunks: number[]): TransferStatus =>
  ({
    bytesDone: 0,
    edges,
    perEdgeChunks,
    counters: { failovers: 0, corrupt: 0 },
  }) as unknown as TransferStatus;

describe('fetch progress line', () => {
  test('a source with chunks in flight that has delivered none is shown as delivering nothing', () => {
    const line = progressDetail(status([edge({ queueDepth: 4 })], [0]), Date.now());
    expect(line).toContain('edges 1/1 (1 delivered nothing)');
  });

  test('a source that delivered, or was given nothing yet, is not flagged', () => {
    const line = progressDetail(status([edge({ queueDepth: 4 }), edge({})], [3, 0]), Date.now());
    expect(line).toContain('edges 2/2  failovers');
  });

  test('a failing source counts as delivering nothing; one the budget gave up is not in use', () => {
    const line = progressDetail(
      status(
        [edge({ failuresSinceOk: 3 }), edge({ failuresSinceOk: 5, retired: true }), edge({ queueDepth: 1 })],
        [0, 0, 9],
      ),
      Date.now(),
    );
    expect(line).toContain('edges 2/3 (1 delivered nothing)');
  });
});
