/**
 * NATS credentials and TLS against real nats-server processes that require them: the bus from the
 * environment (natsOptionsFromEnv / createBusFromEnv) and the JetStream stream transport both log in with
 * NATS_USER/NATS_PASSWORD, NATS_TOKEN, NATS_NKEY_SEED_FILE and NATS_TLS_CA; a refused login or an unverifiable server
 * certificate fails fast with PORTAL_BUS_UNAVAILABLE naming the problem.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createBusFromEnv, natsOptionsFromEnv } from '../../bus/from-env.js';
import { createNatsStreamTransport, type NatsStreamTransport } from '../../stream/nats-transport.js';
import { subjects, type Bus } from '../../bus/types.js';
import type { EdgeTelemetryEvent } from '../../common/index.js';
import { isPortalError, type PortalError } from '../../common/errors.js';
import { createSilentLogger } from '../../common/logger.js';
import { createStreamProcessor, streamSubjects } from '../../stream/index.js';
import { startNatsServer, type TestNatsServer } from '../../harness/index.js';
import { createUser } from '@nats-io/nkeys';
import { fakeExecutor, idsOf, seqKernel, seqRecords, waitFor } from '../stream/fixtures.js';

const logger = createSilentLogger();
const servers: TestNatsServer[] = [];
const closers: Array<() => Promise<void>> = [];
let tmp: string;

async function server(config: string): Promise<TestNatsServer> {
  const s = await startNatsServer({ config });
  servers.push(s);
  return s;
}

async function busFromEnv(env: NodeJS.ProcessEnv, name: string): Promise<Bus> {
  // A generous connect timeout: on a loaded CI machine the TLS or nkey handshake can take seconds; refusals
  // (what these tests assert) still arrive at once.
  const b = await createBusFromEnv({ env, logger, name, connectTimeoutMs: 30_000 });
  closers.push(() => b.close());
  return b;
}

/** How `p` rejects. */
async function failure(p: Promise<unknown>): Promise<{ err: PortalError }> {
  const err = await p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
  if (!isPortalError(err)) throw err;
  return { err };
}

/** Publishes one telemetry event on `a` and resolves once `b` received it. */
async function roundTrip(a: Bus, b: Bus, edgeId: string): Promise<void> {
  const got: EdgeTelemetryEvent[] = [];
  const sub = b.subscribe<EdgeTelemetryEvent>(subjects.edgeTelemetry(edgeId), (t) => {
    got.push(t);
  });
  await sub.ready;
  const t: EdgeTelemetryEvent = {
    edgeId,
    sentAtMs: 1,
    online: true,
    bandwidth: [{ atMs: 1, bytesPerSec: 1e6 }],
    rtt: [],
    url: 'http://127.0.0.1:1',
  };
  // core subjects are fire-and-forget: publish until the subscription (registered asynchronously) sees one
  await waitFor(
    async () => {
      if (got.length === 0) await a.publish(subjects.edgeTelemetry(edgeId), t);
      return got.length > 0;
    },
    10_000,
    'the message',
  );
  expect(got[0]).toEqual(t);
  sub.unsubscribe();
}

