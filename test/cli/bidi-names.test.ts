/**
 * File names holding a Unicode bidi control are refused where names from sources are checked, as control
 * characters are (trial 3, H10): a Metalink `name="a&#x202E;nib.exe"` was written as `a<U+202E>nib.exe`, which
 * terminals and file managers show as `aexe.bin`. Real `portal fetch` processes against a loopback mirror, and the
 * name checks themselves.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startBadMirror, type BadMirror } from '../helpers/bad-mirror.js';
import { runPortal } from '../helpers/portal-cli.js';
import { escapeControl } from '../../common/redact.js';
import { parseMetalink } from '../../transfer/index.js';
import {
  fileNameFromUrl,
  outputNameFromManifest,
  refuseUnsafeOutputName,
} from '../../transfer/output-target.js';

const bytes = randomBytes(5000);
const BIDI = [
  '\u202a',
  '\u202b',
  '\u202c',
  '\u202d',
  '\u202e',
  '\u2066',
  '\u2067',
  '\u2068',
  '\u2069',
  '\u200e',
  '\u200f',
  '\u061c',
];
let dir: string;
let mirror: BadMirror;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'portal-bidi-'));
  mirror = await startBadMirror(bytes);
});
afterAll(async () => {
  await mirror.close();
  await rm(dir, { recursive: true, force: true });
});

describe('bidi names', () => {
  test('a Metalink file name with U+202E is refused by portal fetch (exit 2), nothing is written, the name is shown escaped', async () => {
    const cwd = await mkdtemp(path.join(dir, 'ml-'));
    const meta = path.join(dir, 'rlo.meta4');
    await writeFile(
      meta,
      `<?xml version="1.0" encoding="UTF-8"?><metalink xmlns="urn:ietf:params:xml:ns:metalink"><file name="a&#x202E;nib.exe"><size>5000</size><url>${mirror.url}</url></file></metalink>`,
    );
    const r = await runPortal(['fetch', meta], { cwd, timeoutMs: 60_000, env: { PORTAL_BACKEND: 'cpu' } });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      'rlo.meta4: file [0] has a bidi control character in its name ("a\\u202enib.exe"), which reorders how the name is shown',
    );
    expect(r.stderr).not.toContain('\u202e');
    expect(await readdir(cwd)).toEqual([]);
  }, 70_000);

  test('a URL whose last segment decodes to a bidi control is refused as an output name (exit 2)', async () => {
    const cwd = await mkdtemp(path.join(dir, 'url-'));
    const url = `${mirror.origin}/a%E2%80%AEnib.exe`;
    const r = await runPortal(['fetch', url], { cwd, timeoutMs: 60_000, env: { PORTAL_BACKEND: 'cpu' } });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('the file name "a\\u202enib.exe" decoded from');
    expect(r.stderr).toContain('contains a bidi control character');
    expect(await readdir(cwd)).toEqual([]);
  }, 70_000);

  test('every bidi control is refused in Metalink, manifest, URL-derived and output names; other Unicode names pass', () => {
    const ns = 'urn:ietf:params:xml:ns:metalink';
    const metalinkName = (name: string): string =>
      parseMetalink(`<metalink xmlns="${ns}"><file name="${name}"><url>http://h/a</url></file></metalink>`)[0]
        .name;
    for (const c of BIDI) {
      const name = `a${c}nib.exe`;
      expect(() => metalinkName(name)).toThrow(/has a bidi control character in its name/);
      expect(() => outputNameFromManifest(name)).toThrow(
        expect.objectContaining({ code: 'PORTAL_MANIFEST_INVALID' }),
      );
      expect(() => fileNameFromUrl(`http://h/${encodeURIComponent(name)}`, 'http://h/…', true)).toThrow(
        expect.objectContaining({ code: 'PORTAL_CONFIG_INVALID' }),
      );
      expect(() => refuseUnsafeOutputName(`/data/${name}`, `/data/${name}`)).toThrow(
        expect.objectContaining({ code: 'PORTAL_OUTPUT_REFUSED' }),
      );
      expect(escapeControl(name)).toBe(`a\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}nib.exe`);
    }
    // names in right-to-left scripts need no control characters and pass
    expect(metalinkName('שלום.txt')).toBe('שלום.txt');
    expect(outputNameFromManifest('ملف.bin')).toBe('ملف.bin');
    expect(fileNameFromUrl('http://h/caf%C3%A9.bin', 'http://h/…', true)).toBe('café.bin');
  });
});
