import { existsSync, statSync } from 'node:fs';
import {
  cpuThreadsFromEnv,
  ensureXdgRuntimeDir,
  requireGpuFromEnv,
  streamRequireGpuFromEnv,
} from '../../cli/env.js';

test('PORTAL_CPU_THREADS becomes the thread count, and unset or empty leaves the engine default', () => {
  expect(cpuThreadsFromEnv({ PORTAL_CPU_THREADS: '3' })).toBe(3);
  expect(cpuThreadsFromEnv({ PORTAL_CPU_THREADS: '256' })).toBe(256);
  expect(cpuThreadsFromEnv({})).toBeUndefined();
  expect(cpuThreadsFromEnv({ PORTAL_CPU_THREADS: '' })).toBeUndefined();
});

test('a PORTAL_CPU_THREADS that is not an integer in [1, 256] is refused with the variable and its value named', () => {
  for (const bad of ['abc', '0', '257', '2.5', '-1']) {
    expect(() => cpuThreadsFromEnv({ PORTAL_CPU_THREADS: bad })).toThrow(
      expect.objectContaining({
        code: 'PORTAL_CONFIG_INVALID',
        message: expect.stringContaining(`PORTAL_CPU_THREADS: expected an integer in [1, 256], got "${bad}"`),
      }),
    );
  }
});

test('the tick engine requires a GPU only for PORTAL_REQUIRE_GPU=1; stream kernels also under CI=true', () => {
  expect(requireGpuFromEnv({ PORTAL_REQUIRE_GPU: '1' })).toBe(true);
  expect(requireGpuFromEnv({ PORTAL_REQUIRE_GPU: '0', CI: 'true' })).toBe(false);
  expect(requireGpuFromEnv({})).toBe(false);
  expect(streamRequireGpuFromEnv({ CI: 'true' })).toBe(true);
  expect(streamRequireGpuFromEnv({ PORTAL_REQUIRE_GPU: '1' })).toBe(true);
  expect(streamRequireGpuFromEnv({ CI: 'false' })).toBe(false);
  expect(streamRequireGpuFromEnv({})).toBe(false);
});

test('ensureXdgRuntimeDir creates a private folder when XDG_RUNTIME_DIR is unset and keeps an existing value', () => {
  const env: NodeJS.ProcessEnv = {};
  ensureXdgRuntimeDir(env);
  expect(env.XDG_RUNTIME_DIR).toEqual(expect.stringContaining('portal-xdg-'));
  expect(existsSync(env.XDG_RUNTIME_DIR!)).toBe(true);
  expect(statSync(env.XDG_RUNTIME_DIR!).mode & 0o077).toBe(0);
  const set: NodeJS.ProcessEnv = { XDG_RUNTIME_DIR: '/run/user/1234' };
  ensureXdgRuntimeDir(set);
  expect(set.XDG_RUNTIME_DIR).toBe('/run/user/1234');
});
