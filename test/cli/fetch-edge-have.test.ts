import { mkdtemp, rm, writeFile, readFile } from 'node:fs/promises';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { createManifest, saveManifest } from '../../transfer/index.js';
import { freePort } from '../../common/net.js';
import { makeTestCa, type TestCa } from '../../harness/tls-ca.js';
import { PORTAL_MAIN, runPortal, lastJson } from '../helpers/portal-cli.js';

const CHUNK = 65536;

/** `portal fetch --edge GOOD --edge BAD`: an edge whose /v1/have fails is left out and named; the rest serve. */
describe('portal fetch: an edge whose /v1/have fails is left out (real CLI, real edge process)', () => {
  let dir: string;
  let data: Buffer;
  let manifestPath: string;
  let edges: ChildProcess[] = [];
  let good: string;
  let ca: TestCa;
  let tlsEdge: string;
  let dead: string;
  let hung: NetServer;
  let hungUrl: string;
  const sockets: Socket[] = [];
  let notFound: Server;
  let notFoundUrl: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'portal-edge-have-'));
    data = randomBytes(6 * CHUNK + 123);
    await writeFile(path.join(dir, 'f.bin'), data);
    manifestPath = path.join(dir, 'f.manifest.json');
    await saveManifest(manifestPath, await createManifest(path.join(dir, 'f.bin'), { chunkSize: CHUNK }));
    /** Starts `portal edge --file f.bin --manifest … --json <args>`; resolves to the URL it serves on. */
    const startEdge = async (...args: string[]): Promise<string> => {
      const child = spawn(
        process.execPath,
        [
          PORTAL_MAIN,
          'edge',
          '--file',
          path.join(dir, 'f.bin'),
          '--manifest',
          manifestPath,
          '--json',
          ...args,
        ],
        { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, PORTAL_LOG_LEVEL: 'warn' } },
      );
      edges.push(child);
      const [line] = (await once(createInterface({ input: child.stdout }), 'line')) as [string];
      return (JSON.parse(line) as { url: string }).url;
    };
    ca = await makeTestCa();
    [good, tlsEdge] = await Promise.all([
      startEdge(),
      startEdge('--tls-cert', ca.certFile, '--tls-key', ca.keyFile),
    ]);
    dead = `http://127.0.0.1:${await freePort()}`;
    // accepts, never answers
    hung = createNetServer((s) => sockets.push(s)).listen(0, '127.0.0.1');
    await once(hung, 'listening');
    hungUrl = `http://127.0.0.1:${(hung.address() as { port: number }).port}`;
    notFound = createServer((_req, res) => res.writeHead(404).end('not here')).listen(0, '127.0.0.1');
    await once(notFound, 'listening');
    notFoundUrl = `http://127.0.0.1:${(notFound.address() as { port: number }).port}`;
  }, 60_000);
  afterAll(async () => {
    for (const e of edges) e.kill('SIGTERM');
    edges = [];
    await ca?.cleanup();
    for (const s of sockets) s.destroy();
    hung?.close();
    notFound?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('good edge + refused edge: the file comes whole from the good one; stderr names the refused one', async () => {
    const out = path.join(dir, 'a.bin');
    const r = await runPortal(['fetch', manifestPath, '--edge', good, '--edge', dead, '--out', out], {
      timeoutMs: 60_000,
    });
    expect(r.stderr).toContain(`portal: excluded ${dead}: edge ${dead} is unreachable (connection refused)`);
    expect(r.code).toBe(0);
    expect((await readFile(out)).equals(data)).toBe(true);
  }, 60_000);

  test('good edge + hung edge + 404 edge: left out with why, the fetch goes on; --json lists them as excluded', async () => {
    const out = path.join(dir, 'b.bin');
    const r = await runPortal(
      [
        'fetch',
        manifestPath,
        '--edge',
        good,
        '--edge',
        hungUrl,
        '--edge',
        notFoundUrl,
        '--out',
        out,
        '--json',
      ],
      { timeoutMs: 60_000 },
    );
    expect(r.code).toBe(0);
    expect((await readFile(out)).equals(data)).toBe(true);
    expect(r.stderr).toMatch(
      new RegExp(
        `portal: excluded ${hungUrl}: edge ${hungUrl} did not send the have bitmap of \\S+ within 5000 ms`,
      ),
    );
    expect(r.stderr).toContain(`portal: excluded ${notFoundUrl}: edge ${notFoundUrl} answered 404`);
    const excluded = (lastJson(r).excluded as { url: string }[]).map((e) => e.url).sort();
    expect(excluded).toEqual([hungUrl, notFoundUrl].sort());
  }, 60_000);

  test('an https edge whose certificate is not trusted (no --ca) is left out saying TLS and the code', async () => {
    const out = path.join(dir, 't.bin');
    const r = await runPortal(['fetch', manifestPath, '--edge', good, '--edge', tlsEdge, '--out', out], {
      timeoutMs: 60_000,
    });
    expect(r.stderr).toContain(
      `portal: excluded ${tlsEdge}: edge ${tlsEdge} is unreachable (TLS: UNABLE_TO_VERIFY_LEAF_SIGNATURE`,
    );
    expect(r.code).toBe(0);
    expect((await readFile(out)).equals(data)).toBe(true);
  }, 60_000);

  test('no edge left: exit 3 (the run failed), naming every edge and why', async () => {
    const r = await runPortal(
      ['fetch', manifestPath, '--edge', dead, '--edge', notFoundUrl, '--out', path.join(dir, 'c.bin')],
      {
        timeoutMs: 60_000,
      },
    );
    expect(r.code).toBe(3);
    // one line: each edge's cause once (its message names its URL), one code (no 'excluded' line before it)
    const lines = r.stderr.split('\n').filter((l) => l.startsWith('portal:'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^portal: no source left: every edge's \/v1\/have failed: edge \S+ is unreachable \(connection refused\); edge \S+ answered 404 for the have bitmap of \S+ \[PORTAL_TRANSFER_FAILED\]$/,
    );
    expect(lines[0]).toContain(`edge ${dead} is unreachable`);
    expect(lines[0]).toContain(`edge ${notFoundUrl} answered 404`);
  }, 60_000);
});
