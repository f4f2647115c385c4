import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { startBadMirror, type BadMirror } from '../helpers/bad-mirror.js';
import { runPortal } from '../helpers/portal-cli.js';

describe('--help of every command: the flag column and its text never run together', () => {
  test.each(['demo', 'fetch', 'manifest', 'edge', 'serve', 'executor', 'coord-demo', 'peer'])(
    'portal %s --help: two spaces at least between a flag and its text',
    async (name) => {
      const r = await runPortal([name, '--help'], { timeoutMs: 30_000 });
      expect(r.code).toBe(0);
      const flagLines = r.stdout.split('\n').filter((l) => l.startsWith('  --'));
      expect(flagLines.length).toBeGreaterThan(2);
      for (const l of flagLines) {
        // "  --name <metavar> (repeat)" then 2+ spaces and the text, or the flag alone on its line
        const m = /^ {2}--[a-z0-9-]+(?: <[^>]+>)?(?: \(repeat\))?(?<rest>.*)$/.exec(l);
        expect(m).not.toBeNull();
        const rest = m!.groups!.rest;
        if (rest !== '') expect(rest).toMatch(/^ {2,}\S/);
      }
      // the flags of lists that are not split at commas do not show a comma metavar
      if (name === 'fetch') {
        expect(r.stdout).toMatch(/^ {2}--header <value> \(repeat\) +'Name: value'/m);
        expect(r.stdout).toMatch(/^ {2}--edge <value> \(repeat\) /m);
      }
    },
    40_000,
  );
});

describe('URLs and headers are never split at commas (real CLI, real HTTP mirror)', () => {
  let dir: string;
  let mirror: BadMirror;
  const bytes = randomBytes(300_000);
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'portal-lists-'));
    mirror = await startBadMirror(bytes);
    await writeFile(path.join(dir, 'f.bin'), bytes);
  });
  afterAll(async () => {
    await mirror?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('fetch --edge with a signed URL whose query holds a comma, and a --header with a comma: fetched as given', async () => {
    const m = await runPortal(['manifest', 'f.bin', '--out', 'f.json'], { cwd: dir, timeoutMs: 30_000 });
    expect(m.code).toBe(0);
    const url = `${mirror.url}?response-content-disposition=attachment,filename=f.bin`;
    const r = await runPortal(
      ['fetch', 'f.json', '--edge', `${url}#mirror`, '--header', 'Accept: a, b', '--out', 'x.bin'],
      { cwd: dir, timeoutMs: 60_000 },
    );
    expect(r.stderr).not.toContain('portal:');
    expect(r.code).toBe(0);
    expect((await readFile(path.join(dir, 'x.bin'))).equals(bytes)).toBe(true);
    const gets = mirror.requests.filter((q) => q.method === 'GET');
    expect(gets.length).toBeGreaterThan(0);
    for (const q of gets) {
      expect(q.path).toBe('/file.bin?response-content-disposition=attachment,filename=f.bin');
      expect(q.headers.accept).toBe('a, b');
    }
  }, 70_000);

  test('manifest --metalink --url with a comma: one <url>, as given', async () => {
    const url = `${mirror.url}?a=1,2`;
    const r = await runPortal(['manifest', 'f.bin', '--metalink', '--url', url, '--out', 'f.meta4'], {
      cwd: dir,
      timeoutMs: 30_000,
    });
    expect(r.code).toBe(0);
    const xml = await readFile(path.join(dir, 'f.meta4'), 'utf8');
    expect(xml.match(/<url[ >]/g)).toHaveLength(1);
    expect(xml).toContain('?a=1,2</url>');
  }, 40_000);
});

describe('portal manifest --out - (real CLI)', () => {
  test('writes the Metalink to stdout, the summary to stderr, and no file named "-"; aria2c-style readers get the XML', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'portal-manifest-stdout-'));
    try {
      await writeFile(path.join(dir, 'one.bin'), 'x');
      const r = await runPortal(
        ['manifest', 'one.bin', '--metalink', '--url', 'http://127.0.0.1:1/one.bin', '--out', '-'],
        { cwd: dir, timeoutMs: 30_000 },
      );
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(
        /^<\?xml[\s\S]*<url[^>]*>http:\/\/127\.0\.0\.1:1\/one\.bin<\/url>[\s\S]*<\/metalink>\s*$/,
      );
      expect(r.stderr).toMatch(/^wrote stdout: 1 chunks/m);
      expect(existsSync(path.join(dir, '-'))).toBe(false);
      const j = await runPortal(['manifest', 'one.bin', '--out', '-'], { cwd: dir, timeoutMs: 30_000 });
      expect(JSON.parse(j.stdout)).toMatchObject({ name: 'one.bin', fileSize: 1 });
      // --url without --metalink would be dropped silently (a manifest has no URLs): refused, nothing written
      const noMeta = await runPortal(['manifest', 'one.bin', '--url', 'http://127.0.0.1:1/one.bin'], {
        cwd: dir,
        timeoutMs: 30_000,
      });
      expect(noMeta.code).toBe(2);
      expect(noMeta.stderr).toContain('manifest --url: only a Metalink lists URLs (add --metalink)');
      expect(existsSync(path.join(dir, 'one.bin.manifest.json'))).toBe(false);
      const both = await runPortal(['manifest', 'one.bin', '--out', '-', '--json'], {
        cwd: dir,
        timeoutMs: 30_000,
      });
      expect(both.code).toBe(2);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
