// The SCM state machine: applies committed Raft entries to scm.db and serves queries from memory.
//
// Durability contract: each scm.db write is ONE atomic LevelDB batch holding every effect applied
// since the previous write plus `#TRANSACTIONINFO` = the last applied entry's term/index. A write
// ends each applyBatch call, unless the caller lets it leave the write for later (`deferWrite`,
// Ozone's SCMHADBTransactionBuffer: the driver writes on a timer); then the next write carries it.
// The entries are committed in the Raft log either way, and the log is never purged past what
// scm.db holds (recordSnapshotPoint writes first). After a crash, scm.db is exactly the state after
// some whole write, and its `#TRANSACTIONINFO` says which; entries at or below it are skipped when
// replayed, so nothing is ever applied twice to scm.db, and the entries after it are applied again
// to the same results.
//
// Determinism contract: applying reads only the entries and the replicated state. Times come from
// the commands (the leader's clock at propose time), ids from the replicated `sequenceId` counter,
// pipeline choices from the command. Every replica fed the same entries has byte-identical tables
// (compare with digest()). The retry cache settings must be the same on every replica.
import { createHash } from 'node:crypto';
import type { BatchOperation } from 'level';
import { Level } from 'level';
import { encodeAppliedConfiguration, parseAppliedConfiguration, RAFT_CONFIGURATION_KEY, type AppliedConfiguration } from './raft-configuration.js';
import { decodeCommand, type ScmCommandType } from './commands.js';
import { encodeRemovalRecord, parseRemovalRecord, REMOVED_FROM_GROUP_KEY, removalAfter, sameRemoval, type RemovalRecord } from './self-removal.js';
import { CommandError, InvalidArgumentError } from '../errors.js';
import { executeCommand } from './execute-command.js';
import { assertValidEntryPosition, type LogEntry } from './log-entry.js';
import { isOneOf, LIFE_CYCLE_STATES, type ContainerInfo, type DatanodeInfo, type LifeCycleState, type PipelineInfo } from './model.js';
import type { PipelinePlacementView } from './placement.js';
import { decodeContainer, decodeDatanode, decodePipeline, decodeRetryCacheRecord, encodeOutcome, type CommandOutcome } from './records.js';
import { DEFAULT_RETRY_CACHE_MAX_ENTRIES, DEFAULT_RETRY_CACHE_TIMEOUT_MS, loadOrder, RetryCache } from './retry-cache.js';
import { containerResultBody, parseRetryRecordEnvelope } from './retry-record-decoder.js';
import { StringTable } from './container-table.js';
import { ScmState, type TableWrite } from './scm-state.js';
import { ContainerRecordDecoder, fastContainerIdFromKey } from './container-decoder.js';
import {
  APPLY_CLOCK_KEY,
  CONTAINER_ID_SEQUENCE_KEY,
  containerIdFromKey,
  openTables,
  SNAPSHOT_POINT_KEY,
  META_TABLE,
  type ScmDb,
  type ScmTables,
} from './tables.js';
import {
  formatTransactionInfo,
  parseTransactionInfo,
  readTransactionInfo,
  TRANSACTION_INFO_KEY,
  ZERO_TERM_INDEX,
  type TermIndex,
} from './transaction-info.js';

export interface ScmStateMachineOptions {
  /** `ozone.scm.ha.ratis.server.retry.cache.timeout` in ms (default 60 s). Same on every replica. */
  readonly retryCacheTimeoutMs?: number;
  /** Most retry-cache entries kept; the oldest are evicted beyond it. Same on every replica. */
  readonly retryCacheMaxEntries?: number;
  /**
   * Opens the database at a location (default: LevelDB through `level`). The simulator passes
   * memory-level databases, which have the same API.
   */
  readonly openDb?: (location: string) => ScmDb;
  /**
   * This node's id: with it, applying (or installing) a configuration without this node after one
   * with it records the removal (self-removal.ts). Without it (tools, tests) nothing is recorded.
   */
  readonly selfId?: string;
}

/** How one applyBatch call may write. */
export interface ApplyOptions {
  /**
   * Leave the batch's write to a later call (the next apply that writes, writeApplied(),
   * recordSnapshotPoint(), digest(), reload() or close()): its effects are applied in memory,
   * answered and visible to queries, and lastApplied() moves, but scm.db does not hold them yet. A
   * batch holding a configuration entry, a change to this node's removal record or a consistency
   * marker is written all the same, as is one that would leave more than MAX_UNWRITTEN_ENTRIES
   * unwritten.
   */
  readonly deferWrite?: boolean;
}

/**
 * Most applied entries left unwritten: a deferred batch that would leave more is written. Bounds the
 * memory the pending writes hold and the entries a restart applies again (4,096 allocations hold a
 * few MiB of records).
 */
