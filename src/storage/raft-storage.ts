// The durable storage of one Raft group: <ozone.scm.ratis.storage.dir>/<group-uuid>/ with
// in_use.lock, current/ (segments, raft-meta, raft-meta.conf) and sm/.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { InUseLock } from './in-use-lock.js';
import type { LogEntry } from '../log-entry.js';
import { recoverSegments, type CorruptionPolicy, type DroppedEntries } from './log-recovery.js';

export type { DroppedEntries } from './log-recovery.js';
import { RaftMetaStore, type RaftMeta, type RaftMetaError } from './raft-meta.js';
import { SegmentedLog } from './segmented-log.js';
import type { DiskTimings } from './segment-writer.js';

export interface RaftStorageOptions {
  /** ozone.scm.ha.ratis.segment.size; default 64 MiB. */
  readonly segmentSizeBytes?: number;
  /** Preallocation of the open segment in bytes (zero padding); default 0 = off. */
  readonly preallocateBytes?: number;
  /**
   * Bound on bytes of recent durable entries kept in memory, as their encoded frames (the node:
   * ozone.scm.ha.raft.server.log.segment.cache.size.max); default 8 MiB.
   */
  readonly cacheBytes?: number;
  /** ozone.scm.ha.ratis.log.corruption.policy; default EXCEPTION. */
  readonly corruptionPolicy?: CorruptionPolicy;
  /** Recovery repairs and lock take-overs are reported here (storage does no logging itself). */
  readonly onWarning?: (message: string) => void;
  /**
   * Where the log starts when there are no segments (fresh, or everything was reset away):
   * default index 1 with term(0) = 0. After a snapshot install that was not followed by an append,
   * pass the snapshot's index + 1 and term (or call reset()).
   */
  readonly emptyLogStart?: { readonly firstIndex: number; readonly prevTerm: number | undefined };
  /** Segment files kept open for reads; default 8. */
  readonly maxOpenReadFiles?: number;
  /** Per write batch: seconds spent writing, then in fdatasync (storage does no metrics itself). */
  readonly onDiskTimings?: (timings: DiskTimings) => void;
  /**
   * Entries that recovery removed from the log on open (acknowledged entries found zeroed, or cut by
   * WARN_AND_RETURN), for a metric; each is also explained through onWarning.
   */
  readonly onLogEntriesDropped?: (dropped: DroppedEntries) => void;
  /**
   * For `scm repair raft-meta` only: open even when raft-meta is missing beside a log with entries,
   * or damaged. metaProblem() then says what is wrong; readMeta() and append() throw it until
   * saveMeta() has written a new raft-meta. Otherwise either is a RaftMetaError from open().
   */
  readonly openWithBadRaftMeta?: boolean;
}

export const DEFAULT_SEGMENT_SIZE_BYTES = 64 * 1024 * 1024;
// About 80,000 AllocateContainer entries (~100 bytes a frame): over a minute of writes at the
// rates we measure. Followers that far behind are sent entries read back from the segments.
export const DEFAULT_CACHE_BYTES = 8 * 1024 * 1024;

const CORRUPTION_POLICIES: readonly CorruptionPolicy[] = ['EXCEPTION', 'WARN_AND_RETURN'];

export class RaftStorage {
  private closing: Promise<void> | undefined;

  private constructor(
    readonly groupDir: string,
    private readonly lock: InUseLock,
    private readonly log: SegmentedLog,
    private readonly metaStore: RaftMetaStore,
  ) {}

