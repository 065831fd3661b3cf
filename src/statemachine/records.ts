// The byte form of what scm.db stores: containers, pipelines, datanodes, and command results (kept
// in the retry cache). Values are protobuf (proto/scm_commands.proto); containers use the field
// numbers of Ozone's ContainerInfoProto. A record that does not decode is corruption: the error says
// which table and key, and the DB is not opened.
import type { ScmErrorCode } from '../errors.js';
import { SCM_ERROR_CODES } from '../errors.js';
import { isOneOf, type ContainerInfo, type DatanodeInfo, type PipelineInfo } from './model.js';
import { enumNumber, enumValueName, protoType, readSafeInteger, type ProtoObject } from './proto.js';

export type CommandValue =
  | { readonly kind: 'container'; readonly container: ContainerInfo }
  | { readonly kind: 'pipeline'; readonly pipeline: PipelineInfo }
  | { readonly kind: 'datanode'; readonly datanode: DatanodeInfo }
  /** A consistency marker was applied (it changes nothing). */
  | { readonly kind: 'marker' };

export interface CommandFailure {
  readonly code: ScmErrorCode;
  readonly message: string;
}

/** What one applied command produced: the same bytes on every replica, and what a retry gets back. */
export type CommandOutcome =
  | { readonly ok: true; readonly value: CommandValue }
  | { readonly ok: false; readonly error: CommandFailure };

export interface RetryCacheRecord {
  readonly clientId: string;
  readonly callId: number;
  /** The apply clock (see ScmStateMachine) when the result was recorded; expiry is measured from it. */
  readonly recordedAt: number;
  /** The log index of the entry that recorded it; the cache's age order (oldest first). */
  readonly logIndex: number;
  readonly outcome: CommandOutcome;
}

const DECODE_OPTIONS = { longs: String, enums: String, oneofs: true, arrays: true } as const;

function decodeObject(typeName: string, bytes: Uint8Array): ProtoObject {
  const type = protoType(typeName);
  return type.toObject(type.decode(bytes), DECODE_OPTIONS) as ProtoObject;
}

function text(obj: ProtoObject, field: string): string {
  const value = obj[field];
  return typeof value === 'string' ? value : '';
}

function containerToProto(c: ContainerInfo): ProtoObject {
  return {
    containerID: c.containerID,
    state: enumNumber('LifeCycleState', c.state),
    pipelineID: c.pipelineID,
    usedBytes: c.usedBytes,
    numberOfKeys: c.numberOfKeys,
    stateEnterTime: c.stateEnterTime,
    owner: c.owner,
    deleteTransactionId: c.deleteTransactionId,
    sequenceId: c.sequenceId,
    replicationFactor: enumNumber('ReplicationFactor', c.replicationFactor),
    replicationType: enumNumber('ReplicationType', c.replicationType),
  };
}

function containerFromProto(o: ProtoObject): ContainerInfo {
  return Object.freeze({
    containerID: readSafeInteger(o['containerID'], 'containerID'),
    state: enumValueName('LifeCycleState', o['state'], 'state'),
    pipelineID: text(o, 'pipelineID'),
    usedBytes: readSafeInteger(o['usedBytes'], 'usedBytes'),
    numberOfKeys: readSafeInteger(o['numberOfKeys'], 'numberOfKeys'),
    stateEnterTime: readSafeInteger(o['stateEnterTime'] ?? 0, 'stateEnterTime'),
    owner: text(o, 'owner'),
    deleteTransactionId: readSafeInteger(o['deleteTransactionId'] ?? 0, 'deleteTransactionId'),
    sequenceId: readSafeInteger(o['sequenceId'] ?? 0, 'sequenceId'),
    replicationType: enumValueName('ReplicationType', o['replicationType'], 'replicationType'),
    replicationFactor: enumValueName('ReplicationFactor', o['replicationFactor'] ?? 'ONE', 'replicationFactor'),
  });
}

function pipelineToProto(p: PipelineInfo): ProtoObject {
  return {
    id: p.id,
    members: [...p.members],
    state: enumNumber('PipelineState', p.state),
    type: enumNumber('ReplicationType', p.type),
    factor: enumNumber('ReplicationFactor', p.factor),
    leaderId: p.leaderId,
    creationTimestamp: p.creationTimestamp,
  };
}

function pipelineFromProto(o: ProtoObject): PipelineInfo {
  const members = Array.isArray(o['members']) ? (o['members'] as string[]) : [];
  return Object.freeze({
    id: text(o, 'id'),
    members: Object.freeze([...members]),
    state: enumValueName('PipelineState', o['state'], 'state'),
    type: enumValueName('ReplicationType', o['type'], 'type'),
    factor: enumValueName('ReplicationFactor', o['factor'], 'factor'),
    leaderId: text(o, 'leaderId'),
    creationTimestamp: readSafeInteger(o['creationTimestamp'], 'creationTimestamp'),
  });
}