export const MAX_UNWRITTEN_ENTRIES = 4096;

/** The result of one applied data entry. */
export interface ApplyResult {
  readonly term: number;
  readonly index: number;
  readonly outcome: CommandOutcome;
  /**
   * True when (clientId, callId) was already in the retry cache: `outcome` is the ORIGINAL result
   * and the entry changed nothing.
   */
  readonly replayed: boolean;
  /** Absent when the entry's bytes were not a valid command (outcome is then MALFORMED_COMMAND). */
  readonly command?: { readonly type: ScmCommandType; readonly clientId: string; readonly callId: number };
}

/**
 * Hears a batch's results once they are computed and visible, before the batch is written; a
 * promise it returns holds the write back until it settles (the Raft driver answers its clients
 * first).
 */
export type OnComputed = (results: readonly ApplyResult[]) => void | Promise<void>;

interface Loaded {
  readonly state: ScmState;
  readonly applied: TermIndex;
  readonly snapshot: TermIndex;
  readonly configuration: AppliedConfiguration | undefined;
  readonly removal: RemovalRecord | undefined;
}

function openLevelDb(location: string): ScmDb {
  return new Level<string, string>(location);
}

/**
 * Called after loading a database from openLevelDb. LevelDB reads its table files through mmap
 * (classic-level's LevelDB maps up to 1,000 of them), so once the load has read every table the
 * whole of scm.db stays resident in the process's mappings for as long as the files are open: 23
 * MiB of RSS at 1 M containers, and more as scm.db grows. Closing and reopening the database unmaps
 * them; the pages stay in the page cache, where the kernel may reclaim them, and a table is mapped
 * again as far as later reads touch it (applies write, and queries are served from memory).
 */
async function unmapTablesAfterLoad(db: ScmDb): Promise<void> {
  await db.close();
  await db.open();
}

function parseCounter(text: string | undefined, what: string): number {
  if (text === undefined) return 0;
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text))) {
    throw new Error(`corrupt ${what} value ${JSON.stringify(text)}: expected a non-negative integer`);
  }
  return Number(text);
}

