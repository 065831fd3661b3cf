// A client for the SCM quorum's StorageContainerLocationProtocolService.
//
// It knows a list of node addresses, talks to the last one that answered, follows the leader hint a
// follower sends (`scm-leader-address`), and retries transient failures (UNAVAILABLE, per-attempt
// DEADLINE_EXCEEDED, not-leader without a hint) on the next address with exponential backoff and
// jitter, until the logical call's overall deadline. Each mutation gets one (clientId, callId) pair
// that every retry reuses: that is what lets the replicated retry cache answer a retry after a leader
// change with the original result instead of applying the mutation twice.
import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import {
  LEADER_ADDRESS_METADATA,
  LEADER_ID_METADATA,
  NOT_LEADER_METADATA,
  RETRY_AFTER_METADATA,
  ScmClientServiceClient,
} from '../api/client-protocol.js';
import {
  encodeDatanode,
  parseClusterInfo,
  parseConsistencyReport,
  parseContainer,
  parseContainerWithPipeline,
  parseDatanode,
  parseMember,
  parsePipeline,
  parseRole,
  wireList,
  wireSub,
  type Wire,
} from '../api/client-codec.js';
import { serializeAllocateContainerRequest } from '../api/allocate-request-codec.js';
import { decodeContainerWithPipeline } from '../api/container-response-codec.js';
import type {
  ClusterInfo,
  ConsistencyReport,
  ContainerInfo,
  ContainerWithPipeline,
  DatanodeDetails,
  LifeCycleEvent,
  LifeCycleState,
  Pipeline,
  PipelineState,
  ReadConsistency,
  ReplicationFactor,
  ReplicationType,
  ScmMember,
  ScmNodeRole,
} from '../api/scm-api.js';
import { grpcChannelOptions } from '../grpc-options.js';
import { Backoff, checkBackoff, type BackoffOptions, type RetryDecision } from './retry-policy.js';

export const DEFAULT_SCM_ADDRESS = '127.0.0.1:9860';

/**
 * Waits between attempts when no option says otherwise: from 50 ms, doubling up to 250 ms (with
 * jitter). Most retries look for a leader during an election, which takes about one election
 * timeout; a wait that grew to seconds would keep a caller away long after a leader is elected. A
 * busy SCM's RESOURCE_EXHAUSTED hint still sets the least wait.
 */
export const DEFAULT_RETRY_BACKOFF: BackoffOptions = Object.freeze({ initialBackoffMs: 50, maxBackoffMs: 250 });

/** The timing options (deadline, attempt timeout, backoff) are read when the client is made. */
export interface ScmClientOptions {
  /** `host:port` of one or more SCM nodes' client ports. */
  readonly addresses: readonly string[];
  /** Identifies this client to the retry cache; a fresh random id by default. */
  readonly clientId?: string;
  /** Overall time one logical call may take, retries included (default 30 s). */
  readonly deadlineMs?: number;
  /** Time one attempt may take (default 10 s, never beyond the overall deadline). */
  readonly attemptTimeoutMs?: number;
  readonly initialBackoffMs?: number;
  readonly maxBackoffMs?: number;
  /** Default consistency of reads (LINEARIZABLE). */
  readonly consistency?: ReadConsistency;
  /** Jitter source, [0, 1). */
  readonly random?: () => number;
  readonly channelOptions?: grpc.ChannelOptions;
  /**
   * Credentials (and channel options) for one SCM address: with TLS, the CA and the identity this
   * client presents. Plaintext when not given.
   */
  readonly channel?: (address: string) => { readonly credentials: grpc.ChannelCredentials; readonly options?: grpc.ChannelOptions };
}

/** A call that failed for good: the gRPC status, its name and the server's message. */
export class ScmClientError extends Error {
  constructor(
    readonly code: grpc.status,
    readonly details: string,
    readonly method: string,
    readonly attempts: number,
    readonly leaderId?: string,
    readonly leaderAddress?: string,
  ) {
    super(`${method} failed: ${grpc.status[code] ?? `status ${code}`}: ${details}`);
    this.name = 'ScmClientError';
  }

  get codeName(): string {
    return grpc.status[this.code] ?? `STATUS_${this.code}`;
  }
}

