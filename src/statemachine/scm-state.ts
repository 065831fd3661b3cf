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

const OPEN = stateCode('OPEN');

export class ScmState {
  /** Every container, in ascending id order (ids are handed out increasing, so rows are appended). */
  readonly containers: ContainerTable;
  private readonly pipelines = new Map<string, PipelineInfo>();
  /** How many OPEN containers each pipeline has (pipelines with none are absent). */
  private readonly openCounts = new Map<string, number>();
  private readonly datanodes = new Map<string, DatanodeInfo>();
  private lastContainerIdValue = 0;
  private applyClockValue = 0;
  private readonly writes = new Map<string, TableWrite>();
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
      this.record('sequenceId', CONTAINER_ID_SEQUENCE_KEY, String(container.containerID));
      this.containers.append(container);
    } else {
      if (old.state === 'OPEN') this.countOpen(old.pipelineID, -1);
      this.containers.update(container);
    }
    if (container.state === 'OPEN') this.countOpen(container.pipelineID, 1);
    const bytes = writeContainerRecord(container) ?? Buffer.from(encodeContainer(container));
    this.lastContainer = container;
    this.lastContainerBytes = bytes;
    this.record('containers', containerKey(container.containerID), bytes);
  }

  putPipeline(pipeline: PipelineInfo): void {
    this.pipelines.set(pipeline.id, pipeline);
    this.record('pipelines', pipeline.id, Buffer.from(encodePipeline(pipeline)));
  }

  putDatanode(datanode: DatanodeInfo): void {
    this.datanodes.set(datanode.uuid, datanode);
    this.record('datanodes', datanode.uuid, Buffer.from(encodeDatanode(datanode)));
  }

  /** Moves the apply clock forward to `timestamp` (never back) and expires retry-cache entries. */
  advanceApplyClock(timestamp: number): void {
    if (timestamp <= this.applyClockValue) return;
    this.applyClockValue = timestamp;
    this.record('meta', APPLY_CLOCK_KEY, String(timestamp));
    for (const key of this.retryCache.expire(timestamp)) this.record('retryCache', key, undefined);
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
    for (const key of this.retryCache.add(stored)) this.record('retryCache', key, undefined);
    this.record('retryCache', retryCacheKey(record.clientId, record.callId), bytes);
  }

  /** Any write made by applying, for the caller to add to the batch; clears the pending set. */
  takeWrites(): TableWrite[] {
    const writes = [...this.writes.values()];
    this.writes.clear();
    this.lastContainer = this.lastContainerBytes = undefined;
    return writes;
  }

  // ---- internals ----

  private record(table: TableName, key: Buffer | string, value: Buffer | string | undefined): void {
    // Later writes of the same key replace earlier ones: the batch carries only the final value.
    const id = `${table}\u0000${typeof key === 'string' ? key : key.toString('hex')}`;
    this.writes.delete(id);
    this.writes.set(id, { table, key, value });
  }

  private countOpen(pipelineId: string, delta: number): void {
    const count = (this.openCounts.get(pipelineId) ?? 0) + delta;
    if (count < 0) throw new Error(`open container count for pipeline ${pipelineId} would go negative`);
    if (count === 0) this.openCounts.delete(pipelineId);
    else this.openCounts.set(pipelineId, count);
  }
}
