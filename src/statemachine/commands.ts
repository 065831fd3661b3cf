// SCM commands: the TypeScript shape, field validation, and the byte encoding carried as the
// `logData` of a Raft data entry (proto/scm_commands.proto, ScmCommand).
//
// The leader builds a command with everything apply needs decided up front (the time, the pipeline
// for an allocation), encodes it (which validates it: bad input is rejected before it is proposed)
// and proposes the bytes. Followers decode; bytes that are not a valid command decode to a
// MalformedCommandError, which apply records as the entry's result.
import { isIP } from 'node:net';
import { InvalidArgumentError, MalformedCommandError } from '../errors.js';
import {
  LIFE_CYCLE_EVENTS,
  REPLICATION_FACTORS,
  REPLICATION_TYPES,
  FACTOR_MEMBERS,
  isOneOf,
  type DatanodePort,
  type LifeCycleEvent,
  type ReplicationFactor,
  type ReplicationType,
} from './model.js';
import { enumNumber, enumValueName, protoType, readSafeInteger, type ProtoObject } from './proto.js';
import { decodeCanonicalAllocateContainer } from './command-decoder.js';

export interface CommandEnvelope {
  /** Identifies the client for the retry cache; with callId, names one request. */
  readonly clientId: string;
  readonly callId: number;
  /** The leader's clock (ms since the epoch) at propose time: the only time apply ever uses. */
  readonly timestamp: number;
}

export interface AllocateContainerCommand extends CommandEnvelope {
  readonly type: 'allocateContainer';
  readonly replicationType: ReplicationType;
  readonly replicationFactor: ReplicationFactor;
  readonly owner: string;
  readonly pipelineId: string;
}

export interface UpdateContainerStateCommand extends CommandEnvelope {
  readonly type: 'updateContainerState';
  readonly containerId: number;
  readonly event: LifeCycleEvent;
}

export interface CreatePipelineCommand extends CommandEnvelope {
  readonly type: 'createPipeline';
  readonly pipelineId: string;
  readonly members: readonly string[];
  readonly replicationType: ReplicationType;
  readonly replicationFactor: ReplicationFactor;
  /** A member's uuid; '' or absent for none. */
  readonly leaderId?: string;
  /** Default OPEN: a pipeline that can take containers right away. */
  readonly initialState?: 'ALLOCATED' | 'OPEN';
}

export const PIPELINE_STATE_COMMANDS = ['openPipeline', 'closePipeline', 'deactivatePipeline', 'activatePipeline'] as const;
export type PipelineStateCommandType = (typeof PIPELINE_STATE_COMMANDS)[number];

export interface PipelineStateCommand extends CommandEnvelope {
  readonly type: PipelineStateCommandType;
  readonly pipelineId: string;
}

export interface RegisterDatanodeCommand extends CommandEnvelope {
  readonly type: 'registerDatanode';
  readonly uuid: string;
  readonly hostname: string;
  readonly ipAddress: string;
  readonly ports: readonly DatanodePort[];
}

/** A consistency check point (see proto/scm_commands.proto ConsistencyMarker). */
export interface MarkConsistencyCommand extends CommandEnvelope {
  readonly type: 'markConsistency';
}

export type ScmCommand =
  | MarkConsistencyCommand
  | AllocateContainerCommand
  | UpdateContainerStateCommand
  | CreatePipelineCommand
  | PipelineStateCommand
  | RegisterDatanodeCommand;

export type ScmCommandType = ScmCommand['type'];

const MAX_ID_LENGTH = 256;

function isText(value: unknown, maxLength: number): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= maxLength;
}

function isInteger(value: unknown, min: number, max = Number.MAX_SAFE_INTEGER): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= min && value <= max;
}

function requireText(value: unknown, field: string, maxLength = MAX_ID_LENGTH): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new InvalidArgumentError(`${field} is required (a non-empty string)`);
  }
  if (value.length > maxLength) {
    throw new InvalidArgumentError(`${field} is longer than ${maxLength} characters`);
  }
  return value;
}

function requireInteger(value: unknown, field: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!isInteger(value, min, max)) {
    throw new InvalidArgumentError(`${field} must be an integer in [${min}, ${max}], got ${String(value)}`);
  }
  return value;
}

function requireEnum<T extends string>(values: readonly T[], value: unknown, field: string): T {
  if (!isOneOf(values, value)) {
    throw new InvalidArgumentError(`${field} must be one of ${values.join(', ')}, got ${String(value)}`);
  }
  return value;
}

function validatePorts(ports: unknown): void {
  if (!Array.isArray(ports)) throw new InvalidArgumentError('ports must be a list');
  const names = new Set<string>();
  ports.forEach((port: unknown, i) => {
    const p = (port ?? {}) as Partial<DatanodePort>;
    const name = requireText(p.name, `ports[${i}].name`);
    requireInteger(p.value, `ports[${i}].value`, 1, 65535);
    if (names.has(name)) throw new InvalidArgumentError(`ports[${i}].name ${JSON.stringify(name)} is repeated`);
    names.add(name);
  });
}

