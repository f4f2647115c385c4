import { TransferIndex, parseListStates, type TransferState } from '../../actors/index.js';

const row = (id: string, state: TransferState, reads: string[] = []) => ({
  state: () => state,
  entry: () => {
    reads.push(id);
    return { transferId: id, state, bytesDone: 0, fileSize: 1, output: `/o/${id}`, createdAt: 1 };
  },
});

describe('TransferIndex', () => {
  test('pages in id order from after the cursor, building only the entries of the page', () => {
    const ix = new TransferIndex();
    const reads: string[] = [];
    for (const id of ['c', 'a', 'e', 'b', 'd']) ix.set(id, row(id, id < 'c' ? 'done' : 'running', reads));
    expect(ix.page({ limit: 2 })).toMatchObject({
      transfers: [{ transferId: 'a' }, { transferId: 'b' }],
      next: 'b',
    });
    expect(reads).toEqual(['a', 'b']);
    expect(ix.page({ limit: 2, after: 'b' }).transfers.map((t) => t.transferId)).toEqual(['c', 'd']);
    // a cursor that is no id any more still starts after it
    ix.delete('c');
    expect(ix.page({ after: 'bb' }).transfers.map((t) => t.transferId)).toEqual(['d', 'e']);
    expect(ix.page({ states: ['done'] }).transfers.map((t) => t.transferId)).toEqual(['a', 'b']);
    expect(ix.page({ after: 'e' })).toEqual({ transfers: [] });
    expect(() => ix.page({ limit: 1001 })).toThrow(/limit/);
    expect(() => ix.page({ limit: 0 })).toThrow(/limit/);
  });

  test('listedIds: every id in id order whatever its state, without building an entry; stateOf reads the row', () => {
    const ix = new TransferIndex();
    const reads: string[] = [];
    for (const [id, st] of [
      ['q', 'queued'],
      ['c', 'cancelled'],
      ['r', 'running'],
    ] as const)
      ix.set(id, row(id, st, reads));
    expect(ix.listedIds()).toEqual(['c', 'q', 'r']);
    expect([ix.stateOf('q'), ix.stateOf('c'), ix.stateOf('nope')]).toEqual([
      'queued',
      'cancelled',
      undefined,
    ]);
    expect(reads).toEqual([]);
    ix.delete('q');
    expect(ix.listedIds()).toEqual(['c', 'r']);
  });

  test('freeze keeps a snapshot of a deactivated transfer', () => {
    const ix = new TransferIndex();
    let state: TransferState = 'running';
    ix.set('x', { state: () => state, entry: () => ({ ...row('x', state).entry() }) });
    ix.freeze('x');
    state = 'failed';
    expect(ix.page().transfers[0].state).toBe('running');
  });

  test('revision: every set gives a new one, freeze keeps it, delete drops it, and none comes back', () => {
    const ix = new TransferIndex();
    expect(ix.revision('x')).toBeUndefined();
    ix.set('x', row('x', 'running'));
    ix.set('y', row('y', 'done'));
    const first = ix.revision('x')!;
    expect(first).toEqual(expect.any(Number));
    expect(ix.revision('y')).not.toBe(first);
    ix.freeze('x');
    expect(ix.revision('x')).toBe(first);
    ix.set('x', row('x', 'running')); // a restart
    const second = ix.revision('x')!;
    expect(second).not.toBe(first);
    ix.delete('x'); // a forget
    expect(ix.revision('x')).toBeUndefined();
    ix.set('x', row('x', 'running')); // the id started again
    expect([first, second, ix.revision('y')]).not.toContain(ix.revision('x'));
  });

  test('an unknown state is refused by name', () => {
    expect(parseListStates('done,queued')).toEqual(['done', 'queued']);
    expect(() => parseListStates('done,finished')).toThrow(/"finished"/);
  });
});
