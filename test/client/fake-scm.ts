// An in-memory ScmApi for tests of the gRPC service, the client and the CLI, plus a helper that
// serves it over real gRPC on 127.0.0.1:0. It records every call it receives, so a test can assert
// that a rejected request never reached it, and it honours (clientId, callId) like the replicated
// retry cache does, so a retried mutation returns the first result.
import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { registerClientService } from '../../src/server/client-service.js';
import { FailedPreconditionError, NotFoundError, NotLeaderError } from '../../src/errors.js';
import type {
  AddScmRequest,
  AllocateContainerRequest,
  ClosePipelineRequest,
  ClusterInfo,
  ConsistencyHash,
  ConsistencyReport,
  ContainerInfo,
  ContainerWithPipeline,
  CreatePipelineRequest,
  DatanodeDetails,
  GetContainerRequest,
  LifeCycleEvent,
  LifeCycleState,
  ListContainerRequest,
  ListPipelinesRequest,
  MutationHeader,
  Pipeline,
  ReadHeader,
  RegisterDatanodeRequest,
  RemoveScmRequest,
  ScmApi,
  ScmMember,
  ScmNodeRole,
  TransferLeadershipRequest,
  UpdateContainerStateRequest,
} from '../../src/api/scm-api.js';

const TRANSITIONS: Partial<Record<LifeCycleState, Partial<Record<LifeCycleEvent, LifeCycleState>>>> = {
  OPEN: { FINALIZE: 'CLOSING' },
  CLOSING: { CLOSE: 'CLOSED', QUASI_CLOSE: 'QUASI_CLOSED' },
  QUASI_CLOSED: { FORCE_CLOSE: 'CLOSED' },
  CLOSED: { DELETE: 'DELETING' },
  DELETING: { CLEANUP: 'DELETED' },
};

export interface RecordedCall {
  readonly method: string;
  readonly request: unknown;
}

export class FakeScm implements ScmApi {
  readonly calls: RecordedCall[] = [];
  readonly containers = new Map<number, ContainerInfo>();
  readonly pipelines = new Map<string, Pipeline>();
  readonly datanodes = new Map<string, DatanodeDetails>();
  members: ScmMember[] = [
    { nodeId: 'scm1', address: '127.0.0.1:9894', clientAddress: '127.0.0.1:9860' },
  ];
  /** When set, every call throws it (after being recorded). */
  failWith: Error | undefined;
  /** While set, allocateContainer waits for it (to hold calls in flight). */
  gate: Promise<void> | undefined;
  /** Throw this many errors from the next calls, then behave. */
  failNext: { count: number; error: () => Error } | undefined;
  private nextContainerId = 1;
  private readonly retryCache = new Map<string, unknown>();
  now = 1_700_000_000_000;

  private record(method: string, request: unknown): void {
    this.calls.push({ method, request });
    if (this.failWith !== undefined) throw this.failWith;
    if (this.failNext !== undefined && this.failNext.count > 0) {
      this.failNext.count--;
      throw this.failNext.error();
    }
  }

  private once<T>(header: { clientId: string; callId: number }, apply: () => T): T {
    const key = `${header.clientId}#${header.callId}`;
    if (this.retryCache.has(key)) return this.retryCache.get(key) as T;
    const result = apply();
    this.retryCache.set(key, result);
    return result;
  }

  addOpenPipeline(factor: 'ONE' | 'THREE' = 'ONE'): Pipeline {
    const pipeline: Pipeline = {
      id: randomUUID(),
      memberIds: factor === 'ONE' ? [randomUUID()] : [randomUUID(), randomUUID(), randomUUID()],
      state: 'OPEN',
      replicationType: 'RATIS',
      replicationFactor: factor,
      leaderId: '',
      creationTime: this.now,
    };
    this.pipelines.set(pipeline.id, pipeline);
    return pipeline;
  }

  private withPipeline(container: ContainerInfo): ContainerWithPipeline {
    const pipeline = this.pipelines.get(container.pipelineId);
    if (pipeline === undefined) throw new Error('fake: container on unknown pipeline');
    const datanodes = pipeline.memberIds.flatMap((id) => {
      const dn = this.datanodes.get(id);
      return dn === undefined ? [] : [dn];
    });
    return { container, pipeline, datanodes };
  }

