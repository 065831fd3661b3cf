// The replicated retry cache: the outcome of each applied command keyed by (clientId, callId), so a
// client that retries after a timeout or leader change gets the original answer instead of a second
// mutation. It is part of the replicated state (stored in scm.db in the same batch as the command's
// effects), so every replica, and a new leader, answers retries the same way.
//
// Expiry is measured on the apply clock, which only moves with the timestamps the leader puts in the
// commands, and eviction by count drops the oldest (lowest log index) first: both are the same on
// every replica. Entries are kept in recording order, which is log-index order, and since the apply
// clock never goes backwards, recordedAt is non-decreasing in that order too. So records only ever
// leave from the oldest end: the cache is a queue.
//
// Memory: a hit is rare (a retry), a miss is every command. So each record keeps its outcome as the
// encoded CommandResult bytes, packed one after another in one buffer, and decodes it on a hit; the
// rest are a client reference, three numbers and two offsets. (As objects, 100,000 records took
// ~40 MiB of heap.) Every hit decodes the same bytes, whether the record was applied here or loaded
// from scm.db. Records are found by client id, then by call id as a number: a "clientId#callId"
// string per record (the scm.db key) cost ~10 MiB of heap at 100,000 records, and each command
// brought its own copy of the client id. One string per client is kept, and scm.db keys are built
// only for the records that leave.
import { decodeOutcome, type RetryCacheRecord } from './records.js';
import { retryCacheKey } from './tables.js';

export const RETRY_CACHE_TIMEOUT_KEY = 'ozone.scm.ha.ratis.server.retry.cache.timeout';
export const DEFAULT_RETRY_CACHE_TIMEOUT_MS = 60_000;
export const DEFAULT_RETRY_CACHE_MAX_ENTRIES = 100_000;

/** A record as the cache holds it: the outcome as its encoded CommandResult. */
export interface StoredRetryRecord {
  readonly clientId: string;
  readonly callId: number;
  readonly recordedAt: number;
  readonly logIndex: number;
  /** The outcome, encoded as a CommandResult (copied in; the caller may reuse the bytes). */
  readonly result: Uint8Array;
}

const MIN_ARENA_BYTES = 4_096;

/** An arena for `bytes` live bytes with room for half as many more. */
function arenaSize(bytes: number): number {
  return Math.max(MIN_ARENA_BYTES, Math.ceil(bytes * 1.5));
}
/**
 * Each record's rank in recording order from the log indexes of the records in scm.db's order:
 * ascending log index, ties (none in a consistent scm.db) in scm.db's order.
 */
export function loadOrder(logIndexes: ArrayLike<number>): Uint32Array {
  const n = logIndexes.length;
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  order.sort((a, b) => (logIndexes[a] as number) - (logIndexes[b] as number) || a - b);
  const rank = new Uint32Array(n);
  for (let k = 0; k < n; k++) rank[order[k] as number] = k;
  return rank;
}

/** What add and expire return when no record leaves (most calls): one shared empty list. */
const NONE: readonly string[] = Object.freeze([]);

/** The queue's arrays drop their dead head once it is this long and half of them. */
const COMPACT_AFTER = 1_024;

/** One client's live records: call id → sequence number. */
interface ClientCalls {
  /** The client id, held once for all its records. */
  readonly id: string;
  readonly calls: Map<number, number>;
}

export class RetryCache {
  /** Client id → its live records: call id → sequence number (the position in the arrays is seq - base). */
  private readonly slots = new Map<string, ClientCalls>();
  private clients: ClientCalls[] = [];
  private callIds: number[] = [];
  private recordedAts: number[] = [];
  private logIndexes: number[] = [];
  /** Where each record's result bytes start and end in the arena. */
  private starts: number[] = [];
  private ends: number[] = [];
  /** Position in the arrays of the oldest live record; those before it are gone. */
  private first = 0;
  /** Sequence number of the arrays' position 0. */
  private base = 0;
  private arena = Buffer.alloc(MIN_ARENA_BYTES);
  private arenaStart = 0;
  private arenaEnd = 0;
  /** Records placed since startLoad. */
  private placed = 0;

