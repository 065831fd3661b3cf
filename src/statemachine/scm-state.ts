// The in-memory SCM state that queries are served from, with the indexes they need (ids in order,
// counts by state, open containers per pipeline). Every mutation made while applying also records
// the scm.db write that persists it, so the state machine can commit the whole batch atomically.
import type { ContainerInfo, DatanodeInfo, LifeCycleState, PipelineInfo } from './model.js';
import { LIFE_CYCLE_STATES } from './model.js';
import { encodeContainer, encodeDatanode, encodePipeline, encodeRetryCacheRecord, type RetryCacheRecord } from './records.js';
import { RetryCache } from './retry-cache.js';
import { APPLY_CLOCK_KEY, CONTAINER_ID_SEQUENCE_KEY, containerKey, retryCacheKey, type TableName } from './tables.js';

export interface TableWrite {
  readonly table: TableName;
  readonly key: Buffer | string;
  /** undefined deletes the key. */
  readonly value: Buffer | string | undefined;
}

export class ScmState {
  private readonly containers = new Map<number, ContainerInfo>();
  /** Container ids in ascending order; ids are handed out increasing, so appends keep it sorted. */
  private readonly containerIds: number[] = [];
  private readonly countsByState = new Map<LifeCycleState, number>();
  private readonly pipelines = new Map<string, PipelineInfo>();
  private readonly openContainersByPipeline = new Map<string, Set<number>>();
  private readonly datanodes = new Map<string, DatanodeInfo>();
  private lastContainerIdValue = 0;
  private applyClockValue = 0;
  private readonly writes = new Map<string, TableWrite>();

  constructor(readonly retryCache: RetryCache) {}

  // ---- queries ----

  getContainer(id: number): ContainerInfo | undefined {
    return this.containers.get(id);
  }

  /** Up to `count` containers with id ≥ startId, ascending, optionally only those in `state`. */
  listContainers(startId: number, count: number, state?: LifeCycleState): ContainerInfo[] {
    const out: ContainerInfo[] = [];
    for (let i = lowerBound(this.containerIds, startId); i < this.containerIds.length && out.length < count; i++) {
      const container = this.containers.get(this.containerIds[i] as number) as ContainerInfo;
      if (state === undefined || container.state === state) out.push(container);
    }
    return out;
  }

  containerCountsByState(): Record<LifeCycleState, number> {
    const counts = {} as Record<LifeCycleState, number>;
    for (const state of LIFE_CYCLE_STATES) counts[state] = this.countsByState.get(state) ?? 0;
    return counts;
  }

  get containerCount(): number {
    return this.containers.size;
  }

  getPipeline(id: string): PipelineInfo | undefined {
    return this.pipelines.get(id);
  }

  /** Pipelines ordered by id. */
  listPipelines(): PipelineInfo[] {
    return [...this.pipelines.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  openContainerCount(pipelineId: string): number {
    return this.openContainersByPipeline.get(pipelineId)?.size ?? 0;
  }

  /** Ids of the OPEN containers on a pipeline, ascending. */
  openContainerIds(pipelineId: string): number[] {
    return [...(this.openContainersByPipeline.get(pipelineId) ?? [])].sort((a, b) => a - b);
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
    const last = this.containerIds[this.containerIds.length - 1];
    if (last !== undefined && container.containerID <= last) {
      throw new Error(`containers must load in ascending id order: ${container.containerID} after ${last}`);
    }
    this.indexContainer(container);
  }

  loadPipeline(pipeline: PipelineInfo): void {
    this.pipelines.set(pipeline.id, pipeline);
  }

  loadDatanode(datanode: DatanodeInfo): void {
    this.datanodes.set(datanode.uuid, datanode);
  }

  loadCounters(lastContainerId: number, applyClock: number): void {
    const maxId = this.containerIds[this.containerIds.length - 1] ?? 0;
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
      this.indexContainer(container);
    } else {
      this.unindexState(old);
      this.containers.set(container.containerID, container);
      this.indexState(container);
    }
    this.record('containers', containerKey(container.containerID), Buffer.from(encodeContainer(container)));
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
    for (const key of this.retryCache.add(record)) this.record('retryCache', key, undefined);
    this.record('retryCache', retryCacheKey(record.clientId, record.callId), Buffer.from(encodeRetryCacheRecord(record)));
  }

  /** Any write made by applying, for the caller to add to the batch; clears the pending set. */
  takeWrites(): TableWrite[] {
    const writes = [...this.writes.values()];
    this.writes.clear();
    return writes;
  }

  // ---- internals ----

  private record(table: TableName, key: Buffer | string, value: Buffer | string | undefined): void {
    // Later writes of the same key replace earlier ones: the batch carries only the final value.
    const id = `${table}\u0000${typeof key === 'string' ? key : key.toString('hex')}`;
    this.writes.delete(id);
    this.writes.set(id, { table, key, value });
  }

  private indexContainer(container: ContainerInfo): void {
    this.containers.set(container.containerID, container);
    this.containerIds.push(container.containerID);
    this.indexState(container);
  }

  private indexState(container: ContainerInfo): void {
    this.countsByState.set(container.state, (this.countsByState.get(container.state) ?? 0) + 1);
    if (container.state === 'OPEN') {
      let open = this.openContainersByPipeline.get(container.pipelineID);
      if (open === undefined) this.openContainersByPipeline.set(container.pipelineID, (open = new Set()));
      open.add(container.containerID);
    }
  }

  private unindexState(container: ContainerInfo): void {
    const count = this.countsByState.get(container.state) ?? 0;
    if (count < 1) throw new Error(`state count for ${container.state} would go negative`);
    this.countsByState.set(container.state, count - 1);
    if (container.state === 'OPEN') {
      const open = this.openContainersByPipeline.get(container.pipelineID);
      open?.delete(container.containerID);
      if (open?.size === 0) this.openContainersByPipeline.delete(container.pipelineID);
    }
  }
}

/** First position in the ascending array whose value is ≥ target. */
function lowerBound(sorted: readonly number[], target: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((sorted[mid] as number) < target) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