export interface ReadOptions {
  readonly consistency?: ReadConsistency;
}

/**
 * For a caller that re-sends a call whose outcome it does not know (its deadline passed) after the
 * client gave up on it: the callId of that first call, so the retry cache answers with its result
 * instead of applying it again. Without it each call gets the next callId of this client.
 */
export interface MutationOptions {
  readonly callId?: number;
}

/** How one RPC's request is written and its answer read. */
interface Rpc<Answer> {
  readonly name: string;
  readonly path: string;
  readonly serialize: (request: Wire) => Buffer;
  readonly deserialize: (bytes: Buffer) => Answer;
}

const SERVICE = ScmClientServiceClient.service;

function definition(name: string): grpc.MethodDefinition<Wire, Wire> {
  const method = SERVICE[name] as grpc.MethodDefinition<Wire, Wire> | undefined;
  if (method === undefined) throw new Error(`internal: no RPC ${name}`);
  return method;
}

const genericRpcs = new Map<string, Rpc<Wire>>();

/** An RPC through the generated (protobufjs) serializers, as the generated stub makes it. */
function genericRpc(name: string): Rpc<Wire> {
  let rpc = genericRpcs.get(name);
  if (rpc === undefined) {
    const method = definition(name);
    rpc = { name, path: method.path, serialize: (request) => method.requestSerialize(request), deserialize: (bytes) => method.responseDeserialize(bytes) };
    genericRpcs.set(name, rpc);
  }
  return rpc;
}

/** An answer the direct decoder left to the generic one: protobufjs' wire object, parsed when the call returns. */
class GenericAnswer {
  constructor(readonly wire: Wire) {}
}

/**
 * An RPC answered with a ContainerWithPipeline, read straight into the API's type
 * (container-response-codec.ts); bytes it declines go through the generic reader and are parsed
 * once the call returns, as before, so their value or error is the same. AllocateContainer's
 * request is written directly too (allocate-request-codec.ts), or by the generic serializer for a
 * value it does not write.
 */
function containerWithPipelineRpc(name: string, serialize: ((request: Wire) => Buffer | undefined) | undefined): Rpc<ContainerWithPipeline | GenericAnswer> {
  const method = definition(name);
  return {
    name,
    path: method.path,
    serialize: (request) => serialize?.(request) ?? method.requestSerialize(request),
    deserialize: (bytes) => decodeContainerWithPipeline(bytes) ?? new GenericAnswer(method.responseDeserialize(bytes)),
  };
}

const ALLOCATE_CONTAINER = containerWithPipelineRpc('AllocateContainer', serializeAllocateContainerRequest);
const GET_CONTAINER_WITH_PIPELINE = containerWithPipelineRpc('GetContainerWithPipeline', undefined);

function containerWithPipeline(answer: ContainerWithPipeline | GenericAnswer): ContainerWithPipeline {
  return answer instanceof GenericAnswer ? parseContainerWithPipeline(answer.wire) : answer;
}

const ADDRESS_RE = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;
/** No attempt is started with less time than this left before the overall deadline. */
const MIN_ATTEMPT_MS = 10;

/** Parses `host:port[,host:port…]`, as `--scm` takes it. */
export function parseAddressList(text: string): string[] {
  const addresses = text
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part.length > 0);
  if (addresses.length === 0) throw new Error('no SCM address given (expected host:port[,host:port…])');
  for (const address of addresses) {
    const match = ADDRESS_RE.exec(address);
    const port = Number(match?.[2] ?? 0);
    if (match === null || port < 1 || port > 65535) throw new Error(`invalid SCM address ${JSON.stringify(address)}: expected host:port`);
  }
  return addresses;
}

function isServiceError(error: unknown): error is grpc.ServiceError {
  return typeof error === 'object' && error !== null && 'code' in error && 'metadata' in error && (error as grpc.ServiceError).metadata instanceof grpc.Metadata;
}

function metadataValue(metadata: grpc.Metadata, key: string): string | undefined {
  const value = metadata.get(key)[0];
  if (value === undefined) return undefined;
  return typeof value === 'string' ? value : value.toString('utf8');
}

