import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from '../../cli/args.js';
import { runPortal } from '../helpers/portal-cli.js';
import { freePort } from '../../common/net.js';

/** Values of secret flags are never printed; a token no HTTP header can carry is refused when parsed. */
describe('secret flags: errors never print their values; tokens must fit an HTTP header', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'portal-secret-flags-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  test('a config file whose api-token is a list: exit 2 naming the flag and the kind, never the token (real CLI)', async () => {
    const config = path.join(dir, 'c.json');
    await writeFile(config, JSON.stringify({ 'api-token': ['S3CRET-TOKEN-VALUE'] }));
    const r = await runPortal(
      ['serve', '--runtime', 'embedded', '--app-port', String(await freePort()), '--config', config],
      { timeoutMs: 30_000 },
    );
    expect(r.stderr).toContain(
      `--api-token (config ${config}): expected a string, got a list (the value of a secret is not shown)`,
    );
    expect(r.stderr + r.stdout).not.toContain('S3CRET');
    expect(r.code).toBe(2);
  }, 40_000);

  test('--api-token with a newline: refused at start, exit 2, the value not shown (real CLI)', async () => {
    const r = await runPortal(
      ['serve', '--runtime', 'embedded', '--app-port', String(await freePort()), '--api-token', 'abcQ\nZdef'],
      { timeoutMs: 30_000 },
    );
    expect(r.stderr).toContain('--api-token (flag): a token may hold visible ASCII characters only');
    expect(r.stderr).not.toContain('abcQ');
    expect(r.code).toBe(2);
  }, 40_000);

  test('parseArgs: secret flags from env and config hide their values; spaces and non-ASCII refused; good tokens kept', () => {
    const specs = [
      { name: 'put-token', type: 'string', help: '', env: 'X_PUT_TOKEN' },
      { name: 'nats-password', type: 'string', help: '' },
      { name: 'count', type: 'number', help: '' },
    ] as const;
    expect(() => parseArgs(['--put-token', 'a b'], specs)).toThrow(/visible ASCII characters only/);
    expect(() => parseArgs([], specs, { X_PUT_TOKEN: 'tök' })).toThrow(/env X_PUT_TOKEN\): a token may hold/);
    expect(parseArgs(['--put-token', 'Ab0-._~+/=='], specs).flags['put-token']).toBe('Ab0-._~+/==');
    expect(parseArgs(['--nats-password', 'p w'], specs).flags['nats-password']).toBe('p w'); // not a header
    // a type error of a non-secret flag still shows the value
    expect(() => parseArgs(['--count', 'x1'], specs)).toThrow('expected a number, got "x1"');
  });
});
