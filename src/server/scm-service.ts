// The SCM's client operations (ScmApi) on top of the replicated state machine.
//
// Reads are answered from the state machine's memory after a consistency barrier; mutations are
// turned into commands here, on the leader, where every non-deterministic decision is made (the
// timestamp, the pipeline a container goes on, a new pipeline's id and members) and carried in the
// entry, so that apply is identical on every replica. The retry cache is consulted twice: here,
// to answer a retry without proposing anything, and again at apply time, which is what makes a
// retry that races a leader change exactly-once.
import { randomUUID } from 'node:crypto';
import {
  choosePipeline,
  encodeCommand,
  type ApplyResult,
  type CommandOutcome,
  type ContainerInfo as StoredContainer,
  type DatanodeInfo,
  type PipelineInfo,
  type ScmCommand,
  type ScmStateMachine,
} from '../statemachine/index.js';
import {
  AlreadyExistsError,
  CommandError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
} from '../errors.js';
import {
  FACTOR_MEMBERS,
  type AddScmRequest,
  type AllocateContainerRequest,
  type ClosePipelineRequest,
  type ClusterInfo,
  type ConsistencyHash,
  type ConsistencyReport,
  type ContainerInfo,
  type ContainerWithPipeline,
  type CreatePipelineRequest,
  type DatanodeDetails,
  type GetContainerRequest,
  type ListContainerRequest,
  type ListPipelinesRequest,
  type MutationHeader,
  type Pipeline,
  type ReadConsistency,
  type ReadHeader,
  type RegisterDatanodeRequest,
  type RemoveScmRequest,
  type ScmApi,
  type ScmMember,
  type ScmNodeRole,
  type TransferLeadershipRequest,
  type UpdateContainerStateRequest,
} from '../api/scm-api.js';
import { ReadTurns } from './read-turns.js';

/** What the service needs from the replication layer (the node's Raft driver). */
export interface ReplicationGateway {
  /** Throws NotLeaderError (with the leader hint) unless this node leads and may propose. */
  ensureLeader(): void;
  /**
   * Proposes one command entry; resolves with its apply result once it is committed and applied
   * here, rejects with NotLeaderError if leadership is lost before that.
   */
  submit(data: Uint8Array): Promise<ApplyResult>;
  /** Linearizable: confirms leadership (ReadIndex) and waits until applied ≥ that index. */
  readBarrier(consistency: ReadConsistency): Promise<void>;
  /** The leader's clock for command timestamps. */
  now(): number;
  roles(): Promise<readonly ScmNodeRole[]>;
  ownRole(): ScmNodeRole;
  clusterInfo(): ClusterInfo;
  transferLeadership(newLeaderId: string): Promise<string>;
  /** Compares every member's hash right after the consistency marker at `index` with this node's. */
  compareConsistency(index: number): Promise<ConsistencyReport>;
  /** This node's hash right after the marker at `index` (waiting briefly until it is applied). */
  consistencyHash(index: number): Promise<ConsistencyHash>;
  addScm(member: ScmMember): Promise<readonly ScmMember[]>;
  removeScm(nodeId: string): Promise<readonly ScmMember[]>;
}

export function toApiContainer(c: StoredContainer): ContainerInfo {
  return {
    containerId: c.containerID,
    state: c.state,
    pipelineId: c.pipelineID,
    usedBytes: c.usedBytes,
    numberOfKeys: c.numberOfKeys,
    stateEnterTime: c.stateEnterTime,
    owner: c.owner,
    deleteTransactionId: c.deleteTransactionId,
    sequenceId: c.sequenceId,
    replicationType: c.replicationType,
    replicationFactor: c.replicationFactor,
  };
}

export function toApiPipeline(p: PipelineInfo): Pipeline {
  return {
    id: p.id,
    memberIds: p.members,
    state: p.state,
    replicationType: p.type,
    replicationFactor: p.factor,
    leaderId: p.leaderId,
    creationTime: p.creationTimestamp,
  };
}

