/**
 * Where the whole-file check of a finished small output runs (SchedulerActor.finish): a file below
 * PREFIX_HASH_MIN_BYTES is not hashed while it downloads; at its end a host that hashes on its hash thread (the
 * default) flushes (fdatasync) and hashes it there, so the host's main thread, which runs every actor and answers
 * the actor API, neither reads and hashes it (hashFile, counted through a shim of transfer/chunk-writer.js) nor
 * opens it to flush it (open for appending, counted through shims of node:fs/promises and common/own-file.js); a process that hashes
 * on its own thread (`portal fetch`: setPrefixHashThread(false)) does both there. Needs the build (dist/) for the
 * hash thread, as the other prefix-hasher tests do.
 */
import { jest } from '@jest/globals';
import path from 'node:path';
import * as realFs from 'node:fs/promises';
import * as ownFile from '../../common/own-file.js';
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
// the finishing turn opens the output with openOwnFile (O_NOFOLLOW): counted there, as common/own-file.js is
// already loaded with the real node:fs/promises (transfer/chunk-writer.js imports it)
const openOwnFile = (
  ...a: Parameters<typeof ownFile.openOwnFile>
): ReturnType<typeof ownFile.openOwnFile> => {
  if (a[1] === 'append') appendOpens.push(String(a[0]));
  return ownFile.openOwnFile(...a);
};
jest.unstable_mockModule('../../common/own-file.js', () => ({ ...ownFile, openOwnFile }));
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

test('a symbolic link planted at the output of a file no executor opened (zero chunks) is not followed: the transfer fails naming it, and the target is neither created nor written', async () => {
  setPrefixHashThread(false); // the finishing turn flushes the output itself (datasyncOutput)
  mesh = await createMesh(0, 16384, [{ holds: 'all' }]);
  const out = path.join(mesh.dir, 'out.bin');
  const target = path.join(mesh.dir, 'planted-target');
  await realFs.symlink(target, out);
  const s = await transferToEnd(mesh, out);
  expect(s.state).toBe('failed');
  expect(s.error).toContain(`output ${out} is refused: it is a symbolic link`);
  await expect(realFs.lstat(target)).rejects.toMatchObject({ code: 'ENOENT' });
  expect((await realFs.lstat(out)).isSymbolicLink()).toBe(true);
});
