/**
 * node/: Portal's composition roots. Each function here wires the areas below it (runtime hosts, actors, bus,
 * executor, tick engine, dashboard) into a running node; entry points (the CLI, benchmarks, tests) parse their
 * flags and environment, call one of these and print. Nothing below node/ imports it.
 */
export {
  startEmbeddedNode,
  createNodeEngine,
  journalDir,
  parseBackend,
  type Backend,
  type EngineSettings,
  type EmbeddedNode,
  type EmbeddedNodeOptions,
} from './embedded-node.js';
export { localTransferId } from './transfer-id.js';
export { runTransfer, sourcesOf, type RunTransferOptions, type SourceReport } from './run-transfer.js';
export {
  startServeNode,
  DAPR_APP_PORT_0_REASON,
  type ServeNode,
  type ServeNodeOptions,
  type ServeDaprSettings,
} from './serve-node.js';
export { serveActorApi, type ActorApiOptions } from './actor-api.js';
export {
  createCoordinatorBridge,
  type CoordinatorBridge,
  type CoordinatorBridgeStats,
} from './coordinator.js';
export { createExecutorAttachingBus } from './executor-bus.js';
export { probeEdge } from './probe.js';
export { startSwarmPeer, type SwarmPeer, type SwarmPeerOptions } from './swarm.js';