export class ScmStateMachine implements PipelinePlacementView {
  private dbValue: ScmDb;
  private tables: ScmTables;
  private state: ScmState;
  private applied: TermIndex;
  /** What scm.db's #TRANSACTIONINFO says: `applied`, or before it while writes are deferred. */
  private written: TermIndex;
  private snapshot: TermIndex;
  private config: AppliedConfiguration | undefined;
  private removed: RemovalRecord | undefined;
  private readonly consistencyHashes = new Map<number, Promise<string>>();
  private closed = false;
  /** Serializes applyBatch, recordSnapshotPoint, reload and close: one DB writer at a time. */
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly dbDir: string,
    private readonly options: Required<ScmStateMachineOptions>,
    db: ScmDb,
    loaded: Loaded,
  ) {
    this.dbValue = db;
    this.tables = openTables(db);
    this.state = loaded.state;
    this.applied = loaded.applied;
    this.written = loaded.applied;
    this.snapshot = loaded.snapshot;
    this.config = loaded.configuration;
    this.removed = loaded.removal;
  }

  /** Opens (creating if needed) scm.db at `dbDir` and loads its state into memory. */
  static async open(dbDir: string, options: ScmStateMachineOptions = {}): Promise<ScmStateMachine> {
    const resolved: Required<ScmStateMachineOptions> = {
      retryCacheTimeoutMs: options.retryCacheTimeoutMs ?? DEFAULT_RETRY_CACHE_TIMEOUT_MS,
      retryCacheMaxEntries: options.retryCacheMaxEntries ?? DEFAULT_RETRY_CACHE_MAX_ENTRIES,
      openDb: options.openDb ?? openLevelDb,
      selfId: options.selfId ?? '',
    };
    new RetryCache(resolved.retryCacheTimeoutMs, resolved.retryCacheMaxEntries); // validates the settings before touching the disk
    const db = resolved.openDb(dbDir);
    await db.open();
    try {
      const loaded = await ScmStateMachine.load(db, resolved);
      if (resolved.openDb === openLevelDb) await unmapTablesAfterLoad(db);
      return new ScmStateMachine(dbDir, resolved, db, loaded);
    } catch (err) {
      await db.close();
      throw err;
    }
  }

  private static async load(db: ScmDb, options: Required<ScmStateMachineOptions>): Promise<Loaded> {
    const tables = openTables(db);
    const sequenceText = (await tables.sequenceId.get(CONTAINER_ID_SEQUENCE_KEY)) as string | undefined;
    // Ids are handed out 1, 2, 3, …: the last one bounds how many containers there are (a hint
    // only; the counter is checked below, after the tables, as it always was).
    const capacityHint = sequenceText !== undefined && /^\d{1,9}$/.test(sequenceText) ? Number(sequenceText) + 1 : 0;
    const state = new ScmState(new RetryCache(options.retryCacheTimeoutMs, options.retryCacheMaxEntries), capacityHint);
    await loadContainers(tables, state);
    for await (const [key, value] of tables.pipelines.iterator()) {
      const pipeline = decodePipeline(value, `pipelines/${key}`);
      if (pipeline.id !== key) throw new Error(`pipelines/${key} holds pipeline ${pipeline.id}`);
      state.loadPipeline(pipeline);
    }
    for await (const [key, value] of tables.datanodes.iterator()) {
      const datanode = decodeDatanode(value, `datanodes/${key}`);
      if (datanode.uuid !== key) throw new Error(`datanodes/${key} holds datanode ${datanode.uuid}`);
      state.loadDatanode(datanode);
    }
    await loadRetryCache(tables, state.retryCache);
    state.loadCounters(
      parseCounter(sequenceText, `sequenceId/${CONTAINER_ID_SEQUENCE_KEY}`),
      parseCounter((await tables.meta.get(APPLY_CLOCK_KEY)) as string | undefined, `meta/${APPLY_CLOCK_KEY}`),
    );
    const snapshotText = (await tables.meta.get(SNAPSHOT_POINT_KEY)) as string | undefined;
    return {
      state,
      applied: await readTransactionInfo(db),
      snapshot: snapshotText === undefined ? ZERO_TERM_INDEX : parseTransactionInfo(snapshotText),
      configuration: await readConfiguration(db),
      removal: await readOwnRemoval(tables, options.selfId),
    };
  }

  /** The open LevelDB (for checkpoints: iterate it with a snapshot). Replaced by reload(). */
  get db(): ScmDb {
    this.assertOpen();
    return this.dbValue;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** The last entry applied: its effects are in memory and visible to queries. */
  lastApplied(): TermIndex {
    return this.applied;
  }

  /** The last entry scm.db holds (#TRANSACTIONINFO): lastApplied(), or before it while writes are deferred. */
  writtenApplied(): TermIndex {
    return this.written;
  }

  snapshotPoint(): TermIndex {
    return this.snapshot;
  }

  /**
   * The Raft configuration in force as of lastApplied: the last configuration entry applied (or
   * the one an installed checkpoint holds). Undefined before any was applied.
   */
  configuration(): AppliedConfiguration | undefined {
    return this.config;
  }

  /**
   * The configuration entry that removed this node (`selfId`) from the group, if a configuration
   * without it followed one with it and no later one holds it again.
   */
  removal(): RemovalRecord | undefined {
    return this.removed;
  }

  /**
   * Applies committed entries (in index order) as one atomic scm.db batch. Entries at or below
   * lastApplied are skipped; the first new one must be lastApplied+1. Returns one result per newly
   * applied, non-empty data entry. Throws (applying nothing) on a gap, an out-of-order or
   * non-safe-integer position, or a write failure.
   *
   * `onComputed` hears the same results once they are computed and visible to queries, just before
   * the batch's last scm.db write: the Raft driver answers clients from it, as the entries are
   * committed (durable on a majority) already. A promise it returns holds the write back until it
   * settles (the driver's answers leave first). A write failure after it still rejects, and the
   * caller must then stop: the entries stay committed in the Raft log and are applied again, to the
   * same results, after a restart.
   *
   * With `deferWrite` the batch's write may be left to a later call (ApplyOptions); `onComputed`
   * is then called all the same, and its promise is not waited for (no write follows).
   */
  applyBatch(entries: readonly LogEntry[], onComputed?: OnComputed, options: ApplyOptions = {}): Promise<ApplyResult[]> {
    return this.exclusive(async () => {
      this.assertOpen();
      const fresh = this.selectNewEntries(entries);
      const results: ApplyResult[] = [];
      let config: AppliedConfiguration | undefined;
      // The configuration and removal record as of the entry being applied (a batch may hold
      // several configurations; each is judged against the one before it).
      let latestConfig = this.config;
      let removal = this.removed;
      try {
        for (let k = 0; k < fresh.length; k++) {
          const entry = fresh[k] as LogEntry;
          const p = entry.payload;
          let marker = false;
          if (p.kind === 'data' && p.data.length > 0) {
            const result = this.applyData(entry, p.data);
            results.push(result);
            marker = result.command?.type === 'markConsistency';
          } else if (p.kind === 'config') {
            config = { term: entry.term, index: entry.index, voters: p.peers, nonVoters: p.listeners };
            if (this.options.selfId !== '') removal = removalAfter(this.options.selfId, { configuration: latestConfig, removal }, config);
            latestConfig = config;
          }
          // A consistency marker ends the batch it is in: the state right after it is written on
          // its own and hashed, whatever batches the entries arrived in on this replica.
          if (!marker && k < fresh.length - 1) continue;
          // Every result is known (and visible to queries) before the last write: the caller may
          // answer with them now. The entries are committed in the Raft log, so a crash before the
          // write only means they are applied again, deterministically, to the same results.
          if (k === fresh.length - 1) {
            const answered = onComputed?.(results);
            // Left unwritten only when nothing but ordinary effects changed: a configuration, a
            // removal record and a marker's hash must be in scm.db as they are applied.
            const unwrittenAfter = entry.index - this.written.index;
            if (options.deferWrite === true && !marker && config === undefined && sameRemoval(removal, this.removed) && unwrittenAfter <= MAX_UNWRITTEN_ENTRIES) {
              this.applied = { term: entry.term, index: entry.index };
              // Its promise only holds a write back, and none follows.
              if (answered !== undefined) answered.catch(() => undefined);
              break;
            }
            if (answered !== undefined) await answered;
          }
          await this.write(entry, config, removal);
          config = undefined;
          if (marker) this.startConsistencyHash(entry.index);
        }
      } catch (err) {
        await this.rollBackToWritten();
        throw err;
      }
      return results;
    });
  }

  /**
   * Writes what applies left unwritten (deferWrite), as one batch; nothing when scm.db holds
   * lastApplied already. A failure leaves memory as scm.db holds it (rolled back to
   * writtenApplied()) and rejects: the caller must then stop, as after a failed applyBatch.
   * Nothing either while scm.db is closed (a snapshot install swapping it): close() wrote it all.
   * Resolves to whether it wrote.
   */
  writeApplied(): Promise<boolean> {
    return this.exclusive(async () => {
      if (this.closed) return false;
      return this.writeUnwritten();
    });
  }

  /** Inside exclusive(): writes the deferred effects, if any, rolling memory back on failure. */
  private async writeUnwritten(): Promise<boolean> {
    if (this.written.index === this.applied.index) return false;
    try {
      await this.write(this.applied, undefined, this.removed);
      return true;
    } catch (err) {
      await this.rollBackToWritten();
      throw err;
    }
  }

  /**
   * After a failed write: memory may hold effects that never reached disk, and the failed batch
   * left scm.db untouched, so rebuilding from it restores exactly the state scm.db holds (earlier
   * batches of the failing call, and deferred ones, as far as they were written).
   */
  private async rollBackToWritten(): Promise<void> {
    this.state.takeWrites();
    const loaded = await ScmStateMachine.load(this.dbValue, this.options);
    this.state = loaded.state;
    this.applied = loaded.applied;
    this.written = loaded.applied;
    this.config = loaded.configuration;
    this.removed = loaded.removal;
  }

  /**
   * One scm.db batch: every effect applied in memory since the last one, the configuration and this
   * node's removal record when they changed, and #TRANSACTIONINFO = `last`.
   */
  private async write(last: TermIndex, config: AppliedConfiguration | undefined, removal: RemovalRecord | undefined): Promise<void> {
    const ops = this.state.takeWrites().map((w) => this.toBatchOp(w));
    if (config !== undefined) ops.push({ type: 'put', sublevel: this.tables.meta, key: RAFT_CONFIGURATION_KEY, value: encodeAppliedConfiguration(config) });
    const removalChanged = !sameRemoval(removal, this.removed);
    if (removalChanged) ops.push(this.removalOp(removal));
    ops.push({ type: 'put', sublevel: this.tables.transactionInfo, key: TRANSACTION_INFO_KEY, value: formatTransactionInfo(last) });
    await this.dbValue.batch<unknown, unknown>(ops, {});
    this.applied = { term: last.term, index: last.index };
    this.written = this.applied;
    if (config !== undefined) this.config = config;
    if (removalChanged) this.removed = removal;
  }

  private removalOp(removal: RemovalRecord | undefined): BatchOperation<ScmDb, unknown, unknown> {
    return removal === undefined
      ? { type: 'del', sublevel: this.tables.meta, key: REMOVED_FROM_GROUP_KEY }
      : { type: 'put', sublevel: this.tables.meta, key: REMOVED_FROM_GROUP_KEY, value: encodeRemovalRecord(removal) };
  }

  /**
   * Starts hashing scm.db as it is now (a snapshot iterator: later batches do not change what it
   * reads), the state right after the consistency marker at `index`.
   */
  private startConsistencyHash(index: number): void {
    const hash = hashReplicatedState(this.dbValue);
    hash.catch(() => undefined); // read (and its failure reported) by whoever asks
    this.consistencyHashes.set(index, hash);
    while (this.consistencyHashes.size > MAX_CONSISTENCY_HASHES) {
      this.consistencyHashes.delete(this.consistencyHashes.keys().next().value as number);
    }
  }

  /**
   * The hash of scm.db right after the consistency marker at `index`, if this replica applied that
   * marker itself (not if it reached past it by installing a checkpoint) and still remembers it.
   */
  consistencyHash(index: number): Promise<string> | undefined {
    return this.consistencyHashes.get(index);
  }

  private selectNewEntries(entries: readonly LogEntry[]): LogEntry[] {
    const fresh: LogEntry[] = [];
    let previous: LogEntry | undefined;
    for (const entry of entries) {
      assertValidEntryPosition(entry);
      if (previous !== undefined && (entry.index !== previous.index + 1 || entry.term < previous.term)) {
        throw new Error(`entries out of order: ${previous.term}#${previous.index} then ${entry.term}#${entry.index}`);
      }
      previous = entry;
      if (entry.index < this.applied.index) continue;
      if (entry.index === this.applied.index) {
        if (entry.term !== this.applied.term) {
          throw new Error(`entry ${entry.term}#${entry.index} conflicts with applied ${formatTransactionInfo(this.applied)}`);
        }
        continue;
      }
      if (fresh.length === 0 && entry.index !== this.applied.index + 1) {
        throw new Error(`gap: applied up to index ${this.applied.index} but the next entry given is ${entry.index}`);
      }
      if (fresh.length === 0 && entry.term < this.applied.term) {
        throw new Error(`entry ${entry.term}#${entry.index} has a lower term than applied ${formatTransactionInfo(this.applied)}`);
      }
      fresh.push(entry);
    }
    return fresh;
  }

  private applyData(entry: LogEntry, data: Uint8Array): ApplyResult {
    // Results are built whole, properties always in the same order (term, index, outcome,
    // replayed, command): one object per entry, no spreads.
    const { term, index } = entry;
    let command;
    try {
      command = decodeCommand(data);
    } catch (err) {
      if (!(err instanceof CommandError)) throw err;
      return { term, index, outcome: { ok: false, error: { code: err.code, message: err.message } }, replayed: false };
    }
    const about = { type: command.type, clientId: command.clientId, callId: command.callId };
    const state = this.state;
    state.advanceApplyClock(command.timestamp);
    const cached = state.retryCache.get(command.clientId, command.callId);
    if (cached !== undefined) return { term, index, outcome: cached.outcome, replayed: true, command: about };
    let outcome: CommandOutcome;
    try {
      outcome = { ok: true, value: executeCommand(state, command) };
    } catch (err) {
      if (!(err instanceof CommandError)) throw err;
      outcome = { ok: false, error: { code: err.code, message: err.message } };
    }
    state.recordRetryResult({
      clientId: command.clientId,
      callId: command.callId,
      recordedAt: state.applyClock,
      logIndex: index,
      outcome,
    });
    return { term, index, outcome, replayed: false, command: about };
  }

  private toBatchOp(write: TableWrite): BatchOperation<ScmDb, unknown, unknown> {
    const sublevel = this.tables[write.table];
    return write.value === undefined
      ? { type: 'del', sublevel, key: write.key }
      : { type: 'put', sublevel, key: write.key, value: write.value };
  }

  /** Stores lastApplied as the latest snapshot point (meta/snapshotPoint) and returns it. */
  recordSnapshotPoint(): Promise<TermIndex> {
    return this.exclusive(async () => {
      this.assertOpen();
      // The log may be purged below this point next: scm.db must hold everything up to it.
      await this.writeUnwritten();
      const point = this.applied;
      // sync: the log may be purged below this point next, so it (and every earlier apply batch,
      // which LevelDB writes without sync) must be on disk first.
      // (`sync` is classic-level's own option; sublevels pass it through to the LevelDB write.)
      const syncWrite = { sync: true } as unknown as Parameters<typeof this.tables.meta.put>[2];
      await this.tables.meta.put(SNAPSHOT_POINT_KEY, formatTransactionInfo(point), syncWrite);
      this.snapshot = point;
      return point;
    });
  }

  /**
   * Records this node's removal outside an apply: start-up found it in configurations the node
   * holds (a committed one without it after one with it) that no applied batch recorded yet.
   * Written with sync, like the snapshot point: what showed it may be rewritten next.
   */
  recordRemoval(removal: RemovalRecord): Promise<void> {
    return this.exclusive(async () => {
      this.assertOpen();
      if (removal.nodeId !== this.options.selfId) throw new Error(`cannot record the removal of ${removal.nodeId} in the scm.db of ${this.options.selfId || 'a node without an id'}`);
      const syncWrite = { sync: true } as unknown as Parameters<typeof this.tables.meta.put>[2];
      await this.tables.meta.put(REMOVED_FROM_GROUP_KEY, encodeRemovalRecord(removal), syncWrite);
      this.removed = removal;
    });
  }

  /**
   * Closes scm.db if open, reopens the directory and re-reads everything (use after a snapshot
   * install replaced the directory's contents, or after close()). `db` is a new instance afterwards.
   *
   * After an install the configuration is the checkpoint's, and the checkpoint knows nothing of
   * this node's removal: the record is judged again from the configuration and record held before
   * (self-removal.ts) and written into the new scm.db, synced, before the installer goes on to
   * replace raft-meta.conf, the last other place that could still show this node was a member.
   */
  reload(): Promise<void> {
    return this.exclusive(async () => {
      if (!this.closed) await this.writeThenClose();
      this.closed = true;
      const prior = { configuration: this.config, removal: this.removed };
      const db = this.options.openDb(this.dbDir);
      await db.open();
      try {
        let loaded = await ScmStateMachine.load(db, this.options);
        loaded = await this.carryRemovalOver(db, prior, loaded);
        if (this.options.openDb === openLevelDb) await unmapTablesAfterLoad(db);
        this.dbValue = db;
        this.tables = openTables(db);
        this.state = loaded.state;
        this.applied = loaded.applied;
        this.written = loaded.applied;
        this.snapshot = loaded.snapshot;
        this.config = loaded.configuration;
        this.removed = loaded.removal;
        this.closed = false;
      } catch (err) {
        await db.close();
        throw err;
      }
    });
  }

  /**
   * A record the checkpoint carried that names another node (its own removal, on the node it was
   * taken from) is not this node's: it is deleted here rather than travel on in later checkpoints
   * and backups.
   */
  private async carryRemovalOver(db: ScmDb, prior: { configuration: AppliedConfiguration | undefined; removal: RemovalRecord | undefined }, loaded: Loaded): Promise<Loaded> {
    if (this.options.selfId === '') return loaded;
    const meta = openTables(db).meta;
    const foreign = loaded.removal === undefined && (await meta.get(REMOVED_FROM_GROUP_KEY)) !== undefined;
    const removal = loaded.configuration === undefined ? loaded.removal : removalAfter(this.options.selfId, prior, loaded.configuration);
    if (sameRemoval(removal, loaded.removal) && !foreign) return loaded;
    const syncWrite = { sync: true } as unknown as Parameters<typeof meta.put>[2];
    if (removal === undefined) await meta.del(REMOVED_FROM_GROUP_KEY, syncWrite);
    else await meta.put(REMOVED_FROM_GROUP_KEY, encodeRemovalRecord(removal), syncWrite);
    return { ...loaded, removal };
  }

  /** Waits for any apply in progress, writes what applies left unwritten, then closes scm.db. Idempotent. */
  close(): Promise<void> {
    return this.exclusive(async () => {
      if (this.closed) return;
      await this.writeThenClose();
    });
  }

  /** Writes the deferred effects and closes scm.db; closed even when the write fails (which rejects). */
  private async writeThenClose(): Promise<void> {
    try {
      await this.writeUnwritten();
    } finally {
      this.closed = true;
      await this.dbValue.close();
    }
  }

  /** sha256 (hex) over every key and value in scm.db, in key order, each length-prefixed. */
  /**
   * sha256 over every replicated key/value pair in key order. The snapshot point is left out: each
   * replica records its own when it reaches the threshold, so it differs between identical replicas.
   * So is a removed node's record of its own removal: only that node writes it.
   */
  digest(): Promise<string> {
    return this.exclusive(async () => {
      this.assertOpen();
      await this.writeUnwritten();
      return hashReplicatedState(this.dbValue);
    });
  }

  // ---- queries, served from memory ----

  getContainer(id: number): ContainerInfo | undefined {
    return this.state.getContainer(id);
  }

  /** Up to `count` containers with id ≥ startId, in ascending id order, optionally only in `state`. */
  listContainers(startId: number, count: number, state?: LifeCycleState): ContainerInfo[] {
    if (!Number.isSafeInteger(startId) || startId < 0) throw new InvalidArgumentError(`startId must be a non-negative integer, got ${startId}`);
    if (!Number.isSafeInteger(count) || count < 0) throw new InvalidArgumentError(`count must be a non-negative integer, got ${count}`);
    if (state !== undefined && !isOneOf(LIFE_CYCLE_STATES, state)) {
      throw new InvalidArgumentError(`state must be one of ${LIFE_CYCLE_STATES.join(', ')}, got ${String(state)}`);
    }
    return this.state.listContainers(startId, count, state);
  }

  containerCountsByState(): Record<LifeCycleState, number> {
    return this.state.containerCountsByState();
  }

  containerCount(): number {
    return this.state.containerCount;
  }

  /** The last container id handed out (0 before the first): the replicated sequence. */
  lastContainerId(): number {
    return this.state.lastContainerId;
  }

  getPipeline(id: string): PipelineInfo | undefined {
    return this.state.getPipeline(id);
  }

  listPipelines(): PipelineInfo[] {
    return this.state.listPipelines();
  }

  openContainerCount(pipelineId: string): number {
    return this.state.openContainerCount(pipelineId);
  }

  getDatanode(uuid: string): DatanodeInfo | undefined {
    return this.state.getDatanode(uuid);
  }

  listDatanodes(): DatanodeInfo[] {
    return this.state.listDatanodes();
  }

  /** The recorded outcome of (clientId, callId), for the leader to answer a retry without proposing. */
  cachedResult(clientId: string, callId: number): CommandOutcome | undefined {
    return this.state.retryCache.get(clientId, callId)?.outcome;
  }

  retryCacheSize(): number {
    return this.state.retryCache.size;
  }

  private assertOpen(): void {
    if (this.closed) throw new Error(`scm.db at ${this.dbDir} is closed`);
  }

  private exclusive<T>(task: () => Promise<T>): Promise<T> {
    const run = this.queue.then(task, task);
    this.queue = run.catch(() => undefined);
    return run;
  }
}

