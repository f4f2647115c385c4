import net from 'node:net';
import { createTokenBucket, type TokenBucket } from '../transfer/index.js';

/**
 * A TCP link in front of one server that shapes what the server sends: a token bucket shared by every
 * connection through the link (the server's uplink capacity, in bytes per second) and a one-way delay in each
 * direction (so a round trip costs 2 × delayMs more). nginx's own `limit_rate` caps each request, not a
 * server: a client that opens more connections gets more, so it cannot model a mirror's capacity; Linux
 * `tc netem` shapes a whole interface (here: the loopback every other process of a shared machine uses).
 * Kept as our own small proxy for that reason; used by the benchmarks only.
 */
export interface ShapedLink {
  /** http://127.0.0.1:PORT (the link's own port, stable across cut/restore). */
  readonly url: string;
  readonly port: number;
  /** Bytes forwarded from the server to clients so far. */
  bytesDown(): number;
  /** Breaks every connection (RST) and refuses new ones, as a mirror that died. */
  cut(): Promise<void>;
  /** Accepts connections again, to `target` (a restarted server) when given. */
  restore(target?: { host: string; port: number }): Promise<void>;
  close(): Promise<void>;
}

/** Options of startShapedLink. */
export interface ShapedLinkOptions {
  target: { host: string; port: number };
  /** Server → client cap, bytes per second (aggregate over connections). */
  rateBytesPerSec: number;
  /** One-way delay added in each direction, ms (default 0). */
  delayMs?: number;
  /** Port to listen on (default: any free port). */
  port?: number;
}

/** Bytes a link holds per connection before it stops reading the server (backpressure). */
const HIGH_WATER = 256 * 1024;

/** Starts a shaped link on 127.0.0.1; rejects when the port cannot be bound. */
export async function startShapedLink(opts: ShapedLinkOptions): Promise<ShapedLink> {
  let target = opts.target;
  const delay = opts.delayMs ?? 0;
  const bucket: TokenBucket = createTokenBucket({
    rateBytesPerSec: opts.rateBytesPerSec,
    // 20 ms of rate: short bursts, as a real uplink's queue would give
    burstBytes: Math.max(16 * 1024, Math.ceil(opts.rateBytesPerSec / 50)),
  });
  const sockets = new Set<net.Socket>();
  let down = 0;
  const later = (f: () => void): void => {
    if (delay > 0) setTimeout(f, delay);
    else f();
  };

  const onClient = (client: net.Socket): void => {
    sockets.add(client);
    client.pause();
    const server = new net.Socket();
    sockets.add(server);
    const end = (): void => {
      client.destroy();
      server.destroy();
      sockets.delete(client);
      sockets.delete(server);
    };
    client.on('error', end).on('close', end);
    server.on('error', end).on('close', end);
    later(() => {
      if (client.destroyed) return;
      server.connect(target.port, target.host, () => {
        client.resume();
      });
    });
    // client → server: delayed only
    client.on('data', (d: Buffer) =>
      later(() => {
        if (!server.destroyed) server.write(d);
      }),
    );
    client.on('end', () => later(() => server.end()));
    // server → client: rate then delay, in order; stop reading the server while HIGH_WATER bytes wait
    let chain = Promise.resolve();
    let held = 0;
    server.on('data', (d: Buffer) => {
      held += d.length;
      if (held > HIGH_WATER) server.pause();
      chain = chain
        .then(() => bucket.take(d.length))
        .then(() =>
          later(() => {
            held -= d.length;
            if (held <= HIGH_WATER && server.isPaused()) server.resume();
            if (client.destroyed) return;
            down += d.length;
            client.write(d);
          }),
        );
    });
    server.on('end', () => {
      chain = chain.then(() => later(() => client.end()));
    });
  };

  let listener = net.createServer(onClient);
  const listen = (port: number): Promise<number> =>
    new Promise((resolve, reject) => {
      listener.once('error', reject);
      listener.listen(port, '127.0.0.1', () => {
        listener.off('error', reject);
        resolve((listener.address() as net.AddressInfo).port);
      });
    });
  const port = await listen(opts.port ?? 0);
  let open = true;
  const stopListening = (): Promise<void> =>
    new Promise((resolve) => {
      if (!open) return resolve();
      open = false;
      listener.close(() => resolve());
    });

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    bytesDown: () => down,
    async cut() {
      const closed = stopListening();
      for (const s of sockets) s.resetAndDestroy();
      sockets.clear();
      await closed;
    },
    async restore(t) {
      if (t) target = t;
      if (open) return;
      listener = net.createServer(onClient);
      await listen(port);
      open = true;
    },
    async close() {
      const closed = stopListening();
      for (const s of sockets) s.destroy();
      sockets.clear();
      await closed;
    },
  };
}
