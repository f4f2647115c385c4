/**
 * `portal fetch` against sources that misbehave, as a real CLI process and real loopback HTTP servers: a source
 * whose Retry-After is longer than its --source-budget is given up at once, saying so, instead of holding its
 * chunks until the stall timeout.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { startBadMirror, type BadMirror } from '../helpers/bad-mirror.js';
import { runPortal } from '../helpers/portal-cli.js';
import { makeTempDir, writeRandomFile } from '../transfer/fixtures.js';

const SIZE = 8 * 262144 + 999;
const env = { PORTAL_BACKEND: 'cpu' };
let tmp: { dir: string; cleanup: () => Promise<void> };
let bytes: Buffer;
const closers: (() => Promise<void>)[] = [];
let n = 0;
const out = (): string => {
  const dir = path.join(tmp.dir, `out-${++n}`);
  mkdirSync(dir);
  return path.join(dir, 'file.bin');
};

beforeAll(async () => {
  tmp = await makeTempDir('cli-fetch-give-up');
  bytes = (await writeRandomFile(tmp.dir, 'src.bin', SIZE, 11)).bytes;
});
afterAll(async () => {
  await Promise.all(closers.map((c) => c()));
  await tmp?.cleanup();
});

describe('portal fetch: Retry-After longer than --source-budget', () => {
  test('the source is given up at once naming its Retry-After and the budget; exit 3 long before the stall timeout', async () => {
    const m: BadMirror = await startBadMirror(bytes, (_n, req) =>
      req.method === 'HEAD' || req.headers.range === 'bytes=0-0'
        ? { kind: 'ok' }
        : { kind: 'status', status: 503, retryAfter: '100000' },
    );
    closers.push(() => m.close());
    const o = out();
    const r = await runPortal(['fetch', m.url, '--out', o, '--source-budget', '5'], { env });
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('Retry-After 100000 s');
    expect(r.stderr).toContain(
      'asked to be retried after 100000 s (Retry-After), past its source budget of 5 s',
    );
    expect(r.stderr).not.toContain('offline');
    // before: the stall timeout (61 s)
    expect(r.ms).toBeLessThan(40_000);
  }, 180_000);
});
