/** What the coordinator-service tests share: a user's task executor for `portal peer --exec-command` and the peer's flags. */

/** A task executor of the user's (a Node script): sleeps payload.ms (default 5), answers x² and which peer ran it (PEER_NAME). */
export const SQUARE_WORKER = `let s = '';
process.stdin.on('data', (d) => (s += d)).on('end', () => {
  const t = JSON.parse(s);
  setTimeout(() => {
    process.stdout.write(JSON.stringify({ peer: process.env.PEER_NAME, taskId: t.taskId, square: (t.payload?.x ?? 0) ** 2 }));
  }, t.payload?.ms ?? 5);
});
`;

/** `portal peer` flags (after the command) of peer `id` running SQUARE_WORKER (at `workerFile`) for tasks of `type`, 2 at once, heartbeats every 300 ms. */
export function squarePeerArgs(natsUrl: string, id: string, type: string, workerFile: string): string[] {
  return [
    'peer',
    '--nats',
    natsUrl,
    '--id',
    id,
    '--types',
    type,
    '--heartbeat-ms',
    '300',
    '--concurrency',
    '2',
    '--exec-command',
    `${JSON.stringify(process.execPath)} ${JSON.stringify(workerFile)}`,
  ];
}