  private container(id: number): ContainerInfo {
    const container = this.containers.get(id);
    if (container === undefined) throw new NotFoundError(`container #${id} does not exist`);
    return container;
  }

  async allocateContainer(request: AllocateContainerRequest): Promise<ContainerWithPipeline> {
    this.record('allocateContainer', request);
    if (this.gate !== undefined) await this.gate;
    return this.once(request, () => {
      const pipeline = [...this.pipelines.values()].find(
        (p) => p.state === 'OPEN' && p.replicationType === request.replicationType && p.replicationFactor === request.replicationFactor,
      );
      if (pipeline === undefined) {
        throw new FailedPreconditionError(`no OPEN ${request.replicationType}/${request.replicationFactor} pipeline to place a container on`);
      }
      const container: ContainerInfo = {
        containerId: this.nextContainerId++,
        state: 'OPEN',
        pipelineId: pipeline.id,
        usedBytes: 0,
        numberOfKeys: 0,
        stateEnterTime: this.now,
        owner: request.owner,
        deleteTransactionId: 0,
        sequenceId: 0,
        replicationType: request.replicationType,
        replicationFactor: request.replicationFactor,
      };
      this.containers.set(container.containerId, container);
      return this.withPipeline(container);
    });
  }

  async getContainer(request: GetContainerRequest): Promise<ContainerInfo> {
    this.record('getContainer', request);
    return this.container(request.containerId);
  }

  async getContainerWithPipeline(request: GetContainerRequest): Promise<ContainerWithPipeline> {
    this.record('getContainerWithPipeline', request);
    return this.withPipeline(this.container(request.containerId));
  }

  async listContainers(request: ListContainerRequest): Promise<readonly ContainerInfo[]> {
    this.record('listContainers', request);
    return [...this.containers.values()]
      .filter((c) => c.containerId >= request.startId && (request.state === undefined || c.state === request.state))
      .sort((a, b) => a.containerId - b.containerId)
      .slice(0, request.count);
  }

  async updateContainerState(request: UpdateContainerStateRequest): Promise<ContainerInfo> {
    this.record('updateContainerState', request);
    return this.once(request, () => {
      const container = this.container(request.containerId);
      const next = TRANSITIONS[container.state]?.[request.event];
      if (next === undefined) {
        throw new FailedPreconditionError(`container #${container.containerId} is ${container.state}; event ${request.event} is not allowed in that state`);
      }
      const updated = { ...container, state: next, stateEnterTime: this.now };
      this.containers.set(updated.containerId, updated);
      return updated;
    });
  }

  async createPipeline(request: CreatePipelineRequest): Promise<Pipeline> {
    this.record('createPipeline', request);
    return this.once(request, () => {
      for (const id of request.memberIds) if (!this.datanodes.has(id)) throw new NotFoundError(`datanode ${id} is not registered`);
      const pipeline: Pipeline = {
        id: randomUUID(),
        memberIds: request.memberIds.length > 0 ? request.memberIds : [...this.datanodes.keys()].slice(0, request.replicationFactor === 'ONE' ? 1 : 3),
        state: 'OPEN',
        replicationType: request.replicationType,
        replicationFactor: request.replicationFactor,
        leaderId: '',
        creationTime: this.now,
      };
      this.pipelines.set(pipeline.id, pipeline);
      return pipeline;
    });
  }

  async listPipelines(request: ListPipelinesRequest): Promise<readonly Pipeline[]> {
    this.record('listPipelines', request);
    return [...this.pipelines.values()].filter(
      (p) =>
        (request.state === undefined || p.state === request.state) &&
        (request.replicationType === undefined || p.replicationType === request.replicationType) &&
        (request.replicationFactor === undefined || p.replicationFactor === request.replicationFactor),
    );
  }

