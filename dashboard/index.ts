/**
 * The operators' view of Portal: a live dashboard page (SSE-updated), its JSON state and the
 * Prometheus `/metrics` endpoint, fed by polling SchedulerActor.status through an ActorHost.
 */
export { createDashboard } from './dashboard.js';
export type {
  Dashboard,
  DashboardOptions,
  DashboardSnapshot,
  DashboardEvent,
  TransferSnapshot,
  EdgeSnapshot,
  TransferHistory,
  MetricSample,
  MetricsSource,
  PhaseTimes,
} from './types.js';
export { createTracker, FINISHED_WITH_HISTORY, STATE_ORDER } from './tracker.js';
export { MAX_QUEUED_LISTED } from './types.js';
export type { Tracker, TrackerOptions, PollResult } from './tracker.js';
export { createDashboardMetrics } from './metrics.js';
export type { DashboardMetrics } from './metrics.js';
export { renderPage } from './page.js';
