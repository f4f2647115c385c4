import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import path from 'node:path';
import { realpath, stat } from 'node:fs/promises';
import { PortalError } from '../../common/errors.js';
import { createLogger } from '../../common/logger.js';
import { resolveLogFormat } from '../../common/log-format.js';
import {
  dispatchKeyFromEnv,
  guardDispatchSecrets,
  createAllTransfersBus,
  createNatsBus,
  type Bus,
  type NatsBus,
  type Subscription,
} from '../../bus/index.js';
import { createExecutor } from '../../transfer/index.js';
import { commonFlags, defineCommand } from '../args.js';
import { checkIdFlag } from '../edge-spec.js';
import { untilStopSignal } from '../signals.js';

/** A bus view that remembers the `ready` promise of every subscription made through it. */
function trackReady(bus: Bus): { bus: Bus; ready: Promise<void>[] } {
  const ready: Promise<void>[] = [];
  return {
    ready,
    bus: {
      publish: (s, m) => bus.publish(s, m),
      subscribe<T>(
        s: string,
        h: (msg: T, subject: string) => void | Promise<void>,
        o?: { queue?: string },
      ): Subscription {
        const sub = bus.subscribe(s, h, o);
        if (sub.ready) ready.push(sub.ready);
        return sub;
      },
      close: () => bus.close(),
    },
  };
}

/**
 * The queue group of `portal executor --all` processes with output root `realRoot`: 'executors-' and 16 hex digits
 * of its sha256. Such executors share each dispatch with those of the same root only; those of other roots (and
 * the scheduling host's own executor, group 'executors' on the transfer's subject) each get it as well, so a
 * dispatch one of them skips (outside its root) still reaches one that can serve it.
 */
export function allTransfersQueue(realRoot: string): string {
  return `executors-${createHash('sha256').update(realRoot).digest('hex').slice(0, 16)}`;
}

/**
 * `portal executor`: a transfer executor as its own process. Joins queue group 'executors' on the dispatch
 * subject of one transfer (`--transfer`), or a queue group of its output root (allTransfersQueue) on that of all
 * (`--all`), fetches, verifies and writes chunks, and publishes a report per dispatched item. A dispatch it cannot
 * serve (an output outside its root or not writable here, an edge output with redacted credentials) is skipped:
 * not fetched, not reported, counted (`skipped` in the stopped line) and named in a debug log line. Prints one
 * JSON line `{"type":"ready",…}` once subscribed; on SIGTERM/SIGINT it stops taking work, lets running fetches finish or cancel, flushes and exits 0.
 */
