import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

// examples/go/portalpb is committed (the Go examples build without a protoc); this checks it is exactly what
// proto/portal.proto generates, with the protoc and protoc-gen-go that scripts/setup.d/45-go-examples.sh installs.

const repo = resolve(new URL('../..', import.meta.url).pathname);

function cacheDir(): string {
  return (
    process.env.PORTAL_CACHE ??
    join(process.env.XDG_CACHE_HOME ?? join(process.env.HOME ?? '/root', '.cache'), 'portal')
  );
}

test('examples/go/portalpb is what proto/portal.proto generates (go_package portal/examples/portalpb)', () => {
  const plugin = join(cacheDir(), 'go-bin', 'protoc-gen-go');
  expect(existsSync(plugin)).toBe(true); // installed by npm test's setup (scripts/setup.d/45-go-examples.sh)
  const out = mkdtempSync(join(tmpdir(), 'portal-go-proto-'));
  try {
    execFileSync(
      'protoc',
      [
        `--plugin=protoc-gen-go=${plugin}`,
        `--go_out=${out}`,
        '--go_opt=module=portal/examples',
        '-I',
        join(repo, 'proto'),
        join(repo, 'proto/portal.proto'),
      ],
      { stdio: 'pipe' },
    );
    const fresh = readFileSync(join(out, 'portalpb/portal.pb.go'), 'utf8');
    const committed = readFileSync(join(repo, 'examples/go/portalpb/portal.pb.go'), 'utf8');
    expect(committed === fresh).toBe(true);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
