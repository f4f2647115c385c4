import { createSilentLogger } from '../../common/logger.js';
import { createMemoryBus } from '../../bus/index.js';
import { createEmbeddedHost, createMemoryStateStore } from '../../runtime/index.js';
import { GpuStreamActor } from '../../actors/index.js';
import { streamSubjects, type StreamBusMessage } from '../../stream/index.js';
import { idsOf, seqKernel, seqRecords, waitFor } from './fixtures.js';
import { actorProxy } from '../../actors/api.js';

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
