import type { ChunkReport } from '../../common/index.js';

/** A successful ChunkReport of `chunk` (1 KiB from edge 0, by executor `test`): what bus tests publish. */
export const chunkReport = (transferId: string, chunk: number, attempt = 1): ChunkReport => ({
  transferId,
  chunk,
  attempt,
  edgeIndex: 0,
  ok: true,
  bytes: 1024,
  firstByteMs: 1,
  transferMs: 2,
  executorId: 'test',
});
