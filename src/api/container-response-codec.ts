// The client service's most frequent answer, ContainerWithPipeline (AllocateContainer,
// GetContainerWithPipeline), without protobufjs on either end; and its largest, ListContainer's
// page of containers, without protobufjs on the server's end.
// - The server's serializer writes the protobuf bytes straight from the wire object the handlers
//   build (client-codec.ts: uint64 fields as decimal strings, enums by name). The generic serializer
//   of @grpc/proto-loader goes through protobufjs' fromObject, which parses every uint64 string into
//   a Long and builds a message object tree first: about 40 µs per answer against a few here. It
//   writes the same bytes, field for field (test/server/container-response-codec.test.ts holds it to
//   that); anything it does not expect (a missing field, an unknown enum name, a number beyond 2^53)
//   makes it return undefined and the caller uses the generic serializer.
// - The client's decoder reads the bytes straight into the API's ContainerWithPipeline, the value
//   parseContainerWithPipeline gives for protobufjs' decode + toObject (longs as strings) of them;
//   bytes it is not sure of make it return undefined and the client takes that generic path
//   (test/api/container-response-decoder.test.ts).
import type { Wire } from './client-codec.js';
import {
  LIFE_CYCLE_STATES,
  PIPELINE_STATES,
  REPLICATION_FACTORS,
  REPLICATION_TYPES,
  type ContainerInfo,
  type ContainerWithPipeline,
  type DatanodeDetails,
  type DatanodePort,
  type LifeCycleState,
  type Pipeline,
  type PipelineState,
  type ReplicationFactor,
  type ReplicationType,
} from './scm-api.js';
import { clientEnums, DECLINE, domainByNumber, Reader, Writer, type ClientEnums } from './proto-wire.js';

const writer = new Writer();

function keyCount(o: Wire): number {
  let n = 0;
  for (const _ in o) n++;
  return n;
}

function record(value: unknown): Wire {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw DECLINE;
  return value as Wire;
}

function list(value: unknown): readonly unknown[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw DECLINE;
  return value;
}

function containerInfo(w: Writer, field: number, c: Wire, e: ClientEnums): void {
  const at = w.begin(field);
  w.uint64(1, c['containerId']);
  w.enumValue(2, c['state'], e.lifeCycleState);
  w.string(3, c['pipelineId']);
  w.uint64(4, c['usedBytes']);
  w.uint64(5, c['numberOfKeys']);
  w.uint64(6, c['stateEnterTime']);
  w.string(7, c['owner']);
  w.uint64(8, c['deleteTransactionId']);
  w.uint64(9, c['sequenceId']);
  w.enumValue(10, c['replicationType'], e.replicationType);
  w.enumValue(11, c['replicationFactor'], e.replicationFactor);
  w.end(at);
}

function pipeline(w: Writer, field: number, p: Wire, e: ClientEnums): void {
  const at = w.begin(field);
  w.string(1, p['id']);
  for (const id of list(p['memberIds'])) w.string(2, id);
  w.enumValue(3, p['state'], e.pipelineState);
  w.enumValue(4, p['replicationType'], e.replicationType);
  w.enumValue(5, p['replicationFactor'], e.replicationFactor);
  w.string(6, p['leaderId']);
  w.uint64(7, p['creationTime']);
  w.end(at);
}

function datanode(w: Writer, field: number, d: Wire): void {
  const at = w.begin(field);
  w.string(1, d['uuid']);
  w.string(2, d['hostname']);
  w.string(3, d['ipAddress']);
  for (const port of list(d['ports'])) {
    const p = record(port);
    if (keyCount(p) !== 2) throw DECLINE;
    const portAt = w.begin(4);
    w.string(1, p['name']);
    w.uint32(2, p['value']);
    w.end(portAt);
  }
  w.end(at);
}

const CONTAINER_FIELDS = 11;
const PIPELINE_FIELDS = 7;
const DATANODE_FIELDS = 4;

/**
 * The bytes of a ContainerWithPipeline wire object as encodeContainerWithPipeline builds it (every
 * field present), or undefined for any other shape (the caller then uses the generic serializer).
 */
