import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { DashboardSnapshot } from '../../dashboard/index.js';
import { startBadMirror, type BadMirror, type MirrorMode } from '../helpers/bad-mirror.js';
import { createMesh, type Mesh } from '../helpers/mesh.js';
import { startEmbeddedServe, stopEmbeddedServe, type EmbeddedServe } from '../helpers/portal-cli.js';

/** What dashboardServeFixture set up; the fields are read once its beforeAll ran (inside tests). */
export interface DashboardServeFixture {
  /** 8 chunks of 16 KiB and one loopback edge holding them all. */
  readonly mesh: Mesh;
  /** A mirror of the mesh's source, answering as `mirrorMode` says. */
  readonly mirror: BadMirror;
  readonly serve: EmbeddedServe;
  /** `<mesh.dir>/root`: the serve's output root. */
  root: () => string;
  /** The dashboard's snapshot now (GET api/state). */
  dashboardState: () => Promise<DashboardSnapshot>;
}

/**
 * The set-up the dashboard tests against a real `portal serve --runtime embedded --dashboard-port 0` share: a mesh
 * (8 chunks of 16 KiB, one edge), an output root in its folder, a mirror of its source answering as `mirrorMode`
 * says, and the serve (`--output-root <root> --dashboard-port 0 <serveArgs>`, the in-process bus, log level warn).
 * Registers its own beforeAll / afterAll in the calling scope (serve, mirror, then mesh closed after all).
 */
export function dashboardServeFixture(o: {
  mirrorMode: (n: number) => MirrorMode;
  serveArgs?: string[];
}): DashboardServeFixture {
  let mesh: Mesh | undefined;
  let mirror: BadMirror | undefined;
  let serve: EmbeddedServe | undefined;
  const root = () => path.join(mesh!.dir, 'root');
  beforeAll(async () => {
    mesh = await createMesh(8 * 16384, 16384, [{}]);
    await mkdir(root());
    mirror = await startBadMirror(await readFile(mesh.source), (n) => o.mirrorMode(n));
    serve = await startEmbeddedServe(
      ['--output-root', root(), '--dashboard-port', '0', ...(o.serveArgs ?? [])],
      { PORTAL_LOG_LEVEL: 'warn', NATS_URL: '' },
    );
  });
  afterAll(async () => {
    await stopEmbeddedServe(serve);
    await mirror?.close();
    await mesh?.close();
  });
  return {
    get mesh() {
      return mesh!;
    },
    get mirror() {
      return mirror!;
    },
    get serve() {
      return serve!;
    },
    root,
    dashboardState: async () =>
      (await (await fetch(new URL('api/state', serve!.dashboard))).json()) as DashboardSnapshot,
  };
}
