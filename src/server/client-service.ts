// Serves StorageContainerLocationProtocolService (proto/ScmClientProtocol.proto) on a gRPC server
// (the node's UnaryGrpcServer, or a grpc.Server: both take the same definitions and handlers) by
// delegating to an ScmApi. Each handler decodes and validates the request first, so a bad request is
// answered INVALID_ARGUMENT (naming the field) without the ScmApi being called and without any state
// changing; then the ScmApi's typed errors are mapped to gRPC statuses. A NotLeaderError becomes
// FAILED_PRECONDITION with the leader hint in the trailing metadata.
import * as grpc from '@grpc/grpc-js';
import { NotLeaderError, ScmError, type ScmStatusName } from '../errors.js';
import type { AllocateContainerRequest, ScmApi } from '../api/scm-api.js';
import {
  CLIENT_SERVICE_NAME,
  LEADER_ADDRESS_METADATA,
  LEADER_ID_METADATA,
  NOT_LEADER_METADATA,
  RETRY_AFTER_METADATA,
  ScmClientServiceClient,
} from '../api/client-protocol.js';
import { DEFAULT_RETRY_AFTER_MS } from '../retry-after.js';
import {
  DEFAULT_MAX_LIST_COUNT,
  decodeAddScm,
  decodeCheckConsistency,
  decodeGetConsistencyHash,
  decodeAllocateContainer,
  decodeClosePipeline,
  decodeCreatePipeline,
  decodeGetContainer,
  decodeListContainer,
  decodeListDatanodes,
  decodeListPipelines,
  decodeRegisterDatanode,
  decodeRemoveScm,
  decodeTransferLeadership,
  decodeUpdateContainerState,
  encodeClusterInfo,
  encodeConsistencyHash,
  encodeConsistencyReport,
  encodeContainer,
  encodeContainerWithPipeline,
  encodeDatanode,
  encodeMember,
  encodePipeline,
  encodeRole,
  type Wire,
} from '../api/client-codec.js';
import { serializeContainerList, serializeContainerWithPipeline } from '../api/container-response-codec.js';
import { decodeAllocateContainerRequest } from '../api/allocate-request-codec.js';
import type { UnaryCall, UnaryHandler, UnaryServiceHost, UnaryServiceImplementation } from './unary-grpc-server.js';

export interface ClientServiceOptions {
  /** Upper bound for ListContainer's count (ozone.scm.container.list.max.count). */
  readonly maxListCount?: number;
  /**
   * Calls worked on at once (ozone.scm.handler.count.key); one more is answered RESOURCE_EXHAUSTED
   * at once with a retry hint. Default: no bound.
   */
  readonly maxInFlight?: number;
  /**
   * List calls (ListContainer, ListPipelines, ListDatanodes) worked on at once
   * (ozone.scm.client.list.handler.count), within maxInFlight; one more is answered
   * RESOURCE_EXHAUSTED at once with a retry hint. Default: no bound of their own.
   */
  readonly maxListsInFlight?: number;
  /**
   * Hears every call refused by either bound (`handler_count`: maxInFlight, `list_limit`:
   * maxListsInFlight), `first` once each time that bound is reached.
   */
  readonly onAdmissionRefused?: (refusal: AdmissionRefusal) => void;
  /** The hint sent with RESOURCE_EXHAUSTED (default DEFAULT_RETRY_AFTER_MS, 50 ms). */
  readonly retryAfterMs?: number;
  /** Called with every error answered INTERNAL (not one of src/errors.ts, or one whose status is INTERNAL), for logging. */
  readonly onInternalError?: (method: string, error: unknown) => void;
  /**
   * Looks at every call before it is decoded (authz.ts: who may run it): answers a refusal at once,
   * or hears the status the call ends with (for the audit log). Without it every call runs.
   */
  readonly guard?: CallGuard;
}

export interface AdmissionRefusal {
  /** `handler_count`: ozone.scm.handler.count.key was reached; `list_limit`: ozone.scm.client.list.handler.count. */
  readonly reason: 'handler_count' | 'list_limit';
  readonly method: string;
  readonly peer: string;
  readonly details: string;
  /** The first refusal since the calls in progress (of the bound's kind) were last at or under half the bound. */
  readonly first: boolean;
}

export type CallGuardDecision = { readonly refused: Partial<grpc.StatusObject> } | { readonly finished: (code: grpc.status) => void } | undefined;

