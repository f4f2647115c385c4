/**
 * A Metalink whose sha-256 pieces Portal cannot use warned "the Metalink has no sha-256 piece hashes" (trial
 * finding: pieces of length 1000, outside the supported 4 KiB–64 MiB). The warning now says what is true, and what
 * checks the file instead. Real `portal fetch` processes against a local mirror.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startBadMirror, type BadMirror } from '../helpers/bad-mirror.js';
import { runPortal } from '../helpers/portal-cli.js';
import { metalinkPiecesUnused } from '../../transfer/index.js';

const SIZE = 5000;
const bytes = randomBytes(SIZE);
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
let dir: string;
let mirror: BadMirror;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'portal-ml-pieces-'));
  mirror = await startBadMirror(bytes);
});
afterAll(async () => {
  await mirror.close();
  await rm(dir, { recursive: true, force: true });
});

/** Fetches a Metalink of the mirror's file with `inner` (hashes, pieces); answers exit code and warning lines. */
async function fetchWith(name: string, inner: string): Promise<{ code: number | null; warnings: string[] }> {
  const meta = path.join(dir, `${name}.meta4`);
  await writeFile(
    meta,
    `<?xml version="1.0" encoding="UTF-8"?><metalink xmlns="urn:ietf:params:xml:ns:metalink"><file name="${name}.bin"><size>${SIZE}</size>${inner}<url>${mirror.url}</url></file></metalink>`,
  );
  const out = path.join(dir, `${name}.out`);
  const r = await runPortal(['fetch', meta, '--out', out], { cwd: dir, timeoutMs: 60_000 });
  if (r.code === 0) expect((await readFile(out)).equals(bytes)).toBe(true);
  return { code: r.code, warnings: r.stderr.split('\n').filter((l) => l.startsWith('portal: warning:')) };
}

const pieces = (length: number): string =>
  `<pieces length="${length}" type="sha-256">${Array.from(
    { length: Math.ceil(SIZE / length) },
    (_, i) => `<hash>${sha(bytes.subarray(i * length, (i + 1) * length))}</hash>`,
  ).join('')}</pieces>`;

test('pieces of 1000 bytes (outside 4 KiB–64 MiB) and a file sha-256: says the length is outside, the whole file is checked', async () => {
  const r = await fetchWith('odd', `<hash type="sha-256">${sha(bytes)}</hash>${pieces(1000)}`);
  expect(r.code).toBe(0);
  expect(r.warnings).toContain(
    "portal: warning: the Metalink's sha-256 pieces of 1000 bytes are outside the supported 4 KiB–64 MiB (4096–67108864 bytes): its piece hashes are not used: chunks are checked by length only, the whole file by its hash once complete",
  );
  expect(r.warnings.join('\n')).not.toContain('has no sha-256 piece hashes');
}, 70_000);

test('no pieces at all, with a file sha-256: says there are none, the whole file is checked', async () => {
  const r = await fetchWith('nopieces', `<hash type="sha-256">${sha(bytes)}</hash>`);
  expect(r.code).toBe(0);
  expect(r.warnings).toContain(
    'portal: warning: the Metalink has no sha-256 piece hashes: chunks are checked by length only, the whole file by its hash once complete',
  );
}, 70_000);

test('pieces without a <size> are named as such', () => {
  expect(metalinkPiecesUnused({ name: 'a', urls: [], pieces: { length: 65536, hashes: [] } })).toBe(
    'the Metalink has sha-256 piece hashes but no <size>: its piece hashes are not used',
  );
  expect(
    metalinkPiecesUnused({ name: 'a', urls: [], pieces: { length: 128 * 1024 * 1024, hashes: [] } }),
  ).toContain('pieces of 134217728 bytes are outside the supported 4 KiB–64 MiB');
});
