import { ReplicaPlacer, isLocationLabel } from '../../actors/replica-placement.js';
import type { TransferRequest } from '../../actors/types.js';

const origin = {
  edge: {
    id: 'origin',
    config: { url: 'http://127.0.0.1:1', kind: 'portal' as const, flags: 0, maxParallel: 4 },
  },
  location: 'far',
  holdsAll: true,
};

describe('replica placement (a file read where no edge holds it is pre-positioned to an accepting edge there)', () => {
  test('one background task per (manifest, target), to the accepting edge with the reader’s label, from the read’s sources; bounded', async () => {
    const started: TransferRequest[] = [];
    const p = new ReplicaPlacer({ submit: async (req) => started.push(req), maxRunning: 1 });
    p.noteEdge('near-1', { url: 'http://127.0.0.1:2', location: 'near', accepts: true });
    p.noteEdge('near-ro', { url: 'http://127.0.0.1:3', location: 'near2' }); // does not accept: not a target
    const read = {
      location: 'near',
      manifestId: 'm1',
      manifest: { manifestUrl: 'http://x/m.json' },
      sources: [origin],
    };
    const out = p.onRead(read);
    expect(out).toEqual({ placed: expect.stringMatching(/^replica-m1-[0-9a-f]{12}$/) });
    expect(started).toHaveLength(1);
    expect(started[0]).toMatchObject({
      output: 'http://127.0.0.1:2',
      manifestUrl: 'http://x/m.json',
      prePosition: {},
      edges: [origin.edge],
    });
    expect(started[0].prePosition?.background).not.toBe(false);
    expect(p.onRead(read)).toEqual({ skipped: 'already-placed' });
    expect(p.onRead({ ...read, location: 'near2' })).toEqual({ skipped: 'no-accepting-edge' });
    // a read where an edge there holds the file places nothing
    expect(p.onRead({ ...read, location: 'far' })).toEqual({ skipped: 'held-there' });
    // at its limit of running tasks, another file waits for the next read
    expect(p.onRead({ ...read, manifestId: 'm2' })).toEqual({ skipped: 'at-limit' });
    p.ended((out as { placed: string }).placed);
    expect(p.onRead({ ...read, manifestId: 'm2' })).toMatchObject({ placed: expect.any(String) });
    expect(p.stats()).toEqual({ edges: 1, running: 1, placed: 2 });
  });

  test('a task whose start is refused frees its slot; an edge that stops accepting is forgotten; bad labels are refused', async () => {
    const p = new ReplicaPlacer({ submit: () => Promise.reject(new Error('refused')), maxRunning: 1 });
    p.noteEdge('near-1', { url: 'http://127.0.0.1:2', location: 'near', accepts: true });
    const read = { location: 'near', manifestId: 'm1', manifest: {}, sources: [origin] };
    expect(p.onRead(read)).toMatchObject({ placed: expect.any(String) });
    await new Promise((r) => setImmediate(r));
    expect(p.stats().running).toBe(0);
    p.noteEdge('near-1', { url: 'http://127.0.0.1:2', location: 'near', accepts: false });
    expect(p.onRead({ ...read, manifestId: 'm3' })).toEqual({ skipped: 'no-accepting-edge' });
    expect(isLocationLabel('eu-west/ams')).toBe(true);
    for (const bad of ['', 'a\nb', 'x'.repeat(257), 7]) expect(isLocationLabel(bad)).toBe(false);
  });
});
