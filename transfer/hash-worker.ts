/**
 * The whole-file hash thread (see prefix-hasher.ts): per session, reads a file from where it stopped up to
 * the offset asked for and feeds a running sha256, so the hash of a download advances over its verified
 * prefix while the download runs and the end of a transfer reads only what is left.
 */
import { closeSync, fdatasyncSync, openSync, readSync } from 'node:fs';
import { createHash, type Hash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import type { FromHashWorker, ToHashWorker } from './prefix-hasher.js';

interface Session {
  path: string;
  fd: number | undefined;
  hash: Hash;
  pos: number;
  error: string | undefined;
}

const port = parentPort!;
const sessions = new Map<number, Session>();
/** One read buffer for every session (1 MiB reads: the page cache's sweet spot, as hashFile's stream). */
const buf = Buffer.allocUnsafeSlow(1024 * 1024);

function advance(s: Session, to: number): void {
  if (s.error || to <= s.pos) return;
  try {
    s.fd ??= openSync(s.path, 'r');
    while (s.pos < to) {
      const n = readSync(s.fd, buf, 0, Math.min(buf.length, to - s.pos), s.pos);
      if (n <= 0) throw new Error(`${s.path} ends at byte ${s.pos}, before ${to}`);
      s.hash.update(buf.subarray(0, n));
      s.pos += n;
    }
  } catch (err) {
    s.error = (err as Error)?.message ?? String(err);
  }
}

/** Flushes the file's data to disk (fdatasync flushes its dirty pages whichever descriptor wrote them). */
function datasync(s: Session): void {
  try {
    s.fd ??= openSync(s.path, 'r');
    fdatasyncSync(s.fd);
  } catch (err) {
    s.error = (err as Error)?.message ?? String(err);
  }
}

function end(id: number, s: Session): void {
  sessions.delete(id);
  if (s.fd !== undefined) closeSync(s.fd);
}

port.on('message', (m: ToHashWorker) => {
  if (m.t === 'open') {
    sessions.set(m.id, { path: m.path, fd: undefined, hash: createHash('sha256'), pos: 0, error: undefined });
    return;
  }
  const s = sessions.get(m.id);
  if (!s) return;
  if (m.t === 'advance') advance(s, m.to);
  else if (m.t === 'digest') {
    const before = s.pos;
    if (m.size < s.pos) s.error ??= `the file was hashed to byte ${s.pos} but is said to have ${m.size}`;
    if (m.datasync && !s.error) datasync(s);
    advance(s, m.size);
    const reply: FromHashWorker = s.error
      ? { id: m.id, error: s.error }
      : { id: m.id, sha256: s.hash.digest('hex'), hashedBefore: before, synced: m.datasync === true };
    end(m.id, s);
    port.postMessage(reply);
  } else end(m.id, s);
});
