/**
 * Names and ports the Dapr deployment of Portal agrees on: the serve command, deploy/ (Kubernetes),
 * docker-compose.yml and the tests all use these, and test/deploy checks that they agree.
 */
export const daprDefaults = {
  /** Dapr version the runtime script builds and the manifests pin (sidecar image tag). */
  version: '1.16.5',
  /** Dapr app id of every Portal instance (replicas share it: actor state keys are `<appId>||<type>||<id>||<key>`). */
  appId: 'portal',
  /** Port the Portal app listens on for its sidecar (HTTP app protocol: the JS SDK hosts actors over HTTP only). */
  appPort: 3000,
  /** daprd HTTP API port (the sidecar's default). */
  daprHttpPort: 3500,
  /** daprd gRPC API port (the sidecar's default). */
  daprGrpcPort: 50001,
  /** Placement service port. */
  placementPort: 50005,
  /** Name of the Redis state store component marked `actorStateStore: "true"`. */
  stateStore: 'actorstore',
  /** Name of the Dapr Configuration (features, tracing). */
  configuration: 'portal-config',
  /** Environment variable that enables the test-only actor classes in `portal serve`. */
  testActorsEnv: 'PORTAL_TEST_ACTORS',
} as const;

/** Dapr Configuration features Portal needs: placement-backed reminders (no scheduler service). */
export const daprFeatures = [{ name: 'SchedulerReminders', enabled: false }] as const;
