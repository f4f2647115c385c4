/**
 * Where the whole-file check of a finished small output runs (SchedulerActor.finish): a file below
 * PREFIX_HASH_MIN_BYTES is not hashed while it downloads; at its end a host that hashes on its hash thread (the
 * default) flushes (fdatasync) and hashes it there, so the host's main thread, which runs every actor and answers
 * the actor API, neither reads and hashes it (hashFile, counted through a shim of transfer/chunk-writer.js) nor
 * opens it to flush it (open for appending, counted through a shim of node:fs/promises); a process that hashes
 * on its own thread (`portal fetch`: setPrefixHashThread(false)) does both there. Needs the build (dist/) for the
 * hash thread, as the other prefix-hasher tests do.
 */
import { jest } from '@jest/globals';
import path from 'node:path';
import * as realFs from 'node:fs/promises';
import * as chunkWriter from '../../transfer/chunk-writer.js';

const hashFile = jest.fn(chunkWriter.hashFile);
jest.unstable_mockModule('../../transfer/chunk-writer.js', () => ({ ...chunkWriter, hashFile }));
/** Paths the process opened for appending through node:fs/promises: the finishing turn's own fdatasync of the output. */
const appendOpens: string[] = [];
const open = (...a: Parameters<typeof realFs.open>): ReturnType<typeof realFs.open> => {
  if (a[1] === 'a') appendOpens.push(String(a[0]));
  return realFs.open(...a);
};
jest.unstable_mockModule('node:fs/promises', () => ({ ...realFs, default: { ...realFs, open }, open }));
const { setPrefixHashThread, PREFIX_HASH_MIN_BYTES } = await import('../../transfer/prefix-hasher.js');
const { createMesh } = await import('../helpers/mesh.js');
const { transferToEnd } = await import('../helpers/embedded-transfer.js');

type Mesh = import('../helpers/mesh.js').Mesh;

let mesh: Mesh | undefined;
afterEach(async () => {
  setPrefixHashThread(true);
  await mesh?.close();
  mesh = undefined;
});

/** Runs one transfer of a 48-chunk file (768 KiB) on an embedded host to its end; its last status. */
async function transferSmallFile(): Promise<{ state: string; verified: boolean }> {
  mesh = await createMesh(48 * 16384, 16384, [{ holds: 'all' }]);
  expect(mesh.manifest.fileSize).toBeLessThan(PREFIX_HASH_MIN_BYTES);
  return transferToEnd(mesh, path.join(mesh.dir, 'out.bin'));
}

test('a host that hashes on its hash thread verifies a small finished output there, and flushes it there, not on its main thread', async () => {
  hashFile.mockClear();
  appendOpens.length = 0;
  const s = await transferSmallFile();
  expect(s).toMatchObject({ state: 'done', verified: true });
  expect(hashFile).not.toHaveBeenCalled();
  expect(appendOpens.filter((f) => f.endsWith('out.bin'))).toEqual([]);
});

test('a process that hashes on its own thread (portal fetch) reads the small output there, and verifies it', async () => {
  setPrefixHashThread(false);
  hashFile.mockClear();
  appendOpens.length = 0;
  const s = await transferSmallFile();
  expect(s).toMatchObject({ state: 'done', verified: true });
  expect(hashFile).toHaveBeenCalledTimes(1);
  expect(appendOpens.filter((f) => f.endsWith('out.bin'))).toEqual([path.join(mesh!.dir, 'out.bin')]);
});
