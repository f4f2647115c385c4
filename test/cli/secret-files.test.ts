import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { helpText, parseArgs } from '../../cli/args.js';
import { runPortal } from '../helpers/portal-cli.js';

/**
 * A secret given as a flag is visible to every local user in `ps` (trial report L7): each secret flag is also read
 * from a file, `--name-file PATH` or `<ENV>_FILE`, as well as from its env variable.
 */
describe('secret flags from files', () => {
  let dir: string;
  let tokenFile: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'portal-secret-files-'));
    tokenFile = path.join(dir, 'token');
    await writeFile(tokenFile, 'Tok3n-from-file\n');
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  const specs = [
    { name: 'put-token', type: 'string', help: 'edge token', env: 'X_PUT_TOKEN', secret: true },
    { name: 'count', type: 'number', help: 'a count' },
  ] as const;

  test('secret files: --put-token-file and X_PUT_TOKEN_FILE give the file contents without the trailing newline; the flag wins over the env', () => {
    expect(parseArgs(['--put-token-file', tokenFile], specs).flags['put-token']).toBe('Tok3n-from-file');
    expect(parseArgs([`--put-token-file=${tokenFile}`], specs).flags['put-token']).toBe('Tok3n-from-file');
    expect(parseArgs([], specs, { X_PUT_TOKEN_FILE: tokenFile }).flags['put-token']).toBe('Tok3n-from-file');
    expect(
      parseArgs(['--put-token', 'flagvalue'], specs, { X_PUT_TOKEN_FILE: tokenFile }).flags['put-token'],
    ).toBe('flagvalue');
    // the env variable itself still wins over its _FILE
    expect(
      parseArgs([], specs, { X_PUT_TOKEN: 'envvalue', X_PUT_TOKEN_FILE: tokenFile }).flags['put-token'],
    ).toBe('envvalue');
  });

  test('secret files: a flag and its file together, a missing file, or -file on a flag that is no secret are configuration errors naming the flag', () => {
    expect(() => parseArgs(['--put-token', 'a', '--put-token-file', tokenFile], specs)).toThrow(
      '--put-token is given twice: give it or --put-token-file, once',
    );
    expect(() => parseArgs(['--put-token-file', tokenFile, '--put-token', 'a'], specs)).toThrow(
      '--put-token is given twice: give it or --put-token-file, once',
    );
    const missing = path.join(dir, 'nope');
    expect(() => parseArgs(['--put-token-file', missing], specs)).toThrow(
      `--put-token-file ${missing}: cannot read it (ENOENT)`,
    );
    expect(() => parseArgs([], specs, { X_PUT_TOKEN_FILE: missing })).toThrow(
      `env X_PUT_TOKEN_FILE ${missing}: cannot read it (ENOENT)`,
    );
    expect(() => parseArgs(['--count-file', tokenFile], specs)).toThrow('unknown flag --count-file');
  });

  test('secret files: --help names the file flag, the _FILE variable and why', () => {
    const help = helpText({ name: 'x', summary: 's', usage: 'u', flags: specs });
    expect(help).toContain(
      'edge token (env X_PUT_TOKEN; or from a file: --put-token-file FILE or env X_PUT_TOKEN_FILE; a value on the command line is visible to local users in ps)',
    );
  });

  test('secret files: the real serve, edge and executor take every token and password from a file (--help lists them; a missing file is exit 2)', async () => {
    const helps = await Promise.all(['serve', 'edge', 'executor'].map((c) => runPortal([c, '--help'])));
    const text = helps.map((h) => h.stdout + h.stderr).join('\n');
    for (const f of [
      'api-token',
      'internal-token',
      'dapr-api-token',
      'app-api-token',
      'put-token',
      'nats-password',
      'nats-token',
    ])
      expect(text).toContain(`--${f}-file FILE`);
    const missing = path.join(dir, 'absent');
    const r = await runPortal([
      'serve',
      '--runtime',
      'embedded',
      '--app-port',
      '0',
      '--api-token-file',
      missing,
    ]);
    expect(r.stderr).toContain(`--api-token-file ${missing}: cannot read it (ENOENT)`);
    expect(r.code).toBe(2);
  }, 60_000);
});
