import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import {
  createEdgeServer,
  createManifest,
  encodeHaveBitmap,
  type EdgeServer,
  type EdgeServerOptions,
  type Manifest,
} from '../../transfer/index.js';
import type { TransferEdge } from '../../actors/index.js';

/** A source file, its manifest and a set of loopback edges serving it; `close()` removes everything. */
export interface Mesh {
  dir: string;
  source: string;
  manifest: Manifest;
  manifestPath: string;
  servers: EdgeServer[];
  edges: TransferEdge[];
  close(): Promise<void>;
}

/** Edge options for createMesh: holds (chunk indices or 'all') plus any EdgeServerOptions. */
export type MeshEdge = Omit<EdgeServerOptions, 'source' | 'holds'> & {
  holds?: number[] | 'all';
  maxParallel?: number;
  flags?: number;
};

/** Starts a mesh over a random file of `bytes` bytes cut into `chunkSize` chunks. */
export async function createMesh(bytes: number, chunkSize: number, edgeSpecs: MeshEdge[]): Promise<Mesh> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'portal-mesh-'));
  const source = path.join(dir, 'source.bin');
  await writeFile(source, crypto.randomBytes(bytes));
  const manifest = await createManifest(source, { chunkSize, name: 'out.bin' });
  const manifestPath = path.join(dir, 'source.manifest.json');
  await writeFile(manifestPath, JSON.stringify(manifest));
  const servers: EdgeServer[] = [];
  const edges: TransferEdge[] = [];
  for (const [i, spec] of edgeSpecs.entries()) {
    const { holds, maxParallel, flags, ...opts } = spec;
    const s = await createEdgeServer({
      id: `e${i}`,
      ...opts,
      source: { path: source, manifest },
      holds: holds === undefined || holds === 'all' ? 'all' : new Set(holds),
    });
    servers.push(s);
    edges.push({
      id: `e${i}-${path.basename(dir)}`,
      config: { url: s.url, kind: 'portal', flags: flags ?? 0, maxParallel: maxParallel ?? 4 },
      holds: encodeHaveBitmap(holds ?? 'all', manifest.chunks.length),
    });
  }
  return {
    dir,
    source,
    manifest,
    manifestPath,
    servers,
    edges,
    async close() {
      await Promise.all(servers.map((s) => s.close()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}
