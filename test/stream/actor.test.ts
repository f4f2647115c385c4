import { createSilentLogger } from '../../common/logger.js';
import { createMemoryBus } from '../../bus/index.js';
import { createEmbeddedHost, createMemoryStateStore } from '../../runtime/index.js';
import { GpuStreamActor } from '../../actors/index.js';
import { streamSubjects, type StreamBusMessage } from '../../stream/index.js';
import { idsOf, seqKernel, seqRecords, waitFor } from './fixtures.js';
import { actorProxy } from '../../actors/api.js';
import { serveActorApi } from '../../node/actor-api.js';

test('actor: on the embedded host with the in-process bus, pushed records come out once on the bus, and a reactivated actor starts again', async () => {
  const bus = createMemoryBus();
  const store = createMemoryStateStore();
  const host = createEmbeddedHost({
    store,
    logger: createSilentLogger(),
    services: { bus, streamKernels: { seq: seqKernel } },
  });
  host.register(GpuStreamActor);
  const seen = new Uint8Array(5000);
  bus.subscribe<StreamBusMessage>(streamSubjects.output('local'), (m) => {
    for (const x of idsOf(m.records, 4)) seen[x]++;
  });
  const a = actorProxy(host, 'GpuStreamActor', 'local');
  const st = await a.invoke('start', {
    kernel: { type: 'registered', name: 'seq' },
    backend: 'cpu',
    config: { backpressure: { bufferCapacity: 1000, dropOldestOnFull: false } },
  });
  expect(st).toMatchObject({ source: 'direct', backend: 'cpu', inputRecordBytes: 8, outputRecordBytes: 16 });
  for (let i = 0; i < 5; i++)
    await a.invoke('push', { records: Buffer.from(seqRecords(i * 1000, 1000)).toString('base64') });
  const m = await a.invoke('drain');
  expect(m.totalItemsProcessed).toBe(5000);
  await waitFor(() => seen.every((c) => c === 1), 5000, 'all ids once');
  await expect(a.invoke('push', { records: 'AAAA' })).rejects.toMatchObject({
    code: 'PORTAL_STREAM_BAD_RECORDS',
  });
  await host.deactivate('GpuStreamActor', 'local');
  const again = await a.invoke('status'); // reactivates from state
  expect(again).toMatchObject({ running: true, kernel: 'user:seq' });
  await a.invoke('stop');
  await host.stop();
});

// a trial pushed `{"records":"!!!!"}` and got 200 {"accepted":0}: Node's base64 decoding skips what is not base64
test('actor: a push whose records are not base64 is a 400 naming the field, over the actor API', async () => {
  const host = createEmbeddedHost({
    store: createMemoryStateStore(),
    logger: createSilentLogger(),
    services: { bus: createMemoryBus(), streamKernels: { seq: seqKernel } },
  });
  host.register(GpuStreamActor);
  const api = await serveActorApi(host, { port: 0, log: createSilentLogger() });
  try {
    const a = actorProxy(host, 'GpuStreamActor', 'b64');
    await a.invoke('start', { kernel: { type: 'registered', name: 'seq' }, backend: 'cpu' });
    const { port } = api.address() as { port: number };
    for (const records of ['!!!!', '====AAAAAAAAAAA=', 'AAAAAAAAAAA']) {
      const res = await fetch(`http://127.0.0.1:${port}/v1.0/actors/GpuStreamActor/b64/method/push`, {
        method: 'POST',
        body: JSON.stringify({ records }),
      });
      expect({ records, status: res.status, body: await res.json() }).toEqual({
        records,
        status: 400,
        body: {
          error: {
            code: 'PORTAL_INVALID_ARGUMENT',
            message: 'records: expected standard base64 (A-Z a-z 0-9 + /, padded with =) of whole records',
          },
        },
      });
    }
    // one record (8 bytes) in base64 is still accepted
    expect(await a.invoke('push', { records: Buffer.alloc(8).toString('base64') })).toEqual({ accepted: 1 });
    await a.invoke('stop');
  } finally {
    api.closeAllConnections();
    await new Promise((resolve) => api.close(resolve));
    await host.stop();
  }
});
