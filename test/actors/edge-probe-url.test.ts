import { createSilentLogger } from '../../common/logger.js';
import { createEmbeddedHost, createMemoryStateStore } from '../../runtime/index.js';
import { EdgeActor } from '../../actors/index.js';
import { redactUrl } from '../../common/redact.js';

// trial finding: the EdgeActor's probe of an unanswering mirror used its stored (redacted) URL and sent
// `Authorization: Basic ***:` / `sig=***`. It probes with the real URL the host keeps in memory, else not at all.
test('an offline edge is probed with the real URL the host keeps, and not at all with a redacted one', async () => {
  const probed: string[] = [];
  const real = new Map<string, string>([['kept', 'http://carol:CarolPW@127.0.0.1:9/auth/f.bin']]);
  const host = createEmbeddedHost({
    store: createMemoryStateStore(),
    logger: createSilentLogger(),
    services: {
      announcedEdgeUrls: real,
      probeEdge: async (url: string) => {
        probed.push(url);
        return false;
      },
    },
  });
  host.register(EdgeActor);
  try {
    for (const id of ['kept', 'lost']) {
      const edge = host.proxy('EdgeActor', id);
      await edge.invoke('configure', {
        url: redactUrl('http://carol:CarolPW@127.0.0.1:9/auth/f.bin?sig=abc'),
        kind: 'mirror',
        flags: 0,
        maxParallel: 1,
      });
      const fail = { ok: false, bytes: 0, firstByteMs: 0, transferMs: 1, reason: 'unreachable' };
      const view = (await edge.invoke('observe', { samples: [fail, fail, fail] })) as { available: boolean };
      expect(view.available).toBe(false);
      await edge.invoke('probe');
    }
    expect(probed).toEqual(['http://carol:CarolPW@127.0.0.1:9/auth/f.bin']);
  } finally {
    await host.stop();
  }
});
