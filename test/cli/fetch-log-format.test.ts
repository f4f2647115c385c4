/**
 * `portal fetch`'s logs on stderr: readable lines by default (a person at a terminal), pino's JSON lines with
 * `--log-format json` / PORTAL_LOG_FORMAT=json. The built CLI as a real process, a real loopback mirror that
 * answers 503 to every range but the first, so the run logs 'source given up' (warn) and 'transfer failed' (error).
 */
import path from 'node:path';
import { startBadMirror, type BadMirror } from '../helpers/bad-mirror.js';
import { runPortal } from '../helpers/portal-cli.js';
import { makeTempDir, writeRandomFile } from '../transfer/fixtures.js';

const SIZE = 3 * 262144 + 99;
let tmp: { dir: string; cleanup: () => Promise<void> };
let mirror: BadMirror;
let n = 0;

beforeAll(async () => {
  tmp = await makeTempDir('cli-fetch-log-format');
  const { bytes } = await writeRandomFile(tmp.dir, 'src.bin', SIZE, 3);
  mirror = await startBadMirror(bytes, (_n, req) =>
    req.method === 'GET' && req.headers.range && !req.headers.range.startsWith('bytes=0-')
      ? { kind: 'status', status: 503 }
      : { kind: 'ok' },
  );
});
afterAll(async () => {
  await mirror?.close();
  await tmp?.cleanup();
});

const fetchFailing = (env: NodeJS.ProcessEnv, extra: string[] = []) =>
  runPortal(
    [
      'fetch',
      mirror.url.replace('http://', 'http://user:SECRETPW@'),
      '--out',
      path.join(tmp.dir, `o${++n}.bin`),
      '--source-budget',
      '2',
      ...extra,
    ],
    { env: { PORTAL_BACKEND: 'cpu', PORTAL_LOG_FORMAT: '', ...env } },
  );

describe('portal fetch: log lines on stderr', () => {
  test('default: "portal: warning: <msg> (key=value …)", no JSON line, no secret', async () => {
    const r = await fetchFailing({});
    expect(r.code).toBe(3);
    const lines = r.stderr.split('\n');
    expect(lines.filter((l) => l.startsWith('{'))).toEqual([]);
    const given = lines.find((l) => l.startsWith('portal: warning: source given up ('));
    expect(given).toBeDefined();
    // the fields the JSON line carries are all there
    expect(given).toMatch(
      / edge=mirror-0-\S+ failures=\d+ lastError="[^"]*HTTP 503[^"]*" reason="[^"]*source budget 2 s\)"\)$/,
    );
    // the transfer's own 'transfer failed' log line is left out: the fetch's last line says it, with the code
    expect(lines.some((l) => l.startsWith('portal: error: transfer failed ('))).toBe(false);
    expect(lines.filter((l) => /^portal: transfer \S+ failed: /.test(l))).toHaveLength(1);
    expect(r.stderr).not.toContain('SECRETPW');
    expect(r.stderr).toContain('http://***@127.0.0.1');
  });

  test('PORTAL_LOG_FORMAT=json (and --log-format json): pino JSON lines, as before', async () => {
    for (const [env, extra] of [
      [{ PORTAL_LOG_FORMAT: 'json' }, []],
      [{}, ['--log-format', 'json']],
    ] as const) {
      const r = await fetchFailing(env, [...extra]);
      expect(r.code).toBe(3);
      const recs = r.stderr
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(recs.find((x) => x.msg === 'source given up')).toMatchObject({ level: 40, name: 'portal' });
      expect(recs.find((x) => x.msg === 'transfer failed')).toBeUndefined(); // the last line says it
      expect(r.stderr).toMatch(/^portal: transfer \S+ failed: /m);
      expect(r.stderr).not.toContain('SECRETPW');
    }
  });

  test('--log-format yaml: exit 2 naming the valid values', async () => {
    const r = await runPortal(['fetch', mirror.url, '--log-format', 'yaml']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--log-format "yaml": expected auto, text or json [PORTAL_CONFIG_INVALID]');
  });
});
