/**
 * `portal fetch URL` without a manifest or checksum resumes through the sources' validators (RFC 9110 §13.1.5
 * If-Range), against the built CLI as a real process and a real loopback server: a rerun after a kill keeps the
 * chunks of the first run when the source still reports the strong ETag (or Last-Modified) journaled then, and
 * fetches only the missing ranges with If-Range; a new ETag starts over and gives the new file; a weak ETag or no
 * validator fetches everything again and says why; a source that answers 200 to If-Range fails as changed.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import path from 'node:path';
import { lastJson, runPortal } from '../helpers/portal-cli.js';
import { makeTempDir } from '../transfer/fixtures.js';

const SIZE = 3 * 262144 + 4321; // 4 chunks of 256 KiB
const env = { PORTAL_BACKEND: 'cpu' };
let tmp: { dir: string; cleanup: () => Promise<void> };
let n = 0;
const out = (): string => {
  const dir = path.join(tmp.dir, `out-${++n}`);
  mkdirSync(dir);
  return path.join(dir, 'file.bin');
};

/**
 * A file server honouring Range and If-Range as RFC 9110 says (a 206 only when If-Range matches the current ETag,
 * or Last-Modified when there is no ETag; 200 with the whole file otherwise). `hold` makes every chunk request
 * after the first wait until it is cleared (the first run is killed meanwhile). `probeEtag` is what a one-byte
 * probe reports instead of the ETag (a file that changes between the probe and the chunk requests).
 */
interface FileServer {
  url: string;
  file: Buffer;
  etag?: string;
  lastModified?: string;
  probeEtag?: string;
  hold: boolean;
  /** Chunk requests (not the probe) are answered 503: the source fails without delivering. */
  busy?: boolean;
  /** The first 200 to If-Range clears probeEtag: the next probe reports the ETag the file has now. */
  probeCatchesUp?: boolean;
  /** Range requests for more than one byte, with their If-Range, status and the bytes sent. */
  served: { range: string; ifRange?: string; status: number; bytes: number }[];
  close(): Promise<void>;
}

