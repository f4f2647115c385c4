/**
 * A redirect whose Location is no URL fails the chunk naming it as the redirect's target, redacted (trial L8: it
 * surfaced as "ERR_INVALID_URL: Invalid URL", naming nothing).
 */
import {
  createManifest,
  createHttpClient,
  fetchChunk,
  chunkRange,
  type ChunkFetchError,
} from '../../transfer/index.js';
import { startBadMirror, type BadMirror } from '../helpers/bad-mirror.js';
import { makeTempDir, writeRandomFile, rejectionOf } from './fixtures.js';

const CHUNK = 16384;

test('a redirect to a Location that is not a URL names it (redacted) as the redirect target', async () => {
  const tmp = await makeTempDir('redirect-location');
  const file = await writeRandomFile(tmp.dir, 'file.bin', 4 * CHUNK, 7);
  const m = await createManifest(file.path, { chunkSize: CHUNK });
  const mirrors: BadMirror[] = [];
  const client = createHttpClient({ proxy: false });
  try {
    for (const location of ['http://[::1:bad/f.bin?token=SECRET', 'http://exa mple.com:99999/f?sig=SECRET']) {
      const front = await startBadMirror(file.bytes, () => ({ kind: 'redirect', status: 302, location }));
      mirrors.push(front);
      const err = (await rejectionOf(() =>
        fetchChunk({
          edgeUrl: front.url,
          edgeKind: 'mirror',
          cid: m.chunks[1],
          ...chunkRange(m, 1),
          fileSize: 4 * CHUNK,
          timeoutMs: 10_000,
          client,
        }),
      )) as ChunkFetchError;
      expect(err.fault).toBe('redirect');
      expect(err.detail).toMatch(/^HTTP 302 redirect to ".*", which is not a URL$/);
      expect(err.detail).toContain('=***');
      expect(err.detail).not.toContain('SECRET');
      expect(err.detail).not.toContain('ERR_INVALID_URL');
    }
  } finally {
    await client.close();
    await Promise.all(mirrors.map((s) => s.close()));
    await tmp.cleanup();
  }
});
