/**
 * HttpClient.receive: a response body handed to callbacks through undici's dispatch handler API (the chunk
 * path), against real loopback servers: pieces in order, unwanted bodies skipped, errors and aborts.
 */
import { jest } from '@jest/globals';
import {
  createHttpClient,
  fetchChunk,
  ChunkFetchError,
  FETCH_BACKOFF_BASE_MS,
  type BodyReceiver,
  type HttpClient,
  type ResponseHead,
} from '../../transfer/index.js';
import { startBadMirror, type BadMirror, type MirrorMode } from '../helpers/bad-mirror.js';
import { randomBytes, rejectionOf } from './fixtures.js';
import { createHash } from 'node:crypto';

const bytes = randomBytes(600 * 1024, 7);
const mirrors: BadMirror[] = [];
const clients: HttpClient[] = [];

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all(mirrors.map((s) => s.close()));
});

function client(opts: Parameters<typeof createHttpClient>[0] = {}): HttpClient {
  const c = createHttpClient({ proxy: false, ...opts });
  clients.push(c);
  return c;
}
async function mirror(mode: (n: number) => MirrorMode): Promise<BadMirror> {
  const s = await startBadMirror(bytes, mode);
  mirrors.push(s);
  return s;
}

/** A receiver that keeps every head and piece it is given, reading bodies in mode `data`. */
function collector(
  mode: 'data' | 'skip' = 'data',
): BodyReceiver & { heads: ResponseHead[]; pieces: Buffer[] } {
  const heads: ResponseHead[] = [];
  const pieces: Buffer[] = [];
  return {
    heads,
    pieces,
    onHead(h) {
      heads.push(h);
      return mode;
    },
    onData: (p) => void pieces.push(p),
  };
}

describe('receive', () => {
  test('receive: a 206 body arrives in order through onData and the promise settles after its last byte', async () => {
    const s = await mirror(() => ({ kind: 'ok' }));
    const rx = collector();
    const r = await client().receive(s.url, { headers: { range: 'bytes=1000-500999' } }, rx);
    expect(r).toMatchObject({ statusCode: 206, mode: 'data', url: s.url, redirects: 0 });
    expect(rx.heads).toHaveLength(1);
    expect(rx.pieces.length).toBeGreaterThan(1);
    expect(Buffer.concat(rx.pieces).equals(bytes.subarray(1000, 501000))).toBe(true);
  });

  test('receive: a skipped error body is read to its end and its connection serves the next request', async () => {
    const s = await mirror((n) => (n === 0 ? { kind: 'status', status: 404 } : { kind: 'ok' }));
    const c = client({ connectionsPerOrigin: 1 });
    const skipped = collector('skip');
    expect(await c.receive(s.url, {}, skipped)).toMatchObject({ statusCode: 404, mode: 'skip' });
    expect(skipped.pieces).toHaveLength(0);
    await c.receive(s.url, { headers: { range: 'bytes=0-99' } }, collector());
    expect(s.requests[1].socket).toBe(s.requests[0].socket);
  });

  test('receive: a skipped body longer than SKIP_LIMIT_BYTES closes its connection instead of being read', async () => {
    const s = await mirror(() => ({ kind: 'ok' }));
    const c = client({ connectionsPerOrigin: 1 });
    expect(await c.receive(s.url, {}, collector('skip'))).toMatchObject({ statusCode: 200, mode: 'skip' });
    await c.receive(s.url, { headers: { range: 'bytes=0-99' } }, collector());
    expect(s.requests[1].socket).not.toBe(s.requests[0].socket);
  });

  test('receive: a throw from onData aborts the request and rejects with that very error', async () => {
    const s = await mirror(() => ({ kind: 'ok' }));
    const full = new Error('no space left on device');
    let calls = 0;
    const err = await rejectionOf(() =>
      client().receive(
        s.url,
        {},
        {
          onHead: () => 'data',
          onData: () => {
            calls++;
            throw full;
          },
        },
      ),
    );
    expect(err).toBe(full);
    expect(calls).toBe(1);
  });

  test('receive: a throw from onHead aborts the request before any piece and rejects with it', async () => {
    const s = await mirror(() => ({ kind: 'ok' }));
    const refused = new Error('not this one');
    const rx = collector();
    const err = await rejectionOf(() =>
      client().receive(
        s.url,
        {},
        {
          onHead: () => {
            throw refused;
          },
          onData: (p) => rx.onData(p),
        },
      ),
    );
    expect(err).toBe(refused);
    expect(rx.pieces).toHaveLength(0);
  });

  test('receive: aborting the signal while the body stalls rejects with the signal’s reason', async () => {
    const s = await mirror(() => ({ kind: 'stall' }));
    const ac = new AbortController();
    const reason = new Error('cancelled by the test');
    const rx: BodyReceiver = { onHead: () => 'data', onData: () => ac.abort(reason) };
    expect(await rejectionOf(() => client().receive(s.url, { signal: ac.signal }, rx))).toBe(reason);
  });

  test('receive: redirects are followed and only the final response reaches the receiver', async () => {
    const target = await mirror(() => ({ kind: 'ok' }));
    const front = await mirror(() => ({ kind: 'redirect', status: 307, location: target.url }));
    const rx = collector();
    const r = await client().receive(front.url, { headers: { range: 'bytes=0-9' } }, rx);
    expect(rx.heads).toEqual([expect.objectContaining({ statusCode: 206, url: target.url, redirects: 1 })]);
    expect(r).toMatchObject({ url: target.url, redirects: 1 });
    expect(Buffer.concat(rx.pieces).equals(bytes.subarray(0, 10))).toBe(true);
  });

  test('receiveMirror: the remembered URL answering 403 is never shown to the receiver; the mirror is resolved again', async () => {
    let alive = true;
    const cdn = await mirror(() => (alive ? { kind: 'ok' } : { kind: 'status', status: 403 }));
    const front = await mirror(() => ({ kind: 'redirect', location: cdn.url }));
    const c = client();
    await c.receiveMirror(front.url, { headers: { range: 'bytes=0-9' } }, collector());
    alive = false;
    const rx = collector();
    const r = await c.receiveMirror(front.url, { headers: { range: 'bytes=0-9' } }, rx);
    expect(rx.heads.map((h) => h.statusCode)).toEqual([403]); // through the front again, to the dead CDN
    expect(r.redirects).toBe(1);
    expect(front.requests).toHaveLength(2);
  });

  test('receiveMirror: a reset after the remembered URL’s body began is the caller’s error, not resolved again', async () => {
    let reset = false;
    const cdn = await mirror(() => (reset ? { kind: 'reset-mid-body' } : { kind: 'ok' }));
    const front = await mirror(() => ({ kind: 'redirect', location: cdn.url }));
    const c = client();
    await c.receiveMirror(front.url, { headers: { range: 'bytes=0-9' } }, collector());
    reset = true;
    const rx = collector();
    const err = (await rejectionOf(() =>
      c.receiveMirror(front.url, { headers: { range: 'bytes=0-499999' } }, rx),
    )) as { code?: string };
    expect(err.code).toMatch(/UND_ERR_SOCKET|ECONNRESET/);
    expect(rx.heads).toHaveLength(1);
    expect(front.requests).toHaveLength(1);
  });
});