export class ScmClient {
  readonly clientId: string;
  private readonly addresses: string[];
  private readonly stubs = new Map<string, grpc.Client>();
  private current: string;
  private nextCallId = 1;
  private closed = false;
  private readonly deadlineMs: number;
  private readonly attemptTimeoutMs: number;
  private readonly random: () => number;
  private readonly backoffOptions: BackoffOptions;

  constructor(private readonly options: ScmClientOptions) {
    if (options.addresses.length === 0) throw new Error('ScmClient needs at least one SCM address');
    for (const address of options.addresses) parseAddressList(address);
    this.addresses = [...new Set(options.addresses)];
    this.current = this.addresses[0] ?? DEFAULT_SCM_ADDRESS;
    this.clientId = options.clientId ?? `client-${randomUUID()}`;
    this.deadlineMs = options.deadlineMs ?? 30_000;
    this.attemptTimeoutMs = options.attemptTimeoutMs ?? 10_000;
    this.random = options.random ?? Math.random;
    this.backoffOptions = {
      initialBackoffMs: options.initialBackoffMs ?? DEFAULT_RETRY_BACKOFF.initialBackoffMs,
      maxBackoffMs: options.maxBackoffMs ?? Math.max(DEFAULT_RETRY_BACKOFF.maxBackoffMs, options.initialBackoffMs ?? 0),
    };
    if (!(this.deadlineMs > 0) || !(this.attemptTimeoutMs > 0)) throw new Error('ScmClient deadlineMs and attemptTimeoutMs must be positive');
  }

  /** The address the next call goes to first: the last one that answered, or followed hint. */
  get currentAddress(): string {
    return this.current;
  }

  private stub(address: string): grpc.Client {
    let stub = this.stubs.get(address);
    if (stub === undefined) {
      const channel = this.options.channel?.(address) ?? { credentials: grpc.credentials.createInsecure() };
      stub = new ScmClientServiceClient(
        address,
        channel.credentials,
        grpcChannelOptions({
          'grpc.initial_reconnect_backoff_ms': 100,
          'grpc.max_reconnect_backoff_ms': 1000,
          ...channel.options,
          ...this.options.channelOptions,
        }),
      );
      this.stubs.set(address, stub);
    }
    return stub;
  }

  private attempt<Answer>(address: string, rpc: Rpc<Answer>, request: Wire, deadline: number): Promise<Answer> {
    const stub = this.stub(address);
    return new Promise((resolve, reject) => {
      // What the generated stub's method does, with this RPC's serializers.
      stub.makeUnaryRequest<Wire, Answer>(rpc.path, rpc.serialize, rpc.deserialize, request, new grpc.Metadata(), { deadline }, (error, response) => {
        if (error !== null) reject(error);
        else resolve(response as Answer);
      });
    });
  }

  private nextAddress(after: string): string {
    const index = this.addresses.indexOf(after);
    return this.addresses[(index + 1) % this.addresses.length] ?? after;
  }

  private decide(error: grpc.ServiceError): RetryDecision {
    if (error.code === grpc.status.FAILED_PRECONDITION && metadataValue(error.metadata, NOT_LEADER_METADATA) !== undefined) {
      const hint = metadataValue(error.metadata, LEADER_ADDRESS_METADATA);
      if (hint !== undefined && hint.length > 0 && ADDRESS_RE.test(hint)) return { kind: 'follow', address: hint };
      return { kind: 'retry-elsewhere' };
    }
    if (error.code === grpc.status.RESOURCE_EXHAUSTED) {
      const hint = Number(metadataValue(error.metadata, RETRY_AFTER_METADATA));
      if (Number.isFinite(hint) && hint >= 0) return { kind: 'retry-later', afterMs: Math.min(hint, 10_000) };
    }
    if (error.code === grpc.status.UNAVAILABLE || error.code === grpc.status.DEADLINE_EXCEEDED || error.code === grpc.status.RESOURCE_EXHAUSTED) {
      return { kind: 'retry-elsewhere' };
    }
    return { kind: 'fail' };
  }

  /** One logical call through the generic serializers; the answer's wire object. */
  private async invoke(method: string, request: Wire): Promise<Wire> {
    return (await this.call(genericRpc(method), request)) ?? {};
  }

