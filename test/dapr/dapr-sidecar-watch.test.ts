import http from 'node:http';
import { PassThrough } from 'node:stream';
import { createLogger } from '../../common/logger.js';
import { SIDECAR_MARK, watchDaprSidecar, type DaprSidecarWatch } from '../../runtime/index.js';
import { freePort } from '../../harness/index.js';

// watchDaprSidecar against a fake daprd metadata API (GET /v1.0/metadata, PUT /v1.0/metadata/<key>) that can be
// stopped, restarted empty (a new sidecar) or made to refuse the mark. Checks run by hand (intervalMs 0).

/** A fake daprd on a fixed port: `extended` is its in-memory metadata, lost when it is replaced. */
class FakeDaprd {
  extended: Record<string, string> = {};
  refuseMark = false;
  /** Drops the connection of a PUT (a transient failure). */
  dropMark = false;
  tokens: Array<string | undefined> = [];
  private server: http.Server | undefined;
  constructor(readonly port: number) {}

  async start(): Promise<void> {
    this.server = http.createServer((req, res) => {
      this.tokens.push(req.headers['dapr-api-token'] as string | undefined);
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (req.method === 'GET' && req.url === '/v1.0/metadata') {
          res
            .writeHead(200, { 'content-type': 'application/json' })
            .end(JSON.stringify({ id: 'portal', extended: this.extended }));
        } else if (req.method === 'PUT' && req.url?.startsWith('/v1.0/metadata/')) {
          if (this.refuseMark) {
            res.writeHead(403).end();
            return;
          }
          if (this.dropMark) {
            req.socket.destroy();
            return;
          }
          this.extended[decodeURIComponent(req.url.slice('/v1.0/metadata/'.length))] =
            Buffer.concat(chunks).toString('utf8');
          res.writeHead(204).end();
        } else res.writeHead(404).end();
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(this.port, '127.0.0.1', () => resolve()));
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  /** Kills it and starts a new one on the same port, with empty metadata. */
  async replace(): Promise<void> {
    await this.stop();
    this.extended = {};
    await this.start();
  }
}

let daprd: FakeDaprd;
let watch: DaprSidecarWatch;
let replaced: string[];
let logs: Array<{ level: number; msg: string }>;

function newWatch(apiToken?: string): DaprSidecarWatch {
  const destination = new PassThrough();
  destination.on('data', (d: Buffer) =>
    logs.push(
      ...d
        .toString()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { level: number; msg: string }),
    ),
  );
  return watchDaprSidecar({
    host: '127.0.0.1',
    port: daprd.port,
    apiToken,
    intervalMs: 0,
    timeoutMs: 2000,
    logger: createLogger({ level: 'debug', destination }),
    onReplaced: (r) => replaced.push(r),
  });
}

const flushLogs = () => new Promise((r) => setImmediate(r));

beforeEach(async () => {
  daprd = new FakeDaprd(await freePort());
  await daprd.start();
  replaced = [];
  logs = [];
  watch = newWatch('secret');
});

afterEach(async () => {
  watch.close();
  await daprd.stop();
});

test('start marks the sidecar; the same sidecar, down and back, is not a new one', async () => {
  await watch.start();
  expect(Object.keys(daprd.extended)).toEqual([SIDECAR_MARK]);
  expect(daprd.tokens.every((t) => t === 'secret')).toBe(true);
  expect(watch.reachable).toBe(true);

  const mark = daprd.extended[SIDECAR_MARK];
  await daprd.stop();
  await watch.check();
  await watch.check();
  expect(watch.reachable).toBe(false);
  await daprd.start(); // same extended: the same sidecar, reachable again
  await watch.check();
  await flushLogs();
  expect(watch.reachable).toBe(true);
  expect(daprd.extended[SIDECAR_MARK]).toBe(mark);
  expect(replaced).toEqual([]);
  expect(logs.filter((l) => l.level === 40).map((l) => l.msg)).toEqual([
    'Dapr sidecar unreachable: actor calls, timers and reminders of this app wait for it',
  ]);
  expect(logs.filter((l) => l.level === 30).map((l) => l.msg)).toEqual([
    'Dapr sidecar reachable again (the same sidecar)',
  ]);
});

test('a sidecar without the mark is a new one, reported once and marked', async () => {
  await watch.start();
  await daprd.replace(); // faster than a check: never seen down
  await watch.check();
  expect(replaced).toEqual(["the sidecar answers without this app's mark"]);
  expect(daprd.extended[SIDECAR_MARK]).toBeDefined();
  await watch.check();
  expect(replaced).toHaveLength(1);
});

test('a new sidecar is reported once even when marking it fails at first', async () => {
  await watch.start();
  await daprd.replace();
  daprd.dropMark = true;
  await watch.check();
  expect(replaced).toHaveLength(1);
  expect(daprd.extended[SIDECAR_MARK]).toBeUndefined();
  daprd.dropMark = false;
  await watch.check();
  expect(daprd.extended[SIDECAR_MARK]).toBeDefined();
  await watch.check();
  expect(replaced).toHaveLength(1);
  await flushLogs();
  expect(logs.some((l) => l.level === 40 && l.msg.includes('could not mark'))).toBe(true);
});

test('the first /dapr/config is the first sidecar; a second one is a new sidecar, not reported again by the mark', async () => {
  watch.configRequested();
  await watch.start();
  expect(replaced).toEqual([]);
  await daprd.replace();
  watch.configRequested();
  expect(replaced).toEqual(['the sidecar fetched /dapr/config again']);
  await watch.check();
  await watch.check();
  expect(replaced).toHaveLength(1);
  expect(daprd.extended[SIDECAR_MARK]).toBeDefined();
});

test('a sidecar that refuses the mark: /dapr/config alone tells a new one', async () => {
  daprd.refuseMark = true;
  await watch.start();
  await daprd.replace();
  await watch.check();
  expect(replaced).toEqual([]);
  watch.configRequested();
  watch.configRequested();
  expect(replaced).toEqual(['the sidecar fetched /dapr/config again']);
  await flushLogs();
  expect(logs.some((l) => l.level === 40 && l.msg.includes('refused the metadata mark'))).toBe(true);
});

test('polls on its own every intervalMs until closed', async () => {
  watch.close();
  watch = watchDaprSidecar({
    host: '127.0.0.1',
    port: daprd.port,
    intervalMs: 50,
    logger: createLogger({ level: 'silent' }),
    onReplaced: (r) => replaced.push(r),
  });
  await watch.start();
  await daprd.replace();
  const deadline = Date.now() + 5000;
  while (replaced.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  expect(replaced).toHaveLength(1);
});
