// The tables of scm.db, as LevelDB sublevels named like Ozone's column families, with their key and
// value encodings. Keeping the names and encodings in one place lets the snapshot code and tests
// read scm.db exactly as the state machine writes it.
import type { AbstractLevel } from 'abstract-level';
import { transactionInfoTable } from './transaction-info.js';

export const CONTAINERS_TABLE = 'containers';
export const PIPELINES_TABLE = 'pipelines';
export const DATANODES_TABLE = 'datanodes';
export const SEQUENCE_ID_TABLE = 'sequenceId';
export const META_TABLE = 'meta';
export const RETRY_CACHE_TABLE = 'retryCache';

/** sequenceId key holding the last container id handed out (as Ozone's SequenceIdGenerator). */
export const CONTAINER_ID_SEQUENCE_KEY = 'containerId';
/** meta key: the applied term/index recorded as the latest snapshot point, "<term>#<index>". */
export const SNAPSHOT_POINT_KEY = 'snapshotPoint';
/** meta key: the apply clock, the largest command timestamp applied so far (ms). */
export const APPLY_CLOCK_KEY = 'applyClock';

/**
 * Any database with LevelDB's API: classic-level (`level`) on disk in production, memory-level in
 * the simulator, which runs this very state machine.
 */
export type AnyLevel<K = string, V = string> = AbstractLevel<string | Buffer | Uint8Array, K, V>;

export type ScmDb = AnyLevel;

export function openTables(db: ScmDb) {
  return {
    containers: db.sublevel<Buffer, Buffer>(CONTAINERS_TABLE, { keyEncoding: 'buffer', valueEncoding: 'buffer' }),
    pipelines: db.sublevel<string, Buffer>(PIPELINES_TABLE, { keyEncoding: 'utf8', valueEncoding: 'buffer' }),
    datanodes: db.sublevel<string, Buffer>(DATANODES_TABLE, { keyEncoding: 'utf8', valueEncoding: 'buffer' }),
    sequenceId: db.sublevel<string, string>(SEQUENCE_ID_TABLE, { keyEncoding: 'utf8', valueEncoding: 'utf8' }),
    transactionInfo: transactionInfoTable(db),
    meta: db.sublevel<string, string>(META_TABLE, { keyEncoding: 'utf8', valueEncoding: 'utf8' }),
    retryCache: db.sublevel<string, Buffer>(RETRY_CACHE_TABLE, { keyEncoding: 'utf8', valueEncoding: 'buffer' }),
  };
}

export type ScmTables = ReturnType<typeof openTables>;
export type TableName = keyof ScmTables;

/** A container id as its `containers` key: 8 bytes, big-endian, so keys sort by id. */
export function containerKey(id: number): Buffer {
  if (!Number.isSafeInteger(id) || id < 0) throw new Error(`container id ${id} is not a non-negative safe integer`);
  // Two 32-bit halves (a safe integer's high half is below 2^21): no BigInt per key.
  const key = Buffer.allocUnsafe(8);
  key.writeUInt32BE(Math.floor(id / 0x1_0000_0000), 0);
  key.writeUInt32BE(id >>> 0, 4);
  return key;
}

export function containerIdFromKey(key: Uint8Array): number {
  if (key.length !== 8) throw new Error(`container key has ${key.length} bytes, expected 8`);
  const id = Buffer.from(key.buffer, key.byteOffset, key.byteLength).readBigUInt64BE();
  if (id > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`container id ${id} is beyond the safe integer range`);
  return Number(id);
}

/** The retry cache key: callId is digits, so the last '#' always splits it unambiguously. */
export function retryCacheKey(clientId: string, callId: number): string {
  return `${clientId}#${callId}`;
}