  /** One logical call: the same request object (and so the same clientId/callId) on every attempt. */
  private async call<Answer>(rpc: Rpc<Answer>, request: Wire): Promise<Answer> {
    if (this.closed) throw new Error('ScmClient is closed');
    const method = rpc.name;
    const started = Date.now();
    const deadline = started + this.deadlineMs;
    checkBackoff(this.backoffOptions);
    // Made at the first failure: most calls succeed at once.
    let backoff: Backoff | undefined;
    let target = this.current;
    let attempts = 0;
    let hintsFollowed = 0;
    // What to report when giving up: the last answer worth reading. An attempt cut short by the
    // overall deadline only says that time ran out, which the error already says.
    let reported: { address: string; error: grpc.ServiceError } | undefined;
    for (;;) {
      attempts++;
      const now = Date.now();
      const timeoutMs = Math.max(1, Math.min(this.attemptTimeoutMs, deadline - now));
      try {
        const response = await this.attempt(target, rpc, request, now + timeoutMs);
        this.current = target;
        return response;
      } catch (error) {
        if (!isServiceError(error)) throw error;
        const cutShort = timeoutMs < this.attemptTimeoutMs && error.code === grpc.status.DEADLINE_EXCEEDED;
        if (!cutShort || reported === undefined) reported = { address: target, error };
        const decision = this.decide(error);
        const leaderId = metadataValue(error.metadata, LEADER_ID_METADATA);
        const leaderAddress = metadataValue(error.metadata, LEADER_ADDRESS_METADATA);
        if (decision.kind === 'fail' || this.closed) {
          throw new ScmClientError(error.code, error.details, method, attempts, leaderId, leaderAddress);
        }
        if (decision.kind === 'follow' && decision.address !== target && hintsFollowed < this.addresses.length + 1) {
          // A fresh hint is worth trying at once; a chain of hints (an election in progress) backs off.
          hintsFollowed++;
          if (!this.addresses.includes(decision.address)) this.addresses.push(decision.address);
          target = decision.address;
          if (Date.now() + MIN_ATTEMPT_MS < deadline) continue;
        } else if (decision.kind !== 'retry-later') {
          target = this.nextAddress(target);
        }
        // A busy SCM says how long to stay away; the backoff still grows if it stays busy.
        backoff ??= new Backoff(this.backoffOptions);
        const wait = Math.max(backoff.next(this.random), decision.kind === 'retry-later' ? decision.afterMs : 0);
        if (Date.now() + wait + MIN_ATTEMPT_MS >= deadline) {
          throw new ScmClientError(
            grpc.status.DEADLINE_EXCEEDED,
            `gave up after ${attempts} attempt(s) in ${Date.now() - started} ms (deadline ${this.deadlineMs} ms); last error from ${reported.address}: ${grpc.status[reported.error.code]}: ${reported.error.details}`,
            method,
            attempts,
            leaderId,
            leaderAddress,
          );
        }
        await new Promise((resolve) => setTimeout(resolve, wait));
        hintsFollowed = 0;
      }
    }
  }

  private mutation(fields: Wire, options: MutationOptions = {}): Wire {
    if (options.callId !== undefined && !(Number.isSafeInteger(options.callId) && options.callId > 0)) {
      throw new Error(`callId must be a positive integer, got ${options.callId}`);
    }
    return { clientId: this.clientId, callId: String(options.callId ?? this.nextCallId++), ...fields };
  }

  private read(options: ReadOptions | undefined, fields: Wire = {}): Wire {
    return { consistency: options?.consistency ?? this.options.consistency ?? 'LINEARIZABLE', ...fields };
  }

  async allocateContainer(
    request: { replicationType: ReplicationType; replicationFactor: ReplicationFactor; owner: string },
    options?: MutationOptions,
  ): Promise<ContainerWithPipeline> {
    return containerWithPipeline(await this.call(ALLOCATE_CONTAINER, this.mutation({ ...request }, options)));
  }

  async getContainer(containerId: number, options?: ReadOptions): Promise<ContainerInfo> {
    return parseContainer(wireSub(await this.invoke('GetContainer', this.read(options, { containerId: String(containerId) })), 'container'));
  }

