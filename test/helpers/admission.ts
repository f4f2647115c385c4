import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startNginx, type TestNginx } from '../../harness/index.js';
import { createManifest, type Manifest } from '../../transfer/index.js';

/** A source for admission tests: 16 random chunks of 32 KiB served by a real nginx capped per connection. */
export interface AdmissionSource {
  readonly dir: string;
  readonly manifest: Manifest;
  /** sha256 (hex) of the source file. */
  readonly sha256: string;
  readonly nginx: TestNginx;
  /** A start request for transfer `id` into `dir`, from the nginx mirror with 2 fetches at once. */
  startBody(id: string): Record<string, unknown>;
  close(): Promise<void>;
}

/**
 * Writes the source into a new temporary folder and starts nginx on it with `limit_rate` (e.g. '128k'), so that
 * a transfer takes seconds and a queue is observable.
 */
export async function startAdmissionSource(name: string, limitRate: string): Promise<AdmissionSource> {
  const chunk = 32 * 1024;
  const dir = await mkdtemp(path.join(tmpdir(), `portal-${name}-`));
  const source = randomBytes(16 * chunk);
  await writeFile(path.join(dir, 'src.bin'), source);
  const manifest = await createManifest(path.join(dir, 'src.bin'), { chunkSize: chunk });
  const nginx = await startNginx({ root: dir, extra: `limit_rate ${limitRate};` });
  return {
    dir,
    manifest,
    sha256: createHash('sha256').update(source).digest('hex'),
    nginx,
    startBody: (id) => ({
      transferId: id,
      manifest,
      output: path.join(dir, `${id}.bin`),
      edges: [
        {
          id: 'nginx',
          config: { url: `${nginx.httpUrl}/src.bin`, kind: 'mirror', flags: 0, maxParallel: 2 },
          holds: 'all',
        },
      ],
    }),
    async close() {
      await nginx.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
