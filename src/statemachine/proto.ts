// Loads proto/scm_commands.proto once and offers small helpers around protobufjs: enum name/number
// mapping (our TS names are Ozone's Java names; PipelineState's proto names carry a PIPELINE_ prefix)
// and 64-bit integers read as JS safe integers (anything larger is rejected, never rounded).
import protobuf from 'protobufjs';
import { InvalidArgumentError } from '../errors.js';
import type { LifeCycleEvent, LifeCycleState, PipelineState, ReplicationFactor, ReplicationType } from './model.js';
import { protoPath } from '../proto-path.js';

export type ProtoObject = Record<string, unknown>;

const PROTO_FILE = 'scm_commands.proto';
const PACKAGE = 'scmha.statemachine';

function findProtoFile(): string {
  return protoPath(PROTO_FILE);
}

let root: protobuf.Root | undefined;

function protoRoot(): protobuf.Root {
  root ??= protobuf.loadSync(findProtoFile());
  return root;
}

// protobufjs' lookups walk the namespace tree and split the path on every call: they are
// resolved once per name (every entry applied encodes and decodes through them).
const types = new Map<string, protobuf.Type>();
const enums = new Map<string, protobuf.Enum>();

export function protoType(name: string): protobuf.Type {
  let type = types.get(name);
  if (type === undefined) {
    type = protoRoot().lookupType(`${PACKAGE}.${name}`);
    types.set(name, type);
  }
  return type;
}

function protoEnumOf(name: string): protobuf.Enum {
  let e = enums.get(name);
  if (e === undefined) {
    e = protoRoot().lookupEnum(`${PACKAGE}.${name}`);
    enums.set(name, e);
  }
  return e;
}

interface EnumNames {
  LifeCycleState: LifeCycleState;
  LifeCycleEvent: LifeCycleEvent;
  ReplicationType: ReplicationType;
  ReplicationFactor: ReplicationFactor;
  PipelineState: PipelineState;
}

const PREFIX: Partial<Record<keyof EnumNames, string>> = { PipelineState: 'PIPELINE_' };

export function enumNumber<E extends keyof EnumNames>(enumName: E, value: EnumNames[E]): number {
  const number = protoEnumOf(enumName).values[`${PREFIX[enumName] ?? ''}${value}`];
  if (number === undefined) throw new InvalidArgumentError(`${enumName} has no value ${String(value)}`);
  return number;
}

/** Maps a decoded enum (protobufjs gives the proto name, or the number when it is unknown) to our name. */
export function enumValueName<E extends keyof EnumNames>(enumName: E, decoded: unknown, field: string): EnumNames[E] {
  const protoEnum = protoEnumOf(enumName);
  const protoName = typeof decoded === 'number' ? protoEnum.valuesById[decoded] : decoded;
  if (typeof protoName !== 'string' || protoEnum.values[protoName] === undefined) {
    throw new InvalidArgumentError(`${field} has unknown ${enumName} value ${String(decoded)}`);
  }
  return protoName.slice((PREFIX[enumName] ?? '').length) as EnumNames[E];
}

/** Reads a (u)int64 that protobufjs decoded as a decimal string (longs: String), or a number. */
export function readSafeInteger(value: unknown, field: string): number {
  const number = typeof value === 'string' ? Number(value) : value;
  if (typeof number !== 'number' || !Number.isSafeInteger(number)) {
    throw new InvalidArgumentError(`${field} ${String(value)} is not a safe integer`);
  }
  return number;
}
