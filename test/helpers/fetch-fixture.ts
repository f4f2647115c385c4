import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import type { AddressInfo, Server, Socket } from 'node:net';
import path from 'node:path';
import { makeTempDir, writeRandomFile } from '../transfer/fixtures.js';

/** The environment of a `portal fetch` test run: the CPU backend (no GPU probe, nothing Dawn prints). */
export const FETCH_ENV = { PORTAL_BACKEND: 'cpu' };

/** What fetchFixture sets up; the fields are read once its beforeAll ran (inside tests). */
export interface FetchFixture {
  /** The test's temp folder (removed after all). */
  readonly dir: string;
  /** `<dir>/src.bin`: `size` random bytes. */
  readonly src: string;
  readonly bytes: Buffer;
  /** Hex sha-256 of `bytes`. */
  readonly sha: string;
  /** A new, empty folder per call, and the path `file.bin` in it: one output per fetch. */
  out(): string;
  /** Runs `close` after all (servers, mirrors), before the folder is removed. */
  closeLater(close: () => Promise<void>): void;
}

/**
 * The set-up the `portal fetch` tests against real loopback mirrors share: a temp folder named after `name` with a
 * random source file of `size` bytes (from `seed`), its sha-256, a fresh output path per fetch, and servers to close
 * at the end. Registers its own beforeAll / afterAll in the calling file's scope.
 */
export function fetchFixture(name: string, size: number, seed = 11): FetchFixture {
  let tmp: { dir: string; cleanup: () => Promise<void> } | undefined;
  let src = '';
  let bytes: Buffer = Buffer.alloc(0);
  let sha = '';
  let n = 0;
  const closers: (() => Promise<void>)[] = [];
  beforeAll(async () => {
    tmp = await makeTempDir(name);
    const f = await writeRandomFile(tmp.dir, 'src.bin', size, seed);
    src = f.path;
    bytes = f.bytes;
    sha = createHash('sha256').update(bytes).digest('hex');
  });
  afterAll(async () => {
    await Promise.all(closers.map((c) => c()));
    await tmp?.cleanup();
  });
  return {
    get dir() {
      return tmp!.dir;
    },
    get src() {
      return src;
    },
    get bytes() {
      return bytes;
    },
    get sha() {
      return sha;
    },
    out() {
      const dir = path.join(tmp!.dir, `out-${++n}`);
      mkdirSync(dir);
      return path.join(dir, 'file.bin');
    },
    closeLater: (close) => closers.push(close),
  };
}

/**
 * Starts `server` (node:http or node:https) on a free port of 127.0.0.1 and resolves with that port and a `close`
 * that destroys its open connections (keep-alive ones too) before it closes the server.
 */
export async function listenOnLoopback(
  server: Server,
): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}
