/**
 * `portal edge` errors name the flag the user gave, not createEdgeServer's option path: `--file` on a path that
 * cannot be opened printed `portal: opts.source.path: cannot open …` (trial finding), `--put-token ''`
 * `opts.accept.token: …`; a folder as --file said it "has 4096 bytes"; --manifest-dir and --tls-cert gave no cause.
 * Real processes of the built CLI; each is one line, exit 2.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { createManifest, saveManifest } from '../../transfer/index.js';
import { runPortal } from '../helpers/portal-cli.js';
import { edgeFlagError } from '../../cli/commands/edge.js';
import { PortalError } from '../../common/errors.js';

let dir: string;
let file: string;
let manifest: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'portal-edge-flags-'));
  file = path.join(dir, 'f.bin');
  await writeFile(file, randomBytes(100_000));
  manifest = path.join(dir, 'f.manifest.json');
  await saveManifest(manifest, await createManifest(file, { chunkSize: 65536 }));
  await mkdir(path.join(dir, 'folder'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const edge = async (args: string[]): Promise<string> => {
  const r = await runPortal(['edge', '--manifest', manifest, '--port', '0', ...args], {
    cwd: dir,
    timeoutMs: 30_000,
  });
  expect(r.code).toBe(2);
  expect(r.stderr.trim().split('\n')).toHaveLength(1);
  expect(r.stderr).not.toContain('opts.');
  return r.stderr.trim();
};

test('--accept --file that cannot be opened names --file and the cause', async () => {
  expect(await edge(['--accept', '--file', 'no-such-dir/x.bin'])).toBe(
    "portal: --file: cannot open no-such-dir/x.bin: ENOENT: no such file or directory, open 'no-such-dir/x.bin' [PORTAL_CONFIG_INVALID]",
  );
}, 40_000);

test('an empty --put-token names --put-token', async () => {
  expect(await edge(['--accept', '--file', file, '--put-token', ''])).toBe(
    'portal: --put-token: expected a non-empty string [PORTAL_CONFIG_INVALID]',
  );
}, 40_000);

test('a folder as --file is named as one (was "has 4096 bytes"), with and without --accept', async () => {
  for (const extra of [[], ['--accept']])
    expect(await edge(['--file', 'folder', ...extra])).toBe(
      'portal: --file folder: is a folder, not a file [PORTAL_CONFIG_INVALID]',
    );
}, 40_000);

test('--manifest-dir that cannot be made names the flag and the cause; --tls-cert that cannot be read the cause', async () => {
  expect(await edge(['--file', file, '--manifest-dir', 'f.bin/sub'])).toBe(
    'portal: --manifest-dir f.bin/sub: cannot create it (ENOTDIR: not a directory) [PORTAL_CONFIG_INVALID]',
  );
  expect(await edge(['--file', file, '--tls-cert', 'nope.pem', '--tls-key', 'nope.key'])).toBe(
    'portal: --tls-cert nope.pem: cannot read the file (no such file) [PORTAL_CONFIG_INVALID]',
  );
}, 40_000);

test('edgeFlagError maps each option portal edge sets to its flag, and leaves other errors alone', () => {
  const cases: [string, string][] = [
    ['opts.source.path: cannot open x: EROFS', '--file: cannot open x: EROFS'],
    ['opts.source: x has 1 bytes, manifest m says 2', '--file: x has 1 bytes, manifest m says 2'],
    ['opts.holds: chunk index 9 is outside [0, 2)', '--holds: chunk index 9 is outside [0, 2)'],
    [
      'opts.bandwidthBytesPerSec: expected a positive number, got -1',
      '--rate: expected a positive number, got -1',
    ],
    ['opts.rttMs: expected', '--rtt: expected'],
    ['opts.faults.failRate: expected', '--fail-rate: expected'],
    ['opts.faults.corruptRate: expected', '--corrupt-rate: expected'],
    ['opts.faults.offlineAtMs: expected', '--offline-at: expected'],
    ['opts.accept.token: expected a non-empty string', '--put-token: expected a non-empty string'],
  ];
  for (const [msg, want] of cases) {
    const got = edgeFlagError(new PortalError('PORTAL_INVALID_ARGUMENT', msg)) as PortalError;
    expect([got.code, got.message]).toEqual(['PORTAL_CONFIG_INVALID', want]);
  }
  const mismatch = edgeFlagError(
    new PortalError('PORTAL_MANIFEST_MISMATCH', 'opts.source: x'),
  ) as PortalError;
  expect([mismatch.code, mismatch.message]).toEqual(['PORTAL_MANIFEST_MISMATCH', '--file: x']);
  const other = new PortalError('PORTAL_INVALID_ARGUMENT', 'something else');
  expect(edgeFlagError(other)).toBe(other);
});
