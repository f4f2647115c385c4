import { link, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { startAdmissionSource, type AdmissionSource } from '../helpers/admission.js';
import { startBadMirror, type BadMirror } from '../helpers/bad-mirror.js';
import {
  schedulerCall,
  startEmbeddedServe,
  stopEmbeddedServe,
  type EmbeddedServe,
} from '../helpers/portal-cli.js';

// The outputs of a real `portal serve --runtime embedded --backend cpu` are safe from its own transfers: a queued
// transfer, once admitted, applies the checks a start applies to what lies at its output. The sources are a real
// nginx (16 chunks of 32 KiB, 128 KiB/s per connection) and a node:http mirror that stalls every request (a
// transfer that holds its running slot until it is cancelled).

let src: AdmissionSource;
let stall: BadMirror;

beforeAll(async () => {
  src = await startAdmissionSource('outsafe', '128k');
  stall = await startBadMirror(Buffer.alloc(16 * 32 * 1024), () => ({ kind: 'stall' }));
});

afterAll(async () => {
  await stall?.close();
  await src?.close();
});

type Serve = EmbeddedServe & {
  call: (id: string, method: string, body?: unknown) => ReturnType<typeof schedulerCall>;
};

async function serve(args: string[]): Promise<Serve> {
  const s = await startEmbeddedServe(['--output-root', src.dir, ...args], { PORTAL_LOG_LEVEL: 'warn' });
  return Object.assign(s, {
    call: (id: string, method: string, body?: unknown) => schedulerCall(s.base, id, method, body),
  });
}

/** A start of `id` that never finishes: its one source stalls every request (it holds its slot until cancelled). */
const blockerBody = (id: string): Record<string, unknown> => ({
  ...src.startBody(id),
  edges: [
    { id: 'stall', config: { url: stall.url, kind: 'mirror', flags: 0, maxParallel: 1 }, holds: 'all' },
  ],
});

/** Polls `id`'s status until its state is not one of `states`; answers that status. */
async function waitPast(
  s: Serve,
  id: string,
  states: string[],
): Promise<{ state: string; error?: string; verified?: boolean }> {
  for (;;) {
    const r = await s.call(id, 'status');
    if (!states.includes(r.body.state)) return r.body;
    await new Promise((res) => setTimeout(res, 100));
  }
}

describe('a queued transfer, once admitted, checks its output as a start does', () => {
  let s: Serve | undefined;
  afterEach(async () => {
    await stopEmbeddedServe(s);
    s = undefined;
  });

  test('a file that appeared at its output while it waited is refused (PORTAL_OUTPUT_REFUSED) and kept as it was', async () => {
    s = await serve(['--max-running', '1']);
    expect((await s.call('qa-block', 'start', blockerBody('qa-block'))).body.state).toBe('running');
    const queued = await s.call('qa-victim', 'start', src.startBody('qa-victim'));
    expect(queued.body.state).toBe('queued');
    const precious = path.join(src.dir, 'qa-victim.bin');
    await writeFile(precious, 'my precious data\n');
    // a start on that path now is refused: the same answer the queued one gets when it is admitted
    const direct = await s.call('qa-direct', 'start', { ...src.startBody('qa-direct'), output: precious });
    expect(direct.status).toBe(409);
    expect(direct.body.error.code).toBe('PORTAL_OUTPUT_REFUSED');
    await s.call('qa-block', 'cancel');
    const end = await waitPast(s, 'qa-victim', ['queued', 'running', 'verifying']);
    expect(end.state).toBe('failed');
    expect(end.error).toContain(
      'already exists (set "overwrite": true to replace it) [PORTAL_OUTPUT_REFUSED]',
    );
    expect(await readFile(precious, 'utf8')).toBe('my precious data\n');
  }, 60_000);

  test('with "overwrite": true a hard link that appeared at its partial file is replaced by a new file, the linked file left as it was', async () => {
    s = await serve(['--max-running', '1']);
    expect((await s.call('qb-block', 'start', blockerBody('qb-block'))).body.state).toBe('running');
    const queued = await s.call('qb-victim', 'start', { ...src.startBody('qb-victim'), overwrite: true });
    expect(queued.body.state).toBe('queued');
    const other = path.join(src.dir, 'qb-other.txt');
    await writeFile(other, 'not yours\n');
    await link(other, path.join(src.dir, 'qb-victim.bin.portal-part'));
    await s.call('qb-block', 'cancel');
    const end = await waitPast(s, 'qb-victim', ['queued', 'running', 'verifying']);
    expect(end).toMatchObject({ state: 'done', verified: true });
    expect(await readFile(other, 'utf8')).toBe('not yours\n');
    const { createHash } = await import('node:crypto');
    const got = createHash('sha256')
      .update(await readFile(path.join(src.dir, 'qb-victim.bin')))
      .digest('hex');
    expect(got).toBe(src.sha256);
  }, 60_000);
});