function validateMembers(cmd: CreatePipelineCommand): void {
  if (!Array.isArray(cmd.members)) throw new InvalidArgumentError('members must be a list of datanode uuids');
  cmd.members.forEach((m, i) => requireText(m, `members[${i}]`));
  if (new Set(cmd.members).size !== cmd.members.length) {
    throw new InvalidArgumentError(`members has a repeated datanode: ${cmd.members.join(', ')}`);
  }
  const expected = FACTOR_MEMBERS[cmd.replicationFactor];
  if (cmd.members.length !== expected) {
    throw new InvalidArgumentError(
      `members has ${cmd.members.length} datanodes but replication factor ${cmd.replicationFactor} needs ${expected}`,
    );
  }
  const leader = cmd.leaderId ?? '';
  if (typeof leader !== 'string' || (leader !== '' && !cmd.members.includes(leader))) {
    throw new InvalidArgumentError(`leaderId ${JSON.stringify(leader)} is not one of the members`);
  }
}

/**
 * Checks every field that can be checked without the current state; throws InvalidArgumentError
 * naming the first bad field. (State checks, such as "the pipeline exists", happen at apply.)
 */
export function validateCommand(cmd: ScmCommand): void {
  requireText(cmd.clientId, 'clientId');
  requireInteger(cmd.callId, 'callId', 0);
  requireInteger(cmd.timestamp, 'timestamp', 0);
  switch (cmd.type) {
    case 'allocateContainer':
      requireEnum(REPLICATION_TYPES, cmd.replicationType, 'replicationType');
      requireEnum(REPLICATION_FACTORS, cmd.replicationFactor, 'replicationFactor');
      requireText(cmd.owner, 'owner');
      requireText(cmd.pipelineId, 'pipelineId');
      return;
    case 'updateContainerState':
      requireInteger(cmd.containerId, 'containerId', 1);
      requireEnum(LIFE_CYCLE_EVENTS, cmd.event, 'event');
      return;
    case 'createPipeline':
      requireText(cmd.pipelineId, 'pipelineId');
      requireEnum(REPLICATION_TYPES, cmd.replicationType, 'replicationType');
      requireEnum(REPLICATION_FACTORS, cmd.replicationFactor, 'replicationFactor');
      if (cmd.initialState !== undefined) requireEnum(['ALLOCATED', 'OPEN'] as const, cmd.initialState, 'initialState');
      validateMembers(cmd);
      return;
    case 'openPipeline':
    case 'closePipeline':
    case 'deactivatePipeline':
    case 'activatePipeline':
      requireText(cmd.pipelineId, 'pipelineId');
      return;
    case 'markConsistency':
      return;
    case 'registerDatanode':
      requireText(cmd.uuid, 'uuid');
      requireText(cmd.hostname, 'hostname', 1024);
      if (typeof cmd.ipAddress !== 'string' || isIP(cmd.ipAddress) === 0) {
        throw new InvalidArgumentError(`ipAddress ${JSON.stringify(cmd.ipAddress)} is not an IPv4 or IPv6 address`);
      }
      validatePorts(cmd.ports);
      return;
    default: {
      const unknown: { type?: unknown } = cmd;
      throw new InvalidArgumentError(`unknown command type ${String(unknown.type)}`);
    }
  }
}

function bodyToProto(cmd: ScmCommand): ProtoObject {
  switch (cmd.type) {
    case 'allocateContainer':
      return {
        replicationType: enumNumber('ReplicationType', cmd.replicationType),
        replicationFactor: enumNumber('ReplicationFactor', cmd.replicationFactor),
        owner: cmd.owner,
        pipelineId: cmd.pipelineId,
      };
    case 'updateContainerState':
      return { containerId: cmd.containerId, event: enumNumber('LifeCycleEvent', cmd.event) };
    case 'createPipeline':
      return {
        pipelineId: cmd.pipelineId,
        members: [...cmd.members],
        replicationType: enumNumber('ReplicationType', cmd.replicationType),
        replicationFactor: enumNumber('ReplicationFactor', cmd.replicationFactor),
        leaderId: cmd.leaderId ?? '',
        initialState: enumNumber('PipelineState', cmd.initialState ?? 'OPEN'),
      };
    case 'openPipeline':
    case 'closePipeline':
    case 'deactivatePipeline':
    case 'activatePipeline':
      return { pipelineId: cmd.pipelineId };
    case 'markConsistency':
      return {};
    case 'registerDatanode':
      return {
        uuid: cmd.uuid,
        hostname: cmd.hostname,
        ipAddress: cmd.ipAddress,
        ports: cmd.ports.map((p) => ({ name: p.name, value: p.value })),
      };
  }
}

