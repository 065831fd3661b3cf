// Conversion between the wire objects of ScmClientProtocol.proto (as @grpc/proto-loader hands them
// over: keepCase, uint64 as decimal strings, enums as names, defaults filled) and the domain types of
// scm-api.ts. Request decoding is also the validation: anything missing, malformed, out of range or
// too long throws InvalidArgumentError naming the field, before the ScmApi ever sees the call.
import { isIP } from 'node:net';
import { InvalidArgumentError } from '../errors.js';
import {
  LIFE_CYCLE_EVENTS,
  LIFE_CYCLE_STATES,
  PIPELINE_STATES,
  REPLICATION_FACTORS,
  REPLICATION_TYPES,
  SCM_ROLES,
  FACTOR_MEMBERS,
  CONSISTENCY_STATES,
  type AddScmRequest,
  type AllocateContainerRequest,
  type ClosePipelineRequest,
  type ClusterInfo,
  type ConsistencyHash,
  type ConsistencyReport,
  type ContainerInfo,
  type ContainerWithPipeline,
  type CreatePipelineRequest,
  type DatanodeDetails,
  type GetContainerRequest,
  type ListContainerRequest,
  type ListPipelinesRequest,
  type MutationHeader,
  type Pipeline,
  type ReadConsistency,
  type ReadHeader,
  type RegisterDatanodeRequest,
  type RemoveScmRequest,
  type ScmMember,
  type ScmNodeRole,
  type TransferLeadershipRequest,
  type UpdateContainerStateRequest,
} from './scm-api.js';

/** Limits on request strings and lists: a client cannot make the node store or log megabytes. */
export const LIMITS = {
  clientId: 128,
  nodeId: 64,
  owner: 256,
  hostname: 253,
  address: 300,
  portName: 64,
  ports: 16,
  memberIds: 16,
} as const;

/** Default cap on ListContainer's count (Ozone's ozone.scm.container.list.max.count). */
export const DEFAULT_MAX_LIST_COUNT = 4096;

export type Wire = Record<string, unknown>;

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const NODE_ID_RE = /^[A-Za-z0-9_-]+$/;
// Printable ASCII without spaces: ids end up in logs, metadata and on disk.
const PRINTABLE_RE = /^[\x21-\x7e]+$/;

function describe(value: unknown): string {
  const text = typeof value === 'string' ? JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value) : String(value);
  return text;
}

function field(wire: Wire, name: string): unknown {
  return wire[name];
}

export function decodeString(wire: Wire, name: string, path: string, max: number, options: { required?: boolean } = {}): string {
  const value = field(wire, name) ?? '';
  if (typeof value !== 'string') throw new InvalidArgumentError(path, 'must be a string');
  if (value.length === 0 && (options.required ?? true)) throw new InvalidArgumentError(path, 'is required');
  if (value.length > max) throw new InvalidArgumentError(path, `is ${value.length} characters long, the limit is ${max}`);
  return value;
}

function decodeUuid(wire: Wire, name: string, path: string): string {
  const value = decodeString(wire, name, path, 36);
  if (!UUID_RE.test(value)) throw new InvalidArgumentError(path, `${describe(value)} is not a UUID`);
  return value.toLowerCase();
}

function decodeNodeId(wire: Wire, name: string, path: string): string {
  const value = decodeString(wire, name, path, LIMITS.nodeId);
  if (!NODE_ID_RE.test(value)) throw new InvalidArgumentError(path, `${describe(value)} may contain only letters, digits, "_" and "-"`);
  return value;
}

/** uint64 arrives as a decimal string (longs: String); numbers are accepted too. Must be a safe integer. */
export function decodeUint(wire: Wire, name: string, path: string, min = 0): number {
  const raw = field(wire, name) ?? 0;
  let n: number;
  if (typeof raw === 'number') n = raw;
  else if (typeof raw === 'string' && /^\d+$/.test(raw)) n = Number(raw);
  else throw new InvalidArgumentError(path, `${describe(raw)} is not a non-negative integer`);
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError(path, `${describe(raw)} is out of range (at most ${Number.MAX_SAFE_INTEGER})`);
  if (n < min) throw new InvalidArgumentError(path, min === 1 ? 'is required (must be at least 1)' : `must be at least ${min}`);
  return n;
}

/**
 * An enum field: a known name, or (with `optional`) the UNSPECIFIED value meaning "not given".
 * Unknown numbers (a newer client) are rejected by name of the field and value.
 */
