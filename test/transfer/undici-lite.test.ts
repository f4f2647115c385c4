import { createRequire } from 'node:module';
import { createServer, type Server } from 'node:http';
import type * as Undici from 'undici';
import * as lite from '../../transfer/undici-lite.js';
import * as bundled from '../../transfer/undici-bundled.js';

const require = createRequire(import.meta.url);

describe('undici-lite: the deep imports of undici still match the package', () => {
  test('every deep-imported module exists in the installed undici (an undici update that moves one fails here, not at run time)', () => {
    for (const m of lite.UNDICI_LITE_MODULES) expect(() => require.resolve(m)).not.toThrow();
    expect(lite.UNDICI_LITE).toBe(true);
  });

  // undici-lite requires the modules at run time (tsc's output); undici-bundled imports them statically (the
  // bundles of scripts/bundle-cli.mjs put it in undici-lite's place)
  describe.each([
    ['undici-lite', lite],
    ['undici-bundled', bundled],
  ])('%s', (_, m) => {
    test("the classes are the very ones undici's public index exports", () => {
      const u = require('undici') as typeof Undici;
      expect(m.Agent).toBe(u.Agent);
      expect(m.ProxyAgent).toBe(u.ProxyAgent);
      expect(m.Pool).toBe(u.Pool);
      expect(m.UNDICI_LITE_MODULES).toBe(lite.UNDICI_LITE_MODULES);
    });

    test('an Agent has the request API and fetches from a real server', async () => {
      const server: Server = createServer((_req, res) => res.end('hello'));
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const { port } = server.address() as { port: number };
      const agent = new m.Agent();
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
});
