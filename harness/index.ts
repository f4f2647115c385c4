// Launchers for the real servers tests and benchmarks start (nats-server, redis-server, nginx, tinyproxy; openssl for a test CA), each on a free
// loopback port with its own temporary store, never the system instance on the default port.
export { startNatsServer, natsServerBin } from './nats-server.js';
export type { TestNatsServer, TestNatsServerOptions } from './nats-server.js';
export { startRedis, waitForPort, killGroup, freePort } from './redis.js';
export type { TestRedis } from './redis.js';
export { startNginx, nginxBinary } from './nginx.js';
export type { TestNginx } from './nginx.js';
export { startTinyproxy } from './tinyproxy.js';
export type { TestProxy } from './tinyproxy.js';
export { makeTestCa } from './tls-ca.js';
export type { TestCa } from './tls-ca.js';