/** This node's removal record, if scm.db holds one naming it (one naming another node is not ours). */
async function readOwnRemoval(tables: ScmTables, selfId: string): Promise<RemovalRecord | undefined> {
  const text = (await tables.meta.get(REMOVED_FROM_GROUP_KEY)) as string | undefined;
  if (text === undefined) return undefined;
  const record = parseRemovalRecord(text);
  return record.nodeId === selfId ? record : undefined;
}

/** The configuration recorded in an open scm.db (or checkpoint), if any was applied. */
export async function readConfiguration(db: ScmDb): Promise<AppliedConfiguration | undefined> {
  const text = (await openTables(db).meta.get(RAFT_CONFIGURATION_KEY)) as string | undefined;
  return text === undefined ? undefined : parseAppliedConfiguration(text);
}

/** Opens a closed scm.db or checkpoint directory just to read the configuration it holds. */
export async function readConfigurationAt(dbDir: string): Promise<AppliedConfiguration | undefined> {
  const db = new Level<string, string>(dbDir, { createIfMissing: false });
  await db.open();
  try {
    return await readConfiguration(db);
  } finally {
    await db.close();
  }
}

/** Entries read from the native iterator per call while loading. */
const LOAD_BATCH = 1_000;
/**
 * classic-level's own iterator options (memory-level ignores them): a nextv call also stops after
 * highWaterMarkBytes (16 KiB by default: ~230 container entries, so 4 native calls per 1,000), and
 * a one-off scan of the whole table need not fill LevelDB's block cache.
 */
