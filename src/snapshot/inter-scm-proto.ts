// Loads proto/InterSCMProtocol.proto (Ozone's InterSCM definition plus our optional extension
// fields) and gives typed shapes for its messages. Loaded at runtime with @grpc/proto-loader so the
// .proto file stays the single source of truth for the wire format.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { protoPath } from '../proto-path.js';

export const INTER_SCM_PROTO_PATH = protoPath('InterSCMProtocol.proto');

/**
 * Loader options shared by server and client. uint64/int64 arrive as decimal strings (`longs:
 * String`) so no value is silently rounded; `toSafeInteger` converts them with a range check.
 */
export const PROTO_LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: false,
  oneofs: true,
};

/** The request as decoded by the server (absent optional fields are undefined). */
export interface CopyDBCheckpointRequest {
  flush?: boolean;
  checkpointId?: string;
  resumeOffset?: string | number;
  requesterId?: string;
}

/** The response as the server writes it (numbers or decimal strings both encode). */
export interface CopyDBCheckpointResponse {
  clusterId: string;
  len: number | string;
  eof: boolean;
  data: Buffer;
  readOffset: number | string;
  checksum?: number | string;
  checkpointId?: string;
  checkpointTerm?: number | string;
  checkpointIndex?: number | string;
  estimatedTotalBytes?: number | string;
}

let cachedService: grpc.ServiceDefinition | undefined;
let cachedClientCtor: grpc.ServiceClientConstructor | undefined;

function load(): void {
  const definition = protoLoader.loadSync(INTER_SCM_PROTO_PATH, PROTO_LOADER_OPTIONS);
  // No proto package (as Ozone), so the service sits at the top level of the package object.
  const pkg = grpc.loadPackageDefinition(definition);
  const ctor = pkg['InterSCMProtocolService'];
  if (typeof ctor !== 'function') {
    throw new Error(`${INTER_SCM_PROTO_PATH} does not define service InterSCMProtocolService`);
  }
  cachedClientCtor = ctor as grpc.ServiceClientConstructor;
  cachedService = cachedClientCtor.service;
}

export function interScmServiceDefinition(): grpc.ServiceDefinition {
  if (cachedService === undefined) load();
  return cachedService as grpc.ServiceDefinition;
}

export function interScmClientConstructor(): grpc.ServiceClientConstructor {
  if (cachedClientCtor === undefined) load();
  return cachedClientCtor as grpc.ServiceClientConstructor;
}

/** Converts a decoded uint64/int64 (string, number or absent) to a safe integer, naming the field on error. */
export function toSafeInteger(value: unknown, field: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  let n: number;
  if (typeof value === 'number') n = value;
  else if (typeof value === 'string' && /^-?\d+$/.test(value)) n = Number(value);
  else throw new Error(`field ${field} has a malformed value ${JSON.stringify(value)}`);
  if (!Number.isSafeInteger(n)) throw new Error(`field ${field} value ${String(value)} is out of the safe integer range`);
  return n;
}
