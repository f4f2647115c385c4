/**
 * A 503 or 429 with Retry-After at the first request (the probe) is waited out, as it is later in the run (trial 3,
 * H4): it ended the run at once with exit 3 `no source answered: … HTTP 503`. The probe now asks again once the
 * Retry-After has passed, within the source budget (--source-budget, 60 s by default), and a source still busy past
 * it is named `busy: HTTP 503, Retry-After …`. Real `portal fetch` processes against a loopback mirror.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startBadMirror, type BadMirror, type MirrorMode } from '../helpers/bad-mirror.js';
import { runPortal } from '../helpers/portal-cli.js';

const bytes = randomBytes(300_000);
const sha = createHash('sha256').update(bytes).digest('hex');
let dir: string;
const mirrors: BadMirror[] = [];
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'portal-probe-busy-'));
});
afterAll(async () => {
  await Promise.all(mirrors.map((m) => m.close()));
  await rm(dir, { recursive: true, force: true });
});

/** A mirror answering its first `busy` requests with `status` and `retryAfter`, then serving the file. */
async function busyMirror(busy: number, status: number, retryAfter: () => string): Promise<BadMirror> {
  const m = await startBadMirror(bytes, (n): MirrorMode =>
    n < busy ? { kind: 'status', status, retryAfter: retryAfter() } : { kind: 'ok' },
  );
  mirrors.push(m);
  return m;
}

async function fetch(url: string, name: string, extra: string[] = []) {
  const out = path.join(dir, name);
  const r = await runPortal(['fetch', url, '--checksum', `sha-256=${sha}`, '--out', out, ...extra], {
    cwd: dir,
    timeoutMs: 60_000,
    env: { PORTAL_BACKEND: 'cpu' },
  });
  return { ...r, out };
}

describe('probe busy', () => {
  test('a 503 with Retry-After: 2 to the probe is waited out and the file fetched (was exit 3 at once)', async () => {
    const m = await busyMirror(1, 503, () => '2');
    const r = await fetch(m.url, 'a.bin');
    expect(r.stderr).not.toContain('no source answered');
    expect(r.code).toBe(0);
    expect((await readFile(r.out)).equals(bytes)).toBe(true);
    // the second request went out once the 2 s had passed
    expect(m.requests[1].at - m.requests[0].at).toBeGreaterThanOrEqual(1900);
  }, 70_000);

  test('a 429 with an HTTP-date Retry-After is waited out too', async () => {
    const m = await busyMirror(1, 429, () => new Date(Date.now() + 3000).toUTCString());
    const r = await fetch(m.url, 'b.bin');
    expect(r.code).toBe(0);
    expect((await readFile(r.out)).equals(bytes)).toBe(true);
    expect(m.requests[1].at - m.requests[0].at).toBeGreaterThanOrEqual(1000);
  }, 70_000);

  test('a Retry-After past the source budget fails at once naming the source as busy, with its Retry-After', async () => {
    const m = await busyMirror(1000, 503, () => '100000');
    const r = await fetch(m.url, 'c.bin');
    expect(r.code).toBe(3);
    expect(r.ms).toBeLessThan(15_000);
    expect(r.stderr).toContain('no source could be used:');
    expect(r.stderr).toContain(
      ': busy: HTTP 503, Retry-After 100000 s, past the 60 s a probe waits for a busy source (the source budget)',
    );
    expect(m.requests).toHaveLength(1);
  }, 70_000);

  test('a source still busy once --source-budget is spent is given up saying how long it stayed busy', async () => {
    const m = await busyMirror(1000, 503, () => '2');
    const r = await fetch(m.url, 'd.bin', ['--source-budget', '5']);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(
      /busy: HTTP 503, Retry-After 2 s \(still busy after [45] s\), past the 5 s a probe waits for a busy source/,
    );
    expect(m.requests.length).toBeGreaterThanOrEqual(2);
    expect(m.requests.length).toBeLessThanOrEqual(4);
  }, 70_000);

  test('a busy mirror beside a good one: the transfer starts from the good one at once', async () => {
    const busy = await busyMirror(1000, 503, () => '30');
    const good = await busyMirror(0, 503, () => '0');
    const out = path.join(dir, 'e.bin');
    const r = await runPortal(['fetch', busy.url, good.url, '--checksum', `sha-256=${sha}`, '--out', out], {
      cwd: dir,
      timeoutMs: 60_000,
      env: { PORTAL_BACKEND: 'cpu' },
    });
    expect(r.code).toBe(0);
    expect(r.ms).toBeLessThan(20_000);
    expect((await readFile(out)).equals(bytes)).toBe(true);
  }, 70_000);
});