  async getContainerWithPipeline(containerId: number, options?: ReadOptions): Promise<ContainerWithPipeline> {
    return containerWithPipeline(await this.call(GET_CONTAINER_WITH_PIPELINE, this.read(options, { containerId: String(containerId) })));
  }

  async listContainers(request: { startId?: number; count: number; state?: LifeCycleState } & ReadOptions): Promise<ContainerInfo[]> {
    const fields: Wire = { startId: String(request.startId ?? 0), count: request.count };
    if (request.state !== undefined) fields['state'] = request.state;
    return wireList(await this.invoke('ListContainer', this.read(request, fields)), 'containers').map(parseContainer);
  }

  async updateContainerState(containerId: number, event: LifeCycleEvent, options?: MutationOptions): Promise<ContainerInfo> {
    const response = await this.invoke('UpdateContainerState', this.mutation({ containerId: String(containerId), event }, options));
    return parseContainer(wireSub(response, 'container'));
  }

  async createPipeline(request: { replicationType: ReplicationType; replicationFactor: ReplicationFactor; memberIds?: readonly string[] }): Promise<Pipeline> {
    const response = await this.invoke(
      'CreatePipeline',
      this.mutation({ replicationType: request.replicationType, replicationFactor: request.replicationFactor, memberIds: [...(request.memberIds ?? [])] }),
    );
    return parsePipeline(wireSub(response, 'pipeline'));
  }

  async listPipelines(request: { replicationType?: ReplicationType; replicationFactor?: ReplicationFactor; state?: PipelineState } & ReadOptions = {}): Promise<Pipeline[]> {
    const fields: Wire = {};
    if (request.replicationType !== undefined) fields['replicationType'] = request.replicationType;
    if (request.replicationFactor !== undefined) fields['replicationFactor'] = request.replicationFactor;
    if (request.state !== undefined) fields['state'] = `PIPELINE_${request.state}`;
    return wireList(await this.invoke('ListPipelines', this.read(request, fields)), 'pipelines').map(parsePipeline);
  }

  async closePipeline(pipelineId: string): Promise<Pipeline> {
    return parsePipeline(wireSub(await this.invoke('ClosePipeline', this.mutation({ pipelineId })), 'pipeline'));
  }

  async registerDatanode(datanode: DatanodeDetails): Promise<DatanodeDetails> {
    return parseDatanode(wireSub(await this.invoke('RegisterDatanode', this.mutation({ datanode: encodeDatanode(datanode) })), 'datanode'));
  }

  async listDatanodes(options?: ReadOptions): Promise<DatanodeDetails[]> {
    return wireList(await this.invoke('ListDatanodes', this.read(options)), 'datanodes').map(parseDatanode);
  }

  async getScmRoles(options: { selfOnly?: boolean } = {}): Promise<ScmNodeRole[]> {
    return wireList(await this.invoke('GetScmRoles', { selfOnly: options.selfOnly === true }), 'nodes').map(parseRole);
  }

  async transferLeadership(newLeaderId: string): Promise<{ leaderId: string }> {
    const response = await this.invoke('TransferLeadership', this.mutation({ newLeaderId }));
    return { leaderId: String(response['leaderId'] ?? '') };
  }

  async addScm(member: ScmMember): Promise<ScmMember[]> {
    return wireList(await this.invoke('AddScm', this.mutation({ ...member })), 'members').map(parseMember);
  }

  async removeScm(nodeId: string): Promise<ScmMember[]> {
    return wireList(await this.invoke('RemoveScm', this.mutation({ nodeId })), 'members').map(parseMember);
  }

  async getClusterInfo(): Promise<ClusterInfo> {
    return parseClusterInfo(await this.invoke('GetClusterInfo', {}));
  }

  /**
   * Has the leader write a consistency marker and compare every member's scm.db hash right after
   * it (a retry writes a new marker).
   */
  async checkConsistency(): Promise<ConsistencyReport> {
    return parseConsistencyReport(await this.invoke('CheckConsistency', this.mutation({})));
  }

  /** Closes every channel; calls in progress fail, later calls throw. */
  close(): void {
    this.closed = true;
    for (const stub of this.stubs.values()) stub.close();
    this.stubs.clear();
  }
}
