import { createRequire } from 'node:module';
import { createServer, type Server } from 'node:http';
import type * as Undici from 'undici';
import { Agent, EnvHttpProxyAgent, UNDICI_LITE, UNDICI_LITE_MODULES } from '../../transfer/undici-lite.js';

const require = createRequire(import.meta.url);

describe('undici-lite: the deep imports of undici still match the package', () => {
  test('every deep-imported module exists in the installed undici (an undici update that moves one fails here, not at run time)', () => {
    for (const m of UNDICI_LITE_MODULES) expect(() => require.resolve(m)).not.toThrow();
    expect(UNDICI_LITE).toBe(true);
  });

  test("the classes are the very ones undici's public index exports", () => {
    const u = require('undici') as typeof Undici;
    expect(Agent).toBe(u.Agent);
    expect(EnvHttpProxyAgent).toBe(u.EnvHttpProxyAgent);
  });

  test('an Agent from the deep imports has the request API and fetches from a real server', async () => {
    const server: Server = createServer((_, res) => res.end('hello'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as { port: number };
    const agent = new Agent();
    try {
      const r = await agent.request({ origin: `http://127.0.0.1:${port}`, path: '/', method: 'GET' });
      expect(r.statusCode).toBe(200);
      expect(await r.body.text()).toBe('hello');
    } finally {
      await agent.close();
      await new Promise((r) => server.close(r));
    }
  });
});
