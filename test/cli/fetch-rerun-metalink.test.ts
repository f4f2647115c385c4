/**
 * `portal fetch m.meta4` run again after a failed run, as a real CLI process against real loopback mirrors: a
 * <url> of the Metalink whose probe answers after the start (it joined the first run late) is still named by the
 * Metalink, so the rerun does not say it is "no longer named as a source; dropped" before it joins again.
 */
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { startBadMirror, type BadMirror } from '../helpers/bad-mirror.js';
import { runPortal } from '../helpers/portal-cli.js';
import { makeTempDir, writeRandomFile } from '../transfer/fixtures.js';

const SIZE = 8 * 262144;
const env = { PORTAL_BACKEND: 'cpu' };
let tmp: { dir: string; cleanup: () => Promise<void> };
const mirrors: BadMirror[] = [];

beforeAll(async () => {
  tmp = await makeTempDir('cli-fetch-rerun-metalink');
});
afterAll(async () => {
  await Promise.all(mirrors.map((s) => s.close()));
  await tmp?.cleanup();
});

test('a rerun of the same Metalink does not call a late-answering <url> dropped', async () => {
  const bytes = (await writeRandomFile(tmp.dir, 'src.bin', SIZE, 5)).bytes;
  const sha = createHash('sha256').update(bytes).digest('hex');
  const wrong = Buffer.from(bytes.map((b) => b ^ 0xff));
  // the first <url> answers its probe at once and each chunk after 1.5 s (the run lasts a few seconds)
  const bad = await startBadMirror(wrong, (_n, req) =>
    req.headers.range === 'bytes=0-0' ? { kind: 'ok' } : { kind: 'late', ms: 1500, then: { kind: 'ok' } },
  );
  // the second answers its probe (bytes=0-0) after 2.5 s (past the start's grace), each run; its chunks at once
  const late = await startBadMirror(bytes, (_n, req) =>
    req.headers.range === 'bytes=0-0' ? { kind: 'late', ms: 2500, then: { kind: 'ok' } } : { kind: 'ok' },
  );
  mirrors.push(bad, late);
  const meta = path.join(tmp.dir, 'm.meta4');
  await writeFile(
    meta,
    `<?xml version="1.0" encoding="UTF-8"?>\n<metalink xmlns="urn:ietf:params:xml:ns:metalink"><file name="loc.bin"><size>${SIZE}</size><hash type="sha-256">${sha}</hash><url priority="1">${bad.url}</url><url priority="2">${late.url}</url></file></metalink>\n`,
  );
  const first = await runPortal(['fetch', meta], { env, cwd: tmp.dir });
  expect(first.code).toBe(3);
  expect(first.stderr).toContain(`${late.url} answered after the start and joins as a source`);
  const rerun = await runPortal(['fetch', meta], { env, cwd: tmp.dir });
  expect(rerun.stderr).not.toContain('is no longer named as a source');
  expect(rerun.stderr).toContain(`${late.url} answered after the start and joins as a source`);
}, 180_000);
