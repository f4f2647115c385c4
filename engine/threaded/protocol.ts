/** Messages between the parallel rank pool and its workers. */

/** Hands a worker the shared arrays of a chunk table (replaces the one it held). */
export interface TableMessage {
  type: 'table';
  id: number;
  n: number;
  k: number;
  words: number;
  status: Uint8Array;
  assigned: Uint16Array;
  backups: Uint16Array;
  candidates: Uint32Array;
}

/** Ranks entries `from..to-1` of `chunks` (chunk ids when absent) of table `tableId`. */
export interface RankMessage {
  type: 'rank';
  seq: number;
  tableId: number;
  rank: Int32Array;
  edgeOfRank: Uint16Array;
  usable: number;
  /** SharedArrayBuffer-backed chunk list, or undefined for a range of chunk ids. */
  chunks: Uint32Array | undefined;
  from: number;
  to: number;
}

export type PoolRequest = TableMessage | RankMessage;

/** A worker's answer to a RankMessage: the number of chunks re-ranked, or an error. */
export interface PoolReply {
  type: 'done';
  seq: number;
  ranked: number;
  error?: string;
}
