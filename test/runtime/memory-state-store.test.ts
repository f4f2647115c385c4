import { createMemoryStateStore } from '../../runtime/index.js';

test('memory state store: applies transactions and lists keys by prefix', async () => {
  const store = createMemoryStateStore();
  await store.transaction([
    { op: 'upsert', key: 'T||a||x', value: '1' },
    { op: 'upsert', key: 'T||a||y', value: '2' },
    { op: 'upsert', key: 'T||b||x', value: '3' },
  ]);
  await store.transaction([{ op: 'delete', key: 'T||a||y' }]);
  expect(await store.get('T||a||x')).toBe('1');
  expect(await store.get('T||a||y')).toBeUndefined();
  expect((await store.keys('T||')).sort()).toEqual(['T||a||x', 'T||b||x']);
  expect(await store.keys('T||b||')).toEqual(['T||b||x']);
});

test('memory state store: rejects calls after close with PORTAL_STORE_CLOSED', async () => {
  const store = createMemoryStateStore();
  await store.close();
  await expect(store.get('T||a||x')).rejects.toMatchObject({ code: 'PORTAL_STORE_CLOSED' });
});