  constructor(
    readonly timeoutMs: number,
    readonly maxEntries: number,
  ) {
    if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 0) throw new Error(`retry cache timeout ${timeoutMs} ms is not a non-negative integer`);
    if (!Number.isSafeInteger(maxEntries) || maxEntries < 1) throw new Error(`retry cache bound ${maxEntries} is not a positive integer`);
  }

  get size(): number {
    return this.callIds.length - this.first;
  }

  get(clientId: string, callId: number): RetryCacheRecord | undefined {
    const seq = this.slots.get(clientId)?.calls.get(callId);
    if (seq === undefined) return undefined;
    const i = seq - this.base;
    return Object.freeze({
      clientId: (this.clients[i] as ClientCalls).id,
      callId: this.callIds[i] as number,
      recordedAt: this.recordedAts[i] as number,
      logIndex: this.logIndexes[i] as number,
      outcome: decodeOutcome(this.arena.subarray(this.starts[i], this.ends[i])),
    });
  }

  /** Restores entries read from scm.db (in any order) into recording order. */
  load(records: Iterable<StoredRetryRecord>): void {
    this.clear();
    const sorted = [...records].sort((a, b) => a.logIndex - b.logIndex);
    this.arena = Buffer.alloc(arenaSize(sorted.reduce((sum, r) => sum + r.result.length, 0)));
    for (const record of sorted) this.push(record);
  }

  /**
   * Loads scm.db's records with every array and the arena made once at their final size, for a
   * loader that reads the records twice (in the same order both times). The first read gives, per
   * record, its log index and result size: `loadOrder` turns the log indexes into each record's
   * rank (0 = oldest); `startLoad` takes the result sizes by rank; the second read `place`s each
   * record at its rank; `finishLoad` checks every rank was placed. Growing the arrays and the arena
   * as records came, then putting them in order, left about three times the cache's size as
   * garbage (25 MiB of arrays and 19 MiB of buffers at 100,000 records) until V8's next full
   * collection, often after the node was ready.
   */
  startLoad(resultSizesByRank: ArrayLike<number>): void {
    this.clear();
    const n = resultSizesByRank.length;
    this.clients = new Array<ClientCalls>(n);
    this.callIds = new Array<number>(n);
    this.recordedAts = new Array<number>(n);
    this.logIndexes = new Array<number>(n);
    this.starts = new Array<number>(n);
    this.ends = new Array<number>(n);
    let bytes = 0;
    for (let k = 0; k < n; k++) {
      this.starts[k] = bytes;
      bytes += resultSizesByRank[k] as number;
      this.ends[k] = bytes;
    }
    this.arena = Buffer.alloc(arenaSize(bytes));
    this.arenaEnd = bytes;
    this.placed = 0;
  }

  /** Puts a record at its rank (see startLoad); `result` is copied in and must have the size given for that rank. */
  place(rank: number, clientId: string, callId: number, recordedAt: number, logIndex: number, result: Uint8Array): void {
    const n = this.callIds.length;
    if (!Number.isInteger(rank) || rank < 0 || rank >= n || this.clients[rank] !== undefined) throw new Error(`retry cache load: rank ${rank} is outside [0, ${n}) or already placed`);
    const start = this.starts[rank] as number;
    if (result.length !== (this.ends[rank] as number) - start) throw new Error(`retry cache load: record ${rank} has ${result.length} result bytes, ${(this.ends[rank] as number) - start} were announced`);
    let client = this.slots.get(clientId);
    if (client === undefined) {
      client = { id: clientId, calls: new Map() };
      this.slots.set(clientId, client);
    }
    client.calls.set(callId, rank);
    this.clients[rank] = client;
    this.callIds[rank] = callId;
    this.recordedAts[rank] = recordedAt;
    this.logIndexes[rank] = logIndex;
    this.arena.set(result, start);
    this.placed++;
  }

  finishLoad(): void {
    if (this.placed !== this.callIds.length) throw new Error(`retry cache load: ${this.placed} of ${this.callIds.length} records placed`);
  }

  /** Adds a record (newer than every held one); returns the keys it evicted to stay within the bound. */
  add(record: StoredRetryRecord): readonly string[] {
    if (this.slots.get(record.clientId)?.calls.has(record.callId) === true) {
      throw new Error(`retry cache already holds ${retryCacheKey(record.clientId, record.callId)}; a replay must not be recorded again`);
    }
    this.push(record);
    if (this.size <= this.maxEntries) return NONE;
    const evicted: string[] = [];
    while (this.size > this.maxEntries) evicted.push(this.shift());
    return evicted;
  }

  /** Drops entries recorded at least `timeoutMs` before `clock`; returns their keys. */
  expire(clock: number): readonly string[] {
    if (!this.expiresBy(clock)) return NONE;
    const expired: string[] = [];
    while (this.expiresBy(clock)) expired.push(this.shift());
    return expired;
  }

  /** Whether the oldest record has expired at `clock`. */
  private expiresBy(clock: number): boolean {
    return this.size > 0 && (this.recordedAts[this.first] as number) + this.timeoutMs <= clock;
  }

  private clear(): void {
    this.slots.clear();
    this.clients = [];
    this.callIds = [];
    this.recordedAts = [];
    this.logIndexes = [];
    this.starts = [];
    this.ends = [];
    this.first = 0;
    this.base = 0;
    this.arena = Buffer.alloc(MIN_ARENA_BYTES);
    this.arenaStart = this.arenaEnd = 0;
  }

  private push(record: StoredRetryRecord): void {
    const bytes = record.result;
    this.reserve(bytes.length);
    this.arena.set(bytes, this.arenaEnd);
    let client = this.slots.get(record.clientId);
    if (client === undefined) {
      client = { id: record.clientId, calls: new Map() };
      this.slots.set(client.id, client);
    }
    client.calls.set(record.callId, this.base + this.callIds.length);
    this.clients.push(client);
    this.callIds.push(record.callId);
    this.recordedAts.push(record.recordedAt);
    this.logIndexes.push(record.logIndex);
    this.starts.push(this.arenaEnd);
    this.arenaEnd += bytes.length;
    this.ends.push(this.arenaEnd);
  }

  /** Removes the oldest record; returns its scm.db key. */
  private shift(): string {
    const i = this.first;
    const client = this.clients[i] as ClientCalls;
    const callId = this.callIds[i] as number;
    client.calls.delete(callId);
    if (client.calls.size === 0) this.slots.delete(client.id);
    this.arenaStart = this.ends[i] as number;
    this.first = i + 1;
    if (this.size === 0) {
      this.arenaStart = this.arenaEnd = 0;
    }
    if (this.first >= COMPACT_AFTER && this.first * 2 >= this.callIds.length) {
      const n = this.first;
      for (const column of [this.clients, this.callIds, this.recordedAts, this.logIndexes, this.starts, this.ends] as unknown[][]) column.splice(0, n);
      this.base += n;
      this.first = 0;
    }
    return retryCacheKey(client.id, callId);
  }

  /** Room for `n` more bytes at the arena's end: live bytes move to the front, into a new buffer if need be. */
  private reserve(n: number): void {
    if (this.arenaEnd + n <= this.arena.length) return;
    const live = this.arenaEnd - this.arenaStart;
    // Live bytes and the new ones fill at most 2/3 of the buffer: compacting in place when the
    // dead head is large enough, a new buffer (larger or smaller) otherwise.
    const target = (live + n) * 3 <= this.arena.length * 2 && (live + n) * 3 >= this.arena.length ? this.arena : Buffer.alloc(arenaSize(live + n));
    this.arena.copy(target, 0, this.arenaStart, this.arenaEnd);
    this.arena = target;
    const shift = this.arenaStart;
    for (let i = this.first; i < this.callIds.length; i++) {
      this.starts[i] = (this.starts[i] as number) - shift;
      this.ends[i] = (this.ends[i] as number) - shift;
    }
    this.arenaStart = 0;
    this.arenaEnd = live;
  }
}
