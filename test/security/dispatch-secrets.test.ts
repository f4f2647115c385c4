import { readdir, readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createNatsBus, type NatsBus } from '../../bus/nats-bus.js';
import {
  dispatchKeyFromEnv,
  guardDispatchSecrets,
  parseDispatchKey,
  unresolvedCredentialsDetail,
} from '../../bus/dispatch-seal.js';
import { subjects } from '../../bus/types.js';
import type { ChunkReport, DispatchBatch } from '../../common/index.js';
import { createExecutor } from '../../transfer/index.js';
import { startNatsServer, type TestNatsServer } from '../../harness/index.js';
import { startBadMirror } from '../helpers/bad-mirror.js';
import { FETCH_ENV, fetchFixture } from '../helpers/fetch-fixture.js';
import { PORTAL_MAIN, runPortal } from '../helpers/portal-cli.js';

const PASSWORD = 's3cretPW-dispatch';
const TOKEN = 'TOPSECRETTOKEN-dispatch';
const KEY_HEX = 'a1'.repeat(32);

/** Every file under `dir`, read whole (the JetStream store of the test server). */
async function storeBytes(dir: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true }))
    if (e.isFile()) parts.push(await readFile(path.join(e.parentPath, e.name)));
  return Buffer.concat(parts);
}

/** Subscribes to `portal.transfer.>` with a plain NATS client and keeps every payload's raw bytes. */
async function tap(nc: NatsConnection): Promise<{ bytes: () => Buffer; count: () => number }> {
  const seen: Buffer[] = [];
  nc.subscribe('portal.transfer.>', {
    callback: (_e, m) => {
      seen.push(Buffer.from(m.data));
    },
  });
  await nc.flush();
  return { bytes: () => Buffer.concat(seen), count: () => seen.length };
}

