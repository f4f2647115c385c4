import { readFileSync } from 'node:fs';
import { runPortal } from '../helpers/portal-cli.js';

// A trial's `portal --version` answered 'unknown command "--version"': nothing printed the version.

const { version } = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };

describe('portal --version', () => {
  test.each(['--version', '-V'])("%s prints package.json's version on stdout and exits 0", async (flag) => {
    const r = await runPortal([flag]);
    expect({ code: r.code, stdout: r.stdout, stderr: r.stderr }).toEqual({
      code: 0,
      stdout: `portal ${version}\n`,
      stderr: '',
    });
  });
});
