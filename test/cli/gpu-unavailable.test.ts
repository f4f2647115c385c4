import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { createMesh, type Mesh } from '../helpers/mesh.js';

const run = promisify(execFile);
const MAIN = path.resolve('dist/cli/main.js');

/** Runs the built CLI with `env` added; resolves with exit code, stdout and stderr (never rejects on exit code). */
async function portal(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [MAIN, ...args], {
      env: { ...process.env, PORTAL_LOG_LEVEL: 'warn', ...env },
      timeout: 60_000,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

// VK_ICD_FILENAMES pointing at no file makes the Vulkan loader find no driver, so Dawn has no adapter
// (lavapipe, installed by the setup, is hidden too): the state of a machine without a GPU.
const NO_ADAPTER = { VK_ICD_FILENAMES: '/nonexistent/portal-no-icd.json' };

describe('portal fetch --backend webgpu without a WebGPU adapter', () => {
  let mesh: Mesh | undefined;
  afterEach(async () => {
    await mesh?.close();
    mesh = undefined;
  });

  test('exits 2 with one PORTAL_GPU_UNAVAILABLE line naming the missing adapter, and no stack trace', async () => {
    mesh = await createMesh(4 * 8192, 8192, [{ holds: 'all' }]);
    const out = path.join(mesh.dir, 'out.bin');
    const r = await portal(
      ['fetch', mesh.manifestPath, '--edge', mesh.servers[0].url, '--backend', 'webgpu', '--out', out],
      NO_ADAPTER,
    );
    expect(r.code).toBe(2);
    const ours = r.stderr.split('\n').filter((l) => l.startsWith('portal:'));
    expect(ours).toHaveLength(1);
    expect(ours[0]).toMatch(/no WebGPU adapter.*\[PORTAL_GPU_UNAVAILABLE\]$/);
    expect(ours[0]).toMatch(/Vulkan driver/);
    expect(r.stderr).not.toContain('PORTAL_INTERNAL');
    // no JavaScript stack frame (Dawn's own native warnings, printed by C++, are not ours)
    expect(r.stderr).not.toMatch(/^\s+at .*\.[cm]?js:\d+/m);
  });

  test('with --json the error object carries PORTAL_GPU_UNAVAILABLE on stdout', async () => {
    mesh = await createMesh(4 * 8192, 8192, [{ holds: 'all' }]);
    const out = path.join(mesh.dir, 'out.bin');
    const r = await portal(
      [
        'fetch',
        mesh.manifestPath,
        '--edge',
        mesh.servers[0].url,
        '--backend',
        'webgpu',
        '--out',
        out,
        '--json',
      ],
      NO_ADAPTER,
    );
    expect(r.code).toBe(2);
    const last = JSON.parse(r.stdout.trim().split('\n').pop()!) as {
      error: { code: string; message: string };
    };
    expect(last.error.code).toBe('PORTAL_GPU_UNAVAILABLE');
    expect(last.error.message).toMatch(/no WebGPU adapter/);
  });
});