  /** Locks groupDir, recovers the log and reads raft-meta. */
  static open(groupDir: string, options: RaftStorageOptions = {}): RaftStorage {
    const policy = options.corruptionPolicy ?? 'EXCEPTION';
    if (!CORRUPTION_POLICIES.includes(policy)) {
      throw new RangeError(
        `ozone.scm.ha.ratis.log.corruption.policy must be one of ${CORRUPTION_POLICIES.join(', ')}, got ${JSON.stringify(policy)}`,
      );
    }
    const warn = options.onWarning ?? (() => undefined);
    mkdirSync(groupDir, { recursive: true });
    const lock = InUseLock.acquire(groupDir, warn);
    try {
      const currentDir = join(groupDir, 'current');
      mkdirSync(currentDir, { recursive: true });
      mkdirSync(join(groupDir, 'sm'), { recursive: true });
      const metaStore = new RaftMetaStore(currentDir, warn, options.openWithBadRaftMeta === true ? { openWithBadRaftMeta: true } : {});
      const recovered = recoverSegments(currentDir, policy, warn, options.onLogEntriesDropped);
      const log = new SegmentedLog(currentDir, recovered, {
        beforeSegmentCreate: () => metaStore.ensureMetaFile(),
        segmentSizeBytes: options.segmentSizeBytes ?? DEFAULT_SEGMENT_SIZE_BYTES,
        preallocateBytes: options.preallocateBytes ?? 0,
        cacheBytes: options.cacheBytes ?? DEFAULT_CACHE_BYTES,
        emptyLogStart: options.emptyLogStart ?? { firstIndex: 1, prevTerm: 0 },
        maxOpenReadFiles: options.maxOpenReadFiles ?? 8,
        ...(options.onDiskTimings !== undefined ? { onDiskTimings: options.onDiskTimings } : {}),
      });
      metaStore.checkAgainstLog(log.firstIndex(), log.lastIndex());
      return new RaftStorage(groupDir, lock, log, metaStore);
    } catch (err) {
      lock.release();
      throw err;
    }
  }

  // --- log: synchronous reads ---
  firstIndex(): number {
    return this.log.firstIndex();
  }
  lastIndex(): number {
    return this.log.lastIndex();
  }
  durableIndex(): number {
    return this.log.durableIndex();
  }
  term(index: number): number | undefined {
    return this.log.term(index);
  }
  entry(index: number): LogEntry {
    return this.log.entry(index);
  }
  entries(lo: number, hiExclusive: number, maxBytes: number): LogEntry[] {
    return this.log.entries(lo, hiExclusive, maxBytes);
  }
  configurationIndexes(lo: number, hiExclusive: number): number[] {
    return this.log.configurationIndexes(lo, hiExclusive);
  }

  // --- log: durable writes, applied to the in-memory view at once, resolved in order ---
  append(entries: readonly LogEntry[]): Promise<void> {
    const problem = this.metaStore.metaProblem();
    if (problem !== undefined) throw problem;
    return this.log.append(entries);
  }
  truncateFrom(index: number): Promise<void> {
    return this.log.truncateFrom(index);
  }
  purgeBelow(index: number): Promise<void> {
    return this.log.purgeBelow(index);
  }
  reset(nextIndex: number, prevTerm: number): Promise<void> {
    return this.log.reset(nextIndex, prevTerm);
  }

  /** fdatasync calls made on segments so far. */
  syncCount(): number {
    return this.log.syncCount();
  }

  /** fdatasync segments on the event loop's thread (true) or on the thread pool (the default). */
  setFsyncOnLoop(onLoop: boolean): void {
    this.log.setFsyncOnLoop(onLoop);
  }
  /** Current segment file paths, oldest first. */
  segmentFiles(): string[] {
    return this.log.segmentFiles();
  }

  // --- raft-meta and raft-meta.conf ---
  /**
   * Whether raft-meta exists. False only on a server that has stored no entry yet (the log writes
   * raft-meta before its first segment). The node must refuse to start when it is false and scm.db
   * has applied entries (an empty log after a snapshot install): see raft-meta.ts.
   */
  hasMetaFile(): boolean {
    return this.metaStore.hasMetaFile();
  }
  /** Opened with openWithBadRaftMeta: what is wrong with raft-meta, until saveMeta() replaces it. */
  metaProblem(): RaftMetaError | undefined {
    return this.metaStore.metaProblem();
  }
  readMeta(): RaftMeta {
    return this.metaStore.readMeta();
  }
  saveMeta(term: number, votedFor: string): Promise<void> {
    return this.metaStore.saveMeta(term, votedFor);
  }
  readConf(): LogEntry | undefined {
    return this.metaStore.readConf();
  }
  saveConf(entry: LogEntry): Promise<void> {
    return this.metaStore.saveConf(entry);
  }

  /**
   * Finishes in-flight writes, closes (seals) the open segment, closes files and releases
   * in_use.lock. Sealing leaves every segment closed after a clean close, so that recovery knows
   * zeros in any of them are lost entries, not preallocated space (log-recovery.ts).
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      try {
        await this.log.close();
      } finally {
        this.lock.release();
      }
    })();
    return this.closing;
  }
}