function decodeEnum<T extends string>(
  wire: Wire,
  name: string,
  path: string,
  wireNames: readonly string[],
  domain: readonly T[],
  unspecified: string,
  optional: boolean,
): T | undefined {
  const raw = field(wire, name) ?? unspecified;
  if (raw === unspecified || raw === 0) {
    if (optional) return undefined;
    throw new InvalidArgumentError(path, `is required (one of ${domain.join(', ')})`);
  }
  const index = typeof raw === 'string' ? wireNames.indexOf(raw) : -1;
  const value = domain[index];
  if (value === undefined) throw new InvalidArgumentError(path, `${describe(raw)} is not one of ${domain.join(', ')}`);
  return value;
}

const PIPELINE_STATE_WIRE = PIPELINE_STATES.map((state) => `PIPELINE_${state}`);

const decodeState = (wire: Wire, name: string, path: string, optional: boolean) =>
  decodeEnum(wire, name, path, LIFE_CYCLE_STATES, LIFE_CYCLE_STATES, 'LIFE_CYCLE_STATE_UNSPECIFIED', optional);
const decodeType = (wire: Wire, name: string, path: string, optional: boolean) =>
  decodeEnum(wire, name, path, REPLICATION_TYPES, REPLICATION_TYPES, 'REPLICATION_TYPE_UNSPECIFIED', optional);
const decodeFactor = (wire: Wire, name: string, path: string, optional: boolean) =>
  decodeEnum(wire, name, path, REPLICATION_FACTORS, REPLICATION_FACTORS, 'REPLICATION_FACTOR_UNSPECIFIED', optional);
const decodePipelineState = (wire: Wire, name: string, path: string, optional: boolean) =>
  decodeEnum(wire, name, path, PIPELINE_STATE_WIRE, PIPELINE_STATES, 'PIPELINE_STATE_UNSPECIFIED', optional);

function required<T>(value: T | undefined): T {
  if (value === undefined) throw new Error('internal: required enum decoded as undefined');
  return value;
}

function decodeMutation(wire: Wire): MutationHeader {
  const clientId = decodeString(wire, 'clientId', 'clientId', LIMITS.clientId);
  if (!PRINTABLE_RE.test(clientId)) throw new InvalidArgumentError('clientId', 'must be printable ASCII without spaces');
  return { clientId, callId: decodeUint(wire, 'callId', 'callId', 1) };
}

function decodeRead(wire: Wire): ReadHeader {
  const raw = field(wire, 'consistency') ?? 'LINEARIZABLE';
  if (raw === 'LINEARIZABLE' || raw === 0) return { consistency: 'LINEARIZABLE' };
  if (raw === 'STALE' || raw === 1) return { consistency: 'STALE' };
  throw new InvalidArgumentError('consistency', `${describe(raw)} is not one of LINEARIZABLE, STALE`);
}

export function decodeAllocateContainer(wire: Wire): AllocateContainerRequest {
  const header = decodeMutation(wire);
  const replicationType = required(decodeType(wire, 'replicationType', 'replicationType', false));
  const replicationFactor = required(decodeFactor(wire, 'replicationFactor', 'replicationFactor', false));
  const owner = decodeString(wire, 'owner', 'owner', LIMITS.owner);
  if (!PRINTABLE_RE.test(owner)) throw new InvalidArgumentError('owner', 'must be printable ASCII without spaces');
  return { ...header, replicationType, replicationFactor, owner };
}

export function decodeGetContainer(wire: Wire): GetContainerRequest {
  return { ...decodeRead(wire), containerId: decodeUint(wire, 'containerId', 'containerId', 1) };
}

export function decodeListContainer(wire: Wire, maxCount: number): ListContainerRequest {
  const read = decodeRead(wire);
  const startId = decodeUint(wire, 'startId', 'startId');
  const count = decodeUint(wire, 'count', 'count', 1);
  if (count > maxCount) throw new InvalidArgumentError('count', `${count} exceeds the limit of ${maxCount}`);
  const state = decodeState(wire, 'state', 'state', true);
  return state === undefined ? { ...read, startId, count } : { ...read, startId, count, state };
}

export function decodeUpdateContainerState(wire: Wire): UpdateContainerStateRequest {
  const header = decodeMutation(wire);
  const containerId = decodeUint(wire, 'containerId', 'containerId', 1);
  const event = required(decodeEnum(wire, 'event', 'event', LIFE_CYCLE_EVENTS, LIFE_CYCLE_EVENTS, 'LIFE_CYCLE_EVENT_UNSPECIFIED', false));
  return { ...header, containerId, event };
}

