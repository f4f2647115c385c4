import { execFile } from 'node:child_process';
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  createManifest,
  createHttpClient,
  parseMetalink,
  manifestFromMetalink,
  toMetalink,
  probeSource,
  agreeOnSources,
  chooseChunkSize,
  probedManifest,
  NO_CID,
  type HttpClient,
  type Manifest,
  type SourceProbe,
} from '../../transfer/index.js';
import { startNginx, type TestNginx } from '../../harness/nginx.js';
import { startBadMirror, type BadMirror } from '../helpers/bad-mirror.js';
import { makeTempDir, writeRandomFile } from './fixtures.js';

const run = promisify(execFile);
const CHUNK = 64 * 1024;
const SIZE = 7 * CHUNK + 4321;

let tmp: { dir: string; cleanup: () => Promise<void> };
let file: { path: string; bytes: Buffer };
let m: Manifest;
let nginx: TestNginx;
let client: HttpClient;
const mirrors: BadMirror[] = [];

beforeAll(async () => {
  tmp = await makeTempDir('metalink');
  await mkdir(join(tmp.dir, 'www'));
  file = await writeRandomFile(join(tmp.dir, 'www'), 'data.bin', SIZE, 9);
  m = await createManifest(file.path, { chunkSize: CHUNK });
  nginx = await startNginx({ root: join(tmp.dir, 'www') });
  client = createHttpClient({ proxy: false });
});
afterAll(async () => {
  await client?.close();
  await Promise.all(mirrors.map((s) => s.close()));
  await nginx?.stop();
  await tmp?.cleanup();
});

