import { hostname } from 'node:os';
import { PortalError } from '../../common/errors.js';
import { createLogger } from '../../common/logger.js';
import { resolveLogFormat } from '../../common/log-format.js';
import { createNatsBus, joinAsPeer, natsOptionsFromEnv, type NatsBus } from '../../bus/index.js';
import { commonFlags, defineCommand } from '../args.js';
import {
  createCommandExecutor,
  createKernelExecutor,
  loadModuleExecutor,
  type TaskExecutor,
} from '../coord/executors.js';
import { createPeerWorker } from '../coord/worker.js';
import { loadPeerSet } from '../coord/profiles.js';
import { calibrateKernels } from '../coord/kernels.js';
import { untilStopSignal } from '../signals.js';

const ID_RE = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * `portal peer`: a worker of the learned coordinator as its own process. Joins NATS, advertises its
 * id, task types, concurrency and latency in a heartbeat every `--heartbeat-ms` (with its load and
 * resource pressure), runs the tasks coordinators send it with its executor and answers each with
 * the result and its measured service time (docs/coord-service.md). Prints one JSON line
 * `{"type":"ready",…}` once it takes tasks; on SIGTERM/SIGINT it stops taking tasks, answers the
 * ones it has, says it is leaving and exits 0.
 */
export const peerCommand = defineCommand({
  name: 'peer',
  summary: 'run tasks for learned coordinators over NATS (built-in kernels, your module or your command)',
  usage:
    'portal peer --nats URL [--id NAME] [--types T,…] [--concurrency N] [--max-in-flight N] [--latency-hint-ms MS] [--exec-module PATH | --exec-command CMD | --profile FILE --as ID]',
  flags: [
    {
      name: 'nats',
      type: 'string',
      help: 'NATS server URL(s), comma-separated (credentials and TLS from NATS_* variables)',
      env: 'NATS_URL',
    },
    { name: 'id', type: 'string', help: 'peer id: 1–64 of A-Z a-z 0-9 _ - (default peer-<host>-<pid>)' },
    {
      name: 'types',
      type: 'list',
      help: 'task types this peer runs (kernels: render, physics, audio; default all three; required for --exec-command)',
    },
    {
      name: 'concurrency',
      type: 'number',
      integer: true,
      help: 'tasks run at once',
      default: 1,
      min: 1,
      max: 1024,
    },
    {
      name: 'max-in-flight',
      type: 'number',
      integer: true,
      help: 'attempts a coordinator may have in flight here (queued beyond --concurrency); default --concurrency',
      min: 1,
      max: 4096,
    },
    {
      name: 'latency-hint-ms',
      type: 'number',
      help: 'the latency this peer advertises',
      default: 10,
      min: 0,
    },
    { name: 'heartbeat-ms', type: 'number', help: 'heartbeat period', default: 1000, min: 20, max: 60_000 },
    {
      name: 'exec-module',
      type: 'string',
      help: 'run tasks with this JavaScript module: it exports execute(task) (and optionally taskTypes)',
    },
    {
      name: 'exec-command',
      type: 'string',
      help: 'run each task with this shell command: the task as JSON on stdin, the result on stdout, exit 0 = ok',
    },
    {
      name: 'task-timeout-ms',
      type: 'number',
      help: '--exec-command: kill a task running longer than this',
      default: 600_000,
      min: 1,
    },
    {
      name: 'profile',
      type: 'string',
      help: 'a peers file (docs/coord-peers.md): the built-in kernels emulate the profile named by --as',
    },
    { name: 'as', type: 'string', help: 'the profile of --profile to emulate; also the default --id' },
    { name: 'pace', type: 'number', help: "emulation pace (default: the peers file's)", min: 1, max: 100 },
    { name: 'seed', type: 'number', integer: true, help: 'seed of the emulated failures', default: 1 },
    {
      name: 'calibrate',
      type: 'boolean',
      help: "measure the kernels' CPU ms per work unit at start and print them in the ready line",
      default: false,
    },
    ...commonFlags,
  ],
  async run({ flags }) {
    const servers = flags.nats;
    if (!servers)
      throw new PortalError('PORTAL_CONFIG_INVALID', 'peer: --nats URL (or NATS_URL) is required');
    const logger = createLogger({
      level: flags['log-level'],
      format: resolveLogFormat(flags['log-format'], 'json'),
    });
    const types = flags.types ?? [];
    const modes = (['exec-module', 'exec-command', 'profile'] as const).filter((k) => flags[k] !== undefined);
    if (modes.length > 1)
      throw new PortalError('PORTAL_CONFIG_INVALID', `peer: give at most one of --${modes.join(', --')}`);

    let executor: TaskExecutor;
    let maxInFlight = flags['max-in-flight'];
    let latencyHintMs = flags['latency-hint-ms'];
    let defaultId = `peer-${hostname().replace(/[^A-Za-z0-9_-]/g, '_')}-${process.pid}`.slice(0, 64);
    let calibrate = flags.calibrate;
    if (flags['exec-module'] !== undefined) executor = await loadModuleExecutor(flags['exec-module'], types);
    else if (flags['exec-command'] !== undefined)
      executor = createCommandExecutor(flags['exec-command'], types, flags['task-timeout-ms']);
    else if (flags.profile !== undefined) {
      const set = await loadPeerSet(flags.profile);
      const as = flags.as;
      const profile = set.peers.find((p) => p.id === as);
      if (!profile)
        throw new PortalError(
          'PORTAL_CONFIG_INVALID',
          `--as: expected one of ${set.peers.map((p) => p.id).join(', ')}, got ${JSON.stringify(as)}`,
        );
      executor = createKernelExecutor({
        profile,
        pace: flags.pace ?? set.pace,
        seed: flags.seed,
      });
      maxInFlight ??= profile.maxConcurrent;
      if (flags['latency-hint-ms'] === 10) latencyHintMs = profile.latencyHintMs;
      defaultId = profile.id;
      calibrate = true; // the coord-demo's oracle scales these
    } else executor = createKernelExecutor({ types: types.length > 0 ? types : undefined });
    const id = flags.id ?? defaultId;
    if (!ID_RE.test(id))
      throw new PortalError(
        'PORTAL_CONFIG_INVALID',
        `--id: expected 1–64 of A-Z a-z 0-9 _ -, got ${JSON.stringify(id)}`,
      );
    const concurrency = flags.concurrency;
    maxInFlight ??= concurrency;
    const rates = calibrate ? calibrateKernels(480, 360) : undefined;

    const worker = createPeerWorker({ executor, concurrency, maxInFlight });
    const nats: NatsBus = await createNatsBus({
      ...(natsOptionsFromEnv() ?? {}),
      servers,
      name: `peer-${id}`,
      logger,
    });
    const log = logger.child({ component: 'peer', peer: id });
    const peer = joinAsPeer({
      bus: nats,
      advert: { peerId: id, taskTypes: executor.taskTypes, maxInFlight, concurrency, latencyHintMs },
      heartbeatMs: flags['heartbeat-ms'],
      logger,
      telemetry: () => {
        const t = worker.telemetry();
        return {
          load: t.load,
          running: t.running,
          queued: t.queued,
          pressure: t.pressure,
          cpuPressure: t.cpuPressure,
          memoryPressure: t.memoryPressure,
          completed: t.completed,
          failed: t.failed,
        };
      },
      run: async (t) => {
        const r = await worker.submit({
          taskId: t.taskId,
          attempt: t.attempt,
          type: t.type,
          work: t.work,
          hour: t.hour,
          payload: t.payload,
        });
        log.debug(
          { taskId: t.taskId, attempt: t.attempt, ok: r.ok, serviceMs: r.serviceMs },
          'task answered',
        );
        return r;
      },
    });
    await peer.ready;
    process.stdout.write(
      `${JSON.stringify({ type: 'ready', id, taskTypes: executor.taskTypes, executor: executor.name, concurrency, maxInFlight, ...(rates ? { rates } : {}) })}\n`,
    );
    log.info(
      { taskTypes: executor.taskTypes, executor: executor.name, concurrency, maxInFlight },
      'peer ready',
    );

    log.info({ signal: await untilStopSignal() }, 'leaving');
    await peer.leave();
    const t = worker.telemetry();
    worker.close();
    await nats.close();
    process.stdout.write(
      `${JSON.stringify({ type: 'stopped', id, completed: t.completed, failed: t.failed })}\n`,
    );
    return 0;
  },
});
