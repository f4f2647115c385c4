import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { execFileSync, spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { startBadMirror, type BadMirror } from '../helpers/bad-mirror.js';
import { PORTAL_MAIN, runPortal } from '../helpers/portal-cli.js';

/** `portal fetch` under `ulimit -f` (a real shell limit): the output cannot grow past it, whatever the source. */
describe('portal fetch: a local write error is the output’s, not the sources’ (real CLI, real HTTP mirror)', () => {
  let dir: string;
  let mirror: BadMirror;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'portal-local-io-'));
    mirror = await startBadMirror(randomBytes(8 * 2 ** 20));
  });
  afterAll(async () => {
    await mirror?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('EFBIG (ulimit -f 4096 KiB, an 8 MiB file): one local error naming the output and the errno, exit 3, no source blamed', async () => {
    const out = path.join(dir, 'u.bin');
    const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = spawn(
        'bash',
        [
          '-c',
          `ulimit -f 4096 && exec "${process.execPath}" "${PORTAL_MAIN}" fetch "$0" --out "$1"`,
          mirror.url,
          out,
        ],
        { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, PORTAL_LOG_LEVEL: 'warn' } },
      );
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('close', (code) => resolve({ code, stderr }));
    });
    expect(r.stderr).toContain("the output cannot be written (a local error, not a source's)");
    expect(r.stderr).toContain(`${out}.portal-part`);
    expect(r.stderr).toContain('EFBIG: file too large');
    expect(r.stderr).not.toContain('cannot be served by any source');
    expect(r.stderr).not.toContain(mirror.url);
    expect(r.code).toBe(3);
  }, 60_000);
  test('a full disk part-way (an 8 MiB file into a 2 MiB tmpfs): the fetch ends with one line saying so, not the same cause again from the journal, the reminders and the stopped host', async () => {
    const small = await mkdtemp(path.join(tmpdir(), 'portal-full-part-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', small]);
    try {
      const r = await runPortal(['fetch', mirror.url, '--out', 'out.bin'], {
        cwd: small,
        timeoutMs: 60_000,
        env: { PORTAL_LOG_LEVEL: 'warn' },
      });
      expect(r.code).toBe(3);
      const lines = r.stderr.split(/\r|\n/).filter((l) => l.startsWith('portal: '));
      // the fetch's own last word, naming the file and the code
      expect(lines.filter((l) => l.includes('no space left on device'))).toEqual([
        expect.stringMatching(
          /^portal: transfer \S+ failed: no space left on device: cannot write .*out\.bin\.portal-part.*\[PORTAL_TRANSFER_FAILED\]$/,
        ),
      ]);
      expect(r.stderr).not.toMatch(/ENOSPC|host is stopped|bus handler failed|error: transfer failed/);
      expect(r.stderr).not.toMatch(/^\s+at /m);
    } finally {
      execFileSync('umount', [small]);
      await rm(small, { recursive: true, force: true });
    }
  }, 90_000);

  test('a full disk at the journal write (8 KiB left on a tmpfs): "no space left on device" naming the journal file, exit 3, no stack, no folder left', async () => {
    // a 1 MiB tmpfs filled but 8 KiB: the lock fits, the journal does not (mount needs root, as test/security does)
    const small = await mkdtemp(path.join(tmpdir(), 'portal-full-journal-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', small]);
    try {
      await writeFile(path.join(small, 'filler'), Buffer.alloc(2 ** 20 - 8192));
      const r = await runPortal(['fetch', mirror.url, '--out', 'out.bin'], { cwd: small, timeoutMs: 60_000 });
      expect(r.stderr).toMatch(
        new RegExp(
          `portal: no space left on device: cannot write ${small}/out\\.bin\\.portal/\\S+ \\(ENOSPC\\) \\[PORTAL_NO_SPACE\\]`,
        ),
      );
      expect(r.stderr).not.toContain('PORTAL_INTERNAL');
      expect(r.stderr).not.toMatch(/^\s+at /m);
      expect(r.code).toBe(3);
      expect((await readdir(small)).sort()).toEqual(['filler']);
    } finally {
      execFileSync('umount', [small]);
      await rm(small, { recursive: true, force: true });
    }
  }, 90_000);
});
