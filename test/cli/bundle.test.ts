import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { createMesh, type Mesh } from '../helpers/mesh.js';
import { modulesLoadedBy } from '../helpers/modules-loaded.js';
import { PORTAL_MAIN, lastJson, runPortal } from '../helpers/portal-cli.js';
import { SMALL_TRANSFER_BYTES } from '../../node/run-transfer.js';

const DIST = `${pathToFileURL(path.resolve('dist')).href}/`;

describe('the built CLI is one bundle (scripts/bundle-cli.mjs, run by npm run build)', () => {
  let mesh: Mesh | undefined;
  afterEach(async () => {
    await mesh?.close();
    mesh = undefined;
  });

  test("`portal fetch` loads Portal's own code and pino from dist/cli/main.js and its chunks, not from ~170 separate modules", () => {
    const all = modulesLoadedBy([PORTAL_MAIN, 'fetch', '--help']);
    const own = all.filter((u) => u.startsWith(DIST)).map((u) => u.slice(DIST.length));
    // the hook sees the CLI at all (and saw node_modules/pino/pino.js before pino was bundled)
    expect(own[0]).toBe('cli/main.js');
    expect(own.filter((f) => !/^cli\/(main|portal-[\w-]+)\.js$/.test(f))).toEqual([]);
    expect(all.filter((u) => /\/node_modules\/(pino|sonic-boom|thread-stream)\//.test(u))).toEqual([]);
  });

  test('a fetch through the bundle above SMALL_TRANSFER_BYTES starts its data threads from dist/ and verifies', async () => {
    const bytes = SMALL_TRANSFER_BYTES + 2 ** 20;
    mesh = await createMesh(bytes, 2 ** 20, [{}]);
    const out = path.join(mesh.dir, 'out.bin');
    const edge = mesh.servers[0].url;
    const r = await runPortal(['fetch', mesh.manifestPath, '--edge', edge, '--out', out, '--json']);
    expect({ code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(lastJson(r)).toMatchObject({ verified: true, bytes });
    const [a, b] = await Promise.all([readFile(out), readFile(path.join(mesh.dir, 'source.bin'))]);
    expect(createHash('sha256').update(a).digest('hex')).toBe(createHash('sha256').update(b).digest('hex'));
  });
});
