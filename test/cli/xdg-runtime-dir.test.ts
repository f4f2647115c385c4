import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureXdgRuntimeDir } from '../../cli/env.js';

/**
 * The runtime folder's name is predictable (`$TMPDIR/portal-xdg-<uid>`), so another local user can make it before
 * Portal runs: only a real folder of this user with mode 0700 is taken (trial report finding 3).
 */
describe('ensureXdgRuntimeDir and a portal-xdg folder someone else made', () => {
  const uid = process.getuid!();
  let tmp: string;
  let dir: string;
  beforeEach(() => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'portal-xdg-test-'));
    dir = path.join(tmp, `portal-xdg-${uid}`);
  });
  afterEach(() => rmSync(tmp, { recursive: true, force: true }));

  const run = (opts: { uid?: number } = {}): { xdg: string | undefined; warnings: string[] } => {
    const env: NodeJS.ProcessEnv = { TMPDIR: tmp };
    const warnings: string[] = [];
    ensureXdgRuntimeDir(env, { ...opts, warn: (m) => warnings.push(m) });
    return { xdg: env.XDG_RUNTIME_DIR, warnings };
  };

  test('xdg runtime dir: an existing folder of this user with mode 0700 is used, without a warning', () => {
    mkdirSync(dir, { mode: 0o700 });
    chmodSync(dir, 0o700);
    expect(run()).toEqual({ xdg: dir, warnings: [] });
  });

  test('xdg runtime dir: a folder with mode 0777 is not used, and the warning names it and its mode', () => {
    mkdirSync(dir);
    chmodSync(dir, 0o777);
    expect(run()).toEqual({
      xdg: undefined,
      warnings: [
        `${dir} is mode 0777, not 0700: not used as XDG_RUNTIME_DIR (another user may have made it; remove it, or set XDG_RUNTIME_DIR to a private folder)`,
      ],
    });
  });

  test('xdg runtime dir: a symbolic link to a private folder of this user is not used', () => {
    const target = path.join(tmp, 'elsewhere');
    mkdirSync(target, { mode: 0o700 });
    symlinkSync(target, dir);
    const r = run();
    expect(r.xdg).toBeUndefined();
    expect(r.warnings).toEqual([expect.stringContaining(`${dir} is a symbolic link: not used`)]);
  });

  test('xdg runtime dir: a folder owned by another user (mode 0700) is not used', () => {
    // as another user sees this user's folder: the owner differs from the uid asked for
    mkdirSync(path.join(tmp, `portal-xdg-${uid + 1}`), { mode: 0o700 });
    const other = run({ uid: uid + 1 });
    expect(other.xdg).toBeUndefined();
    expect(other.warnings).toEqual([expect.stringContaining(`is owned by uid ${uid}, not ${uid + 1}`)]);
    if (uid === 0) {
      // as root (CI containers): a real folder of `nobody`, mode 0777, as the trial made it
      mkdirSync(dir);
      chmodSync(dir, 0o777);
      chownSync(dir, 65534, 65534);
      const r = run();
      expect(r.xdg).toBeUndefined();
      expect(r.warnings).toEqual([expect.stringContaining(`${dir} is owned by uid 65534, not 0`)]);
    }
  });

  test('xdg runtime dir: a missing folder is made with mode 0700 and used', () => {
    const r = run();
    expect(r).toEqual({ xdg: dir, warnings: [] });
  });
});
