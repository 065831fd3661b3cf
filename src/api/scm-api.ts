// The SCM's client-facing operations as plain TypeScript: what the node implements and what the
// gRPC client service (src/server/client-service.ts) calls after decoding and validating a request.
// No gRPC types here. Requests reaching an ScmApi are already validated (ids are safe integers,
// enums are known, strings are within limits); the implementation checks only what needs state
// (unknown ids → NotFoundError, lifecycle transitions → FailedPreconditionError, not leader →
// NotLeaderError).
// All times are ms since the epoch; all ids are JavaScript safe integers or strings.

// The domain enums are src/scm-types.ts's (one definition, so the API and what is stored cannot
// drift apart).
export {
  FACTOR_MEMBERS,
  LIFE_CYCLE_EVENTS,
  LIFE_CYCLE_STATES,
  PIPELINE_STATES,
  REPLICATION_FACTORS,
  REPLICATION_TYPES,
  type LifeCycleEvent,
  type LifeCycleState,
  type PipelineState,
  type ReplicationFactor,
  type ReplicationType,
  type DatanodePort,
} from '../scm-types.js';
import type { DatanodePort, LifeCycleEvent, LifeCycleState, PipelineState, ReplicationFactor, ReplicationType } from '../scm-types.js';

export const SCM_ROLES = ['LEADER', 'FOLLOWER', 'CANDIDATE', 'UNREACHABLE', 'LISTENER'] as const;
export type ScmRole = (typeof SCM_ROLES)[number];

export type ReadConsistency = 'LINEARIZABLE' | 'STALE';

export interface ContainerInfo {
  readonly containerId: number;
  readonly state: LifeCycleState;
  readonly pipelineId: string;
  readonly usedBytes: number;
  readonly numberOfKeys: number;
  readonly stateEnterTime: number;
  readonly owner: string;
  readonly deleteTransactionId: number;
  readonly sequenceId: number;
  readonly replicationType: ReplicationType;
  readonly replicationFactor: ReplicationFactor;
}

export interface DatanodeDetails {
  /** A UUID. */
  readonly uuid: string;
  readonly hostname: string;
  readonly ipAddress: string;
  readonly ports: readonly DatanodePort[];
}

export interface Pipeline {
  /** A UUID, chosen by the leader when it proposes the creation. */
  readonly id: string;
  readonly memberIds: readonly string[];
  readonly state: PipelineState;
  readonly replicationType: ReplicationType;
  readonly replicationFactor: ReplicationFactor;
  /** Empty string when no leader is chosen. */
  readonly leaderId: string;
  readonly creationTime: number;
}

export interface ContainerWithPipeline {
  readonly container: ContainerInfo;
  readonly pipeline: Pipeline;
  readonly datanodes: readonly DatanodeDetails[];
}

export interface ScmNodeRole {
  readonly nodeId: string;
  /** Raft address host:port. */
  readonly address: string;
  readonly clientAddress: string;
  readonly role: ScmRole;
  readonly term: number;
  readonly commitIndex: number;
  readonly appliedIndex: number;
}

export interface ScmMember {
  readonly nodeId: string;
  /** Raft address host:port. */
  readonly address: string;
  readonly clientAddress: string;
}

export interface ClusterInfo {
  readonly clusterId: string;
  readonly nodeId: string;
  readonly scmUuid: string;
  /** Empty when no leader is known. */
  readonly leaderId: string;
  readonly leaderAddress: string;
  readonly members: readonly ScmMember[];
}

/**
 * Identifies one logical mutation. Retries of the same call carry the same pair; the replicated
 * retry cache returns the first result for a pair it has seen (ozone.scm.ha.ratis.server.retry.cache.timeout).
 */
export interface MutationHeader {
  readonly clientId: string;
  /** Positive, increasing per client. */
  readonly callId: number;
}

export interface ReadHeader {
  readonly consistency: ReadConsistency;
}

export interface AllocateContainerRequest extends MutationHeader {
  readonly replicationType: ReplicationType;
  readonly replicationFactor: ReplicationFactor;
  readonly owner: string;
}

export interface GetContainerRequest extends ReadHeader {
  readonly containerId: number;
}

