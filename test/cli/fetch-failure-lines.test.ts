/**
 * A `portal fetch` that fails says so in one line, its own, with one code (a trial found four ways it did not): a
 * whole-file mismatch printed the actor's 'transfer verification failed' log line first; an --out in a missing
 * folder, an existing --out and --swarm without NATS_URL were refused only after the sources were probed, after a
 * 'no checksum' warning about something else; a dead --edge printed its cause twice, the second time with two codes.
 * The built CLI as a real process against a real loopback mirror that counts the requests it gets.
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { freePort } from '../../common/net.js';
import { startBadMirror, type BadMirror } from '../helpers/bad-mirror.js';
import { runPortal } from '../helpers/portal-cli.js';
import { makeTempDir, writeRandomFile } from '../transfer/fixtures.js';

const SIZE = 3 * 262144 + 99;
let tmp: { dir: string; cleanup: () => Promise<void> };
let mirror: BadMirror;
let src: string;
let requests = 0;
let n = 0;

beforeAll(async () => {
  tmp = await makeTempDir('cli-fetch-failure-lines');
  const f = await writeRandomFile(tmp.dir, 'src.bin', SIZE, 7);
  src = f.path;
  mirror = await startBadMirror(f.bytes, () => {
    requests++;
    return { kind: 'ok' };
  });
});
afterAll(async () => {
  await mirror?.close();
  await tmp?.cleanup();
});

const env = { PORTAL_BACKEND: 'cpu', PORTAL_LOG_FORMAT: '', NATS_URL: '' };
/** stderr's lines that are messages (not the progress lines). */
const messages = (stderr: string) => stderr.split('\n').filter((l) => l.startsWith('portal:'));

describe('portal fetch: a failure is one line', () => {
  test('a --checksum mismatch: only the fetch\'s own line, not the actor\'s "transfer verification failed" before it', async () => {
    const r = await runPortal(
      [
        'fetch',
        mirror.url,
        '--checksum',
        `sha-256=${'ab'.repeat(32)}`,
        '--out',
        path.join(tmp.dir, `o${++n}.bin`),
      ],
      { env },
    );
    expect(r.code).toBe(3);
    const lines = messages(r.stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^portal: transfer \S+ failed: sha256 of output [0-9a-f]{64} does not match/);
    expect(r.stderr).not.toContain('transfer verification failed');
  });

  test('an --out that cannot be written and --swarm without NATS_URL: refused before any source is probed, one line, no warning', async () => {
    const existing = path.join(tmp.dir, 'existing.bin');
    await writeFile(existing, 'precious');
    const cases: [string[], string][] = [
      [
        ['--out', path.join(tmp.dir, 'missing', 'c.bin')],
        `portal: output ${path.join(tmp.dir, 'missing', 'c.bin')} cannot be created: folder ${path.join(tmp.dir, 'missing')} does not exist (fetch creates no folders) [PORTAL_OUTPUT_REFUSED]`,
      ],
      [
        ['--out', existing],
        `portal: output ${existing} already exists and no journal of this transfer is beside it; fetch does not overwrite (use --force, or another --out) [PORTAL_OUTPUT_REFUSED]`,
      ],
      [
        ['--swarm', '--out', path.join(tmp.dir, `o${++n}.bin`)],
        'portal: fetch: --swarm needs NATS_URL (where peers announce chunks) [PORTAL_CONFIG_INVALID]',
      ],
    ];
    for (const [args, line] of cases) {
      const before = requests;
      const r = await runPortal(['fetch', mirror.url, ...args], { env });
      expect({ args, code: r.code, lines: messages(r.stderr), probes: requests - before }).toEqual({
        args,
        code: 2,
        lines: [line],
        probes: 0,
      });
    }
    expect(await readFile(existing, 'utf8')).toBe('precious');
  });

  test('an output named from the URL that exists: the refusal alone, no "no checksum" warning before it (chunks, and one stream of unknown size)', async () => {
    const bytes = await readFile(src);
    const stream = await startBadMirror(bytes, () => ({ kind: 'chunked' }));
    const cwd = await makeTempDir('cli-fetch-failure-lines-cwd');
    try {
      for (const url of [mirror.url, stream.url]) {
        const name = path.basename(new URL(url).pathname);
        await writeFile(path.join(cwd.dir, name), 'precious');
        const r = await runPortal(['fetch', url], { env, cwd: cwd.dir });
        expect({ url, code: r.code, lines: messages(r.stderr) }).toEqual({
          url,
          code: 2,
          lines: [
            `portal: output ${path.join(cwd.dir, name)} already exists and no journal of this transfer is beside it; fetch does not overwrite (use --force, or another --out) [PORTAL_OUTPUT_REFUSED]`,
          ],
        });
        expect(await readFile(path.join(cwd.dir, name), 'utf8')).toBe('precious');
      }
    } finally {
      await stream.close();
      await cwd.cleanup();
    }
  });

  test('a dead --edge: its cause once, one code', async () => {
    const mf = path.join(tmp.dir, 'src.manifest.json');
    expect((await runPortal(['manifest', src, '--out', mf], { env })).code).toBe(0);
    const port = await freePort(); // nothing listens there
    const r = await runPortal(
      ['fetch', mf, '--edge', `http://127.0.0.1:${port}`, '--out', path.join(tmp.dir, `o${++n}.bin`)],
      { env },
    );
    expect(r.code).toBe(3);
    expect(messages(r.stderr)).toEqual([
      `portal: no source left: every edge's /v1/have failed: edge http://127.0.0.1:${port} is unreachable (connection refused) [PORTAL_TRANSFER_FAILED]`,
    ]);
  });
});