const LOAD_ITERATOR_OPTIONS = { highWaterMarkBytes: 256 * 1024, fillCache: false } as Record<string, unknown>;

/**
 * Reads the `containers` table into the state's columnar table, in id order: canonical records
 * through the fast decoder, anything else through the general one (same result, same errors).
 * The next batch is read (on libuv's thread pool) while this one is decoded.
 */
async function loadContainers(tables: ScmTables, state: ScmState): Promise<void> {
  const decoder = new ContainerRecordDecoder(state.containers.strings);
  const iterator = tables.containers.iterator(LOAD_ITERATOR_OPTIONS);
  let pending: Promise<Array<[Buffer, Buffer]>> | undefined;
  try {
    pending = iterator.nextv(LOAD_BATCH);
    for (;;) {
      const entries = await pending;
      pending = undefined;
      if (entries.length === 0) break;
      pending = iterator.nextv(LOAD_BATCH);
      for (const [key, value] of entries) {
        const id = fastContainerIdFromKey(key) ?? containerIdFromKey(key);
        const row = decoder.decode(value) ?? state.containers.toRow(decodeContainer(value, `containers/${id}`));
        if (row.containerID !== id) throw new Error(`containers/${id} holds container ${row.containerID}`);
        state.loadContainerRow(row);
      }
    }
  } finally {
    await pending?.catch(() => undefined); // a read still in flight when a record was refused
    await iterator.close();
  }
}