export function decodeCreatePipeline(wire: Wire): CreatePipelineRequest {
  const header = decodeMutation(wire);
  const replicationType = required(decodeType(wire, 'replicationType', 'replicationType', false));
  const replicationFactor = required(decodeFactor(wire, 'replicationFactor', 'replicationFactor', false));
  const rawMembers = field(wire, 'memberIds') ?? [];
  if (!Array.isArray(rawMembers)) throw new InvalidArgumentError('memberIds', 'must be a list');
  if (rawMembers.length > LIMITS.memberIds) throw new InvalidArgumentError('memberIds', `has ${rawMembers.length} entries, the limit is ${LIMITS.memberIds}`);
  const memberIds = rawMembers.map((_, i) => decodeUuid(rawMembers as unknown as Wire, String(i), `memberIds[${i}]`));
  if (memberIds.length > 0 && memberIds.length !== FACTOR_MEMBERS[replicationFactor]) {
    throw new InvalidArgumentError('memberIds', `factor ${replicationFactor} needs ${FACTOR_MEMBERS[replicationFactor]} members, got ${memberIds.length}`);
  }
  const duplicate = memberIds.find((id, i) => memberIds.indexOf(id) !== i);
  if (duplicate !== undefined) throw new InvalidArgumentError('memberIds', `lists datanode ${duplicate} twice`);
  return { ...header, replicationType, replicationFactor, memberIds };
}

export function decodeListPipelines(wire: Wire): ListPipelinesRequest {
  const read: { -readonly [K in keyof ListPipelinesRequest]: ListPipelinesRequest[K] } = { ...decodeRead(wire) };
  const type = decodeType(wire, 'replicationType', 'replicationType', true);
  const factor = decodeFactor(wire, 'replicationFactor', 'replicationFactor', true);
  const state = decodePipelineState(wire, 'state', 'state', true);
  if (type !== undefined) read.replicationType = type;
  if (factor !== undefined) read.replicationFactor = factor;
  if (state !== undefined) read.state = state;
  return read;
}

export function decodeClosePipeline(wire: Wire): ClosePipelineRequest {
  return { ...decodeMutation(wire), pipelineId: decodeUuid(wire, 'pipelineId', 'pipelineId') };
}

export function decodeDatanode(wire: Wire, path: string): DatanodeDetails {
  const uuid = decodeUuid(wire, 'uuid', `${path}.uuid`);
  const hostname = decodeString(wire, 'hostname', `${path}.hostname`, LIMITS.hostname);
  if (!/^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(hostname)) {
    throw new InvalidArgumentError(`${path}.hostname`, `${describe(hostname)} is not a valid host name`);
  }
  const ipAddress = decodeString(wire, 'ipAddress', `${path}.ipAddress`, 45);
  if (isIP(ipAddress) === 0) throw new InvalidArgumentError(`${path}.ipAddress`, `${describe(ipAddress)} is not an IPv4 or IPv6 address`);
  const rawPorts = field(wire, 'ports') ?? [];
  if (!Array.isArray(rawPorts)) throw new InvalidArgumentError(`${path}.ports`, 'must be a list');
  if (rawPorts.length > LIMITS.ports) throw new InvalidArgumentError(`${path}.ports`, `has ${rawPorts.length} entries, the limit is ${LIMITS.ports}`);
  const ports = rawPorts.map((raw: unknown, i) => {
    const portPath = `${path}.ports[${i}]`;
    if (typeof raw !== 'object' || raw === null) throw new InvalidArgumentError(portPath, 'must be a message');
    const port = raw as Wire;
    const name = decodeString(port, 'name', `${portPath}.name`, LIMITS.portName);
    if (!/^[A-Za-z0-9_.-]+$/.test(name)) throw new InvalidArgumentError(`${portPath}.name`, `${describe(name)} may contain only letters, digits, "_", "." and "-"`);
    const value = decodeUint(port, 'value', `${portPath}.value`, 1);
    if (value > 65535) throw new InvalidArgumentError(`${portPath}.value`, `${value} is not a port (1-65535)`);
    return { name, value };
  });
  const duplicate = ports.find((port, i) => ports.findIndex((other) => other.name === port.name) !== i);
  if (duplicate !== undefined) throw new InvalidArgumentError(`${path}.ports`, `names port ${duplicate.name} twice`);
  return { uuid, hostname, ipAddress, ports };
}

export function decodeRegisterDatanode(wire: Wire): RegisterDatanodeRequest {
  const header = decodeMutation(wire);
  const datanode = field(wire, 'datanode');
  if (typeof datanode !== 'object' || datanode === null) throw new InvalidArgumentError('datanode', 'is required');
  return { ...header, datanode: decodeDatanode(datanode as Wire, 'datanode') };
}