export function serializeContainerWithPipeline(value: unknown): Buffer | undefined {
  try {
    const wire = record(value);
    const container = record(wire['container']);
    const pipe = record(wire['pipeline']);
    const datanodes = list(wire['datanodes']);
    // Only the exact shape: a field this writer does not know would otherwise be left out.
    if (keyCount(wire) !== 3 || keyCount(container) !== CONTAINER_FIELDS || keyCount(pipe) !== PIPELINE_FIELDS) return undefined;
    const e = clientEnums();
    writer.pos = 0;
    containerInfo(writer, 1, container, e);
    pipeline(writer, 2, pipe, e);
    for (const d of datanodes) {
      const dn = record(d);
      if (keyCount(dn) !== DATANODE_FIELDS) throw DECLINE;
      datanode(writer, 3, dn);
    }
    return writer.take();
  } catch (err) {
    writer.pos = 0;
    if (err === DECLINE) return undefined;
    throw err;
  }
}

/**
 * The bytes of a ListContainerResponse wire object as the ListContainer handler builds it
 * (`{ containers: [...] }`, each container as encodeContainer writes it), or undefined for any other
 * shape. A page of 4,096 containers took protobufjs about 12 ms, on the event loop Raft runs on;
 * this writes the same bytes in a fraction of that.
 */
export function serializeContainerList(value: unknown): Buffer | undefined {
  try {
    const wire = record(value);
    if (keyCount(wire) !== 1) return undefined;
    const containers = wire['containers'];
    if (!Array.isArray(containers)) return undefined;
    const e = clientEnums();
    writer.pos = 0;
    for (const c of containers) {
      const container = record(c);
      if (keyCount(container) !== CONTAINER_FIELDS) throw DECLINE;
      containerInfo(writer, 1, container, e);
    }
    return writer.take();
  } catch (err) {
    writer.pos = 0;
    if (err === DECLINE) return undefined;
    throw err;
  }
}

// ---- bytes → ContainerWithPipeline (the client's side) ----

interface DomainEnums {
  readonly state: ReadonlyMap<number, LifeCycleState>;
  readonly pipelineState: ReadonlyMap<number, PipelineState>;
  readonly type: ReadonlyMap<number, ReplicationType>;
  readonly factor: ReadonlyMap<number, ReplicationFactor>;
}

let domain: DomainEnums | undefined;

function domainEnums(): DomainEnums {
  if (domain === undefined) {
    const e = clientEnums();
    domain = {
      state: domainByNumber(e.lifeCycleState, LIFE_CYCLE_STATES),
      pipelineState: domainByNumber(e.pipelineState, PIPELINE_STATES, 'PIPELINE_'),
      type: domainByNumber(e.replicationType, REPLICATION_TYPES),
      factor: domainByNumber(e.replicationFactor, REPLICATION_FACTORS),
    };
  }
  return domain;
}

const reader = new Reader();
const EMPTY = Buffer.alloc(0);

/** An enum value the API has (not 0, not a number the proto or the API lacks). */
function known<T>(values: ReadonlyMap<number, T>, n: number): T {
  const value = values.get(n);
  if (value === undefined) throw DECLINE;
  return value;
}

/** Marks field `tag >> 3` seen in `seen`; a field given twice declines (protobufjs keeps the last). */
function once(seen: number, tag: number): number {
  const bit = 1 << (tag >> 3);
  if ((seen & bit) !== 0) throw DECLINE;
  return seen | bit;
}

/** Enters a length-delimited sub-message: returns the enclosing message's end, to give to leave(). */
function enter(r: Reader): number {
  const n = r.length();
  const outer = r.end;
  r.end = r.pos + n;
  return outer;
}

function leave(r: Reader, outer: number): void {
  r.end = outer;
}

function readContainer(r: Reader, d: DomainEnums): ContainerInfo {
  let containerId = 0;
  let state: LifeCycleState | undefined;
  let pipelineId = '';
  let usedBytes = 0;
  let numberOfKeys = 0;
  let stateEnterTime = 0;
  let owner = '';
  let deleteTransactionId = 0;
  let sequenceId = 0;
  let replicationType: ReplicationType | undefined;
  let replicationFactor: ReplicationFactor | undefined;
  let seen = 0;
  while (r.pos < r.end) {
    const tag = r.tag();
    seen = once(seen, tag);
    switch (tag) {
      case 0x08: containerId = r.varint(); break;
      case 0x10: state = known(d.state, r.varint()); break;
      case 0x1a: pipelineId = r.string(); break;
      case 0x20: usedBytes = r.varint(); break;
      case 0x28: numberOfKeys = r.varint(); break;
      case 0x30: stateEnterTime = r.varint(); break;
      case 0x3a: owner = r.string(); break;
      case 0x40: deleteTransactionId = r.varint(); break;
      case 0x48: sequenceId = r.varint(); break;
      case 0x50: replicationType = known(d.type, r.varint()); break;
      case 0x58: replicationFactor = known(d.factor, r.varint()); break;
      default: throw DECLINE;
    }
  }
  // An enum left out is UNSPECIFIED, which the generic path refuses.
  if (state === undefined || replicationType === undefined || replicationFactor === undefined) throw DECLINE;
  return { containerId, state, pipelineId, usedBytes, numberOfKeys, stateEnterTime, owner, deleteTransactionId, sequenceId, replicationType, replicationFactor };
}