function toApiDatanode(d: DatanodeInfo): DatanodeDetails {
  return { uuid: d.uuid, hostname: d.hostname, ipAddress: d.ipAddress, ports: d.ports };
}

/** Maps a state machine failure to the error the client service turns into a gRPC status. */
function toApiError(error: { readonly code: string; readonly message: string }): Error {
  switch (error.code) {
    case 'NOT_FOUND':
      return new NotFoundError(error.message);
    case 'ALREADY_EXISTS':
      return new AlreadyExistsError(error.message);
    case 'INVALID_ARGUMENT':
      return new InvalidArgumentError('request', error.message);
    case 'INVALID_STATE_TRANSITION':
    case 'NO_PIPELINE':
      return new FailedPreconditionError(error.message);
    default:
      return new Error(`${error.code}: ${error.message}`);
  }
}

type CommandValue = Extract<CommandOutcome, { ok: true }>['value'];

/**
 * The outcome's value, which a `method` call makes of `kind`. Another kind is the retry cache
 * answering with the outcome of another call that had the same client and call id: a client that
 * reused a call id. Ratis' retry cache answers such a call with that outcome too; here it is
 * refused, naming the reuse. (A reuse by a call whose outcome is of the same kind, an
 * UpdateContainerState with an AllocateContainer's ids, say, is still answered with the cached
 * container, and a reuse of a call that failed with that call's error: the cache does not record
 * which call made an outcome.)
 */
function valueOf<K extends CommandValue['kind']>(outcome: CommandOutcome, method: string, kind: K, header: MutationHeader): Extract<CommandValue, { kind: K }> {
  if (!outcome.ok) throw toApiError(outcome.error);
  const value = outcome.value;
  if (value.kind !== kind) {
    throw new InvalidArgumentError(
      'callId',
      `call ${header.callId} of client ${header.clientId} already answered another call (its outcome is a ${value.kind}; ${method} makes a ${kind}): a retry repeats the same call, and a new call needs a new call id`,
    );
  }
  return value as Extract<CommandValue, { kind: K }>;
}

export class ScmService implements ScmApi {
  constructor(
    private readonly sm: () => ScmStateMachine,
    private readonly gateway: ReplicationGateway,
    /**
     * Where the list calls' pages are made: one per turn of the event loop (read-turns.ts says
     * why), so that reads released together by one barrier cannot hold the loop Raft runs on.
     */
    private readonly bulkReads: ReadTurns = new ReadTurns(),
  ) {}

  /** Proposes a command unless the retry cache already holds this call's result. */
  private async mutate(header: MutationHeader, build: (timestamp: number) => ScmCommand): Promise<CommandOutcome> {
    const cached = this.sm().cachedResult(header.clientId, header.callId);
    if (cached !== undefined) return cached;
    this.gateway.ensureLeader();
    const command = await this.buildConfirmed(build);
    let data: Uint8Array;
    try {
      data = encodeCommand(command);
    } catch (err) {
      if (err instanceof CommandError) throw toApiError({ code: err.code, message: err.message });
      throw err;
    }
    const result = await this.gateway.submit(data);
    return result.outcome;
  }

  /**
   * Builds the command from this leader's state. A refusal from that state (NOT_FOUND,
   * FAILED_PRECONDITION) is final only once the state holds everything committed before the call:
   * a new leader may not yet have applied what its predecessor committed (an allocation already
   * acknowledged), and a deposed one may not know it is. So a refusal waits for a read barrier
   * (ReadIndex: leadership confirmed, applied up to the commit index) and builds again. A command
   * built on stale state that passes is harmless: apply checks it again, the same on every node.
   */
  private async buildConfirmed(build: (timestamp: number) => ScmCommand): Promise<ScmCommand> {
    try {
      return build(this.gateway.now());
    } catch (err) {
      if (!(err instanceof NotFoundError) && !(err instanceof FailedPreconditionError)) throw err;
      await this.gateway.readBarrier('LINEARIZABLE');
      return build(this.gateway.now());
    }
  }

