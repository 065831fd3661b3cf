// Reading the most frequent command, AllocateContainer, straight from its bytes: every node decodes
// every entry it applies, and protobufjs' decode + toObject (uint64 fields as strings, enums by
// name, a oneof) + commandFromProto cost tens of µs per entry. Like the load decoders it handles
// only the canonical form (canonical-fields.ts: each field once with its own wire type, safe
// integers) with ASCII strings and known enum numbers, and returns exactly what the general decoder
// returns for those bytes (test/statemachine/command-decoder.test.ts compares them); for anything
// else it returns undefined and decodeCommand takes the general path.
import { CanonicalFields, LENGTH_DELIMITED, VARINT } from './canonical-fields.js';
import { enumValueName } from './proto.js';
import type { AllocateContainerCommand } from './commands.js';

/** ScmCommand: clientId=1, callId=2, timestampMillis=3, allocateContainer=10 (message). */
const ENVELOPE_WIRE_TYPES = [-1, LENGTH_DELIMITED, VARINT, VARINT, -1, -1, -1, -1, -1, -1, LENGTH_DELIMITED];
const ENVELOPE_FIELDS = (1 << 1) | (1 << 2) | (1 << 3) | (1 << 10);
/** AllocateContainer: replicationType=1, replicationFactor=2, owner=3, pipelineId=4. */
const BODY_WIRE_TYPES = [-1, VARINT, VARINT, LENGTH_DELIMITED, LENGTH_DELIMITED];
const BODY_FIELDS = 0b11110;

const envelope = new CanonicalFields(ENVELOPE_WIRE_TYPES);
const body = new CanonicalFields(BODY_WIRE_TYPES);

/** The ASCII contents of the length-delimited field `fields` just read, or undefined if not ASCII. */
function asciiContents(fields: CanonicalFields, buf: Uint8Array): string | undefined {
  if (!fields.contentsAreAscii()) return undefined;
  let s = '';
  for (let i = fields.pos, end = fields.pos + fields.value; i < end; i++) s += String.fromCharCode(buf[i] as number);
  fields.skipContents();
  return s;
}

/**
 * asciiContents for a field whose value rarely changes from one command to the next (the owner, the
 * pipeline): the string read last time when the bytes are the same, so that every command that
 * names the same pipeline holds one string (already hashed for the maps it is looked up in).
 */
class RepeatedAscii {
  private last = '';

  read(fields: CanonicalFields, buf: Uint8Array): string | undefined {
    const last = this.last;
    const n = fields.value;
    if (n === last.length && n > 0) {
      let i = 0;
      for (const start = fields.pos; i < n && buf[start + i] === last.charCodeAt(i); i++);
      if (i === n) {
        fields.skipContents();
        return last;
      }
    }
    const s = asciiContents(fields, buf);
    if (s !== undefined) this.last = s;
    return s;
  }
}

const owners = new RepeatedAscii();
const pipelineIds = new RepeatedAscii();

/** Enum names by number, as enumValueName gives them (undefined: not a value of the enum). */
function enumNames<E extends 'ReplicationType' | 'ReplicationFactor'>(name: E): (n: number) => ReturnType<typeof enumValueName<E>> | undefined {
  const known = new Map<number, ReturnType<typeof enumValueName<E>>>();
  return (n) => {
    let value = known.get(n);
    if (value === undefined) {
      try {
        value = enumValueName(name, n, name);
      } catch {
        return undefined; // an unknown value: the general decoder says which
      }
      known.set(n, value);
    }
    return value;
  };
}

const replicationTypes = enumNames('ReplicationType');
const replicationFactors = enumNames('ReplicationFactor');

/** An AllocateContainer command in canonical form, as the general decoder would return it (not yet validated). */
export function decodeCanonicalAllocateContainer(buf: Uint8Array): AllocateContainerCommand | undefined {
  let clientId: string | undefined;
  let callId = 0;
  let timestamp = 0;
  let bodyStart = 0;
  let bodyEnd = 0;
  envelope.start(buf);
  for (let step = envelope.next(); step !== 'end'; step = envelope.next()) {
    if (step === 'other') return undefined;
    switch (envelope.field) {
      case 1:
        clientId = asciiContents(envelope, buf);
        if (clientId === undefined) return undefined;
        break;
      case 2:
        callId = envelope.value;
        break;
      case 3:
        timestamp = envelope.value;
        break;
      case 10:
        bodyStart = envelope.pos;
        bodyEnd = envelope.pos + envelope.value;
        envelope.skipContents();
        break;
    }
  }
  if (envelope.seen !== ENVELOPE_FIELDS || clientId === undefined) return undefined;

  let replicationType = -1;
  let replicationFactor = -1;
  let owner: string | undefined;
  let pipelineId: string | undefined;
  body.start(buf, bodyStart, bodyEnd);
  for (let step = body.next(); step !== 'end'; step = body.next()) {
    if (step === 'other') return undefined;
    switch (body.field) {
      case 1:
        replicationType = body.value;
        break;
      case 2:
        replicationFactor = body.value;
        break;
      case 3:
        owner = owners.read(body, buf);
        if (owner === undefined) return undefined;
        break;
      case 4:
        pipelineId = pipelineIds.read(body, buf);
        if (pipelineId === undefined) return undefined;
        break;
    }
  }
  if (body.seen !== BODY_FIELDS || owner === undefined || pipelineId === undefined) return undefined;
  const type = replicationTypes(replicationType);
  const factor = replicationFactors(replicationFactor);
  if (type === undefined || factor === undefined) return undefined;
  // The same properties in the same order as commandFromProto builds them.
  return { clientId, callId, timestamp, type: 'allocateContainer', replicationType: type, replicationFactor: factor, owner, pipelineId };
}
