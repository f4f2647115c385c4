import { execFileSync } from 'node:child_process';
import {
  chmod,
  link,
  mkdir,
  mkdtemp,
  readFile,
  readdir,
  rm,
  symlink,
  unlink,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createFileStateStore } from '../../runtime/index.js';

// The file state store opens its snapshots, logs, blobs and commit log segments without following a symbolic
// link, and writes only regular files of its own with no other hard link: a link planted at one of its names
// was followed (a log append went into the link's target, a torn log's truncate emptied it, a FIFO hung a read).

let dir: string;
let victim: string;
const VICTIM = "not the store's: must keep its bytes\n";

beforeEach(async () => {
  const base = await mkdtemp(join(tmpdir(), 'portal-store-links-'));
  dir = join(base, 'state');
  victim = join(base, 'victim.txt');
  await writeFile(victim, VICTIM);
});

afterEach(async () => {
  await rm(join(dir, '..'), { recursive: true, force: true });
});

/** A store with actor T||a written once (its snapshot), closed; answers the path its log will have. */
async function oneActor(): Promise<{ snapshot: string; log: string }> {
  const store = createFileStateStore(dir);
  await store.transaction([{ op: 'upsert', key: 'T||a||x', value: '1' }]);
  await store.close();
  const snap = (await readdir(dir)).find((n) => n.endsWith('.json'))!;
  return { snapshot: join(dir, snap), log: join(dir, `${snap.slice(0, -'.json'.length)}.log`) };
}

const refused = (path: string, why: RegExp) =>
  expect.objectContaining({
    code: 'PORTAL_STATE_CORRUPT',
    message: expect.stringMatching(
      new RegExp(`^state file ${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is refused: ${why.source}`),
    ),
  });

test('a symbolic link planted at an actor log is refused, on read and on append; its target keeps its bytes', async () => {
  const { log } = await oneActor();
  await symlink(victim, log);
  const store = createFileStateStore(dir);
  await expect(store.get('T||a||x')).rejects.toEqual(refused(log, /it is a symbolic link/));
  await expect(store.transaction([{ op: 'upsert', key: 'T||a||x', value: '2' }])).rejects.toEqual(
    refused(log, /it is a symbolic link/),
  );
  await store.close();
  expect(await readFile(victim, 'utf8')).toBe(VICTIM);
});

test('a symbolic link at a log the store has read is refused on the next append (old code: appended into the target)', async () => {
  const { log } = await oneActor();
  const store = createFileStateStore(dir);
  expect(await store.get('T||a||x')).toBe('1'); // loaded: no log yet
  await symlink(victim, log);
  await expect(store.transaction([{ op: 'upsert', key: 'T||a||x', value: '2' }])).rejects.toEqual(
    refused(log, /it is a symbolic link/),
  );
  await store.close();
  expect(await readFile(victim, 'utf8')).toBe(VICTIM);
});

test('a hard link at a log is not written (another name shares its bytes); a snapshot link and a FIFO are not read', async () => {
  const { snapshot, log } = await oneActor();
  await link(victim, log);
  const store = createFileStateStore(dir);
  // read: the log is a regular file of ours, parsed as a log (nothing in it is a record)
  expect(await store.get('T||a||x')).toBe('1');
  await expect(store.transaction([{ op: 'upsert', key: 'T||a||x', value: '2' }])).rejects.toEqual(
    refused(log, /it has 2 hard links/),
  );
  await store.close();
  expect(await readFile(victim, 'utf8')).toBe(VICTIM);
  await unlink(log);
  execFileSync('mkfifo', [log]); // old code: readFile of the FIFO never returned
  const fifo = createFileStateStore(dir);
  await expect(fifo.get('T||a||x')).rejects.toEqual(refused(log, /it is not a regular file \(a FIFO\)/));
  await fifo.close();
  await unlink(log);
  await unlink(snapshot);
  await symlink(victim, snapshot);
  const linked = createFileStateStore(dir);
  await expect(linked.get('T||a||x')).rejects.toEqual(refused(snapshot, /it is a symbolic link/));
  await linked.close();
});

test('a symbolic link planted as a commit log segment is refused when the store opens', async () => {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const segment = join(dir, 'wal-000000000001.log');
  await symlink(victim, segment);
  const store = createFileStateStore(dir, { groupCommit: true });
  await expect(store.get('T||a||x')).rejects.toEqual(
    expect.objectContaining({
      code: 'PORTAL_STATE_CORRUPT',
      message: `commit log segment ${segment} is refused: it is a symbolic link (Portal does not follow links at its own files)`,
    }),
  );
  await store.close();
  expect(await readFile(victim, 'utf8')).toBe(VICTIM);
});

test('a state folder every user may write to (no sticky bit) is refused', async () => {
  await mkdir(dir, { recursive: true });
  await chmod(dir, 0o777);
  const store = createFileStateStore(dir);
  await expect(store.get('T||a||x')).rejects.toEqual(
    expect.objectContaining({
      code: 'PORTAL_STATE_CORRUPT',
      message: `state folder ${dir} is refused: it is writable by every user`,
    }),
  );
  await store.close();
});
