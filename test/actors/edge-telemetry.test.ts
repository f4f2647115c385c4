import { createSilentLogger } from '../../common/logger.js';
import { ManualClock } from '../../common/clock.js';
import { createEmbeddedHost, createMemoryStateStore } from '../../runtime/index.js';
import type { StateStore } from '../../runtime/types.js';
import { EdgeActor } from '../../actors/index.js';
import { actorProxy } from '../../actors/api.js';

// EdgeActor.telemetry on the embedded host: which heartbeats write the actor's state.

describe('EdgeActor telemetry', () => {
  test('a heartbeat that changes nothing is not saved at once; a change of availability, flags or maxParallel is', async () => {
    const mem = createMemoryStateStore();
    let writes = 0;
    const store: StateStore = {
      ...mem,
      async transaction(ops) {
        writes++;
        await mem.transaction(ops);
      },
    };
    const host = createEmbeddedHost({
      store,
      logger: createSilentLogger(),
      services: {},
      clock: new ManualClock(), // no time passes: the estimators' once-a-second save never falls due
    });
    host.register(EdgeActor);
    const edge = actorProxy(host, 'EdgeActor', 'peer-1');
    await edge.invoke('configure', { url: 'http://127.0.0.1:9', kind: 'portal', flags: 0, maxParallel: 8 });
    const saved = (): number => {
      const n = writes;
      writes = 0;
      return n;
    };
    expect(saved()).toBe(1);
    // heartbeats of a peer whose announced state did not change (a swarm peer sends one every second), between
    // the chunk samples a transfer feeds in (each changes the estimators, which save at most once a second)
    for (let i = 0; i < 5; i++) {
      await edge.invoke('observe', {
        samples: [{ ok: true, bytes: 262_144, firstByteMs: 2, transferMs: 20 + i }],
      });
      await edge.invoke('telemetry', { online: true, maxParallel: 8 });
    }
    expect(saved()).toBe(0);
    await edge.invoke('telemetry', { online: true, maxParallel: 4 });
    expect(saved()).toBe(1);
    expect((await edge.invoke('snapshot')).maxParallel).toBe(4);
    await edge.invoke('telemetry', { online: true, metered: true });
    expect(saved()).toBe(1);
    await edge.invoke('telemetry', { online: false });
    expect(saved()).toBe(1);
    expect((await edge.invoke('snapshot')).available).toBe(false);
    await host.stop();
  });
});