describe('metalink', () => {
  test('a Metalink written from a manifest reads back as the same manifest with its URLs in priority order', () => {
    const xml = toMetalink(m, [
      { url: `${nginx.httpUrl}/data.bin` },
      { url: 'https://b.example/data.bin', location: 'de' },
    ]);
    const [f] = parseMetalink(xml);
    expect(f.urls.map((u) => u.url)).toEqual([`${nginx.httpUrl}/data.bin`, 'https://b.example/data.bin']);
    expect(f.urls[1]).toMatchObject({ priority: 2, location: 'de' });
    expect(manifestFromMetalink(f)).toEqual(m);
  });

  test('aria2c downloads and verifies a file from the Metalink Portal writes', async () => {
    const meta = join(tmp.dir, 'data.meta4');
    await writeFile(meta, toMetalink(m, [{ url: `${nginx.httpUrl}/data.bin` }]));
    const out = join(tmp.dir, 'aria2-ok');
    await run('aria2c', ['-q', '--dir', out, '--check-integrity=true', '--allow-overwrite=true', '-M', meta]);
    expect((await readFile(join(out, 'data.bin'))).equals(file.bytes)).toBe(true);
  });

  test('aria2c refuses the download when the Metalink hash does not match (it really verifies)', async () => {
    const bad = {
      ...m,
      fileSha256: 'f'.repeat(64),
      chunks: m.chunks.map((c, i) => (i === 3 ? 'e'.repeat(64) : c)),
    };
    const meta = join(tmp.dir, 'bad.meta4');
    await writeFile(meta, toMetalink(bad, [{ url: `${nginx.httpUrl}/data.bin` }]));
    const err = await run('aria2c', [
      '-q',
      '--dir',
      join(tmp.dir, 'aria2-bad'),
      '--check-integrity=true',
      '-M',
      meta,
    ]).then(
      () => undefined,
      (e: { code?: number }) => e,
    );
    expect(err?.code).not.toBe(0);
    expect(err).toBeDefined();
  });

  test('elements are matched by namespace URI + local name: a prefixed v4 document (as aria2c reads it) gives the same files; foreign elements are ignored; v3 and undeclared prefixes are refused', async () => {
    const plain = toMetalink(m, [{ url: `${nginx.httpUrl}/data.bin` }]);
    // every element under the prefix m, the namespace declared once on the root
    const prefixed = plain.replace(/<(\/?)([a-z])/g, '<$1m:$2').replace('xmlns=', 'xmlns:m=');
    expect(prefixed).toContain('<m:metalink xmlns:m="urn:ietf:params:xml:ns:metalink">');
    // the default namespace on the root, a prefix for the same URI on one file, and foreign markup in between
    const mixed = plain
      .replace('<file ', '<ml:file xmlns:ml="urn:ietf:params:xml:ns:metalink" ')
      .replace('</file>', '<x:url xmlns:x="urn:example:other">http://evil.example/x</x:url></ml:file>');
    for (const [name, xml] of [
      ['prefixed', prefixed],
      ['mixed', mixed],
    ]) {
      const meta = join(tmp.dir, `${name}.meta4`);
      await writeFile(meta, xml);
      const out = join(tmp.dir, `aria2-${name}`);
      await run('aria2c', [
        '-q',
        '--dir',
        out,
        '--check-integrity=true',
        '--allow-overwrite=true',
        '-M',
        meta,
      ]);
      expect((await readFile(join(out, 'data.bin'))).equals(file.bytes)).toBe(true);
      const files = parseMetalink(xml, meta);
      expect(files).toEqual(parseMetalink(plain));
      expect(manifestFromMetalink(files[0])).toEqual(m);
    }
    // a foreign element named url at the root (aria2c 1.37 refuses this one, so it is parsed only)
    expect(
      parseMetalink(
        plain.replace('<generator>', '<url xmlns="urn:example:other">http://evil.example/y</url><generator>'),
      ),
    ).toEqual(parseMetalink(plain));
    // the default namespace undeclared on a file: that <file> is not Metalink's, so there is none
    expect(() => parseMetalink(plain.replace('<file ', '<file xmlns="" '), 'nons.meta4')).toThrow(
      'nons.meta4: no <file> element',
    );
    expect(() =>
      parseMetalink(
        '<m:metalink xmlns:m="http://www.metalinker.org/"><m:file name="a"/></m:metalink>',
        'v3.meta4',
      ),
    ).toThrow(
      'v3.meta4: expected Metalink v4 (<m:metalink> in namespace "urn:ietf:params:xml:ns:metalink"), got namespace "http://www.metalinker.org/"',
    );
    expect(() => parseMetalink(prefixed.replace(/<(\/?)m:url/g, '<$1q:url'), 'undeclared.meta4')).toThrow(
      /undeclared\.meta4: not well-formed XML \(the namespace prefix "q" of <q:url> is not declared\)/,
    );
    expect(() => parseMetalink('<m:metalink/>', 'bare.meta4')).toThrow(
      /bare\.meta4: not well-formed XML \(the namespace prefix "m" of <m:metalink> is not declared\)/,
    );
  });

  test('a document that is not Metalink v4 is refused naming the problem', () => {
    expect(() => parseMetalink('<metalink><file', 'x.meta4')).toThrow(/x\.meta4: not well-formed XML/);
    expect(() => parseMetalink('<metalink xmlns="urn:other"><file name="a"/></metalink>', 'y.meta4')).toThrow(
      /y\.meta4: expected Metalink v4/,
    );
    expect(() =>
      parseMetalink(
        '<metalink xmlns="urn:ietf:params:xml:ns:metalink"><file name="../a"><url>http://h/a</url></file></metalink>',
      ),
    ).toThrow(/no safe name/);
  });

  test('an entity declaration is refused as PORTAL_MANIFEST_INVALID naming the file (never resolved); numeric character references in names are decoded; control characters refused', () => {
    const ns = 'urn:ietf:params:xml:ns:metalink';
    const entity = `<?xml version="1.0"?><!DOCTYPE metalink [<!ENTITY x SYSTEM "file:///etc/hostname">]><metalink xmlns="${ns}"><file name="a"><url>http://h/&x;</url></file></metalink>`;
    let err: unknown;
    try {
      parseMetalink(entity, 'evil.meta4');
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({
      code: 'PORTAL_MANIFEST_INVALID',
      message: 'evil.meta4: a DOCTYPE is refused (a Metalink needs none; its entities are not expanded)',
    });
    const named = (name: string): string =>
      parseMetalink(`<metalink xmlns="${ns}"><file name="${name}"><url>http://h/a</url></file></metalink>`)[0]
        .name;
    expect(named('a&amp;b&#233;&#x41;.bin')).toBe('a&béA.bin');
    expect(() => named('a&#10;b.bin')).toThrow(
      /file \[0\] has a control character in its name \("a\\nb\.bin"\)/,
    );
    expect(() => named('a&#27;b.bin')).toThrow(
      /the character reference &#27; names a character XML does not allow/,
    );
  });
});

describe('mirrors without a manifest', () => {
  test('probing finds the size, and a mirror with another size is excluded and named', async () => {
    const other = await startBadMirror(file.bytes.subarray(0, SIZE - 10));
    mirrors.push(other);
    const probes = await Promise.all(
      [`${nginx.httpUrl}/data.bin`, other.url].map((u) => probeSource(client, u)),
    );
    probes.push(await probeSource(client, `${nginx.httpUrl}/data.bin?copy=2`));
    expect(() => agreeOnSources(probes)).toThrow(/no checksum can tell which is right/);
    const a = agreeOnSources(probes, { checksum: true });
    expect(a.size).toBe(SIZE);
    expect(a.agreed).toHaveLength(2);
    expect(a.excluded).toEqual([
      { url: other.url, why: `size ${SIZE - 10} differs from the ${SIZE} bytes most sources report` },
    ]);
  });

  test('sources of one size with different ETags: the warning says the checksum decides only when there is one', () => {
    const probe = (url: string, etag: string): SourceProbe => ({
      url,
      ok: true,
      size: 100,
      etag,
      ranges: true,
      duplicates: [],
    });
    const probes = [probe('http://a/f', '"a1"'), probe('http://b/f', '"b1"')];
    expect(agreeOnSources(probes).warnings).toEqual([
      'sources report different ETags ("a1", "b1"); the size agrees, so all are used and nothing can check the result: with no checksum, chunks of two versions of the file could be mixed (give --checksum, or name one source)',
    ]);
    expect(agreeOnSources(probes, { checksum: true }).warnings).toEqual([
      'sources report different ETags ("a1", "b1"); the size agrees, so all are used and the checksum decides',
    ]);
    const digest = probes.map((p) => ({ ...p, sha256: 'ab'.repeat(32) }));
    expect(agreeOnSources(digest).warnings[0]).toMatch(/the checksum decides$/);
  });

  test('Digests that disagree 1 vs 1 exclude no source: both are candidates; a majority still excludes the other', () => {
    const probe = (url: string, sha256: string): SourceProbe => ({
      url,
      ok: true,
      size: 100,
      sha256,
      duplicates: [],
    });
    const [x, y] = ['ab'.repeat(32), 'cd'.repeat(32)];
    const tie = agreeOnSources([probe('http://a/f', x), probe('http://b/f', y)]);
    expect(tie.excluded).toEqual([]);
    expect(tie.agreed.map((p) => p.url)).toEqual(['http://a/f', 'http://b/f']);
    expect(tie.sha256).toBeUndefined();
    expect(tie.digestCandidates).toEqual([
      { sha256: x, urls: ['http://a/f'] },
      { sha256: y, urls: ['http://b/f'] },
    ]);
    expect(tie.warnings).toEqual([
      `the sources' Digest headers disagree and no value has a majority (sha-256 ${x} from http://a/f; sha-256 ${y} from http://b/f): all are used, and the finished file must match one of them (give --checksum sha-256=HEX to decide up front)`,
    ]);
    // --checksum decides: no candidates, still nobody excluded for a tie
    const checked = agreeOnSources([probe('http://a/f', x), probe('http://b/f', y)], { checksum: true });
    expect(checked.digestCandidates).toBeUndefined();
    expect(checked.excluded).toEqual([]);
    // 2 vs 1: the majority's value, the other excluded as before
    const two = agreeOnSources([probe('http://a/f', x), probe('http://b/f', y), probe('http://c/f', y)]);
    expect(two.sha256).toBe(y);
    expect(two.excluded).toEqual([{ url: 'http://a/f', why: `Digest sha-256 ${x} differs from ${y}` }]);
  });

  test('a 404 source is excluded naming its status; with no source left the error lists each cause', async () => {
    const p = await probeSource(client, `${nginx.httpUrl}/missing.bin`);
    expect(p).toMatchObject({ ok: false, error: 'HTTP 404' });
    expect(() => agreeOnSources([p])).toThrow(
      /no source answered:\n {2}http:\/\/127\.0\.0\.1:\d+\/missing\.bin: HTTP 404/,
    );
  });

  test('RFC 6249 Link rel=duplicate and Digest headers are read', async () => {
    const s = await startBadMirror(file.bytes, () => ({ kind: 'ok' }));
    mirrors.push(s);
    // the bad mirror cannot add headers; nginx can
    const n2 = await startNginx({
      root: join(tmp.dir, 'www'),
      extra: `add_header Link '<${s.url}>; rel=duplicate; pri=1'; add_header Digest 'SHA-256=${Buffer.from(m.fileSha256, 'hex').toString('base64')}';`,
    });
    try {
      const p = await probeSource(client, `${n2.httpUrl}/data.bin`);
      expect(p.duplicates).toEqual([s.url]);
      expect(p.sha256).toBe(m.fileSha256);
    } finally {
      await n2.stop();
    }
  });

  test('chunk sizes give about 64 chunks within 256 KiB..16 MiB', () => {
    expect(chooseChunkSize(1000)).toBe(256 * 1024);
    expect(chooseChunkSize(1024 ** 3)).toBe(16 * 1024 * 1024);
    expect(chooseChunkSize(64 * 1024 * 1024)).toBe(1024 * 1024);
  });

  test('a probed manifest has no chunk hashes and an id of its sources when no checksum is known', () => {
    const a = probedManifest({ name: 'f', size: 10, identity: 'http://a/f' });
    const b = probedManifest({ name: 'f', size: 10, identity: 'http://b/f' });
    expect(a.chunks).toEqual([NO_CID]);
    expect(a.id).not.toBe(b.id);
    expect(probedManifest({ name: 'f', size: 10, identity: 'x', sha256: m.fileSha256 }).fileSha256).toBe(
      m.fileSha256,
    );
  });
});