  async closePipeline(request: ClosePipelineRequest): Promise<Pipeline> {
    this.record('closePipeline', request);
    return this.once(request, () => {
      const pipeline = this.pipelines.get(request.pipelineId);
      if (pipeline === undefined) throw new NotFoundError(`pipeline ${request.pipelineId} does not exist`);
      const closed = { ...pipeline, state: 'CLOSED' as const };
      this.pipelines.set(closed.id, closed);
      return closed;
    });
  }

  async registerDatanode(request: RegisterDatanodeRequest): Promise<DatanodeDetails> {
    this.record('registerDatanode', request);
    this.datanodes.set(request.datanode.uuid, request.datanode);
    return request.datanode;
  }

  async listDatanodes(request: ReadHeader): Promise<readonly DatanodeDetails[]> {
    this.record('listDatanodes', request);
    return [...this.datanodes.values()];
  }

  async getScmRoles(): Promise<readonly ScmNodeRole[]> {
    this.record('getScmRoles', undefined);
    return this.members.map((m, i) => ({
      nodeId: m.nodeId,
      address: m.address,
      clientAddress: m.clientAddress,
      role: i === 0 ? 'LEADER' : 'FOLLOWER',
      term: 3,
      commitIndex: 42,
      appliedIndex: 41,
    }));
  }

  async transferLeadership(request: TransferLeadershipRequest): Promise<{ readonly leaderId: string }> {
    this.record('transferLeadership', request);
    if (!this.members.some((m) => m.nodeId === request.newLeaderId)) throw new NotFoundError(`SCM node ${request.newLeaderId} is not a member`);
    return { leaderId: request.newLeaderId };
  }

  async addScm(request: AddScmRequest): Promise<readonly ScmMember[]> {
    this.record('addScm', request);
    this.members = [...this.members, { nodeId: request.nodeId, address: request.address, clientAddress: request.clientAddress }];
    return this.members;
  }

  async removeScm(request: RemoveScmRequest): Promise<readonly ScmMember[]> {
    this.record('removeScm', request);
    if (!this.members.some((m) => m.nodeId === request.nodeId)) throw new NotFoundError(`SCM node ${request.nodeId} is not a member`);
    this.members = this.members.filter((m) => m.nodeId !== request.nodeId);
    return this.members;
  }

  /** What checkConsistency answers (a test may set a mismatch). */
  consistency: ConsistencyReport = {
    index: 57,
    consistent: true,
    nodes: [
      { nodeId: 'scm1', state: 'MATCH', hash: 'a'.repeat(64), detail: '' },
      { nodeId: 'scm2', state: 'MATCH', hash: 'a'.repeat(64), detail: '' },
    ],
  };

  async checkConsistency(request: MutationHeader): Promise<ConsistencyReport> {
    this.record('checkConsistency', request);
    return this.consistency;
  }

  async getConsistencyHash(request: { readonly index: number }): Promise<ConsistencyHash> {
    this.record('getConsistencyHash', request);
    return { index: request.index, known: true, hash: 'a'.repeat(64), detail: '' };
  }

  async getClusterInfo(): Promise<ClusterInfo> {
    this.record('getClusterInfo', undefined);
    return {
      clusterId: 'CID-2a3f36e8-506f-40eb-986e-bb79d188fd55',
      nodeId: 'scm1',
      scmUuid: 'fa1376f0-23ad-4cda-93d6-0c9fd79c7ae3',
      leaderId: 'scm1',
      leaderAddress: '127.0.0.1:9860',
      members: this.members,
    };
  }
}

/** A follower: every call answers NotLeader with the given hint. */
export function notLeader(leaderId?: string, leaderAddress?: string): NotLeaderError {
  return new NotLeaderError(leaderId, leaderAddress);
}

export interface ServedFake {
  readonly address: string;
  readonly server: grpc.Server;
  stop(): Promise<void>;
}

/** Serves `api` over real gRPC on 127.0.0.1 with an ephemeral port. */
export async function serve(api: ScmApi, options: { maxListCount?: number; maxInFlight?: number; retryAfterMs?: number } = {}): Promise<ServedFake> {
  const server = new grpc.Server();
  registerClientService(server, api, options);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, boundPort) => (error !== null ? reject(error) : resolve(boundPort)));
  });
  return {
    address: `127.0.0.1:${port}`,
    server,
    stop: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
  };
}
