// The in-memory SCM state that queries are served from, with the indexes they need (ids in order,
// counts by state, open containers per pipeline). Every mutation made while applying also records
// the scm.db write that persists it, so the state machine can commit the whole batch atomically.
import { ContainerTable, stateCode, type ContainerRow } from './container-table.js';
import type { ContainerInfo, DatanodeInfo, LifeCycleState, PipelineInfo } from './model.js';
import { LIFE_CYCLE_STATES } from './model.js';
import { encodeContainer, encodeDatanode, encodeOutcome, encodePipeline, encodeRetryCacheRecord, type RetryCacheRecord } from './records.js';
import { writeContainerRecord, writeRetryRecord } from './record-writer.js';
import { parseRetryRecordEnvelope } from './retry-record-decoder.js';
import { RetryCache } from './retry-cache.js';
import { APPLY_CLOCK_KEY, CONTAINER_ID_SEQUENCE_KEY, containerKey, retryCacheKey, type TableName } from './tables.js';

export interface TableWrite {
  readonly table: TableName;
  readonly key: Buffer | string;
  /** undefined deletes the key. */
  readonly value: Buffer | string | undefined;
}

/** A write while the batch is open: a counter's value stays a number until the batch is taken. */
interface PendingWrite {
  readonly table: TableName;
  readonly key: Buffer | string;
  readonly value: Buffer | string | number | undefined;
}

const OPEN = stateCode('OPEN');
/** The ids of the two counters every allocation writes (see place). */
const SEQUENCE_WRITE = `sequenceId\u0000${CONTAINER_ID_SEQUENCE_KEY}`;
const APPLY_CLOCK_WRITE = `meta\u0000${APPLY_CLOCK_KEY}`;

export class ScmState {
  /** Every container, in ascending id order (ids are handed out increasing, so rows are appended). */
  readonly containers: ContainerTable;
  private readonly pipelines = new Map<string, PipelineInfo>();
  /** How many OPEN containers each pipeline has (pipelines with none are absent). */
  private readonly openCounts = new Map<string, number>();
  private readonly datanodes = new Map<string, DatanodeInfo>();
  private lastContainerIdValue = 0;
  private applyClockValue = 0;
  /**
   * The batch's writes in order; a key written again leaves a hole where it was and goes to the end
   * (the batch carries only its final value, in the place of its last write). Each key's position is
   * found by table: containers by id, retry records by their key, the rest by "table\0key".
   */
  private writes: Array<PendingWrite | undefined> = [];
  private readonly containerWrites = new Map<number, number>();
  private readonly retryWrites = new Map<string, number>();
  private readonly otherWrites = new Map<string, number>();
  /** The container putContainer wrote last and its record's bytes (a retry record embeds them). */
  private lastContainer: ContainerInfo | undefined;
  private lastContainerBytes: Buffer | undefined;

  /** `containerCapacityHint`: how many containers to make room for up front. */
  constructor(
    readonly retryCache: RetryCache,
    containerCapacityHint = 0,
  ) {
    this.containers = new ContainerTable(containerCapacityHint);
  }

  // ---- queries ----

  getContainer(id: number): ContainerInfo | undefined {
    return this.containers.get(id);
  }

  /** Up to `count` containers with id ≥ startId, ascending, optionally only those in `state`. */
  listContainers(startId: number, count: number, state?: LifeCycleState): ContainerInfo[] {
    const out: ContainerInfo[] = [];
    const table = this.containers;
    const wanted = state === undefined ? -1 : stateCode(state);
    for (let row = table.lowerBound(startId); row < table.length && out.length < count; row++) {
      if (wanted < 0 || table.stateCodeAt(row) === wanted) out.push(table.materialize(row));
    }
    return out;
  }

  containerCountsByState(): Record<LifeCycleState, number> {
    const counts = {} as Record<LifeCycleState, number>;
    for (const state of LIFE_CYCLE_STATES) counts[state] = this.containers.countInState(state);
    return counts;
  }

