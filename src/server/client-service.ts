// Serves StorageContainerLocationProtocolService (proto/ScmClientProtocol.proto) on a grpc.Server by
// delegating to an ScmApi. Each handler decodes and validates the request first, so a bad request is
// answered INVALID_ARGUMENT (naming the field) without the ScmApi being called and without any state
// changing; then the ScmApi's typed errors are mapped to gRPC statuses. A NotLeaderError becomes
// FAILED_PRECONDITION with the leader hint in the trailing metadata.
import * as grpc from '@grpc/grpc-js';
import { NotLeaderError, ScmError, type ScmStatusName } from '../errors.js';
import type { ScmApi } from '../api/scm-api.js';
import {
  CLIENT_SERVICE_NAME,
  LEADER_ADDRESS_METADATA,
  LEADER_ID_METADATA,
  NOT_LEADER_METADATA,
  ScmClientServiceClient,
} from '../api/client-protocol.js';
import {
  DEFAULT_MAX_LIST_COUNT,
  decodeAddScm,
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
  encodeContainer,
  encodeContainerWithPipeline,
  encodeDatanode,
  encodeMember,
  encodePipeline,
  encodeRole,
  type Wire,
} from '../api/client-codec.js';

export interface ClientServiceOptions {
  /** Upper bound for ListContainer's count (ozone.scm.container.list.max.count). */
  readonly maxListCount?: number;
  /** Called with every error answered INTERNAL (not one of src/errors.ts, or one whose status is INTERNAL), for logging. */
  readonly onInternalError?: (method: string, error: unknown) => void;
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

type Handler = grpc.handleUnaryCall<Wire, Wire>;

function unary<Request, Result>(
  method: string,
  decode: (wire: Wire) => Request,
  invoke: (request: Request) => Promise<Result>,
  encode: (result: Result) => Wire,
  options: ClientServiceOptions,
): Handler {
  return (call, callback) => {
    let request: Request;
    try {
      request = decode(call.request);
    } catch (error) {
      callback(toGrpcStatus(error, method, options.onInternalError));
      return;
    }
    invoke(request).then(
      (result) => {
        let response: Wire;
        try {
          response = encode(result);
        } catch (error) {
          callback(toGrpcStatus(error, method, options.onInternalError));
          return;
        }
        callback(null, response);
      },
      (error: unknown) => callback(toGrpcStatus(error, method, options.onInternalError)),
    );
  };
}

const noRequest = (): undefined => undefined;

/** Adds the client service, backed by `api`, to `server` (before it is bound). */
export function registerClientService(server: grpc.Server, api: ScmApi, options: ClientServiceOptions = {}): void {
  const maxListCount = options.maxListCount ?? DEFAULT_MAX_LIST_COUNT;
  const handlers: Record<string, Handler> = {
    AllocateContainer: unary('AllocateContainer', decodeAllocateContainer, (r) => api.allocateContainer(r), encodeContainerWithPipeline, options),
    GetContainer: unary('GetContainer', decodeGetContainer, (r) => api.getContainer(r), (c) => ({ container: encodeContainer(c) }), options),
    GetContainerWithPipeline: unary('GetContainerWithPipeline', decodeGetContainer, (r) => api.getContainerWithPipeline(r), encodeContainerWithPipeline, options),
    ListContainer: unary(
      'ListContainer',
      (wire) => decodeListContainer(wire, maxListCount),
      (r) => api.listContainers(r),
      (containers) => ({ containers: containers.map(encodeContainer) }),
      options,
    ),
    UpdateContainerState: unary('UpdateContainerState', decodeUpdateContainerState, (r) => api.updateContainerState(r), (c) => ({ container: encodeContainer(c) }), options),
    CreatePipeline: unary('CreatePipeline', decodeCreatePipeline, (r) => api.createPipeline(r), (p) => ({ pipeline: encodePipeline(p) }), options),
    ListPipelines: unary('ListPipelines', decodeListPipelines, (r) => api.listPipelines(r), (ps) => ({ pipelines: ps.map(encodePipeline) }), options),
    ClosePipeline: unary('ClosePipeline', decodeClosePipeline, (r) => api.closePipeline(r), (p) => ({ pipeline: encodePipeline(p) }), options),
    RegisterDatanode: unary('RegisterDatanode', decodeRegisterDatanode, (r) => api.registerDatanode(r), (d) => ({ datanode: encodeDatanode(d) }), options),
    ListDatanodes: unary('ListDatanodes', decodeListDatanodes, (r) => api.listDatanodes(r), (ds) => ({ datanodes: ds.map(encodeDatanode) }), options),
    GetScmRoles: unary('GetScmRoles', (req) => ({ selfOnly: req['selfOnly'] === true }), (request) => api.getScmRoles(request), (roles) => ({ nodes: roles.map(encodeRole) }), options),
    TransferLeadership: unary('TransferLeadership', decodeTransferLeadership, (r) => api.transferLeadership(r), (r) => ({ leaderId: r.leaderId }), options),
    AddScm: unary('AddScm', decodeAddScm, (r) => api.addScm(r), (ms) => ({ members: ms.map(encodeMember) }), options),
    RemoveScm: unary('RemoveScm', decodeRemoveScm, (r) => api.removeScm(r), (ms) => ({ members: ms.map(encodeMember) }), options),
    GetClusterInfo: unary('GetClusterInfo', noRequest, () => api.getClusterInfo(), encodeClusterInfo, options),
  };
  // Every RPC of the proto must have a handler: a missing one would answer UNIMPLEMENTED at run time.
  for (const name of Object.keys(ScmClientServiceClient.service)) {
    if (handlers[name] === undefined) throw new Error(`internal: no handler for ${CLIENT_SERVICE_NAME}/${name}`);
  }
  server.addService(ScmClientServiceClient.service, handlers as grpc.UntypedServiceImplementation);
}