/** A retry-cache record as the loader reads it: the outcome as its encoded CommandResult. */
interface LoadedRetryRecord {
  readonly callId: number;
  readonly recordedAt: number;
  readonly logIndex: number;
  readonly result: Uint8Array;
  /** The client id: the bytes to read it from (fast path) or the decoded string (general decoder). */
  readonly clientId: string | { readonly start: number; readonly end: number };
}

/**
 * One retry-cache record, checked as thoroughly as the general decoder checks it: canonical records
 * with a container outcome through the fast decoders (the outcome stays encoded, a view of
 * `value`), anything else through decodeRetryCacheRecord (same result, or the same corruption
 * error).
 */
function readRetryRecord(key: string, value: Buffer, check: ContainerRecordDecoder): LoadedRetryRecord {
  const envelope = parseRetryRecordEnvelope(value);
  const body = envelope && containerResultBody(value, envelope.resultStart, envelope.resultEnd);
  if (envelope !== undefined && body !== undefined && check.decode(value.subarray(body.start, body.end)) !== undefined) {
    return {
      clientId: { start: envelope.clientIdStart, end: envelope.clientIdEnd },
      callId: envelope.callId,
      recordedAt: envelope.recordedAt,
      logIndex: envelope.logIndex,
      result: value.subarray(envelope.resultStart, envelope.resultEnd),
    };
  }
  const record = decodeRetryCacheRecord(value, `retryCache/${key}`);
  return { clientId: record.clientId, callId: record.callId, recordedAt: record.recordedAt, logIndex: record.logIndex, result: encodeOutcome(record.outcome) };
}

