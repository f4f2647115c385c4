/**
 * Worker thread of the parallel rank pool (see pool.ts): ranks a range of chunks of a chunk table
 * whose status / assigned / backups / candidates live on SharedArrayBuffer, in place.
 * Messages in: `table` (the shared arrays; replaces the previous table) and `rank`; out: `done`.
 */
import { parentPort } from 'node:worker_threads';
import { buildRankLut, lutApplies, rankChunkRange, type RankTable } from '../../scheduler/kernels/k-best.js';
import type { EdgeRanking } from '../../scheduler/kernels/cost.js';
import type { PoolRequest, PoolReply } from './protocol.js';

let table: RankTable | undefined;
let tableId = -1;

const port = parentPort;
if (!port) throw new Error('engine/threaded/worker.js must run as a worker thread');

port.on('message', (m: PoolRequest) => {
  if (m.type === 'table') {
    table = {
      n: m.n,
      k: m.k,
      words: m.words,
      status: m.status,
      assigned: m.assigned,
      backups: m.backups,
      candidates: m.candidates,
    };
    tableId = m.id;
    return;
  }
  let reply: PoolReply;
  try {
    if (!table || tableId !== m.tableId)
      throw new Error(`worker has table ${tableId}, asked for ${m.tableId}`);
    const ranking = {
      rank: m.rank,
      edgeOfRank: m.edgeOfRank,
      usable: m.usable,
      cost: new Float64Array(0),
    } satisfies EdgeRanking;
    const lut = lutApplies(table) ? buildRankLut(ranking, table.words) : undefined;
    const ranked = rankChunkRange(table, ranking, m.chunks, m.from, m.to, lut);
    reply = { type: 'done', seq: m.seq, ranked };
  } catch (err) {
    reply = { type: 'done', seq: m.seq, ranked: -1, error: err instanceof Error ? err.message : String(err) };
  }
  port.postMessage(reply);
});
