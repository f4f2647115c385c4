import { takesFetchMemoryFlags } from '../../cli/v8-flags.js';

describe('V8 flags of portal fetch', () => {
  test('a plain fetch keeps a small heap; a swarm member, which serves its peers, and other commands do not', () => {
    expect(takesFetchMemoryFlags('fetch', ['m.json', '--edge', 'http://e', '--out', 'o'])).toBe(true);
    expect(takesFetchMemoryFlags('fetch', ['m.json', '--edge', 'http://e', '--swarm', '--out', 'o'])).toBe(
      false,
    );
    expect(takesFetchMemoryFlags('serve', ['--port', '0'])).toBe(false);
  });
});