async function fileServer(
  file: Buffer,
  v: { etag?: string; lastModified?: string; probeEtag?: string },
): Promise<FileServer> {
  const sockets = new Set<Socket>();
  const held: http.ServerResponse[] = [];
  const s: FileServer = {
    url: '',
    file,
    ...v,
    hold: false,
    served: [],
    close: () =>
      new Promise<void>((r) => {
        for (const x of sockets) x.destroy();
        server.close(() => r());
      }),
  };
  const server = http.createServer((req, res) => {
    const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
    const probe = range !== null && range[1] === '0' && range[2] === '0';
    const etag = probe && s.probeEtag !== undefined ? s.probeEtag : s.etag;
    if (etag !== undefined) res.setHeader('etag', etag);
    const date = new Date().toUTCString();
    res.setHeader('date', date);
    const lastModified = s.lastModified === 'now' ? date : s.lastModified;
    if (lastModified !== undefined) res.setHeader('last-modified', lastModified);
    const ifRange = req.headers['if-range'] as string | undefined;
    const current = s.etag ?? lastModified;
    const whole = !range || (ifRange !== undefined && (ifRange !== current || /^W\//.test(ifRange)));
    if (whole) {
      if (!probe && s.probeCatchesUp) s.probeEtag = undefined;
      if (!probe)
        s.served.push({ range: req.headers.range ?? '', ifRange, status: 200, bytes: s.file.length });
      res.writeHead(200, { 'content-length': s.file.length });
      res.end(s.file);
      return;
    }
    const a = Number(range[1]);
    const b = Math.min(Number(range[2]), s.file.length - 1);
    const body = s.file.subarray(a, b + 1);
    const answer = (): void => {
      res.writeHead(206, {
        'content-range': `bytes ${a}-${b}/${s.file.length}`,
        'content-length': body.length,
      });
      res.end(body);
    };
    if (probe) return answer();
    if (s.busy) return void res.writeHead(503, { 'retry-after': '0' }).end();
    s.served.push({ range: req.headers.range!, ifRange, status: 206, bytes: body.length });
    if (s.hold && s.served.length > 1) held.push(res);
    else answer();
  });
  server.on('connection', (x) => {
    sockets.add(x);
    x.on('close', () => sockets.delete(x));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  s.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/file.bin`;
  servers.push(s);
  return s;
}

const servers: FileServer[] = [];
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** A first run killed (SIGKILL) once a chunk is journaled, the others held by the server. */
async function killedAfterAChunk(s: FileServer, o: string): Promise<void> {
  s.hold = true;
  let killing = false;
  const r = await runPortal(['fetch', s.url, '--out', o, '--progress-json'], {
    env,
    onLine: (line, child) => {
      const j = JSON.parse(line) as { type?: string; complete?: number };
      if (killing || j.type !== 'progress' || (j.complete ?? 0) < 1) return;
      killing = true;
      setTimeout(() => child.kill('SIGKILL'), 400);
    },
  });
  expect(r.signal).toBe('SIGKILL');
  s.hold = false;
}

beforeAll(async () => {
  tmp = await makeTempDir('cli-fetch-resume-validators');
});
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  await tmp?.cleanup();
});

describe('portal fetch URL: a resume without hashes keeps the chunks its validator vouches for', () => {
  test.each([
    ['a strong ETag', { etag: '"v1-abc"' }, '"v1-abc"'],
    [
      'Last-Modified without an ETag',
      { lastModified: 'Tue, 01 Dec 2020 01:00:00 GMT' },
      'Tue, 01 Dec 2020 01:00:00 GMT',
    ],
  ])('%s: the rerun fetches only the missing ranges, each with If-Range', async (_, v, validator) => {
    const file = randomBytes(SIZE);
    const s = await fileServer(file, v);
    const o = out();
    await killedAfterAChunk(s, o);
    // the first run's requests carried If-Range too: a change while it ran could not mix versions
    expect(s.served.every((q) => q.ifRange === validator)).toBe(true);
    const kept = s.served[0].range;
    s.served = [];
    const r = await runPortal(['fetch', s.url, '--out', o, '--json'], { env });
    expect(r.code).toBe(0);
    expect(sha(await readFile(o))).toBe(sha(file));
    const j = lastJson(r);
    expect(j.resumedChunks).toBe(1);
    expect(j.fetchedChunks).toBe(3);
    const all = ['bytes=0-262143', 'bytes=262144-524287', 'bytes=524288-786431', `bytes=786432-${SIZE - 1}`];
    expect(s.served.map((q) => q.range).sort()).toEqual(all.filter((x) => x !== kept).sort());
    expect(s.served.every((q) => q.status === 206 && q.ifRange === validator)).toBe(true);
    // the bytes served by the rerun: the file less the kept chunk
    expect(s.served.reduce((t, q) => t + q.bytes, 0)).toBe(
      SIZE - 262144 * (kept === all[3] ? 0 : 1) - (kept === all[3] ? 4321 : 0),
    );
    expect(r.stderr).not.toContain('starting over');
  });

  test('a new ETag (the file changed, same size): the rerun says so, starts over, and the output is the new file', async () => {
    const s = await fileServer(randomBytes(SIZE), { etag: '"v1"' });
    const o = out();
    await killedAfterAChunk(s, o);
    const next = randomBytes(SIZE);
    s.file = next;
    s.etag = '"v2"';
    s.served = [];
    const r = await runPortal(['fetch', s.url, '--out', o, '--json'], { env });
    expect(r.stderr).toContain(
      `portal: ${s.url} now serves another version of the file ("v2" now, "v1" at the first run): the chunks kept from the first run are discarded; starting over`,
    );
    expect(r.code).toBe(0);
    expect(sha(await readFile(o))).toBe(sha(next));
    expect(lastJson(r).resumedChunks).toBe(0);
    expect(s.served).toHaveLength(4);
  });

  test.each([
    ['a weak ETag', { etag: 'W/"v1"' }],
    ['no validator', {}],
    // the server's Date is the Last-Modified second itself: not a strong validator (RFC 9110 §8.8.2.2)
    ['a Last-Modified as recent as the Date', { lastModified: 'now' }],
  ])('%s: the rerun fetches every chunk again and says why', async (_, v) => {
    const file = randomBytes(SIZE);
    const s = await fileServer(file, v);
    const o = out();
    await killedAfterAChunk(s, o);
    expect(s.served.every((q) => q.ifRange === undefined)).toBe(true);
    s.served = [];
    const r = await runPortal(['fetch', s.url, '--out', o, '--json'], { env });
    expect(r.code).toBe(0);
    expect(sha(await readFile(o))).toBe(sha(file));
    expect(lastJson(r).resumedChunks).toBe(0);
    expect(s.served).toHaveLength(4);
    expect(r.stderr).toContain(
      'portal: resuming: the chunks kept so far have no hash and the sources gave no strong validator',
    );
  });

  test('a source answering 200 to If-Range each time (its probe keeps reporting the old validator) restarts from zero at most twice, then fails as changed, not mixed', async () => {
    // the probe still reports "v1", the chunk requests find "v2"
    const s = await fileServer(randomBytes(SIZE), { etag: '"v2"', probeEtag: '"v1"' });
    const o = out();
    const r = await runPortal(['fetch', s.url, '--out', o, '--source-budget', '2'], { env });
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('the file changed version: the mirror answered HTTP 200 to If-Range: "v1"');
    expect(s.served.every((q) => q.status === 200 && q.ifRange === '"v1"')).toBe(true);
    const restarted = `portal: ${s.url} now serves another version of the file (it answered HTTP 200 to If-Range: "v1"): the chunks kept so far are discarded; restarting from zero against the new version`;
    expect(r.stderr.split(restarted)).toHaveLength(3);
    expect(r.stderr).toContain(
      `portal: restarting from zero (restart 2 of at most 2): ${s.url} now serves validator "v1", ${SIZE} bytes`,
    );
    // nothing of the old version is kept for the next run: the journal (all but its lock) and the partial file go
    expect(r.stderr).toContain(
      `portal: ${s.url} now serves another version of the file (it answered HTTP 200 to If-Range: "v1"): the chunks kept so far are discarded (it changed again after 2 restarts from zero); run the command again to fetch the new version`,
    );
    expect(existsSync(`${o}.portal-part`)).toBe(false);
    expect(readdirSync(`${o}.portal`).filter((f) => f !== 'lock')).toEqual([]);
  });

  test('a restart from zero leaves out a source that still serves the version given up, while another serves the new one', async () => {
    // a: its chunks find "a2" where its probe said "a1" (then its probe says "a2" too); b: still "b1", failing
    const next = randomBytes(SIZE);
    const a = await fileServer(next, { etag: '"a2"', probeEtag: '"a1"' });
    a.probeCatchesUp = true;
    const b = await fileServer(randomBytes(SIZE), { etag: '"b1"' });
    b.busy = true;
    const o = out();
    const r = await runPortal(['fetch', a.url, b.url, '--out', o, '--source-budget', '2', '--json'], { env });
    expect(r.stderr).toContain(
      `portal: ${a.url} now serves another version of the file (it answered HTTP 200 to If-Range: "a1"): the chunks kept so far are discarded; restarting from zero against the new version`,
    );
    expect(r.stderr).toContain(
      `portal: excluded ${b.url}: it still serves the version the run gave up ("b1"), which ${a.url} no longer serves: the versions are not mixed`,
    );
    expect(r.code).toBe(0);
    expect(sha(await readFile(o))).toBe(sha(next));
    const j = lastJson(r) as {
      restartsFromZero?: number;
      excluded?: { url: string }[];
      chunksBySource: Record<string, number>;
    };
    expect(j.restartsFromZero).toBe(1);
    expect(j.excluded?.map((e) => e.url)).toEqual([b.url]);
    expect(Object.keys(j.chunksBySource)).toHaveLength(1);
  });
});
