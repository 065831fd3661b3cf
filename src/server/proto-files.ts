// Locates the .proto files both from sources (src/server → ../../proto) and from the build
// output (dist/src/server → ../../../proto), and loads them with the options every service uses.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import * as protoLoader from '@grpc/proto-loader';
import * as grpc from '@grpc/grpc-js';

function findProtoDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, 'proto');
    if (existsSync(join(candidate, 'RaftPeerProtocol.proto'))) return candidate;
    dir = dirname(dir);
  }
  throw new Error(`cannot find the proto/ directory above ${fileURLToPath(import.meta.url)}`);
}

export const PROTO_DIR = findProtoDir();

export function protoFile(name: string): string {
  return join(PROTO_DIR, name);
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