/** Validates and encodes a command as the `logData` of a Raft data entry. */
export function encodeCommand(cmd: ScmCommand): Uint8Array {
  validateCommand(cmd);
  const type = protoType('ScmCommand');
  const message = type.create({
    clientId: cmd.clientId,
    callId: cmd.callId,
    timestampMillis: cmd.timestamp,
    [cmd.type]: bodyToProto(cmd),
  });
  return type.encode(message).finish();
}

function str(obj: ProtoObject, field: string): string {
  const value = obj[field];
  return typeof value === 'string' ? value : '';
}

function commandFromProto(obj: ProtoObject): ScmCommand {
  const envelope: CommandEnvelope = {
    clientId: str(obj, 'clientId'),
    callId: readSafeInteger(obj['callId'], 'callId'),
    timestamp: readSafeInteger(obj['timestampMillis'], 'timestampMillis'),
  };
  const which = obj['command'];
  if (typeof which !== 'string') throw new InvalidArgumentError('command is missing (no command field is set)');
  const body = obj[which] as ProtoObject;
  switch (which) {
    case 'allocateContainer':
      return {
        ...envelope,
        type: 'allocateContainer',
        replicationType: enumValueName('ReplicationType', body['replicationType'], 'replicationType'),
        replicationFactor: enumValueName('ReplicationFactor', body['replicationFactor'], 'replicationFactor'),
        owner: str(body, 'owner'),
        pipelineId: str(body, 'pipelineId'),
      };
    case 'updateContainerState':
      return {
        ...envelope,
        type: 'updateContainerState',
        containerId: readSafeInteger(body['containerId'], 'containerId'),
        event: enumValueName('LifeCycleEvent', body['event'], 'event'),
      };
    case 'createPipeline': {
      const initialState = body['initialState'] === undefined ? 'OPEN' : enumValueName('PipelineState', body['initialState'], 'initialState');
      if (initialState !== 'ALLOCATED' && initialState !== 'OPEN') {
        throw new InvalidArgumentError(`initialState must be ALLOCATED or OPEN, got ${initialState}`);
      }
      return {
        ...envelope,
        type: 'createPipeline',
        pipelineId: str(body, 'pipelineId'),
        members: Array.isArray(body['members']) ? (body['members'] as string[]) : [],
        replicationType: enumValueName('ReplicationType', body['replicationType'], 'replicationType'),
        replicationFactor: enumValueName('ReplicationFactor', body['replicationFactor'], 'replicationFactor'),
        leaderId: str(body, 'leaderId'),
        initialState,
      };
    }
    case 'openPipeline':
    case 'closePipeline':
    case 'deactivatePipeline':
    case 'activatePipeline':
      return { ...envelope, type: which, pipelineId: str(body, 'pipelineId') };
    case 'markConsistency':
      return { ...envelope, type: 'markConsistency' };
    case 'registerDatanode': {
      const ports = Array.isArray(body['ports']) ? (body['ports'] as ProtoObject[]) : [];
      return {
        ...envelope,
        type: 'registerDatanode',
        uuid: str(body, 'uuid'),
        hostname: str(body, 'hostname'),
        ipAddress: str(body, 'ipAddress'),
        ports: ports.map((p, i) => ({ name: str(p, 'name'), value: readSafeInteger(p['value'], `ports[${i}].value`) })),
      };
    }
    default:
      throw new InvalidArgumentError(`unknown command ${which}`);
  }
}

/**
 * validateCommand's checks of an AllocateContainer, as a yes or no: the fast decoder's command is
 * used only if it passes (an invalid one is left to the general decoder, which reports it).
 */
function isValidAllocation(cmd: AllocateContainerCommand): boolean {
  return (
    isText(cmd.clientId, MAX_ID_LENGTH) &&
    isInteger(cmd.callId, 0) &&
    isInteger(cmd.timestamp, 0) &&
    isOneOf(REPLICATION_TYPES, cmd.replicationType) &&
    isOneOf(REPLICATION_FACTORS, cmd.replicationFactor) &&
    isText(cmd.owner, MAX_ID_LENGTH) &&
    isText(cmd.pipelineId, MAX_ID_LENGTH)
  );
}

/** Decodes and validates the bytes of a data entry; throws MalformedCommandError saying what is wrong. */
export function decodeCommand(bytes: Uint8Array): ScmCommand {
  const allocation = decodeCanonicalAllocateContainer(bytes);
  if (allocation !== undefined && isValidAllocation(allocation)) return allocation;
  return decodeCommandGeneral(bytes);
}

/** decodeCommand through protobufjs, for every command and form (exported for the decoder's tests). */
export function decodeCommandGeneral(bytes: Uint8Array): ScmCommand {
  if (bytes.length === 0) throw new MalformedCommandError('malformed SCM command: empty data');
  try {
    const type = protoType('ScmCommand');
    const obj = type.toObject(type.decode(bytes), { longs: String, enums: String, oneofs: true, arrays: true }) as ProtoObject;
    const cmd = commandFromProto(obj);
    validateCommand(cmd);
    return cmd;
  } catch (err) {
    throw new MalformedCommandError(`malformed SCM command: ${(err as Error).message}`);
  }
}