const openssl = (args: string[]): void => {
  execFileSync('openssl', args, { cwd: tmp, stdio: ['ignore', 'ignore', 'pipe'] });
};

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'portal-nats-auth-'));
});
afterEach(async () => {
  await Promise.all(closers.splice(0).map((c) => c().catch(() => undefined)));
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('user and password', () => {
  const config = 'authorization { user: portal, password: "s3cret-pw", timeout: 10 }\n';

  test('the bus from NATS_USER/NATS_PASSWORD connects and round-trips; a wrong or missing password fails with a typed error naming the refusal (not a timeout)', async () => {
    const s = await server(config);
    const env = { NATS_URL: s.url, NATS_USER: 'portal', NATS_PASSWORD: 's3cret-pw' };
    await roundTrip(await busFromEnv(env, 'up-a'), await busFromEnv(env, 'up-b'), 'up1');

    const wrong = await failure(createBusFromEnv({ env: { ...env, NATS_PASSWORD: 'nope' }, logger }));
    expect(wrong.err.code).toBe('PORTAL_BUS_UNAVAILABLE');
    expect(wrong.err.message).toMatch(/refused the credentials \(.*authorization violation.*\)/i);
    expect(wrong.err.message).toContain('NATS_USER/NATS_PASSWORD');
    expect(wrong.err.message).toContain(s.url);
    expect(wrong.err.message).not.toContain('nope'); // the password is not echoed

    const none = await failure(createBusFromEnv({ env: { NATS_URL: s.url }, logger }));
    expect(none.err.code).toBe('PORTAL_BUS_UNAVAILABLE');
    expect(none.err.message).toMatch(/authorization violation/i);
  });

  test('the JetStream stream transport logs in with the same options and moves records through JetStream; without them it is refused', async () => {
    const s = await server(config);
    const opts = natsOptionsFromEnv({ NATS_URL: s.url, NATS_USER: 'portal', NATS_PASSWORD: 's3cret-pw' })!;
    expect(opts).toEqual({ servers: s.url, user: 'portal', pass: 's3cret-pw' });

    const refused = await failure(createNatsStreamTransport({ servers: s.url, logger, storage: 'memory' }));
    expect(refused.err.code).toBe('PORTAL_BUS_UNAVAILABLE');
    expect(refused.err.message).toMatch(/refused the credentials/);

    const t: NatsStreamTransport = await createNatsStreamTransport({
      ...opts,
      name: 'stream-auth',
      logger,
      storage: 'memory',
    });
    closers.push(() => t.close());
    const id = 'auth1';
    const seen: number[] = [];
    const sub = t.subscribe(streamSubjects.output(id), (data) => {
      seen.push(...idsOf(data, 4));
    });
    // published before anyone consumes: JetStream stores them until the consumer pulls
    for (let i = 0; i < 5; i++) await t.publishRecords(id, seqRecords(i * 10, 10));
    const p = createStreamProcessor({
      executor: fakeExecutor(seqKernel),
      sink: t.sink(id, { output: 16, input: 8 }),
      logger,
    });
    const src = await t.attach(id, p);
    await waitFor(() => seen.length >= 50, 15_000, '50 outputs');
    await waitFor(async () => (await t.consumerInfo(src.durable)).ackPending === 0, 10_000, 'all acked');
    expect(seen.sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(src.stats()).toMatchObject({ messages: 5, records: 50, acked: 5, naked: 0 });
    expect(await t.consumerInfo(src.durable)).toEqual({ pending: 0, ackPending: 0 });
    await src.stop();
    await p.stop();
    sub.unsubscribe();
  });
});

test('token: the bus from NATS_TOKEN connects and round-trips; a wrong token is refused', async () => {
  const s = await server('authorization { token: "t0ken-abc", timeout: 10 }\n');
  const env = { NATS_URL: s.url, NATS_TOKEN: 't0ken-abc' };
  await roundTrip(await busFromEnv(env, 'tok-a'), await busFromEnv(env, 'tok-b'), 'tok1');
  const wrong = await failure(createBusFromEnv({ env: { ...env, NATS_TOKEN: 'other' }, logger }));
  expect(wrong.err.code).toBe('PORTAL_BUS_UNAVAILABLE');
  expect(wrong.err.message).toMatch(/refused the credentials.*NATS_TOKEN/i);
});

test('nkey: the bus from NATS_NKEY_SEED_FILE signs the server nonce and round-trips; another key is refused', async () => {
  const user = createUser();
  const seedFile = join(tmp, 'user.nk');
  await writeFile(seedFile, new TextDecoder().decode(user.getSeed()), { mode: 0o600 });
  const s = await server(`authorization { users: [ { nkey: ${user.getPublicKey()} } ], timeout: 10 }\n`);
  const env = { NATS_URL: s.url, NATS_NKEY_SEED_FILE: seedFile };
  await roundTrip(await busFromEnv(env, 'nk-a'), await busFromEnv(env, 'nk-b'), 'nk1');
  const otherFile = join(tmp, 'other.nk');
  await writeFile(otherFile, new TextDecoder().decode(createUser().getSeed()), { mode: 0o600 });
  const wrong = await failure(createBusFromEnv({ env: { ...env, NATS_NKEY_SEED_FILE: otherFile }, logger }));
  expect(wrong.err.code).toBe('PORTAL_BUS_UNAVAILABLE');
  expect(wrong.err.message).toMatch(/refused the credentials.*NATS_NKEY_SEED_FILE/i);
  const missing = await failure(
    createBusFromEnv({ env: { ...env, NATS_NKEY_SEED_FILE: join(tmp, 'nope.nk') }, logger }),
  );
  expect(missing.err.code).toBe('PORTAL_CONFIG_INVALID');
});

describe('TLS', () => {
  let files: { ca: string; cert: string; key: string };
  beforeAll(async () => {
    // a throwaway CA and a server certificate for 127.0.0.1 / localhost signed by it
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
    openssl([
      'req',
      '-x509',
      ...ec,
      '-keyout',
      'ca.key',
      '-out',
      'ca.pem',
      '-days',
      '1',
      '-subj',
      '/CN=portal-test-ca',
    ]);
    openssl(['req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost']);
    await writeFile(
      join(tmp, 'server.ext'),
      'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n',
    );
    openssl([
      'x509',
      '-req',
      '-in',
      'server.csr',
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-set_serial',
      '1',
      '-days',
      '1',
      '-out',
      'server.pem',
      '-extfile',
      'server.ext',
    ]);
    files = { ca: join(tmp, 'ca.pem'), cert: join(tmp, 'server.pem'), key: join(tmp, 'server.key') };
  });
  const config = (): string =>
    `tls {\n  cert_file: "${files.cert}"\n  key_file: "${files.key}"\n  ca_file: "${files.ca}"\n  verify: false\n  timeout: 2\n}\n`;

  test('with NATS_TLS_CA the bus and the stream transport connect over TLS; without it the server certificate is rejected with a clear error', async () => {
    const s = await server(config());
    const env = { NATS_URL: s.url, NATS_TLS_CA: files.ca };
    await roundTrip(await busFromEnv(env, 'tls-a'), await busFromEnv(env, 'tls-b'), 'tls1');

    const t = await createNatsStreamTransport({ ...natsOptionsFromEnv(env)!, logger, storage: 'memory' });
    closers.push(() => t.close());
    await t.publishRecords('tls1', seqRecords(0, 4));

    const noCa = await failure(createBusFromEnv({ env: { NATS_URL: s.url }, logger }));
    expect(noCa.err.code).toBe('PORTAL_BUS_UNAVAILABLE');
    expect(noCa.err.message).toMatch(/TLS failed \(.*certificate.*\): check NATS_TLS_CA/i);

    const noCaStream = await failure(
      createNatsStreamTransport({ servers: s.url, logger, storage: 'memory' }),
    );
    expect(noCaStream.err.message).toMatch(/TLS failed/);
  });
});
