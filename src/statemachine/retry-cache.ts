// The replicated retry cache: the outcome of each applied command keyed by (clientId, callId), so a
// client that retries after a timeout or leader change gets the original answer instead of a second
// mutation. It is part of the replicated state (stored in scm.db in the same batch as the command's
// effects), so every replica, and a new leader, answers retries the same way.
//
// Expiry is measured on the apply clock, which only moves with the timestamps the leader puts in the
// commands, and eviction by count drops the oldest (lowest log index) first: both are the same on
// every replica. Entries are kept in recording order, which is log-index order, and since the apply
// clock never goes backwards, recordedAt is non-decreasing in that order too.
import type { RetryCacheRecord } from './records.js';
import { retryCacheKey } from './tables.js';

export const RETRY_CACHE_TIMEOUT_KEY = 'ozone.scm.ha.ratis.server.retry.cache.timeout';
export const DEFAULT_RETRY_CACHE_TIMEOUT_MS = 60_000;
export const DEFAULT_RETRY_CACHE_MAX_ENTRIES = 100_000;

export class RetryCache {
  private readonly entries = new Map<string, RetryCacheRecord>();

  constructor(
    readonly timeoutMs: number,
    readonly maxEntries: number,
  ) {
    if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 0) throw new Error(`retry cache timeout ${timeoutMs} ms is not a non-negative integer`);
    if (!Number.isSafeInteger(maxEntries) || maxEntries < 1) throw new Error(`retry cache bound ${maxEntries} is not a positive integer`);
  }

  get size(): number {
    return this.entries.size;
  }

  get(clientId: string, callId: number): RetryCacheRecord | undefined {
    return this.entries.get(retryCacheKey(clientId, callId));
  }

  /** Restores entries read from scm.db (in any order) into recording order. */
  load(records: Iterable<RetryCacheRecord>): void {
    this.entries.clear();
    const sorted = [...records].sort((a, b) => a.logIndex - b.logIndex);
    for (const record of sorted) this.entries.set(retryCacheKey(record.clientId, record.callId), record);
  }

  /** Adds a record (newer than every held one); returns the keys it evicted to stay within the bound. */
  add(record: RetryCacheRecord): string[] {
    const key = retryCacheKey(record.clientId, record.callId);
    if (this.entries.has(key)) throw new Error(`retry cache already holds ${key}; a replay must not be recorded again`);
    this.entries.set(key, record);
    const evicted: string[] = [];
    for (const oldest of this.entries.keys()) {
      if (this.entries.size <= this.maxEntries) break;
      this.entries.delete(oldest);
      evicted.push(oldest);
    }
    return evicted;
  }

  /** Drops entries recorded at least `timeoutMs` before `clock`; returns their keys. */
  expire(clock: number): string[] {
    const expired: string[] = [];
    for (const [key, record] of this.entries) {
      if (record.recordedAt + this.timeoutMs > clock) break;
      this.entries.delete(key);
      expired.push(key);
    }
    return expired;
  }
}
