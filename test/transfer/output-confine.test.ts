/**
 * confineOutputFile (transfer/output-target.ts) counted: the file-system calls one confinement makes, through
 * counting shims of node:fs and node:fs/promises for this module only. A host confines every start's output:
 * each asynchronous call here is a thread-pool round trip of every start.
 */
import { jest } from '@jest/globals';
import * as realFsSync from 'node:fs';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import * as realFs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

const calls: string[] = [];
const countedSync =
  <A extends unknown[], R>(name: string, fn: (...a: A) => R) =>
  (...a: A): R => {
    calls.push(name);
    return fn(...a);
  };
const counted =
  <A extends unknown[], R>(name: string, fn: (...a: A) => Promise<R>) =>
  (...a: A): Promise<R> => {
    calls.push(name);
    return fn(...a);
  };
jest.unstable_mockModule('node:fs/promises', () => ({
  ...realFs,
  default: realFs,
  lstat: counted('lstat', realFs.lstat),
  realpath: counted('realpath', realFs.realpath),
  stat: counted('stat', realFs.stat),
}));
jest.unstable_mockModule('node:fs', () => ({
  ...realFsSync,
  default: realFsSync,
  lstatSync: countedSync('lstatSync', realFsSync.lstatSync),
  realpathSync: countedSync('realpathSync', realFsSync.realpathSync),
  statSync: countedSync('statSync', realFsSync.statSync),
}));
const { confineOutputFile, resolveInsideRoot } = await import('../../transfer/output-target.js');

let base: string;
let root: string;
let outside: string;
beforeAll(() => {
  base = mkdtempSync(path.join(tmpdir(), 'portal-confine-'));
  root = path.join(base, 'root');
  outside = path.join(base, 'outside');
  mkdirSync(path.join(root, 'sub'), { recursive: true });
  mkdirSync(outside);
  writeFileSync(path.join(outside, 'x.bin'), 'secret');
  writeFileSync(path.join(root, 'old.bin'), 'x');
  symlinkSync(path.join(outside, 'x.bin'), path.join(root, 'escape.bin'));
  symlinkSync(outside, path.join(root, 'out-dir'));
});
afterAll(() => rmSync(base, { recursive: true, force: true }));

/** The calls `fn` made. */
async function count<T>(fn: () => Promise<T>): Promise<{ result: T; calls: string[] }> {
  calls.length = 0;
  const result = await fn();
  return { result, calls: [...calls] };
}

test('a new file directly in the root costs one synchronous lstat once the root is known (before: realpath of the root, of the file (failing) and of its folder, stat, lstat: five round trips)', async () => {
  await confineOutputFile(root, 'warm.bin', 'serve'); // the root's real path, once per process
  const abs = await count(() => confineOutputFile(root, path.join(root, 'a.bin'), 'serve'));
  expect(abs.result).toEqual({ path: path.join(root, 'a.bin'), existing: undefined });
  expect(abs.calls).toEqual(['lstatSync']);
  const rel = await count(() => confineOutputFile(root, 'b.bin', 'serve'));
  expect(rel.result.path).toBe(path.join(root, 'b.bin'));
  expect(rel.calls).toEqual(['lstatSync']);
});

test('an existing regular file in the root: one synchronous lstat, and its stats come back for the overwrite check', async () => {
  const r = await count(() => confineOutputFile(root, 'old.bin', 'serve'));
  expect(r.calls).toEqual(['lstatSync']);
  expect(r.result.path).toBe(path.join(root, 'old.bin'));
  expect(r.result.existing?.isFile()).toBe(true);
  expect(r.result.existing?.size).toBe(1);
});

test('a link in the root that points outside it is still resolved and refused', async () => {
  await expect(confineOutputFile(root, 'escape.bin', 'serve')).rejects.toMatchObject({
    code: 'PORTAL_OUTPUT_OUTSIDE_ROOT',
  });
  await expect(confineOutputFile(root, 'out-dir/x.bin', 'serve')).rejects.toMatchObject({
    code: 'PORTAL_OUTPUT_OUTSIDE_ROOT',
  });
  await expect(confineOutputFile(root, '../outside/x.bin', 'serve')).rejects.toMatchObject({
    code: 'PORTAL_OUTPUT_OUTSIDE_ROOT',
  });
  // the root itself is not outside it: the message says what it is
  for (const target of ['.', root])
    await expect(confineOutputFile(root, target, 'serve')).rejects.toMatchObject({
      code: 'PORTAL_OUTPUT_OUTSIDE_ROOT',
      message: expect.stringMatching(/ is the output root \S+ itself: name a file inside it$/),
    });
});

test('a file in a sub-folder takes the walk; a missing folder is refused', async () => {
  const r = await confineOutputFile(root, 'sub/c.bin', 'serve');
  expect(r).toEqual({ path: path.join(root, 'sub', 'c.bin'), existing: undefined });
  await expect(confineOutputFile(root, 'nope/c.bin', 'serve')).rejects.toMatchObject({
    code: 'PORTAL_OUTPUT_REFUSED',
  });
  await expect(confineOutputFile(root, 'old.bin/c.bin', 'serve')).rejects.toMatchObject({
    code: 'PORTAL_OUTPUT_REFUSED',
  });
});

test("resolveInsideRoot (the executor's check of each output it opens): a file directly in the root costs one synchronous lstat, not a realpath walk (before: realpath of the file (failing) and of its folder)", async () => {
  await resolveInsideRoot(root, 'warm.bin'); // the root's real path, once per process
  const partial = await count(() => resolveInsideRoot(root, path.join(root, 'n.bin.portal-part')));
  expect(partial).toEqual({ result: path.join(root, 'n.bin.portal-part'), calls: ['lstatSync'] });
  const existing = await count(() => resolveInsideRoot(root, 'old.bin'));
  expect(existing).toEqual({ result: path.join(root, 'old.bin'), calls: ['lstatSync'] });
  // a sub-folder still takes the walk, and gives the same path
  const sub = await count(() => resolveInsideRoot(root, 'sub/d.bin'));
  expect(sub.result).toBe(path.join(root, 'sub', 'd.bin'));
  expect(sub.calls).toContain('realpath');
});

test('resolveInsideRoot: a link directly in the root that points outside it is still resolved and refused', async () => {
  await expect(resolveInsideRoot(root, 'escape.bin')).rejects.toMatchObject({
    code: 'PORTAL_OUTPUT_OUTSIDE_ROOT',
    message: expect.stringContaining('outside the output root'),
  });
  await expect(resolveInsideRoot(root, path.join(root, 'out-dir'))).rejects.toMatchObject({
    code: 'PORTAL_OUTPUT_OUTSIDE_ROOT',
  });
  await expect(resolveInsideRoot(root, root)).rejects.toMatchObject({ code: 'PORTAL_OUTPUT_OUTSIDE_ROOT' });
});