describe('dispatch secrets on NATS', () => {
  let server: TestNatsServer;
  let nc: NatsConnection;
  beforeAll(async () => {
    server = await startNatsServer();
    nc = await connect({ servers: server.url });
  });
  afterAll(async () => {
    await nc?.close();
    await server?.stop();
  });

  const fx = fetchFixture('dispatch-secrets', 3 * 1024 * 1024 + 17);

  (existsSync(PORTAL_MAIN) || process.env.CI === 'true' ? test : test.skip)(
    'dispatch secrets: portal fetch with NATS_URL fetches from a Basic-auth mirror and a token mirror, and no password or token is published on portal.transfer.> nor stored by JetStream',
    async () => {
      const basic = `Basic ${Buffer.from(`alice:${PASSWORD}`).toString('base64')}`;
      // each mirror answers a GET only with its credential: the fetch must have used the real URLs
      const authMirror = await startBadMirror(fx.bytes, (_n, req) =>
        req.headers.authorization === basic ? { kind: 'ok' } : { kind: 'status', status: 401 },
      );
      const tokenMirror = await startBadMirror(fx.bytes, (_n, req) =>
        (req.url ?? '').includes(`token=${TOKEN}`) ? { kind: 'ok' } : { kind: 'status', status: 403 },
      );
      fx.closeLater(() => authMirror.close());
      fx.closeLater(() => tokenMirror.close());
      const t = await tap(nc);
      const out = fx.out();
      const a = authMirror.url.replace('http://', `http://alice:${PASSWORD}@`);
      const b = `${tokenMirror.url}?token=${TOKEN}`;
      const run = await runPortal(['fetch', a, b, '--out', out, '--checksum', `sha256:${fx.sha}`], {
        env: { ...FETCH_ENV, NATS_URL: server.url },
      });
      expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: expect.any(String) });
      expect(
        createHash('sha256')
          .update(await readFile(out))
          .digest('hex'),
      ).toBe(fx.sha);
      // both mirrors served chunks (GETs with their credential)
      const gets = (m: typeof authMirror): number => m.requests.filter((r) => r.method === 'GET').length;
      expect(gets(authMirror)).toBeGreaterThan(0);
      expect(gets(tokenMirror)).toBeGreaterThan(0);
      await nc.flush();
      const wire = t.bytes();
      expect(t.count()).toBeGreaterThan(0);
      // the dispatches went over NATS with the redacted URLs
      expect(wire.includes(Buffer.from('127.0.0.1'))).toBe(true);
      expect(wire.includes(Buffer.from('alice:***@'))).toBe(false); // userinfo is redacted whole
      expect(wire.includes(Buffer.from('***@127.0.0.1'))).toBe(true);
      expect(wire.includes(Buffer.from('token=***'))).toBe(true);
      expect(wire.includes(Buffer.from(PASSWORD))).toBe(false);
      expect(wire.includes(Buffer.from(TOKEN))).toBe(false);
      const stored = await storeBytes(server.storeDir);
      expect(stored.includes(Buffer.from(PASSWORD))).toBe(false);
      expect(stored.includes(Buffer.from(TOKEN))).toBe(false);
    },
    120_000,
  );

  describe('between processes', () => {
    let pub: NatsBus;
    let sub: NatsBus;
    beforeAll(async () => {
      pub = await createNatsBus({ servers: server.url, name: 'seal-pub' });
      sub = await createNatsBus({ servers: server.url, name: 'seal-sub' });
    });
    afterAll(async () => {
      await pub?.close();
      await sub?.close();
    });

    const batch = (transferId: string, url: string): DispatchBatch => ({
      transferId,
      output: '/tmp/x.bin',
      fileSize: 100,
      items: [
        {
          chunk: 0,
          attempt: 1,
          edgeIndex: 0,
          edgeUrl: url,
          edgeKind: 'mirror',
          cid: '0'.repeat(64),
          offset: 0,
          length: 100,
          timeoutMs: 1000,
        },
      ],
    });

    test('dispatch secrets: with the same PORTAL_DISPATCH_KEY an executor in another process gets the real URL, sealed on the wire; with another key or none it gets the redacted URL', async () => {
      const key = parseDispatchKey(KEY_HEX, 'test');
      const sender = guardDispatchSecrets(pub, { key });
      const got: Record<string, string[]> = { same: [], other: [], none: [] };
      const t = await tap(nc);
      const receivers = {
        same: guardDispatchSecrets(sub, { key }),
        other: guardDispatchSecrets(sub, { key: parseDispatchKey('b2'.repeat(32), 'test') }),
        none: guardDispatchSecrets(sub),
      };
      const subs = Object.entries(receivers).map(([name, bus]) =>
        bus.subscribe<DispatchBatch>(subjects.dispatch('sealed1'), (m) => {
          got[name].push(m.items[0].edgeUrl);
          expect(m.items[0].sealedUrl).toBeUndefined(); // executors never see the sealed form
        }),
      );
      for (const s of subs) await s.ready;
      const real = `http://bob:${PASSWORD}@127.0.0.1:9/f.bin?token=${TOKEN}&v=2`;
      await sender.publish(subjects.dispatch('sealed1'), batch('sealed1', real));
      const redacted = 'http://***@127.0.0.1:9/f.bin?token=***&v=2';
      for (let i = 0; i < 100 && Object.values(got).some((g) => g.length === 0); i++)
        await new Promise((r) => setTimeout(r, 20));
      expect(got).toEqual({ same: [real], other: [redacted], none: [redacted] });
      await nc.flush();
      expect(t.count()).toBeGreaterThan(0);
      expect(t.bytes().includes(Buffer.from(PASSWORD))).toBe(false);
      expect(t.bytes().includes(Buffer.from(TOKEN))).toBe(false);
      for (const s of subs) s.unsubscribe();
    });

    test('dispatch secrets: an executor that gets a redacted source fails the chunk naming PORTAL_DISPATCH_KEY and never fetches it', async () => {
      const sender = guardDispatchSecrets(pub); // no key: only the sending process could resolve it
      const fetched: string[] = [];
      const executor = createExecutor({
        bus: guardDispatchSecrets(sub),
        id: 'ex-nokey',
        fetch: (r) => {
          fetched.push(r.edgeUrl);
          return Promise.reject(new Error('not reached'));
        },
      });
      const reports: ChunkReport[] = [];
      const rs = pub.subscribe<ChunkReport>(subjects.report('nokey1'), (r) => {
        reports.push(r);
      });
      await rs.ready;
      executor.attach('nokey1');
      await new Promise((r) => setTimeout(r, 200)); // the executor's consumer is created asynchronously
      await sender.publish(
        subjects.dispatch('nokey1'),
        batch('nokey1', `http://bob:${PASSWORD}@127.0.0.1:9/f.bin`),
      );
      for (let i = 0; i < 200 && reports.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
      await executor.close();
      rs.unsubscribe();
      expect(fetched).toEqual([]);
      expect(reports.map((r) => ({ ok: r.ok, reason: r.reason, detail: r.detail }))).toEqual([
        {
          ok: false,
          reason: 'io',
          detail: unresolvedCredentialsDetail('http://***@127.0.0.1:9/f.bin'),
        },
      ]);
      expect(reports[0].detail).toContain('PORTAL_DISPATCH_KEY');
    });

    test('dispatch secrets: PORTAL_DISPATCH_KEY is read as 64 hex digits or base64 of 32 bytes; anything else is a configuration error naming it', () => {
      expect(dispatchKeyFromEnv({})).toBeUndefined();
      expect(dispatchKeyFromEnv({ PORTAL_DISPATCH_KEY: KEY_HEX })?.toString('hex')).toBe(KEY_HEX);
      const b64 = Buffer.from(KEY_HEX, 'hex').toString('base64');
      expect(dispatchKeyFromEnv({ PORTAL_DISPATCH_KEY: b64 })?.toString('hex')).toBe(KEY_HEX);
      expect(() => dispatchKeyFromEnv({ PORTAL_DISPATCH_KEY: 'short' })).toThrow(
        /PORTAL_DISPATCH_KEY: expected a 256-bit key/,
      );
    });
  });
});
