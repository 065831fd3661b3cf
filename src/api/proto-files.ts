// Loads .proto files (found by src/proto-path.ts from sources or build output) with the options
// every gRPC service here uses.
import { protoPath } from '../proto-path.js';
import * as protoLoader from '@grpc/proto-loader';
import * as grpc from '@grpc/grpc-js';

export { PROTO_DIR } from '../proto-path.js';

export function protoFile(name: string): string {
  return protoPath(name);
}

/** Loads a .proto as a grpc-js package definition: keepCase, longs as strings, defaults filled. */
export function loadGrpcPackage(name: string): grpc.GrpcObject {
  const definition = protoLoader.loadSync(protoFile(name), {
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  return grpc.loadPackageDefinition(definition);
}