function readPipeline(r: Reader, d: DomainEnums): Pipeline {
  let id = '';
  const memberIds: string[] = [];
  let state: PipelineState | undefined;
  let replicationType: ReplicationType | undefined;
  let replicationFactor: ReplicationFactor | undefined;
  let leaderId = '';
  let creationTime = 0;
  let seen = 0;
  while (r.pos < r.end) {
    const tag = r.tag();
    if (tag === 0x12) {
      memberIds.push(r.string());
      continue;
    }
    seen = once(seen, tag);
    switch (tag) {
      case 0x0a: id = r.string(); break;
      case 0x18: state = known(d.pipelineState, r.varint()); break;
      case 0x20: replicationType = known(d.type, r.varint()); break;
      case 0x28: replicationFactor = known(d.factor, r.varint()); break;
      case 0x32: leaderId = r.string(); break;
      case 0x38: creationTime = r.varint(); break;
      default: throw DECLINE;
    }
  }
  if (state === undefined || replicationType === undefined || replicationFactor === undefined) throw DECLINE;
  return { id, memberIds, state, replicationType, replicationFactor, leaderId, creationTime };
}

function readPort(r: Reader): DatanodePort {
  let name = '';
  let value = 0;
  let seen = 0;
  while (r.pos < r.end) {
    const tag = r.tag();
    seen = once(seen, tag);
    switch (tag) {
      case 0x0a: name = r.string(); break;
      case 0x10: value = r.uint32(); break;
      default: throw DECLINE;
    }
  }
  return { name, value };
}

function readDatanode(r: Reader): DatanodeDetails {
  let uuid = '';
  let hostname = '';
  let ipAddress = '';
  const ports: DatanodePort[] = [];
  let seen = 0;
  while (r.pos < r.end) {
    const tag = r.tag();
    if (tag === 0x22) {
      const outer = enter(r);
      ports.push(readPort(r));
      leave(r, outer);
      continue;
    }
    seen = once(seen, tag);
    switch (tag) {
      case 0x0a: uuid = r.string(); break;
      case 0x12: hostname = r.string(); break;
      case 0x1a: ipAddress = r.string(); break;
      default: throw DECLINE;
    }
  }
  return { uuid, hostname, ipAddress, ports };
}

/**
 * The ContainerWithPipeline in answer `bytes`, exactly as parseContainerWithPipeline (client-codec.ts)
 * gives it for protobufjs' decode + toObject of them; undefined (the caller then takes that generic
 * path) for bytes it is not sure of: an unknown or repeated field, a wire type or varint that is not
 * the usual one, a number beyond 2^53 - 1, an enum value the API does not have, a missing container
 * or pipeline, damaged or truncated bytes.
 */
export function decodeContainerWithPipeline(bytes: Buffer): ContainerWithPipeline | undefined {
  const d = domainEnums();
  const r = reader;
  r.reset(bytes, 0, bytes.length);
  try {
    let container: ContainerInfo | undefined;
    let pipe: Pipeline | undefined;
    const datanodes: DatanodeDetails[] = [];
    let seen = 0;
    while (r.pos < r.end) {
      const tag = r.tag();
      const outer = tag === 0x0a || tag === 0x12 || tag === 0x1a ? enter(r) : -1;
      switch (tag) {
        case 0x0a:
          seen = once(seen, tag);
          container = readContainer(r, d);
          break;
        case 0x12:
          seen = once(seen, tag);
          pipe = readPipeline(r, d);
          break;
        case 0x1a:
          datanodes.push(readDatanode(r));
          break;
        default:
          throw DECLINE;
      }
      leave(r, outer);
    }
    if (container === undefined || pipe === undefined) return undefined;
    return { container, pipeline: pipe, datanodes };
  } catch (err) {
    if (err === DECLINE) return undefined;
    throw err;
  } finally {
    r.reset(EMPTY, 0, 0);
  }
}
