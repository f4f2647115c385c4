import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { createManifest, saveManifest } from '../../transfer/index.js';
import { runPortal } from '../helpers/portal-cli.js';

/** `--edge URL#opt,…` options out of range are refused when parsed (exit 2), before anything is fetched. */
describe('portal fetch --edge URL#options: ranges checked at parse time (real CLI)', () => {
  let dir: string;
  let manifestPath: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'portal-edge-spec-'));
    await writeFile(path.join(dir, 'f.bin'), randomBytes(70_000));
    manifestPath = path.join(dir, 'f.manifest.json');
    await saveManifest(manifestPath, await createManifest(path.join(dir, 'f.bin'), { chunkSize: 65536 }));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test.each([
    [
      'max=-1',
      'max expects an integer from 0 to 1024 (requests in flight to this edge at once, 0 = no limit), got "-1"',
    ],
    [
      'max=2.5',
      'max expects an integer from 0 to 1024 (requests in flight to this edge at once, 0 = no limit), got "2.5"',
    ],
    ['max=5000', 'max expects an integer from 0 to 1024'],
    [
      'max=',
      'max expects an integer from 0 to 1024 (requests in flight to this edge at once, 0 = no limit), got ""',
    ],
    ['bw=0', 'bw expects a number from 1 to'],
    ['bw=-5', 'bw expects a number from 1 to'],
    ['metered=no', 'metered takes no value, got "no"'],
  ])(
    '#%s: exit 2 naming the option and the valid range',
    async (opt, why) => {
      const spec = `http://127.0.0.1:9#${opt}`;
      const r = await runPortal(['fetch', manifestPath, '--edge', spec, '--out', path.join(dir, 'o.bin')], {
        timeoutMs: 30_000,
      });
      expect(r.stderr).toContain(`--edge ${spec}: ${why}`);
      expect(r.stderr).toContain('[PORTAL_CONFIG_INVALID]');
      expect(r.code).toBe(2);
    },
    30_000,
  );
});

/**
 * Ids the CLI takes become actor ids and NATS subject tokens: one over MAX_ACTOR_ID_BYTES (256 bytes of UTF-8) is
 * refused where it is given, naming the flag and the limit (exit 2), as the actor API refuses it.
 */
describe('ids given to the CLI: at most 256 bytes of UTF-8 (real CLI)', () => {
  let dir: string;
  let manifestPath: string;
  const over = `${'€'.repeat(85)}xy`; // 257 bytes
  const why = 'expected a well-formed string of 1 to 256 bytes of UTF-8';
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'portal-id-flags-'));
    await writeFile(path.join(dir, 'f.bin'), randomBytes(70_000));
    manifestPath = path.join(dir, 'f.manifest.json');
    await saveManifest(manifestPath, await createManifest(path.join(dir, 'f.bin'), { chunkSize: 65536 }));
    await writeFile(
      path.join(dir, 'edges.json'),
      JSON.stringify([
        { id: over, config: { url: 'http://127.0.0.1:9', kind: 'portal', flags: 0, maxParallel: 1 } },
      ]),
    );
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test.each([
    [
      'fetch --edge URL#id=',
      () => ['fetch', manifestPath, '--edge', `http://127.0.0.1:9#id=${over}`],
      '#id=',
    ],
    [
      'fetch --edges-file',
      () => ['fetch', manifestPath, '--edges-file', path.join(dir, 'edges.json')],
      'edge [0]: id:',
    ],
    [
      'edge --id',
      () => ['edge', '--file', path.join(dir, 'f.bin'), '--manifest', manifestPath, '--id', over],
      '--id',
    ],
    [
      'executor --transfer',
      () => ['executor', '--nats', 'nats://127.0.0.1:9', '--transfer', over],
      '--transfer',
    ],
  ])(
    '%s: exit 2 naming the flag, the limit and the id size',
    async (_, args, flag) => {
      const r = await runPortal(
        [...args(), ...(args()[0] === 'fetch' ? ['--out', path.join(dir, 'o.bin')] : [])],
        {
          timeoutMs: 30_000,
        },
      );
      expect(r.stderr).toContain(flag);
      expect(r.stderr).toContain(`${why} (256 ASCII characters`);
      expect(r.stderr).toContain('(87 characters, 257 bytes of UTF-8) [PORTAL_CONFIG_INVALID]');
      expect(r.code).toBe(2);
    },
    30_000,
  );
});
