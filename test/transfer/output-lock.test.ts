/**
 * lockFile (transfer/output-target.ts) told a live holder from a stale one by its pid alone, so a restarted
 * container — `portal serve` as pid 1 again, same hostname — found its previous incarnation's serve.lock and output
 * locks "held by pid 1" (itself) and refused to start. A lock records the holder's start time and a per-process
 * nonce: a lock naming this process's pid with another nonce, or a live pid whose start time differs, is stale.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { PortalError } from '../../common/errors.js';
import { lockFile, processStartTime } from '../../transfer/output-target.js';

const held = (): PortalError => new PortalError('PORTAL_OUTPUT_LOCKED', 'held');
const cannot = (err: unknown): PortalError =>
  new PortalError('PORTAL_OUTPUT_REFUSED', `cannot: ${(err as Error).message}`);

describe('lockFile: who holds a lock', () => {
  let dir: string;
  let sleeper: ChildProcess;
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'portal-lock-'));
    sleeper = spawn('sleep', ['60'], { stdio: 'ignore' });
  });
  afterAll(() => {
    sleeper.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  test('the start time of a process is read from /proc; none for a pid that does not exist', () => {
    const mine = processStartTime(process.pid);
    expect(mine).toMatch(/^\d+$/);
    expect(processStartTime(sleeper.pid!)).toMatch(/^\d+$/);
    expect(processStartTime(2 ** 30)).toBeUndefined(); // no such pid
  });

  test('a lock it wrote names this process with its start time and a nonce', async () => {
    const file = path.join(dir, 'own');
    const lock = await lockFile(file, held, cannot);
    const body = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    expect(body).toMatchObject({
      pid: process.pid,
      host: hostname(),
      started: processStartTime(process.pid),
    });
    expect(typeof body.nonce).toBe('string');
    // this very process holding it: held, not taken over
    await expect(lockFile(file, held, cannot)).rejects.toThrow('held');
    await lock.release();
  });

  test("a lock naming this process's pid with another nonce (a previous incarnation with the same pid) is taken over", async () => {
    const file = path.join(dir, 'same-pid');
    writeFileSync(
      file,
      JSON.stringify({ pid: process.pid, host: hostname(), started: '1', nonce: 'previous-incarnation' }),
    );
    const lock = await lockFile(file, held, cannot);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toMatchObject({
      pid: process.pid,
      started: processStartTime(process.pid),
    });
    await lock.release();
  });

  test('a live pid whose start time is not the recorded one (the pid reused) is stale; the right start time is held', async () => {
    const reused = path.join(dir, 'reused');
    writeFileSync(reused, JSON.stringify({ pid: sleeper.pid, host: hostname(), started: '1', nonce: 'x' }));
    const lock = await lockFile(reused, held, cannot);
    await lock.release();

    const live = path.join(dir, 'live');
    writeFileSync(
      live,
      JSON.stringify({
        pid: sleeper.pid,
        host: hostname(),
        started: processStartTime(sleeper.pid!),
        nonce: 'x',
      }),
    );
    await expect(lockFile(live, held, cannot)).rejects.toThrow('held');
  });

  test('a lock of an older Portal ({pid, host} only) is judged by its pid alone, as before', async () => {
    const old = path.join(dir, 'old');
    writeFileSync(old, JSON.stringify({ pid: sleeper.pid, host: hostname() }));
    await expect(lockFile(old, held, cannot)).rejects.toThrow('held');
    const self = path.join(dir, 'old-self');
    writeFileSync(self, JSON.stringify({ pid: process.pid, host: hostname() }));
    await expect(lockFile(self, held, cannot)).rejects.toThrow('held');
  });
});
