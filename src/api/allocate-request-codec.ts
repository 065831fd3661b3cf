// AllocateContainerRequest, the client service's most frequent request, without protobufjs:
// - the client writes it from the wire object ScmClient builds (uint64 as a decimal string, enums by
//   name) into the bytes the generic serializer (fromObject + encode) writes for that object;
// - the server reads the bytes straight into the validated request decodeAllocateContainer
//   (client-codec.ts) returns for protobufjs' decode + toObject of them.
// Each handles only what it is sure of and otherwise returns undefined, and the caller takes the
// generic path: the serializer a value that is not ASCII or a shape it does not know; the decoder
// any request the generic path refuses (so its errors, naming the field, stay the generic path's),
// an unknown or repeated field, an encoding that is not the usual one. The tests
// (test/api/allocate-request-codec.test.ts) hold both to the generic path's results.
import { LIMITS, type Wire } from './client-codec.js';
import { REPLICATION_FACTORS, REPLICATION_TYPES, type AllocateContainerRequest, type ReplicationFactor, type ReplicationType } from './scm-api.js';
import { clientEnums, DECLINE, domainByNumber, Reader, Writer } from './proto-wire.js';

const writer = new Writer();
const reader = new Reader();

function keyCount(o: Wire): number {
  let n = 0;
  for (const _ in o) n++;
  return n;
}

/**
 * The bytes of an AllocateContainerRequest wire object as ScmClient builds it (clientId, callId,
 * replicationType, replicationFactor, owner; strings in ASCII), or undefined for anything else.
 */
export function serializeAllocateContainerRequest(value: unknown): Buffer | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const wire = value as Wire;
  if (keyCount(wire) !== 5) return undefined;
  const e = clientEnums();
  try {
    writer.pos = 0;
    writer.asciiString(1, wire['clientId']);
    writer.uint64(2, wire['callId']);
    writer.enumValue(3, wire['replicationType'], e.replicationType);
    writer.enumValue(4, wire['replicationFactor'], e.replicationFactor);
    writer.asciiString(5, wire['owner']);
    return writer.take();
  } catch (err) {
    writer.pos = 0;
    if (err === DECLINE) return undefined;
    throw err;
  }
}

let types: ReadonlyMap<number, ReplicationType> | undefined;
let factors: ReadonlyMap<number, ReplicationFactor> | undefined;

const CLIENT_ID = 1 << 1;
const CALL_ID = 1 << 2;
const TYPE = 1 << 3;
const FACTOR = 1 << 4;
const OWNER = 1 << 5;
const ALL = CLIENT_ID | CALL_ID | TYPE | FACTOR | OWNER;

/**
 * The validated request in `bytes`, when they hold each field once, in the usual encoding, with
 * values decodeAllocateContainer accepts; otherwise undefined (the caller decodes them the generic way).
 */
export function decodeAllocateContainerRequest(bytes: Buffer): AllocateContainerRequest | undefined {
  if (types === undefined || factors === undefined) {
    const e = clientEnums();
    types = domainByNumber(e.replicationType, REPLICATION_TYPES);
    factors = domainByNumber(e.replicationFactor, REPLICATION_FACTORS);
  }
  const r = reader;
  r.reset(bytes, 0, bytes.length);
  let clientId = '';
  let callId = 0;
  let replicationType: ReplicationType | undefined;
  let replicationFactor: ReplicationFactor | undefined;
  let owner = '';
  let seen = 0;
  try {
    while (r.pos < r.end) {
      const tag = r.tag();
      const bit = 1 << (tag >> 3);
      if ((seen & bit) !== 0) return undefined;
      seen |= bit;
      switch (tag) {
        case 0x0a:
          clientId = r.printable(LIMITS.clientId);
          break;
        case 0x10:
          callId = r.varint();
          break;
        case 0x18:
          replicationType = types.get(r.varint());
          break;
        case 0x20:
          replicationFactor = factors.get(r.varint());
          break;
        case 0x2a:
          owner = r.printable(LIMITS.owner);
          break;
        default:
          return undefined;
      }
    }
  } catch (err) {
    if (err === DECLINE) return undefined;
    throw err;
  } finally {
    r.reset(EMPTY, 0, 0);
  }
  if (seen !== ALL || clientId.length === 0 || callId < 1 || replicationType === undefined || replicationFactor === undefined || owner.length === 0) return undefined;
  return { clientId, callId, replicationType, replicationFactor, owner };
}

const EMPTY = Buffer.alloc(0);