/** Reads every retry-cache record in scm.db's order, batch by batch. */
async function forEachRetryRecord(tables: ScmTables, visit: (key: string, value: Buffer) => void): Promise<void> {
  const iterator = tables.retryCache.iterator(LOAD_ITERATOR_OPTIONS);
  try {
    for (;;) {
      const entries = await iterator.nextv(LOAD_BATCH);
      if (entries.length === 0) break;
      for (const [key, value] of entries) visit(key, value);
    }
  } finally {
    await iterator.close();
  }
}

/**
 * Loads the retry cache's records in two reads of the table, so that the cache's arrays and arena
 * are made once at their final size (RetryCache.startLoad says why): the first checks every record
 * and notes its log index and result size, the second places each at its rank. Nothing writes
 * scm.db while it is being opened; a record that reads differently the second time is refused.
 */
async function loadRetryCache(tables: ScmTables, cache: RetryCache): Promise<void> {
  const check = new ContainerRecordDecoder(new StringTable()); // validates outcomes; its strings are dropped
  let logIndexes = new Float64Array(1024);
  let sizes = new Uint32Array(1024);
  let n = 0;
  await forEachRetryRecord(tables, (key, value) => {
    const record = readRetryRecord(key, value, check);
    if (n === logIndexes.length) {
      const grownIndexes = new Float64Array(n * 2);
      grownIndexes.set(logIndexes);
      logIndexes = grownIndexes;
      const grownSizes = new Uint32Array(n * 2);
      grownSizes.set(sizes);
      sizes = grownSizes;
    }
    logIndexes[n] = record.logIndex;
    sizes[n] = record.result.length;
    n++;
  });
  const rank = loadOrder(logIndexes.subarray(0, n));
  const sizesByRank = new Uint32Array(n);
  for (let i = 0; i < n; i++) sizesByRank[rank[i] as number] = sizes[i] as number;
  cache.startLoad(sizesByRank);
  const clientIds = new Map<string, string>(); // one string per client id, not one per record
  let i = 0;
  await forEachRetryRecord(tables, (key, value) => {
    const record = readRetryRecord(key, value, check);
    if (i >= n || record.logIndex !== logIndexes[i] || record.result.length !== sizes[i]) {
      throw new Error(`retryCache/${key} read differently the second time while loading scm.db`);
    }
    let clientId = record.clientId;
    if (typeof clientId !== 'string') {
      const text = value.toString('latin1', clientId.start, clientId.end);
      clientId = clientIds.get(text) ?? text;
      clientIds.set(clientId, clientId);
    }
    cache.place(rank[i] as number, clientId, record.callId, record.recordedAt, record.logIndex, record.result);
    i++;
  });
  if (i !== n) throw new Error(`scm.db's retryCache held ${i} records the second time it was read while loading, ${n} the first`);
  cache.finishLoad();
}

/** Consistency hashes kept per replica (the checker asks about the latest markers only). */
const MAX_CONSISTENCY_HASHES = 16;

/**
 * sha256 over every replicated key/value pair of scm.db in key order, each length-prefixed, read
 * through one iterator (a snapshot of the moment it is created). The snapshot point is left out:
 * each replica records its own when it reaches the threshold, so it differs between identical
 * replicas; so is a removed node's record of its own removal (self-removal.ts).
 */
function hashReplicatedState(db: ScmDb): Promise<string> {
  const iterator = db.iterator<Buffer, Buffer>({ keyEncoding: 'buffer', valueEncoding: 'buffer' });
  return (async () => {
    const hash = createHash('sha256');
    const length = Buffer.alloc(4);
    const localOnly = [SNAPSHOT_POINT_KEY, REMOVED_FROM_GROUP_KEY].map((k) => Buffer.from(`!${META_TABLE}!${k}`));
    for await (const [key, value] of iterator) {
      if (localOnly.some((local) => key.equals(local))) continue;
      for (const part of [key, value]) {
        length.writeUInt32BE(part.length);
        hash.update(length);
        hash.update(part);
      }
    }
    return hash.digest('hex');
  })();
}