  private pipelineOf(id: string): Pipeline {
    const pipeline = this.sm().getPipeline(id);
    if (pipeline === undefined) throw new NotFoundError(`pipeline ${id} not found`);
    return toApiPipeline(pipeline);
  }

  private withPipeline(container: StoredContainer): ContainerWithPipeline {
    const pipeline = this.pipelineOf(container.pipelineID);
    const datanodes = pipeline.memberIds
      .map((uuid) => this.sm().getDatanode(uuid))
      .filter((d): d is DatanodeInfo => d !== undefined)
      .map(toApiDatanode);
    return { container: toApiContainer(container), pipeline, datanodes };
  }

  private containerOf(id: number): StoredContainer {
    const container = this.sm().getContainer(id);
    if (container === undefined) throw new NotFoundError(`container #${id} not found`);
    return container;
  }

  async allocateContainer(request: AllocateContainerRequest): Promise<ContainerWithPipeline> {
    const value = valueOf(
      await this.mutate(request, (timestamp) => {
        let pipelineId: string;
        try {
          pipelineId = choosePipeline(this.sm(), request.replicationType, request.replicationFactor).id;
        } catch (err) {
          if (err instanceof CommandError) throw new FailedPreconditionError(err.message);
          throw err;
        }
        return {
          type: 'allocateContainer',
          clientId: request.clientId,
          callId: request.callId,
          timestamp,
          replicationType: request.replicationType,
          replicationFactor: request.replicationFactor,
          owner: request.owner,
          pipelineId,
        };
      }),
      'AllocateContainer',
      'container',
      request,
    );
    return this.withPipeline(value.container);
  }

  async getContainer(request: GetContainerRequest): Promise<ContainerInfo> {
    await this.gateway.readBarrier(request.consistency);
    return toApiContainer(this.containerOf(request.containerId));
  }

  async getContainerWithPipeline(request: GetContainerRequest): Promise<ContainerWithPipeline> {
    await this.gateway.readBarrier(request.consistency);
    return this.withPipeline(this.containerOf(request.containerId));
  }

  async listContainers(request: ListContainerRequest): Promise<readonly ContainerInfo[]> {
    await this.gateway.readBarrier(request.consistency);
    return this.bulkReads.take(() => this.sm().listContainers(request.startId, request.count, request.state).map(toApiContainer));
  }

  async updateContainerState(request: UpdateContainerStateRequest): Promise<ContainerInfo> {
    const value = valueOf(
      await this.mutate(request, (timestamp) => {
        this.containerOf(request.containerId);
        return {
          type: 'updateContainerState',
          clientId: request.clientId,
          callId: request.callId,
          timestamp,
          containerId: request.containerId,
          event: request.event,
        };
      }),
      'UpdateContainerState',
      'container',
      request,
    );
    return toApiContainer(value.container);
  }

  /** Leader-side member choice: registered datanodes in the fewest non-closed pipelines, ties by uuid. */
  private pickMembers(count: number): string[] {
    const sm = this.sm();
    const load = new Map(sm.listDatanodes().map((d) => [d.uuid, 0]));
    for (const p of sm.listPipelines()) {
      if (p.state === 'CLOSED') continue;
      for (const m of p.members) load.set(m, (load.get(m) ?? 0) + 1);
    }
    const ranked = [...load].filter(([uuid]) => sm.getDatanode(uuid) !== undefined);
    ranked.sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    if (ranked.length < count) {
      throw new FailedPreconditionError(`a pipeline needs ${count} registered datanodes, only ${ranked.length} are registered`);
    }
    return ranked.slice(0, count).map(([uuid]) => uuid);
  }