export const executorCommand = defineCommand({
  name: 'executor',
  summary: 'run chunk fetches dispatched over NATS (one of N processes in queue group "executors")',
  usage: 'portal executor --nats URL (--transfer ID | --all) [--concurrency N] [--id NAME]',
  flags: [
    { name: 'nats', type: 'string', help: 'NATS server URL(s), comma-separated', env: 'NATS_URL' },
    { name: 'transfer', type: 'list', help: 'transfer id(s) to serve (repeat or comma-separate)' },
    {
      name: 'all',
      type: 'boolean',
      help: 'serve every transfer (subscribes to portal.transfer.*.dispatch)',
      default: false,
    },
    {
      name: 'concurrency',
      type: 'number',
      integer: true,
      help: 'fetches at once',
      default: 64,
      min: 1,
      max: 4096,
    },
    { name: 'id', type: 'string', help: 'executor id in reports (default executor-<host>-<pid>)' },
    {
      name: 'output-root',
      type: 'string',
      help: 'folder every output must resolve inside (links resolved); dispatches for other places (or not writable here) are skipped, left to the executors that can serve them (default: the current folder)',
      env: 'PORTAL_OUTPUT_ROOT',
    },
    {
      name: 'dispatch-key-file',
      type: 'string',
      help: 'file holding the key (64 hex digits) that opens source credentials sealed in dispatches; give the scheduling portal serve/fetch the same (or set PORTAL_DISPATCH_KEY on both). Without it, sources with credentials fail here, naming it',
      env: 'PORTAL_DISPATCH_KEY_FILE',
    },
    { name: 'nats-user', type: 'string', help: 'NATS user', env: 'NATS_USER' },
    { name: 'nats-password', type: 'string', secret: true, help: 'NATS password', env: 'NATS_PASSWORD' },
    { name: 'nats-token', type: 'string', secret: true, help: 'NATS token', env: 'NATS_TOKEN' },
    {
      name: 'nats-nkey-seed-file',
      type: 'string',
      help: 'file with an NKey user seed',
      env: 'NATS_NKEY_SEED_FILE',
    },
    { name: 'nats-tls-ca', type: 'string', help: 'TLS CA file', env: 'NATS_TLS_CA' },
    { name: 'nats-tls-cert', type: 'string', help: 'TLS client certificate file', env: 'NATS_TLS_CERT' },
    { name: 'nats-tls-key', type: 'string', help: 'TLS client key file', env: 'NATS_TLS_KEY' },
    ...commonFlags,
  ],
  async run({ flags }) {
    const url = flags.nats;
    if (!url)
      throw new PortalError('PORTAL_CONFIG_INVALID', 'executor: --nats URL (or NATS_URL) is required');
    const transfers = flags.transfer ?? [];
    const all = flags.all;
    if (all === transfers.length > 0)
      throw new PortalError('PORTAL_CONFIG_INVALID', 'executor: give --transfer ID or --all (one of them)');
    for (const t of transfers) checkIdFlag(t, '--transfer');
    const id = flags.id ?? `executor-${hostname()}-${process.pid}`;
    const logger = createLogger({
      level: flags['log-level'],
      format: resolveLogFormat(flags['log-format'], 'json'),
    });
    const tls = {
      caFile: flags['nats-tls-ca'],
      certFile: flags['nats-tls-cert'],
      keyFile: flags['nats-tls-key'],
    };
    const keyFile = flags['dispatch-key-file'];
    const key = dispatchKeyFromEnv(
      keyFile === undefined ? process.env : { ...process.env, PORTAL_DISPATCH_KEY_FILE: keyFile },
    );
    const nats: NatsBus = await createNatsBus({
      servers: url,
      name: id,
      logger,
      user: flags['nats-user'],
      pass: flags['nats-password'],
      token: flags['nats-token'],
      nkeySeedFile: flags['nats-nkey-seed-file'],
      tls: tls.caFile || tls.certFile || tls.keyFile ? tls : undefined,
    });
    // Assigned once, after the router whose callback reads it is created.
    // eslint-disable-next-line prefer-const
    let executor: ReturnType<typeof createExecutor> | undefined;
    // sources with credentials arrive redacted; their sealed real URLs open with PORTAL_DISPATCH_KEY
    const tracked = trackReady(guardDispatchSecrets(nats, { key, logger }));
    const outputRoot = path.resolve(flags['output-root'] ?? '.');
    let realRoot: string;
    try {
      if (!(await stat(outputRoot)).isDirectory()) throw new Error('not a folder');
      realRoot = await realpath(outputRoot);
    } catch (cause) {
      await nats.close();
      throw new PortalError(
        'PORTAL_CONFIG_INVALID',
        `--output-root ${outputRoot}: expected an existing folder`,
        {
          cause,
        },
      );
    }
    const router = all
      ? createAllTransfersBus(
          tracked.bus,
          (t) => {
            logger.info({ transferId: t }, 'serving a new transfer');
            executor!.attach(t);
          },
          allTransfersQueue(realRoot),
        )
      : undefined;
    executor = createExecutor({
      bus: router ?? tracked.bus,
      id,
      outputRoot,
      concurrency: flags.concurrency,
      logger: logger.child({ component: 'executor' }),
      // other executor processes share the transfer (queue group): write only verified chunks, never a
      // streaming hedge over another process's verified bytes
      streamWrites: false,
      // other hosts' transfers reach this process too: what it cannot serve is theirs to serve, not to fail
      unservable: 'skip',
    });
    for (const t of transfers) executor.attach(t);
    await Promise.all([...tracked.ready, router?.ready]);
    process.stdout.write(
      `${JSON.stringify({ type: 'ready', id, transfers: all ? '*' : transfers, outputRoot })}\n`,
    );

    logger.info({ signal: await untilStopSignal() }, 'stopping');
    const stats = executor.stats();
    // Close the executor first: its in-flight fetches end (cancelled ones are reported) while the bus still publishes.
    await executor.close();
    await router?.close();
    await nats.close();
    process.stdout.write(`${JSON.stringify({ type: 'stopped', id, ...stats, bus: nats.stats() })}\n`);
    return 0;
  },
});
