import { join } from 'node:path';
import { link, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { openChunkWriter } from '../../transfer/chunk-writer.js';
import {
  openPartialChunkLog,
  partialChunkLogPath,
  partialRecorder,
  partialRecordStep,
  PARTIAL_RECORD_MIN_BYTES,
  type PartialChunkLog,
} from '../../transfer/partial-chunks.js';
import { makeTempDir } from './fixtures.js';

const CID = 'ab'.repeat(32);
const MiB = 1024 * 1024;

describe('partial-chunk log: how often a streaming fetch records its progress', () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };
  let log: PartialChunkLog;
  /** What reached the log file, in order (each value read back from the file right after it was recorded). */
  let recorded: number[];
  beforeEach(async () => {
    tmp = await makeTempDir('partial-chunks');
    const real = openPartialChunkLog(join(tmp.dir, 'out.bin'));
    recorded = [];
    log = {
      ...real,
      record(chunk, cid, bytes) {
        real.record(chunk, cid, bytes);
        recorded.push(real.kept(chunk, cid, MiB));
      },
    };
  });
  afterEach(async () => {
    log.close();
    await tmp.cleanup();
  });

  test('a 1 MiB chunk received in 64 KiB socket reads is recorded 4 times (every quarter), the last at its full length', () => {
    const record = partialRecorder(log, 3, CID, MiB);
    for (let at = 64 * 1024; at <= MiB; at += 64 * 1024) record(at);
    expect(recorded).toEqual([MiB / 4, MiB / 2, (3 * MiB) / 4, MiB]);
    expect(log.kept(3, CID, MiB)).toBe(MiB);
  });

  test('uneven pieces are recorded once a quarter has passed since the last record; a retry from byte 0 counts again from 0', () => {
    const record = partialRecorder(log, 0, CID, MiB);
    for (const at of [100_000, 200_000, 270_000, 300_000, 600_000]) record(at);
    expect(recorded).toEqual([270_000, 600_000]);
    // the fetch is retried: its pieces start again at the chunk's first byte
    for (const at of [50_000, 280_000, 400_000]) record(at);
    expect(recorded).toEqual([270_000, 600_000, 280_000]);
  });

  test('the step is a quarter of the chunk, never below 64 KiB', () => {
    expect(partialRecordStep(MiB)).toBe(MiB / 4);
    expect(partialRecordStep(4 * MiB)).toBe(MiB);
    expect(partialRecordStep(100 * 1024)).toBe(PARTIAL_RECORD_MIN_BYTES);
  });
});

test('a symbolic link planted at the log path is refused (ELOOP), never written through', async () => {
  const tmp = await makeTempDir('partial-link');
  try {
    const victim = join(tmp.dir, 'victim');
    await writeFile(victim, 'KEEP');
    const output = join(tmp.dir, 'out.bin');
    await symlink(victim, partialChunkLogPath(output));
    expect(() => openPartialChunkLog(output)).toThrow(/ELOOP/);
    expect(await readFile(victim, 'utf8')).toBe('KEEP');
  } finally {
    await tmp.cleanup();
  }
});

test('a hard link planted at the log path is replaced by a new log of its own; the other name keeps its bytes', async () => {
  const tmp = await makeTempDir('partial-hardlink');
  try {
    const victim = join(tmp.dir, 'victim');
    await writeFile(victim, 'KEEP-KEEP-KEEP-KEEP');
    const output = join(tmp.dir, 'out.bin');
    await link(victim, partialChunkLogPath(output));
    const log = openPartialChunkLog(output);
    log.record(1, 'ab'.repeat(32), 1000);
    expect(log.kept(1, 'ab'.repeat(32), 4096)).toBe(1000);
    log.close();
    expect(await readFile(victim, 'utf8')).toBe('KEEP-KEEP-KEEP-KEEP');
    expect((await stat(partialChunkLogPath(output))).nlink).toBe(1);
  } finally {
    await tmp.cleanup();
  }
});

test('the chunk writer refuses a hard-linked output (PORTAL_OUTPUT_REFUSED), writing nothing into it', async () => {
  const tmp = await makeTempDir('writer-hardlink');
  try {
    const victim = join(tmp.dir, 'victim');
    await writeFile(victim, 'KEEP');
    const output = join(tmp.dir, 'out.bin');
    await link(victim, output);
    await expect(openChunkWriter(output, { fileSize: 1 << 20 })).rejects.toMatchObject({
      code: 'PORTAL_OUTPUT_REFUSED',
      message: expect.stringMatching(/out\.bin has 2 hard links/),
    });
    expect(await readFile(victim, 'utf8')).toBe('KEEP');
  } finally {
    await tmp.cleanup();
  }
});