export function decodeListDatanodes(wire: Wire): ReadHeader {
  return decodeRead(wire);
}

export function decodeTransferLeadership(wire: Wire): TransferLeadershipRequest {
  return { ...decodeMutation(wire), newLeaderId: decodeNodeId(wire, 'newLeaderId', 'newLeaderId') };
}

function decodeAddress(wire: Wire, name: string): string {
  const value = decodeString(wire, name, name, LIMITS.address);
  const match = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(value);
  const port = Number(match?.[2] ?? 0);
  if (match === null || port < 1 || port > 65535) throw new InvalidArgumentError(name, `${describe(value)} is not host:port`);
  return value;
}

export function decodeCheckConsistency(wire: Wire): MutationHeader {
  return decodeMutation(wire);
}

export function decodeGetConsistencyHash(wire: Wire): { index: number } {
  return { index: decodeUint(wire, 'index', 'index', 1) };
}

export function decodeAddScm(wire: Wire): AddScmRequest {
  const header = decodeMutation(wire);
  return {
    ...header,
    nodeId: decodeNodeId(wire, 'nodeId', 'nodeId'),
    address: decodeAddress(wire, 'address'),
    clientAddress: decodeAddress(wire, 'clientAddress'),
  };
}

export function decodeRemoveScm(wire: Wire): RemoveScmRequest {
  return { ...decodeMutation(wire), nodeId: decodeNodeId(wire, 'nodeId', 'nodeId') };
}

// ---- domain → wire (responses, and requests from the client) ----

export function encodeContainer(c: ContainerInfo): Wire {
  return {
    containerId: String(c.containerId),
    state: c.state,
    pipelineId: c.pipelineId,
    usedBytes: String(c.usedBytes),
    numberOfKeys: String(c.numberOfKeys),
    stateEnterTime: String(c.stateEnterTime),
    owner: c.owner,
    deleteTransactionId: String(c.deleteTransactionId),
    sequenceId: String(c.sequenceId),
    replicationType: c.replicationType,
    replicationFactor: c.replicationFactor,
  };
}

export function encodePipeline(p: Pipeline): Wire {
  return {
    id: p.id,
    memberIds: [...p.memberIds],
    state: `PIPELINE_${p.state}`,
    replicationType: p.replicationType,
    replicationFactor: p.replicationFactor,
    leaderId: p.leaderId,
    creationTime: String(p.creationTime),
  };
}

export function encodeDatanode(d: DatanodeDetails): Wire {
  return { uuid: d.uuid, hostname: d.hostname, ipAddress: d.ipAddress, ports: d.ports.map((port) => ({ name: port.name, value: port.value })) };
}

export function encodeContainerWithPipeline(c: ContainerWithPipeline): Wire {
  return { container: encodeContainer(c.container), pipeline: encodePipeline(c.pipeline), datanodes: c.datanodes.map(encodeDatanode) };
}

export function encodeRole(r: ScmNodeRole): Wire {
  return {
    nodeId: r.nodeId,
    address: r.address,
    clientAddress: r.clientAddress,
    role: r.role,
    term: String(r.term),
    commitIndex: String(r.commitIndex),
    appliedIndex: String(r.appliedIndex),
  };
}

export function encodeMember(m: ScmMember): Wire {
  return { nodeId: m.nodeId, address: m.address, clientAddress: m.clientAddress };
}

export function encodeClusterInfo(c: ClusterInfo): Wire {
  return {
    clusterId: c.clusterId,
    nodeId: c.nodeId,
    scmUuid: c.scmUuid,
    leaderId: c.leaderId,
    leaderAddress: c.leaderAddress,
    members: c.members.map(encodeMember),
  };
}

export function encodeConsistencyReport(r: ConsistencyReport): Wire {
  return { index: String(r.index), consistent: r.consistent, nodes: r.nodes.map((n) => ({ nodeId: n.nodeId, state: n.state, hash: n.hash, detail: n.detail })) };
}

export function encodeConsistencyHash(h: ConsistencyHash): Wire {
  return { index: String(h.index), known: h.known, hash: h.hash, detail: h.detail };
}

export function encodeConsistency(consistency: ReadConsistency): string {
  return consistency;
}

// ---- wire → domain (responses, on the client) ----
// The server is trusted to send well-formed values; these convert types and fail loudly if not.

function num(wire: Wire, name: string): number {
  const raw = wire[name] ?? 0;
  const n = typeof raw === 'number' ? raw : Number(raw);
  if (!Number.isSafeInteger(n)) throw new Error(`malformed response: ${name}=${describe(raw)} is not a safe integer`);
  return n;
}