export interface CallGuard {
  admit(method: string, call: UnaryCall<Wire>): CallGuardDecision;
}

const STATUS_OF: Readonly<Record<Exclude<ScmStatusName, 'INTERNAL'>, grpc.status>> = {
  FAILED_PRECONDITION: grpc.status.FAILED_PRECONDITION,
  NOT_FOUND: grpc.status.NOT_FOUND,
  INVALID_ARGUMENT: grpc.status.INVALID_ARGUMENT,
  UNAVAILABLE: grpc.status.UNAVAILABLE,
  RESOURCE_EXHAUSTED: grpc.status.RESOURCE_EXHAUSTED,
  ALREADY_EXISTS: grpc.status.ALREADY_EXISTS,
};

/** Maps an error thrown by decoding or by the ScmApi to the status sent to the client. */
export function toGrpcStatus(error: unknown, method: string, onInternalError?: (method: string, error: unknown) => void): Partial<grpc.StatusObject> {
  if (error instanceof ScmError && error.statusName !== 'INTERNAL') {
    const metadata = new grpc.Metadata();
    if (error instanceof NotLeaderError) {
      metadata.set(NOT_LEADER_METADATA, 'true');
      if (error.leaderId !== undefined) metadata.set(LEADER_ID_METADATA, error.leaderId);
      if (error.leaderAddress !== undefined) metadata.set(LEADER_ADDRESS_METADATA, error.leaderAddress);
    }
    return { code: STATUS_OF[error.statusName], details: error.message, metadata };
  }
  onInternalError?.(method, error);
  const message = error instanceof Error ? error.message : String(error);
  return { code: grpc.status.INTERNAL, details: `internal error in ${method}: ${message}`, metadata: new grpc.Metadata() };
}

type Handler = UnaryHandler<Wire, Wire>;

/** Marks a request whose bytes did not deserialize (grpc-js would answer INTERNAL for it). */
const UNDECODABLE = Symbol('undecodable request');

/**
 * Answers written by a serializer of their own (container-response-codec.ts: the same bytes, without
 * protobufjs' fromObject), falling back to the generic one for a shape it does not know.
 */
const FAST_RESPONSES: Readonly<Record<string, (value: unknown) => Buffer | undefined>> = {
  AllocateContainer: serializeContainerWithPipeline,
  GetContainerWithPipeline: serializeContainerWithPipeline,
  ListContainer: serializeContainerList,
};

/**
 * Requests read from their bytes straight into the validated request (allocate-request-codec.ts), for
 * those the generic path would accept; they skip the handler's decode. Any other bytes take the
 * generic path (protobufjs, then the handler's decode), so every refusal is the generic one.
 */
const FAST_REQUESTS: Readonly<Record<string, (bytes: Buffer) => object | undefined>> = {
  AllocateContainer: decodeAllocateContainerRequest,
};

/** The requests a direct decoder returned: already validated, as the handler's decode would return them. */
const validated = new WeakSet<object>();

/** AllocateContainer's decode: a request the direct decoder read is already the validated one. */
function decodeAllocate(wire: Wire): AllocateContainerRequest {
  return validated.has(wire) ? (wire as unknown as AllocateContainerRequest) : decodeAllocateContainer(wire);
}

/**
 * The service definition with request deserializers that do not throw: bytes that are not a
 * request of the method become a marked value the handler answers INVALID_ARGUMENT, naming the
 * method, instead of grpc-js' INTERNAL "Error deserializing request".
 */
function tolerantDefinition(definition: grpc.ServiceDefinition): grpc.ServiceDefinition {
  const out: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const [name, method] of Object.entries(definition)) {
    const fast = FAST_RESPONSES[name];
    const direct = FAST_REQUESTS[name];
    out[name] = {
      ...method,
      ...(fast === undefined ? {} : { responseSerialize: (value: unknown): Buffer => fast(value) ?? method.responseSerialize(value) }),
      requestDeserialize: (bytes: Buffer): unknown => {
        const request = direct?.(bytes);
        if (request !== undefined) {
          // Frozen: the guard sees this very object, and nothing may change it after validation.
          validated.add(Object.freeze(request));
          return request;
        }
        try {
          return method.requestDeserialize(bytes);
        } catch (err) {
          return { [UNDECODABLE]: (err as Error).message };
        }
      },
    };
  }
  return out as grpc.ServiceDefinition;
}