  async createPipeline(request: CreatePipelineRequest): Promise<Pipeline> {
    const value = valueOf(
      await this.mutate(request, (timestamp) => {
        const members = request.memberIds.length > 0 ? [...request.memberIds] : this.pickMembers(FACTOR_MEMBERS[request.replicationFactor]);
        return {
          type: 'createPipeline',
          clientId: request.clientId,
          callId: request.callId,
          timestamp,
          pipelineId: randomUUID(),
          members,
          replicationType: request.replicationType,
          replicationFactor: request.replicationFactor,
          leaderId: members[0] ?? '',
          initialState: 'OPEN',
        };
      }),
      'CreatePipeline',
      'pipeline',
      request,
    );
    return toApiPipeline(value.pipeline);
  }

  async listPipelines(request: ListPipelinesRequest): Promise<readonly Pipeline[]> {
    await this.gateway.readBarrier(request.consistency);
    return this.bulkReads.take(() =>
      this.sm()
        .listPipelines()
        .filter(
          (p) =>
            (request.replicationType === undefined || p.type === request.replicationType) &&
            (request.replicationFactor === undefined || p.factor === request.replicationFactor) &&
            (request.state === undefined || p.state === request.state),
        )
        .map(toApiPipeline),
    );
  }

  async closePipeline(request: ClosePipelineRequest): Promise<Pipeline> {
    const value = valueOf(
      await this.mutate(request, (timestamp) => {
        this.pipelineOf(request.pipelineId);
        return { type: 'closePipeline', clientId: request.clientId, callId: request.callId, timestamp, pipelineId: request.pipelineId };
      }),
      'ClosePipeline',
      'pipeline',
      request,
    );
    return toApiPipeline(value.pipeline);
  }

  async registerDatanode(request: RegisterDatanodeRequest): Promise<DatanodeDetails> {
    const value = valueOf(
      await this.mutate(request, (timestamp) => ({
        type: 'registerDatanode',
        clientId: request.clientId,
        callId: request.callId,
        timestamp,
        uuid: request.datanode.uuid,
        hostname: request.datanode.hostname,
        ipAddress: request.datanode.ipAddress,
        ports: request.datanode.ports,
      })),
      'RegisterDatanode',
      'datanode',
      request,
    );
    return toApiDatanode(value.datanode);
  }

  async listDatanodes(request: ReadHeader): Promise<readonly DatanodeDetails[]> {
    await this.gateway.readBarrier(request.consistency);
    return this.bulkReads.take(() => this.sm().listDatanodes().map(toApiDatanode));
  }

  getScmRoles(request: { readonly selfOnly: boolean }): Promise<readonly ScmNodeRole[]> {
    return request.selfOnly ? Promise.resolve([this.gateway.ownRole()]) : this.gateway.roles();
  }

  async transferLeadership(request: TransferLeadershipRequest): Promise<{ readonly leaderId: string }> {
    return { leaderId: await this.gateway.transferLeadership(request.newLeaderId) };
  }

  addScm(request: AddScmRequest): Promise<readonly ScmMember[]> {
    return this.gateway.addScm({ nodeId: request.nodeId, address: request.address, clientAddress: request.clientAddress });
  }

  removeScm(request: RemoveScmRequest): Promise<readonly ScmMember[]> {
    return this.gateway.removeScm(request.nodeId);
  }

  getClusterInfo(): Promise<ClusterInfo> {
    return Promise.resolve(this.gateway.clusterInfo());
  }

  /**
   * Writes a consistency marker and compares every member's hash right after it with this
   * leader's. Never answered from the retry cache: a retried check is a new marker.
   */
  async checkConsistency(request: MutationHeader): Promise<ConsistencyReport> {
    this.gateway.ensureLeader();
    const command: ScmCommand = {
      type: 'markConsistency',
      clientId: request.clientId,
      callId: request.callId,
      timestamp: this.gateway.now(),
    };
    const applied = await this.gateway.submit(encodeCommand(command));
    return this.gateway.compareConsistency(applied.index);
  }

  getConsistencyHash(request: { readonly index: number }): Promise<ConsistencyHash> {
    return this.gateway.consistencyHash(request.index);
  }
}