export interface ListContainerRequest extends ReadHeader {
  /** Containers with id >= startId, ascending. */
  readonly startId: number;
  /** At least 1; at most ozone.scm.container.list.max.count (the node enforces its own limit). */
  readonly count: number;
  /** Only containers in this state; undefined for all. */
  readonly state?: LifeCycleState;
}

export interface UpdateContainerStateRequest extends MutationHeader {
  readonly containerId: number;
  readonly event: LifeCycleEvent;
}

export interface CreatePipelineRequest extends MutationHeader {
  readonly replicationType: ReplicationType;
  readonly replicationFactor: ReplicationFactor;
  /** Distinct datanode uuids, exactly FACTOR_MEMBERS[factor] of them, or empty for "leader picks". */
  readonly memberIds: readonly string[];
}

export interface ListPipelinesRequest extends ReadHeader {
  readonly replicationType?: ReplicationType;
  readonly replicationFactor?: ReplicationFactor;
  readonly state?: PipelineState;
}

export interface ClosePipelineRequest extends MutationHeader {
  readonly pipelineId: string;
}

export interface RegisterDatanodeRequest extends MutationHeader {
  readonly datanode: DatanodeDetails;
}

export interface TransferLeadershipRequest extends MutationHeader {
  readonly newLeaderId: string;
}

export interface AddScmRequest extends MutationHeader {
  readonly nodeId: string;
  readonly address: string;
  readonly clientAddress: string;
}

export interface RemoveScmRequest extends MutationHeader {
  readonly nodeId: string;
}

/** One replica's hash right after a consistency marker, or why it has none. */
export interface ConsistencyHash {
  readonly index: number;
  readonly known: boolean;
  /** hex sha256; '' when not known. */
  readonly hash: string;
  readonly detail: string;
}

export const CONSISTENCY_STATES = ['MATCH', 'MISMATCH', 'UNKNOWN', 'UNREACHABLE'] as const;
export type ConsistencyState = (typeof CONSISTENCY_STATES)[number];

export interface ConsistencyNodeResult {
  readonly nodeId: string;
  readonly state: ConsistencyState;
  readonly hash: string;
  readonly detail: string;
}

/** The outcome of one consistency check: each member's hash at the marker, against the leader's. */
export interface ConsistencyReport {
  readonly index: number;
  /** False when any member's hash differs from the leader's. */
  readonly consistent: boolean;
  readonly nodes: readonly ConsistencyNodeResult[];
}

/**
 * One async method per RPC of StorageContainerLocationProtocolService. Throw the errors of
 * src/errors.ts; anything else becomes INTERNAL.
 */
export interface ScmApi {
  allocateContainer(request: AllocateContainerRequest): Promise<ContainerWithPipeline>;
  getContainer(request: GetContainerRequest): Promise<ContainerInfo>;
  getContainerWithPipeline(request: GetContainerRequest): Promise<ContainerWithPipeline>;
  listContainers(request: ListContainerRequest): Promise<readonly ContainerInfo[]>;
  updateContainerState(request: UpdateContainerStateRequest): Promise<ContainerInfo>;
  createPipeline(request: CreatePipelineRequest): Promise<Pipeline>;
  listPipelines(request: ListPipelinesRequest): Promise<readonly Pipeline[]>;
  closePipeline(request: ClosePipelineRequest): Promise<Pipeline>;
  registerDatanode(request: RegisterDatanodeRequest): Promise<DatanodeDetails>;
  listDatanodes(request: ReadHeader): Promise<readonly DatanodeDetails[]>;
  /** Every member's role and indexes, or with selfOnly just the answering node's own. */
  getScmRoles(request: { readonly selfOnly: boolean }): Promise<readonly ScmNodeRole[]>;
  transferLeadership(request: TransferLeadershipRequest): Promise<{ readonly leaderId: string }>;
  addScm(request: AddScmRequest): Promise<readonly ScmMember[]>;
  removeScm(request: RemoveScmRequest): Promise<readonly ScmMember[]>;
  getClusterInfo(): Promise<ClusterInfo>;
  /** Leader only: writes a consistency marker and compares every member's hash at it. */
  checkConsistency(request: MutationHeader): Promise<ConsistencyReport>;
  /** This node's hash right after the marker at `index`. */
  getConsistencyHash(request: { readonly index: number }): Promise<ConsistencyHash>;
}
