import net from 'node:net';

/**
 * A TCP port free on 127.0.0.1 right now (the OS picks it; another process may take it before the
 * caller binds it — rare on loopback). Rejects with the listen error.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}