function str(wire: Wire, name: string): string {
  const raw = wire[name] ?? '';
  if (typeof raw !== 'string') throw new Error(`malformed response: ${name} is not a string`);
  return raw;
}

function oneOf<T extends string>(wire: Wire, name: string, allowed: readonly T[], prefix = ''): T {
  const raw = str(wire, name);
  const value = allowed.find((candidate) => `${prefix}${candidate}` === raw);
  if (value === undefined) throw new Error(`malformed response: ${name}=${describe(raw)} is not one of ${allowed.join(', ')}`);
  return value;
}

function sub(wire: Wire, name: string): Wire {
  const raw = wire[name];
  if (typeof raw !== 'object' || raw === null) throw new Error(`malformed response: ${name} is missing`);
  return raw as Wire;
}

function list(wire: Wire, name: string): Wire[] {
  const raw = wire[name] ?? [];
  if (!Array.isArray(raw)) throw new Error(`malformed response: ${name} is not a list`);
  return raw as Wire[];
}

export function parseContainer(w: Wire): ContainerInfo {
  return {
    containerId: num(w, 'containerId'),
    state: oneOf(w, 'state', LIFE_CYCLE_STATES),
    pipelineId: str(w, 'pipelineId'),
    usedBytes: num(w, 'usedBytes'),
    numberOfKeys: num(w, 'numberOfKeys'),
    stateEnterTime: num(w, 'stateEnterTime'),
    owner: str(w, 'owner'),
    deleteTransactionId: num(w, 'deleteTransactionId'),
    sequenceId: num(w, 'sequenceId'),
    replicationType: oneOf(w, 'replicationType', REPLICATION_TYPES),
    replicationFactor: oneOf(w, 'replicationFactor', REPLICATION_FACTORS),
  };
}

export function parsePipeline(w: Wire): Pipeline {
  return {
    id: str(w, 'id'),
    memberIds: list(w, 'memberIds').map((id) => String(id)),
    state: oneOf(w, 'state', PIPELINE_STATES, 'PIPELINE_'),
    replicationType: oneOf(w, 'replicationType', REPLICATION_TYPES),
    replicationFactor: oneOf(w, 'replicationFactor', REPLICATION_FACTORS),
    leaderId: str(w, 'leaderId'),
    creationTime: num(w, 'creationTime'),
  };
}

export function parseDatanode(w: Wire): DatanodeDetails {
  return {
    uuid: str(w, 'uuid'),
    hostname: str(w, 'hostname'),
    ipAddress: str(w, 'ipAddress'),
    ports: list(w, 'ports').map((port) => ({ name: str(port, 'name'), value: num(port, 'value') })),
  };
}

export function parseContainerWithPipeline(w: Wire): ContainerWithPipeline {
  return { container: parseContainer(sub(w, 'container')), pipeline: parsePipeline(sub(w, 'pipeline')), datanodes: list(w, 'datanodes').map(parseDatanode) };
}

export function parseRole(w: Wire): ScmNodeRole {
  return {
    nodeId: str(w, 'nodeId'),
    address: str(w, 'address'),
    clientAddress: str(w, 'clientAddress'),
    role: oneOf(w, 'role', SCM_ROLES),
    term: num(w, 'term'),
    commitIndex: num(w, 'commitIndex'),
    appliedIndex: num(w, 'appliedIndex'),
  };
}

export function parseMember(w: Wire): ScmMember {
  return { nodeId: str(w, 'nodeId'), address: str(w, 'address'), clientAddress: str(w, 'clientAddress') };
}

export function parseClusterInfo(w: Wire): ClusterInfo {
  return {
    clusterId: str(w, 'clusterId'),
    nodeId: str(w, 'nodeId'),
    scmUuid: str(w, 'scmUuid'),
    leaderId: str(w, 'leaderId'),
    leaderAddress: str(w, 'leaderAddress'),
    members: list(w, 'members').map(parseMember),
  };
}

export function parseConsistencyReport(w: Wire): ConsistencyReport {
  return {
    index: num(w, 'index'),
    consistent: w['consistent'] === true,
    nodes: list(w, 'nodes').map((n) => ({ nodeId: str(n, 'nodeId'), state: oneOf(n, 'state', CONSISTENCY_STATES), hash: str(n, 'hash'), detail: str(n, 'detail') })),
  };
}

export function parseConsistencyHash(w: Wire): ConsistencyHash {
  return { index: num(w, 'index'), known: w['known'] === true, hash: str(w, 'hash'), detail: str(w, 'detail') };
}

export { list as wireList, sub as wireSub };