function datanodeToProto(d: DatanodeInfo): ProtoObject {
  return { uuid: d.uuid, hostname: d.hostname, ipAddress: d.ipAddress, ports: d.ports.map((p) => ({ name: p.name, value: p.value })) };
}

function datanodeFromProto(o: ProtoObject): DatanodeInfo {
  const ports = Array.isArray(o['ports']) ? (o['ports'] as ProtoObject[]) : [];
  return Object.freeze({
    uuid: text(o, 'uuid'),
    hostname: text(o, 'hostname'),
    ipAddress: text(o, 'ipAddress'),
    ports: Object.freeze(ports.map((p, i) => Object.freeze({ name: text(p, 'name'), value: readSafeInteger(p['value'], `ports[${i}].value`) }))),
  });
}

function outcomeToProto(outcome: CommandOutcome): ProtoObject {
  if (!outcome.ok) return { error: { code: outcome.error.code, message: outcome.error.message } };
  switch (outcome.value.kind) {
    case 'container':
      return { container: containerToProto(outcome.value.container) };
    case 'pipeline':
      return { pipeline: pipelineToProto(outcome.value.pipeline) };
    case 'datanode':
      return { datanode: datanodeToProto(outcome.value.datanode) };
    case 'marker':
      return { marker: {} };
  }
}

function outcomeFromProto(o: ProtoObject): CommandOutcome {
  switch (o['result']) {
    case 'container':
      return { ok: true, value: { kind: 'container', container: containerFromProto(o['container'] as ProtoObject) } };
    case 'pipeline':
      return { ok: true, value: { kind: 'pipeline', pipeline: pipelineFromProto(o['pipeline'] as ProtoObject) } };
    case 'datanode':
      return { ok: true, value: { kind: 'datanode', datanode: datanodeFromProto(o['datanode'] as ProtoObject) } };
    case 'marker':
      return { ok: true, value: { kind: 'marker' } };
    case 'error': {
      const e = o['error'] as ProtoObject;
      const code = text(e, 'code');
      if (!isOneOf(SCM_ERROR_CODES, code)) throw new Error(`unknown error code ${JSON.stringify(code)}`);
      return { ok: false, error: { code, message: text(e, 'message') } };
    }
    default:
      throw new Error('command result has no result set');
  }
}

function encode(typeName: string, obj: ProtoObject): Uint8Array {
  const type = protoType(typeName);
  return type.encode(type.create(obj)).finish();
}

/** Wraps a decoder so corruption names the table and key it was found at. */
function decodeRecord<T>(what: string, where: string, bytes: Uint8Array, decode: (b: Uint8Array) => T): T {
  try {
    return decode(bytes);
  } catch (err) {
    throw new Error(`corrupt ${what} record at ${where}: ${(err as Error).message}`, { cause: err });
  }
}

export const encodeContainer = (c: ContainerInfo): Uint8Array => encode('ContainerRecord', containerToProto(c));
export const decodeContainer = (bytes: Uint8Array, where: string): ContainerInfo =>
  decodeRecord('container', where, bytes, (b) => containerFromProto(decodeObject('ContainerRecord', b)));

export const encodePipeline = (p: PipelineInfo): Uint8Array => encode('PipelineRecord', pipelineToProto(p));
export const decodePipeline = (bytes: Uint8Array, where: string): PipelineInfo =>
  decodeRecord('pipeline', where, bytes, (b) => pipelineFromProto(decodeObject('PipelineRecord', b)));

export const encodeDatanode = (d: DatanodeInfo): Uint8Array => encode('DatanodeRecord', datanodeToProto(d));
export const decodeDatanode = (bytes: Uint8Array, where: string): DatanodeInfo =>
  decodeRecord('datanode', where, bytes, (b) => datanodeFromProto(decodeObject('DatanodeRecord', b)));

export const encodeOutcome = (outcome: CommandOutcome): Uint8Array => encode('CommandResult', outcomeToProto(outcome));
export const decodeOutcome = (bytes: Uint8Array): CommandOutcome =>
  decodeRecord('command result', 'bytes', bytes, (b) => outcomeFromProto(decodeObject('CommandResult', b)));

export const encodeRetryCacheRecord = (r: RetryCacheRecord): Uint8Array =>
  encode('RetryCacheRecord', { clientId: r.clientId, callId: r.callId, recordedAtMillis: r.recordedAt, logIndex: r.logIndex, result: outcomeToProto(r.outcome) });

export const decodeRetryCacheRecord = (bytes: Uint8Array, where: string): RetryCacheRecord =>
  decodeRecord('retry cache', where, bytes, (b) => {
    const o = decodeObject('RetryCacheRecord', b);
    return Object.freeze({
      clientId: text(o, 'clientId'),
      callId: readSafeInteger(o['callId'], 'callId'),
      recordedAt: readSafeInteger(o['recordedAtMillis'], 'recordedAtMillis'),
      logIndex: readSafeInteger(o['logIndex'], 'logIndex'),
      outcome: outcomeFromProto(o['result'] as ProtoObject),
    });
  });