describe('fetchChunk over receive', () => {
  test('a fetch cancelled while it waits to retry (after a reset mid-body) ends at the cancel, not when its backoff would end', async () => {
    const s = await mirror((n) => (n === 0 ? { kind: 'reset-mid-body' } : { kind: 'ok' }));
    const length = 400 * 1024;
    const cid = createHash('sha256').update(bytes.subarray(0, length)).digest('hex');
    const ac = new AbortController();
    // the largest backoff of the first retry (FETCH_BACKOFF_BASE_MS · 2, full jitter), so that it is one timer of
    // its own, and the cancel comes as soon as that timer is set
    const random = jest.spyOn(Math, 'random').mockReturnValue(0.999);
    const realSetTimeout = globalThis.setTimeout;
    const events: string[] = [];
    const spy = jest
      .spyOn(globalThis, 'setTimeout')
      .mockImplementation((f: () => void, ms?: number, ...rest: unknown[]) => {
        if (ms === 0.999 * 2 * FETCH_BACKOFF_BASE_MS) {
          events.push('backoff set');
          queueMicrotask(() => ac.abort(new Error('failover')));
          return realSetTimeout(() => {
            events.push('backoff ended');
            f();
          }, ms);
        }
        return Reflect.apply(realSetTimeout, globalThis, [f, ms, ...rest]) as NodeJS.Timeout;
      });
    let err: ChunkFetchError;
    try {
      err = (await rejectionOf(() =>
        fetchChunk({
          edgeUrl: s.url,
          edgeKind: 'mirror',
          cid,
          offset: 0,
          length,
          timeoutMs: 20_000,
          client: client(),
          signal: ac.signal,
        }),
      )) as ChunkFetchError;
      events.push('fetch ended');
    } finally {
      spy.mockRestore();
      random.mockRestore();
    }
    expect(err).toBeInstanceOf(ChunkFetchError);
    expect(err.fault).toBe('cancelled');
    expect(events).toEqual(['backoff set', 'fetch ended']);
    expect(s.requests).toHaveLength(1);
  });

  test('a fetch whose deadline passes while it waits for the only connection ends then, not when that connection frees', async () => {
    const s = await mirror((n) => (n === 0 ? { kind: 'stall' } : { kind: 'ok' }));
    const c = client({ connectionsPerOrigin: 1, stallTimeoutMs: 60_000 });
    const cid = createHash('sha256').update(bytes.subarray(0, 65536)).digest('hex');
    const base = { edgeUrl: s.url, edgeKind: 'mirror' as const, cid, offset: 0, length: 65536, client: c };
    const order: string[] = [];
    // A holds the connection (headers and 100 bytes, then nothing) until its deadline at 3 s (deadlines the
    // scheduler computes are fractional ms: messages give whole ones)
    const a = fetchChunk({ ...base, timeoutMs: 3_000.2719 }).catch((e: unknown) => {
      order.push('A');
      return e;
    });
    while (s.requests.length === 0) await new Promise((r) => setTimeout(r, 10));
    // B is queued behind it with a deadline of 200 ms
    const b = fetchChunk({ ...base, timeoutMs: 199.7196980000008 }).catch((e: unknown) => {
      order.push('B');
      return e;
    });
    const errB = (await b) as ChunkFetchError;
    expect(errB).toBeInstanceOf(ChunkFetchError);
    expect(errB.fault).toBe('deadline');
    expect(errB.detail).toMatch(/^no response within 200 ms$/);
    const errA = (await a) as ChunkFetchError;
    expect(errA.fault).toBe('deadline');
    expect(errA.detail).toMatch(/^body incomplete after 3000 ms \(\d+ of 65536 bytes\)/);
    expect(order).toEqual(['B', 'A']);
  });
});
