/**
 * `portal fetch <manifest>` (a real process) with chunk hashes and three loopback mirrors that lie as in trial 3 H2:
 * one always serves other bytes of the same size, one serves the right bytes for its first GETs and other bytes after,
 * one is right but slower. The liars are excluded chunk by chunk (hash mismatch); the chunks must end on the honest
 * mirror, never wait for it (the tail gate had closed it: the fast liar's measured rate said the rest would finish
 * sooner elsewhere) until the 60 s stall timeout.
 */
import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type http from 'node:http';
import path from 'node:path';
import { createMesh, type Mesh } from '../helpers/mesh.js';
import { startBadMirror, type BadMirror } from '../helpers/bad-mirror.js';
import { runPortal, type PortalRun } from '../helpers/portal-cli.js';

const CHUNK = 65536;
const SIZE = 16 * CHUNK;
let mesh: Mesh;
let good: Buffer;
let other: Buffer;
const mirrors: BadMirror[] = [];
let n = 0;

beforeAll(async () => {
  mesh = await createMesh(SIZE, CHUNK, []);
  good = await readFile(mesh.source);
  other = Buffer.from(good.map((b) => b ^ 0x5a));
});
afterAll(async () => {
  await Promise.all(mirrors.splice(0).map((m) => m.close()));
  await mesh.close();
});

/**
 * The three mirrors of the trial: always wrong, right at once for its `rightGets` first GETs and then wrong, right after
 * `okDelayMs`. Wrong answers come after `lieDelayMs`, when the honest mirror's slower rate is measured (and the tail
 * gate would close it).
 */
async function lyingMirrors(rightGets: number, okDelayMs: number, lieDelayMs: number): Promise<BadMirror[]> {
  const lie = { kind: 'late', ms: lieDelayMs, then: { kind: 'replaced', bytes: other } } as const;
  const wrong = await startBadMirror(good, () => lie);
  let gets = 0;
  const swap = await startBadMirror(good, (_n, req: http.IncomingMessage) =>
    req.method === 'GET' && ++gets > rightGets ? lie : { kind: 'ok' },
  );
  const ok = await startBadMirror(good, () => ({ kind: 'late', ms: okDelayMs, then: { kind: 'ok' } }));
  mirrors.push(wrong, swap, ok);
  return [wrong, swap, ok];
}

/** `portal fetch <manifest>` from `edges` (each a `#mirror` edge) into a fresh folder; the run and its output path. */
async function fetchFrom(edges: BadMirror[]): Promise<{ r: PortalRun; out: string }> {
  const dir = path.join(mesh.dir, `out-${++n}`);
  mkdirSync(dir);
  const out = path.join(dir, 'out.bin');
  const args = [
    'fetch',
    mesh.manifestPath,
    ...edges.flatMap((m) => ['--edge', `${m.url}#mirror`]),
    '--out',
    out,
  ];
  return { r: await runPortal(args, { env: { PORTAL_BACKEND: 'cpu' }, timeoutMs: 45_000 }), out };
}

describe('portal fetch: chunk hashes and mirrors that serve wrong bytes', () => {
  test('every chunk a liar corrupted ends on the honest mirror: exit 0 in seconds, the right bytes, no stall', async () => {
    const [wrong, swap, ok] = await lyingMirrors(3, 150, 400);
    const { r, out: o } = await fetchFrom([wrong, swap, ok]);
    expect({ code: r.code, stderr: r.stderr.includes('stalled') ? r.stderr : '' }).toEqual({
      code: 0,
      stderr: '',
    });
    expect(r.ms).toBeLessThan(30_000);
    expect(
      createHash('sha256')
        .update(await readFile(o))
        .digest('hex'),
    ).toBe(createHash('sha256').update(good).digest('hex'));
    // both liars were asked (and caught): the test exercises the exclusions it is about
    expect(wrong.requests.some((q) => q.method === 'GET')).toBe(true);
    expect(swap.requests.filter((q) => q.method === 'GET').length).toBeGreaterThan(3);
  }, 60_000);

  test('when every mirror sends a chunk wrong, the run fails in seconds naming each mirror and its cause, not "offline"', async () => {
    const liars: BadMirror[] = [];
    for (let i = 0; i < 3; i++)
      liars.push(await startBadMirror(good, () => ({ kind: 'replaced', bytes: other })));
    mirrors.push(...liars);
    const { r } = await fetchFrom(liars);
    expect(r.code).toBe(3);
    expect(r.ms).toBeLessThan(30_000);
    expect(r.stderr).not.toMatch(/offline|stalled/);
    expect(r.stderr).toMatch(/cannot be served by any source/);
    for (const m of liars)
      expect(r.stderr).toMatch(new RegExp(`${m.origin.replace(/[.]/g, '\\.')}\\S* \\([^)]*\\): corrupt`));
  }, 60_000);
});
