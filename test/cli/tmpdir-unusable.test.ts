/**
 * TMPDIR that is not a writable folder (a file, a missing folder): every command used to die in ensureXdgRuntimeDir
 * with a Node stack trace (exit 1), and a missing TMPDIR was created. Now help, manifest and serve work, and what
 * truly needs a temporary folder (`fetch --out -`, `manifest --out -`) says in one line that TMPDIR is unusable
 * (exit 2). Real processes of the built CLI.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { ensureXdgRuntimeDir, makeTempDir } from '../../cli/env.js';
import { embeddedServeArgs, runPortal, type PortalRun } from '../helpers/portal-cli.js';

let dir: string;
let file: string; // a regular file: TMPDIR pointing there is not a folder
let missing: string; // a folder that does not exist (and must not be created)
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'portal-tmpdir-bad-'));
  file = path.join(dir, 'f.bin');
  await writeFile(file, randomBytes(100_000));
  missing = path.join(dir, 'no-such-dir');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const noStack = (r: PortalRun): void => {
  expect(r.stderr).not.toMatch(/\n\s+at /);
  expect(r.stderr).not.toContain('portal-xdg');
};

describe('ensureXdgRuntimeDir and makeTempDir with an unusable temp dir', () => {
  test('TMPDIR a file or missing: XDG_RUNTIME_DIR stays unset, no throw, the missing folder is not created', () => {
    for (const bad of [file, missing]) {
      const env: NodeJS.ProcessEnv = { TMPDIR: bad };
      expect(() => ensureXdgRuntimeDir(env)).not.toThrow();
      expect(env.XDG_RUNTIME_DIR).toBeUndefined();
    }
    expect(existsSync(missing)).toBe(false);
  });

  test('a usable TMPDIR: the portal-xdg folder is made there (0700) and used again', () => {
    const root = mkdtempSync(path.join(dir, 'ok-'));
    const a: NodeJS.ProcessEnv = { TMPDIR: root };
    ensureXdgRuntimeDir(a);
    const b: NodeJS.ProcessEnv = { TMPDIR: `${root}/` };
    ensureXdgRuntimeDir(b);
    expect(a.XDG_RUNTIME_DIR).toBe(path.join(root, `portal-xdg-${process.getuid!()}`));
    expect(statSync(a.XDG_RUNTIME_DIR!).mode & 0o777).toBe(0o700);
    expect(b.XDG_RUNTIME_DIR).toBe(a.XDG_RUNTIME_DIR);
  });

  test('makeTempDir names TMPDIR and why it cannot be used (PORTAL_CONFIG_INVALID)', () => {
    expect(() => makeTempDir('x-', '--out -', { TMPDIR: file })).toThrow(
      expect.objectContaining({
        code: 'PORTAL_CONFIG_INVALID',
        message: `TMPDIR ${file}: cannot create a temporary folder for --out -: it is not a folder (ENOTDIR); set TMPDIR to a writable folder`,
      }),
    );
    expect(() => makeTempDir('x-', '--out -', { TMPDIR: missing })).toThrow(
      expect.objectContaining({ message: expect.stringContaining('it does not exist (ENOENT)') }),
    );
    expect(existsSync(missing)).toBe(false);
    const made = makeTempDir('x-', '--out -', { TMPDIR: dir });
    expect(path.dirname(made)).toBe(dir);
    expect(statSync(made).isDirectory()).toBe(true);
  });
});

describe('the CLI with TMPDIR not a writable folder (real processes)', () => {
  test('--help, fetch --help: exit 0 with TMPDIR a file or missing; the missing folder is not created', async () => {
    for (const bad of [file, missing])
      for (const args of [['--help'], ['fetch', '--help']]) {
        const r = await runPortal(args, { env: { TMPDIR: bad, XDG_RUNTIME_DIR: '' } });
        expect(r.code).toBe(0);
        expect(r.stdout).toContain('portal');
        noStack(r);
      }
    expect(existsSync(missing)).toBe(false);
  }, 60_000);

  test('manifest <file>: writes the manifest with TMPDIR a file; --out - says in one line that TMPDIR is unusable', async () => {
    const out = path.join(dir, 'm.json');
    const ok = await runPortal(['manifest', file, '--out', out], {
      env: { TMPDIR: file, XDG_RUNTIME_DIR: '' },
    });
    expect(ok.code).toBe(0);
    noStack(ok);
    expect(JSON.parse(readFileSync(out, 'utf8'))).toEqual(
      expect.objectContaining({ fileSize: 100_000, name: 'f.bin' }),
    );
    const r = await runPortal(['manifest', file, '--out', '-'], {
      env: { TMPDIR: missing, XDG_RUNTIME_DIR: '' },
    });
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe(
      `portal: TMPDIR ${missing}: cannot create a temporary folder for --out -: it does not exist (ENOENT); set TMPDIR to a writable folder [PORTAL_CONFIG_INVALID]`,
    );
    expect(existsSync(missing)).toBe(false);
  }, 60_000);

  test('fetch <url> --out FILE works with TMPDIR a file; fetch --out - names TMPDIR, exit 2', async () => {
    const bytes = readFileSync(file);
    const sha = createHash('sha256').update(bytes).digest('hex');
    const server = http.createServer((req, res) => {
      const m = /^bytes=(\d+)-(\d+)?$/.exec(req.headers.range ?? '');
      const a = m ? Number(m[1]) : 0;
      const b = m && m[2] !== undefined ? Math.min(Number(m[2]), bytes.length - 1) : bytes.length - 1;
      res.writeHead(m ? 206 : 200, {
        'content-length': String(b - a + 1),
        'accept-ranges': 'bytes',
        ...(m ? { 'content-range': `bytes ${a}-${b}/${bytes.length}` } : {}),
      });
      res.end(req.method === 'HEAD' ? undefined : bytes.subarray(a, b + 1));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/f.bin`;
    try {
      const out = path.join(dir, 'got.bin');
      const env = { TMPDIR: file, XDG_RUNTIME_DIR: '' };
      const ok = await runPortal(['fetch', url, '--out', out, '--checksum', `sha-256=${sha}`], { env });
      expect(ok.code).toBe(0);
      noStack(ok);
      expect(readFileSync(out).equals(bytes)).toBe(true);
      const r = await runPortal(['fetch', url, '--out', '-', '--checksum', `sha-256=${sha}`], { env });
      expect(r.code).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr.trim()).toBe(
        `portal: TMPDIR ${file}: cannot create a temporary folder for --out - (the file is assembled there): it is not a folder (ENOTDIR); set TMPDIR to a writable folder [PORTAL_CONFIG_INVALID]`,
      );
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  }, 90_000);

  test('serve starts and answers /healthz with TMPDIR missing, and does not create it', async () => {
    let health: Promise<number> | undefined;
    const r = await runPortal(embeddedServeArgs('--app-port', '0', '--json'), {
      cwd: dir,
      env: { TMPDIR: missing, XDG_RUNTIME_DIR: '' },
      timeoutMs: 60_000,
      onLine: (line, child) => {
        const j = JSON.parse(line) as { type?: string; appPort?: number };
        if (health || j.type !== 'ready') return;
        health = fetch(`http://127.0.0.1:${j.appPort}/healthz`).then((res) => res.status);
        void health.finally(() => child.kill('SIGTERM'));
      },
    });
    noStack(r);
    expect(await health).toBe(200);
    expect(r.code).toBe(0);
    expect(existsSync(missing)).toBe(false);
  }, 70_000);
});