/** A call an Admission turned away: its answer, and whether it is the first since the bound was last half free. */
interface Refusal {
  readonly status: Partial<grpc.StatusObject>;
  readonly first: boolean;
}

/**
 * Counts calls in progress against a bound: ozone.scm.handler.count.key for every call, and
 * ozone.scm.client.list.handler.count for the list calls, whose pages take turns on the event loop
 * (read-turns.ts): without a bound of their own, one client's lists could hold every handler slot,
 * each waiting for the pages ahead of it, and writes would be refused.
 */
class Admission {
  private inFlight = 0;
  private refusing = false;

  constructor(
    private readonly max: number | undefined,
    private readonly retryAfterMs: number,
    private readonly refusal: (method: string, max: number, retryAfterMs: number) => string,
  ) {}

  /** Admits a call (then `done` must be called once), or returns the status refusing it. */
  admit(method: string): Refusal | undefined {
    const max = this.max;
    if (max === undefined || this.inFlight < max) {
      this.inFlight++;
      return undefined;
    }
    const metadata = new grpc.Metadata();
    metadata.set(RETRY_AFTER_METADATA, String(this.retryAfterMs));
    const first = !this.refusing;
    this.refusing = true;
    return { status: { code: grpc.status.RESOURCE_EXHAUSTED, details: this.refusal(method, max, this.retryAfterMs), metadata }, first };
  }

  done(): void {
    this.inFlight--;
    if (this.max !== undefined && this.inFlight <= this.max / 2) this.refusing = false;
  }
}

function unary<Request, Result>(
  method: string,
  decode: (wire: Wire) => Request,
  invoke: (request: Request) => Promise<Result>,
  encode: (result: Result) => Wire,
  options: ClientServiceOptions,
  admission: Admission,
  lists?: Admission,
): Handler {
  return (call, answer) => {
    const undecodable = (call.request as Record<symbol, unknown>)[UNDECODABLE];
    if (undecodable !== undefined) {
      answer({ code: grpc.status.INVALID_ARGUMENT, details: `the request body is not a ${method} request: ${String(undecodable)}`, metadata: new grpc.Metadata() });
      return;
    }
    let decision: CallGuardDecision;
    try {
      decision = options.guard?.admit(method, call);
    } catch (error) {
      // A guard that throws (one that tried to change a frozen request, say) refuses the call.
      answer(toGrpcStatus(error, method, options.onInternalError));
      return;
    }
    if (decision !== undefined && 'refused' in decision) {
      answer(decision.refused);
      return;
    }
    const finished = decision?.finished;
    const callback: grpc.sendUnaryData<Wire> = finished === undefined ? answer : (error, value) => {
      finished(error === null ? grpc.status.OK : (error.code ?? grpc.status.UNKNOWN));
      answer(error, value);
    };
    let request: Request;
    try {
      request = decode(call.request);
    } catch (error) {
      callback(toGrpcStatus(error, method, options.onInternalError));
      return;
    }
    const refuse = (reason: AdmissionRefusal['reason'], refusal: Refusal): void => {
      try {
        options.onAdmissionRefused?.({ reason, method, peer: call.getPeer(), details: refusal.status.details ?? '', first: refusal.first });
      } catch (error) {
        // A failing report must not leave the call unanswered.
        options.onInternalError?.(method, error);
      }
      callback(refusal.status);
    };
    const refused = admission.admit(method);
    if (refused !== undefined) {
      refuse('handler_count', refused);
      return;
    }
    const listRefused = lists?.admit(method);
    if (listRefused !== undefined) {
      admission.done();
      refuse('list_limit', listRefused);
      return;
    }
    // One reaction for both outcomes (not finally + then: a promise and a turn fewer per call).
    invoke(request).then(
      (result) => {
        admission.done();
        lists?.done();
        let response: Wire;
        try {
          response = encode(result);
        } catch (error) {
          callback(toGrpcStatus(error, method, options.onInternalError));
          return;
        }
        callback(null, response);
      },
      (error: unknown) => {
        admission.done();
        lists?.done();
        callback(toGrpcStatus(error, method, options.onInternalError));
      },
    );
  };
}

const noRequest = (): undefined => undefined;

