// The wire contract of StorageContainerLocationProtocolService (proto/ScmClientProtocol.proto) that
// both ends share: the service's name, the generated gRPC client constructor (whose `.service` the
// server registers its handlers on) and the trailing metadata of a not-leader answer.
import * as grpc from '@grpc/grpc-js';
import { loadGrpcPackage } from './proto-files.js';

export const CLIENT_PROTO_FILE = 'ScmClientProtocol.proto';
export const CLIENT_SERVICE_NAME = 'scm.client.StorageContainerLocationProtocolService';

/** Trailing metadata of a not-leader answer. */
export const NOT_LEADER_METADATA = 'scm-not-leader';
export const LEADER_ID_METADATA = 'scm-leader-id';
export const LEADER_ADDRESS_METADATA = 'scm-leader-address';
/** With RESOURCE_EXHAUSTED: how long (ms) to wait; defined once for both SCM ports in the leaf module. */
export { RETRY_AFTER_METADATA } from '../retry-after.js';

const clientPackage = (loadGrpcPackage(CLIENT_PROTO_FILE)['scm'] as grpc.GrpcObject)['client'] as grpc.GrpcObject;

/** The generated client constructor (used by src/client; its `.service` by the server). */
export const ScmClientServiceClient = clientPackage['StorageContainerLocationProtocolService'] as grpc.ServiceClientConstructor;
