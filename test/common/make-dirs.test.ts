/**
 * makeDirs: `mkdir -p` whose error names the real cause. Node's recursive mkdir answers ENOENT ("no such file or
 * directory, mkdir '<dir>'") when a folder cannot be made on a read-only mount (EROFS), so `portal serve
 * --state-dir <read-only mount>/new` printed that with a stack trace, exit 4 (trial finding). The fake file system
 * below answers as Node does on such a mount (checked with `unshare -m` + a read-only bind mount: recursive mkdir
 * ENOENT, a plain mkdir of the same folder EROFS).
 */
import { mkdtemp, rm, stat, writeFile, lstat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { makeDirs, type MakeDirsFs } from '../../common/make-dirs.js';
import { explainSystemError } from '../../cli/system-errors.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'portal-make-dirs-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const sysError = (code: string, syscall: string, p: string): NodeJS.ErrnoException =>
  Object.assign(new Error(`${code}: ${syscall} '${p}'`), { code, syscall, path: p });

/** A read-only mount at `/ro` (existing, empty): what Node's mkdir answers there. */
function readOnlyMount(): MakeDirsFs & { made: string[] } {
  const made: string[] = [];
  return {
    made,
    mkdir: async (d, opts) => {
      if (!d.startsWith('/ro/')) throw new Error(`unexpected mkdir ${d}`);
      throw sysError(opts.recursive ? 'ENOENT' : 'EROFS', 'mkdir', d);
    },
    lstat: async (p) => {
      if (p === '/' || p === '/ro') return {};
      throw sysError('ENOENT', 'lstat', p);
    },
  };
}

test('on a read-only mount the error is EROFS naming the first folder that cannot be made, not ENOENT', async () => {
  await expect(makeDirs('/ro/new/deeper', 0o700, readOnlyMount())).rejects.toMatchObject({
    code: 'EROFS',
    syscall: 'mkdir',
    path: '/ro/new',
  });
});

test('serve --state-dir on a read-only mount: the EROFS error becomes PORTAL_CONFIG_INVALID naming the flag and folder', async () => {
  for (const [stateDir, msg] of [
    ['/ro/new', '--state-dir /ro/new: cannot create the folder /ro/new: read-only file system (EROFS)'],
    // a folder above the one asked for is the one that cannot be made
    [
      '/ro/new/deeper',
      '--state-dir /ro/new/deeper: cannot create the folder /ro/new: read-only file system (EROFS)',
    ],
  ]) {
    const err = await makeDirs(stateDir, 0o700, readOnlyMount()).catch((e: unknown) => e);
    const named = explainSystemError(err, { 'state-dir': stateDir }) as { code?: string; message?: string };
    expect(named.code).toBe('PORTAL_CONFIG_INVALID');
    expect(named.message).toBe(msg);
  }
  // a relative --state-dir, resolved against the working folder as serve does
  const rel = path.relative(process.cwd(), path.join(dir, 'x', 'y'));
  const named = explainSystemError(sysError('EROFS', 'mkdir', path.join(dir, 'x')), { 'state-dir': rel }) as {
    message?: string;
  };
  expect(named.message).toBe(
    `--state-dir ${rel}: cannot create the folder ${path.join(dir, 'x')}: read-only file system (EROFS)`,
  );
});

test('real file system: nested folders are made with the mode; an existing one is fine; a file in the way is ENOTDIR', async () => {
  const nested = path.join(dir, 'a', 'b', 'c');
  await makeDirs(nested, 0o700);
  expect((await stat(nested)).isDirectory()).toBe(true);
  expect((await stat(nested)).mode & 0o777).toBe(0o700);
  await makeDirs(nested, 0o700);
  const file = path.join(dir, 'file');
  await writeFile(file, 'x');
  await expect(makeDirs(path.join(file, 'sub', 'x'))).rejects.toMatchObject({ code: 'ENOTDIR' });
  await expect(lstat(path.join(file, 'sub'))).rejects.toMatchObject({ code: 'ENOTDIR' });
});

test('a folder made by someone else between the two tries (EEXIST) is accepted', async () => {
  let tries = 0;
  const fs: MakeDirsFs = {
    mkdir: async (d, opts) => {
      tries++;
      if (opts.recursive) throw sysError('ENOENT', 'mkdir', d);
      throw sysError('EEXIST', 'mkdir', d);
    },
    lstat: async (p) => {
      if (p === '/' || p === '/x') return {};
      throw sysError('ENOENT', 'lstat', p);
    },
  };
  await expect(makeDirs('/x/y/z', undefined, fs)).resolves.toBeUndefined();
  expect(tries).toBe(3);
});
