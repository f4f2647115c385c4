import net from 'node:net';
import type { Server } from 'node:http';
import { createEmbeddedHost, createMemoryStateStore } from '../../runtime/index.js';
import { createSilentLogger } from '../../common/logger.js';
import { createEdgeServer, createManifest, type EdgeServer } from '../../transfer/index.js';
import { serveActorApi } from '../../node/actor-api.js';
import { makeTempDir, writeRandomFile } from './fixtures.js';

/**
 * A real slow client: declares a 100 000-byte body and sends one byte every 50 ms. Resolves with what the server
 * answered once it closes the connection. Servers used Node's default requestTimeout (300 s), so such a client
 * held a connection for minutes; with the option shortened the server answers 408 and closes it.
 */
function slowPost(port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let answer = '';
    let timer: NodeJS.Timeout | undefined;
    s.on('connect', () => {
      s.write(
        `${path.startsWith('/v1/chunks') ? 'PUT' : 'POST'} ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\ncontent-length: 100000\r\n\r\n`,
      );
      timer = setInterval(() => s.write('x'), 50);
    });
    s.on('data', (d: Buffer) => (answer += d.toString()));
    s.on('error', () => undefined);
    s.on('close', () => {
      clearInterval(timer);
      resolve(answer);
    });
    s.on('timeout', () => reject(new Error('no answer')));
  });
}

test('the embedded actor API answers 408 and closes a request whose body trickles in past requestTimeoutMs', async () => {
  const host = createEmbeddedHost({ store: createMemoryStateStore(), logger: createSilentLogger() });
  const api: Server = await serveActorApi(host, {
    port: 0,
    log: createSilentLogger(),
    requestTimeoutMs: 400,
  });
  try {
    const { port } = api.address() as { port: number };
    const answer = await slowPost(port, '/v1.0/actors/SchedulerActor/t1/method/status');
    expect(answer.startsWith('HTTP/1.1 408')).toBe(true);
  } finally {
    api.closeAllConnections();
    await new Promise((resolve) => api.close(resolve));
    await host.stop();
  }
}, 15_000);

test('an accepting edge answers 408 and closes a PUT whose body trickles in past requestTimeoutMs', async () => {
  const tmp = await makeTempDir('request-timeout');
  let edge: EdgeServer | undefined;
  try {
    // chunks larger than the declared body, so the PUT is not refused (413) before its body is read
    const file = await writeRandomFile(tmp.dir, 'f.bin', 2 * 262144);
    const manifest = await createManifest(file.path, { chunkSize: 262144 });
    edge = await createEdgeServer({
      source: { path: file.path, manifest },
      accept: {},
      requestTimeoutMs: 400,
    });
    const answer = await slowPost(edge.port, `/v1/chunks/${manifest.chunks[0]}`);
    expect(answer.startsWith('HTTP/1.1 408')).toBe(true);
  } finally {
    await edge?.close();
    await tmp.cleanup();
  }
}, 15_000);