/** Adds the client service, backed by `api`, to `server` (before it is bound). */
export function registerClientService(server: UnaryServiceHost, api: ScmApi, options: ClientServiceOptions = {}): void {
  const maxListCount = options.maxListCount ?? DEFAULT_MAX_LIST_COUNT;
  const retryAfterMs = options.retryAfterMs ?? DEFAULT_RETRY_AFTER_MS;
  const admission = new Admission(
    options.maxInFlight,
    retryAfterMs,
    (method, max, retry) => `this SCM is already working on ${max} client calls (ozone.scm.handler.count.key); ${method} was not started: retry in ${retry} ms`,
  );
  const lists = new Admission(
    options.maxListsInFlight,
    retryAfterMs,
    (method, max, retry) => `this SCM is already working on ${max} list calls (ozone.scm.client.list.handler.count); ${method} was not started: retry in ${retry} ms`,
  );
  const handlers: Record<string, Handler> = {
    AllocateContainer: unary('AllocateContainer', decodeAllocate, (r) => api.allocateContainer(r), encodeContainerWithPipeline, options, admission),
    GetContainer: unary('GetContainer', decodeGetContainer, (r) => api.getContainer(r), (c) => ({ container: encodeContainer(c) }), options, admission),
    GetContainerWithPipeline: unary('GetContainerWithPipeline', decodeGetContainer, (r) => api.getContainerWithPipeline(r), encodeContainerWithPipeline, options, admission),
    ListContainer: unary(
      'ListContainer',
      (wire) => decodeListContainer(wire, maxListCount),
      (r) => api.listContainers(r),
      (containers) => ({ containers: containers.map(encodeContainer) }),
      options,
      admission,
      lists,
    ),
    UpdateContainerState: unary('UpdateContainerState', decodeUpdateContainerState, (r) => api.updateContainerState(r), (c) => ({ container: encodeContainer(c) }), options, admission),
    CreatePipeline: unary('CreatePipeline', decodeCreatePipeline, (r) => api.createPipeline(r), (p) => ({ pipeline: encodePipeline(p) }), options, admission),
    ListPipelines: unary('ListPipelines', decodeListPipelines, (r) => api.listPipelines(r), (ps) => ({ pipelines: ps.map(encodePipeline) }), options, admission, lists),
    ClosePipeline: unary('ClosePipeline', decodeClosePipeline, (r) => api.closePipeline(r), (p) => ({ pipeline: encodePipeline(p) }), options, admission),
    RegisterDatanode: unary('RegisterDatanode', decodeRegisterDatanode, (r) => api.registerDatanode(r), (d) => ({ datanode: encodeDatanode(d) }), options, admission),
    ListDatanodes: unary('ListDatanodes', decodeListDatanodes, (r) => api.listDatanodes(r), (ds) => ({ datanodes: ds.map(encodeDatanode) }), options, admission, lists),
    GetScmRoles: unary('GetScmRoles', (req) => ({ selfOnly: req['selfOnly'] === true }), (request) => api.getScmRoles(request), (roles) => ({ nodes: roles.map(encodeRole) }), options, admission),
    TransferLeadership: unary('TransferLeadership', decodeTransferLeadership, (r) => api.transferLeadership(r), (r) => ({ leaderId: r.leaderId }), options, admission),
    AddScm: unary('AddScm', decodeAddScm, (r) => api.addScm(r), (ms) => ({ members: ms.map(encodeMember) }), options, admission),
    RemoveScm: unary('RemoveScm', decodeRemoveScm, (r) => api.removeScm(r), (ms) => ({ members: ms.map(encodeMember) }), options, admission),
    GetClusterInfo: unary('GetClusterInfo', noRequest, () => api.getClusterInfo(), encodeClusterInfo, options, admission),
    CheckConsistency: unary('CheckConsistency', decodeCheckConsistency, (r) => api.checkConsistency(r), encodeConsistencyReport, options, admission),
    GetConsistencyHash: unary('GetConsistencyHash', decodeGetConsistencyHash, (r) => api.getConsistencyHash(r), encodeConsistencyHash, options, admission),
  };
  // Every RPC of the proto must have a handler: a missing one would answer UNIMPLEMENTED at run time.
  for (const name of Object.keys(ScmClientServiceClient.service)) {
    if (handlers[name] === undefined) throw new Error(`internal: no handler for ${CLIENT_SERVICE_NAME}/${name}`);
  }
  server.addService(tolerantDefinition(ScmClientServiceClient.service), handlers as UnaryServiceImplementation);
}
