import { actorApiContract, SCHEMA_BASE } from '../../api/validate.js';
import { externalMethods } from '../../actors/api.js';
import type {
  EdgeConfig,
  EdgeTelemetry,
  PrePosition,
  SourceFailure,
  TransferEdge,
  TransferRequest,
  TransferStatus,
} from '../../actors/types.js';
import type { SchedulerConfig } from '../../scheduler/types.js';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

// The JSON Schemas are the contract other languages generate from, and the TypeScript types are what the actors
// read: these records list every field of each type, so adding a field to a type without adding it here fails
// type-checking, and the test then fails until the schema has the same fields.

const all = <T>(keys: Record<keyof T, true>): string[] => Object.keys(keys).sort();
const fields: Record<string, string[]> = {
  TransferRequest: all<TransferRequest>({
    transferId: true,
    manifest: true,
    manifestUrl: true,
    manifestCid: true,
    output: true,
    publishAs: true,
    checksumFrom: true,
    edges: true,
    scheduler: true,
    tickMs: true,
    persistMs: true,
    verifyOnResume: true,
    validators: true,
    learned: true,
    spareEdges: true,
    dispatchOnReportMs: true,
    stallTimeoutMs: true,
    edgeBudgetMs: true,
    prePosition: true,
    overwrite: true,
    order: true,
    orderSeed: true,
    swarm: true,
    location: true,
  }),
  TransferEdge: all<TransferEdge>({ id: true, config: true, holds: true, announced: true }),
  TransferStatus: all<TransferStatus>({
    transferId: true,
    state: true,
    error: true,
    total: true,
    complete: true,
    inFlight: true,
    pending: true,
    failedPermanent: true,
    bytesDone: true,
    fileSize: true,
    startedAt: true,
    finishedAt: true,
    verified: true,
    resumedChunks: true,
    recoveredChunks: true,
    ticks: true,
    tickMsP50: true,
    tickMsP99: true,
    lastTickMs: true,
    backend: true,
    learned: true,
    counters: true,
    edges: true,
    perEdgeChunks: true,
    chunksByEdge: true,
    failingSources: true,
  }),
  SourceFailure: all<SourceFailure>({
    id: true,
    lastError: true,
    failuresSinceOk: true,
    retired: true,
    retiredReason: true,
  }),
  PrePosition: all<PrePosition>({ chunks: true, byteRange: true, background: true, deadlineWallMs: true }),
  SchedulerConfig: all<SchedulerConfig>({
    k: true,
    weights: true,
    maxAcceptableTimeMs: true,
    perEdgeRetryLimit: true,
    maxAttemptsPerChunk: true,
    overloadThreshold: true,
    underloadThreshold: true,
    maxDispatchPerTick: true,
    significantBandwidthChange: true,
    endgameChunks: true,
    maxHedges: true,
    hedgeAfterFraction: true,
    hedgeGain: true,
  }),
};
const edgeFields: Record<string, string[]> = {
  EdgeConfig: all<EdgeConfig>({
    url: true,
    kind: true,
    flags: true,
    maxParallel: true,
    bandwidthHint: true,
    rttHint: true,
    location: true,
    accepts: true,
  }),
  EdgeTelemetry: all<EdgeTelemetry>({
    online: true,
    metered: true,
    batteryLow: true,
    bandwidth: true,
    rtt: true,
    maxParallel: true,
  }),
};

function schemaFields(file: string, name: string): string[] {
  const doc = JSON.parse(readFileSync(resolve(`api/schemas/${file}`), 'utf8')) as {
    $id: string;
    $defs: Record<string, { properties: Record<string, unknown> }>;
  };
  expect(doc.$id).toBe(SCHEMA_BASE + file);
  return Object.keys(doc.$defs[name].properties).sort();
}

test.each(Object.entries(fields))(
  'SchedulerActor.json %s has exactly the fields of the TypeScript type',
  (name, keys) => {
    expect(schemaFields('SchedulerActor.json', name)).toEqual(keys);
  },
);

test.each(Object.entries(edgeFields))(
  'EdgeActor.json %s has exactly the fields of the TypeScript type',
  (name, keys) => {
    expect(schemaFields('EdgeActor.json', name)).toEqual(keys);
  },
);

test('every method the contract lists exists on its actor class', async () => {
  const actors = (await import('../../actors/index.js')) as unknown as Record<string, { prototype: object }>;
  for (const [type, methods] of Object.entries(actorApiContract().methods))
    for (const name of Object.keys(methods))
      expect({ type, name, fn: typeof (actors[type].prototype as Record<string, unknown>)[name] }).toEqual({
        type,
        name,
        fn: 'function',
      });
});

test("methods.json's external flags are the hosts' allow-list (actors/api.ts externalMethods)", () => {
  for (const [type, methods] of Object.entries(actorApiContract().methods)) {
    const external = Object.entries(methods)
      .filter(([, m]) => m.external)
      .map(([name]) => name)
      .sort();
    expect({ type, external }).toEqual({ type, external: [...(externalMethods[type] as string[])].sort() });
  }
});