  get containerCount(): number {
    return this.containers.length;
  }

  getPipeline(id: string): PipelineInfo | undefined {
    return this.pipelines.get(id);
  }

  /** Pipelines ordered by id. */
  listPipelines(): PipelineInfo[] {
    return [...this.pipelines.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  openContainerCount(pipelineId: string): number {
    return this.openCounts.get(pipelineId) ?? 0;
  }

  /** Ids of the OPEN containers on a pipeline, ascending (a scan of every container: closing a pipeline is rare). */
  openContainerIds(pipelineId: string): number[] {
    const ids: number[] = [];
    const table = this.containers;
    const pipeline = table.strings.find(pipelineId);
    if (pipeline === undefined || !this.openCounts.has(pipelineId)) return ids;
    for (let row = 0; row < table.length; row++) {
      if (table.stateCodeAt(row) === OPEN && table.pipelineAt(row) === pipeline) ids.push(table.idAt(row));
    }
    return ids;
  }

  getDatanode(uuid: string): DatanodeInfo | undefined {
    return this.datanodes.get(uuid);
  }

  /** Datanodes ordered by uuid. */
  listDatanodes(): DatanodeInfo[] {
    return [...this.datanodes.values()].sort((a, b) => (a.uuid < b.uuid ? -1 : a.uuid > b.uuid ? 1 : 0));
  }

  get lastContainerId(): number {
    return this.lastContainerIdValue;
  }

  get applyClock(): number {
    return this.applyClockValue;
  }

  // ---- loading from scm.db (records no writes) ----

  loadContainer(container: ContainerInfo): void {
    this.loadContainerRow(this.containers.toRow(container));
  }

  /** loadContainer for a row already in the table's codes (the loader's fast path). */
  loadContainerRow(row: ContainerRow): void {
    const last = this.containers.lastId;
    if (last !== undefined && row.containerID <= last) {
      throw new Error(`containers must load in ascending id order: ${row.containerID} after ${last}`);
    }
    this.containers.appendRow(row);
    if (row.state === OPEN) this.countOpen(this.containers.strings.get(row.pipeline), 1);
  }

  loadPipeline(pipeline: PipelineInfo): void {
    this.pipelines.set(pipeline.id, pipeline);
  }

  loadDatanode(datanode: DatanodeInfo): void {
    this.datanodes.set(datanode.uuid, datanode);
  }

  loadCounters(lastContainerId: number, applyClock: number): void {
    const maxId = this.containers.lastId ?? 0;
    if (lastContainerId < maxId) {
      throw new Error(`sequenceId ${CONTAINER_ID_SEQUENCE_KEY}=${lastContainerId} is below the largest container id ${maxId}`);
    }
    this.lastContainerIdValue = lastContainerId;
    this.applyClockValue = applyClock;
  }

  // ---- mutations while applying (each records its scm.db write) ----

  /** Adds a new container (its id must be the next in sequence) or replaces an existing one. */
  putContainer(container: ContainerInfo): void {
    const old = this.containers.get(container.containerID);
    if (old === undefined) {
      if (container.containerID !== this.lastContainerIdValue + 1) {
        throw new Error(`new container ${container.containerID} is not the next id after ${this.lastContainerIdValue}`);
      }
      this.lastContainerIdValue = container.containerID;
      this.recordOther(SEQUENCE_WRITE, 'sequenceId', CONTAINER_ID_SEQUENCE_KEY, container.containerID);
      this.containers.append(container);
    } else {
      if (old.state === 'OPEN') this.countOpen(old.pipelineID, -1);
      this.containers.update(container);
    }
    if (container.state === 'OPEN') this.countOpen(container.pipelineID, 1);
    const bytes = writeContainerRecord(container) ?? Buffer.from(encodeContainer(container));
    this.lastContainer = container;
    this.lastContainerBytes = bytes;
    this.place(this.containerWrites, container.containerID, { table: 'containers', key: containerKey(container.containerID), value: bytes });
  }

  putPipeline(pipeline: PipelineInfo): void {
    this.pipelines.set(pipeline.id, pipeline);
    this.recordOther(`pipelines\u0000${pipeline.id}`, 'pipelines', pipeline.id, Buffer.from(encodePipeline(pipeline)));
  }

  putDatanode(datanode: DatanodeInfo): void {
    this.datanodes.set(datanode.uuid, datanode);
    this.recordOther(`datanodes\u0000${datanode.uuid}`, 'datanodes', datanode.uuid, Buffer.from(encodeDatanode(datanode)));
  }

  /** Moves the apply clock forward to `timestamp` (never back) and expires retry-cache entries. */
  advanceApplyClock(timestamp: number): void {
    if (timestamp <= this.applyClockValue) return;
    this.applyClockValue = timestamp;
    this.recordOther(APPLY_CLOCK_WRITE, 'meta', APPLY_CLOCK_KEY, timestamp);
    for (const key of this.retryCache.expire(timestamp)) this.recordRetry(key, undefined);
  }

  recordRetryResult(record: RetryCacheRecord): void {
    // A container outcome is usually the container just put: its record's bytes are written already.
    const outcome = record.outcome;
    const containerBytes = outcome.ok && outcome.value.kind === 'container' && outcome.value.container === this.lastContainer ? this.lastContainerBytes : undefined;
    const written = writeRetryRecord(record, containerBytes);
    let bytes: Buffer;
    let result: Uint8Array;
    if (written !== undefined) {
      bytes = written.bytes;
      result = bytes.subarray(written.resultStart, written.resultEnd);
    } else {
      bytes = Buffer.from(encodeRetryCacheRecord(record));
      // The cache keeps the outcome encoded: the CommandResult inside the record's own bytes.
      const envelope = parseRetryRecordEnvelope(bytes);
      result = envelope === undefined ? encodeOutcome(record.outcome) : bytes.subarray(envelope.resultStart, envelope.resultEnd);
    }
    const stored = { clientId: record.clientId, callId: record.callId, recordedAt: record.recordedAt, logIndex: record.logIndex, result };
    for (const key of this.retryCache.add(stored)) this.recordRetry(key, undefined);
    this.recordRetry(retryCacheKey(record.clientId, record.callId), bytes);
  }

  /** Any write made by applying, for the caller to add to the batch; clears the pending set. */
  takeWrites(): TableWrite[] {
    const writes: TableWrite[] = [];
    for (const w of this.writes) {
      if (w === undefined) continue;
      writes.push(typeof w.value === 'number' ? { table: w.table, key: w.key, value: String(w.value) } : (w as TableWrite));
    }
    this.writes = [];
    this.containerWrites.clear();
    this.retryWrites.clear();
    this.otherWrites.clear();
    this.lastContainer = this.lastContainerBytes = undefined;
    return writes;
  }

  // ---- internals ----

  private recordRetry(key: string, value: Buffer | undefined): void {
    this.place(this.retryWrites, key, { table: 'retryCache', key, value });
  }

  /** A write to any table but containers and retryCache; `id` is "table\0key". */
  private recordOther(id: string, table: TableName, key: string, value: Buffer | string | number): void {
    this.place(this.otherWrites, id, { table, key, value });
  }

  /** Appends a write; an earlier write of the same key (`positions` by `id`) is dropped from the batch. */
  private place<K>(positions: Map<K, number>, id: K, write: PendingWrite): void {
    const earlier = positions.get(id);
    if (earlier !== undefined) this.writes[earlier] = undefined;
    positions.set(id, this.writes.length);
    this.writes.push(write);
  }

  private countOpen(pipelineId: string, delta: number): void {
    const count = (this.openCounts.get(pipelineId) ?? 0) + delta;
    if (count < 0) throw new Error(`open container count for pipeline ${pipelineId} would go negative`);
    if (count === 0) this.openCounts.delete(pipelineId);
    else this.openCounts.set(pipelineId, count);
  }
}
