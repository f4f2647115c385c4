/**
 * `portal serve` writes a transfer to `<output>.portal-part` and gives it the name asked for only once it is
 * verified, as `portal fetch` does: against the built CLI as a real process and real edges, a source serving
 * corrupt bytes leaves no file under the final name, and a good transfer leaves only the verified file.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { createMesh, type Mesh } from '../helpers/mesh.js';
import { startEmbeddedServe, type EmbeddedServe } from '../helpers/portal-cli.js';
import { postJson } from '../helpers/post-json.js';

const post = postJson;

describe('portal serve: the output takes its final name only once verified', () => {
  let good: Mesh;
  let corrupt: Mesh;
  let root: string;
  let serve: EmbeddedServe;

  beforeAll(async () => {
    good = await createMesh(16 * 16384, 16384, [{ holds: 'all' }]);
    corrupt = await createMesh(16 * 16384, 16384, [{ holds: 'all', faults: { corruptRate: 1 } }]);
    root = path.join(good.dir, 'root');
    await mkdir(root);
    await mkdir(path.join(good.dir, 'state'));
    serve = await startEmbeddedServe(['--output-root', root, '--state-dir', path.join(good.dir, 'state')]);
  }, 60_000);
  afterAll(async () => {
    serve?.child.kill('SIGKILL');
    await good?.close();
    await corrupt?.close();
  });

  async function runToEnd(id: string, body: Record<string, unknown>): Promise<Record<string, unknown>> {
    const m = (method: string) => `${serve.base}/SchedulerActor/${id}/method/${method}`;
    expect((await post(m('start'), { transferId: id, ...body })).status).toBe(200);
    const deadline = Date.now() + 30_000;
    for (;;) {
      const st = (await post(m('status'))).json;
      if (st.state === 'done' || st.state === 'failed' || Date.now() > deadline) return st;
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  test('a source serving corrupt bytes: the transfer fails and nothing exists under the final name', async () => {
    const st = await runToEnd('publish-corrupt', {
      manifest: corrupt.manifest,
      output: 'bad.bin',
      edges: corrupt.edges,
      edgeBudgetMs: 500,
    });
    expect(st.state).toBe('failed');
    expect(existsSync(path.join(root, 'bad.bin'))).toBe(false);
    // what was written stays in the partial file, for a restart to resume
    expect(existsSync(path.join(root, 'bad.bin.portal-part'))).toBe(true);
  }, 60_000);

  test('a good transfer: the final name holds the verified file, and no .portal-part is left', async () => {
    const st = await runToEnd('publish-good', {
      manifest: good.manifest,
      output: 'ok.bin',
      edges: good.edges,
    });
    expect(st.state).toBe('done');
    expect(st.verified).toBe(true);
    const bytes = await readFile(path.join(root, 'ok.bin'));
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(good.manifest.fileSha256);
    expect((await readdir(root)).filter((f) => f.startsWith('ok.bin'))).toEqual(['ok.bin']);
  }, 60_000);
});
