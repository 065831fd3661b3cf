// A fast decoder for the container records of scm.db, used when loading: it reads the protobuf
// bytes (ContainerRecord, proto/scm_commands.proto) straight into a ContainerRow of the columnar
// table, with no intermediate objects and no per-record strings for pipeline ids and owners seen
// before. It handles exactly the canonical form: every field at most once with its own wire type,
// known enum values, varints of at most 8 bytes holding safe integers, ASCII strings. Anything else
// (unknown fields, repeated fields, non-ASCII text, huge or negative numbers, missing required
// fields, truncation) returns undefined, and the caller decodes that record with the general
// protobufjs decoder, which gives the same result or the same corruption error as it always did.
import type { ContainerRow, StringTable } from './container-table.js';
import { LIFE_CYCLE_STATES, REPLICATION_FACTORS, REPLICATION_TYPES } from './model.js';
import { enumNumber } from './proto.js';
import { CanonicalFields, LENGTH_DELIMITED, VARINT } from './canonical-fields.js';

/** proto enum number → our code (index in the TS list), -1 for numbers with no value. */
function reverse(numbers: readonly number[]): Int8Array {
  const out = new Int8Array(Math.max(...numbers) + 1).fill(-1);
  numbers.forEach((n, code) => (out[n] = code));
  return out;
}

let enums: { state: Int8Array; type: Int8Array; factor: Int8Array } | undefined;
function enumCodes(): { state: Int8Array; type: Int8Array; factor: Int8Array } {
  enums ??= {
    state: reverse(LIFE_CYCLE_STATES.map((s) => enumNumber('LifeCycleState', s))),
    type: reverse(REPLICATION_TYPES.map((t) => enumNumber('ReplicationType', t))),
    factor: reverse(REPLICATION_FACTORS.map((f) => enumNumber('ReplicationFactor', f))),
  };
  return enums;
}

/** Field numbers of ContainerRecord and their wire types. */
const WIRE_TYPES = [-1, VARINT, VARINT, LENGTH_DELIMITED, VARINT, VARINT, VARINT, LENGTH_DELIMITED, VARINT, VARINT, VARINT, VARINT];
/** containerID, state, usedBytes, numberOfKeys, owner, replicationType. */
const REQUIRED_MASK = (1 << 1) | (1 << 2) | (1 << 4) | (1 << 5) | (1 << 7) | (1 << 11);

/** Interns a string field without building a string when it repeats the previous record's bytes. */
class StringFieldCache {
  private bytes = new Uint8Array(0);
  private id = -1;

  intern(buf: Buffer, start: number, end: number, strings: StringTable): number {
    const length = end - start;
    const last = this.bytes;
    if (this.id >= 0 && last.length === length) {
      let same = true;
      for (let i = 0; i < length; i++) {
        if (buf[start + i] !== last[i]) {
          same = false;
          break;
        }
      }
      if (same) return this.id;
    }
    this.bytes = Uint8Array.prototype.slice.call(buf, start, end);
    this.id = strings.intern(buf.toString('latin1', start, end));
    return this.id;
  }
}

export class ContainerRecordDecoder {
  private readonly pipelineCache = new StringFieldCache();
  private readonly ownerCache = new StringFieldCache();
  private readonly codes = enumCodes();
  private readonly fields = new CanonicalFields(WIRE_TYPES);
  private readonly row: ContainerRow = {
    containerID: 0,
    state: 0,
    pipeline: 0,
    usedBytes: 0,
    numberOfKeys: 0,
    stateEnterTime: 0,
    owner: 0,
    deleteTransactionId: 0,
    sequenceId: 0,
    replicationType: 0,
    replicationFactor: 0,
  };

  constructor(private readonly strings: StringTable) {}

  /**
   * The row a canonical record holds, or undefined when the record needs the general decoder. The
   * returned object is reused by the next call.
   */
  decode(buf: Buffer): ContainerRow | undefined {
    const row = this.row;
    const fields = this.fields;
    let pipelineStart = -1;
    let pipelineEnd = -1;
    let ownerStart = -1;
    let ownerEnd = -1;
    row.usedBytes = row.numberOfKeys = row.stateEnterTime = row.deleteTransactionId = row.sequenceId = 0;
    row.replicationFactor = this.codes.factor[1] as number; // absent: ONE
    fields.start(buf);
    for (let step = fields.next(); step !== 'end'; step = fields.next()) {
      if (step === 'other') return undefined;
      const value = fields.value;
      switch (fields.field) {
        case 3:
        case 7:
          if (!fields.contentsAreAscii()) return undefined;
          if (fields.field === 3) {
            pipelineStart = fields.pos;
            pipelineEnd = fields.pos + value;
          } else {
            ownerStart = fields.pos;
            ownerEnd = fields.pos + value;
          }
          fields.skipContents();
          break;
        case 1:
          row.containerID = value;
          break;
        case 2:
          if ((row.state = this.codes.state[value] ?? -1) < 0) return undefined;
          break;
        case 4:
          row.usedBytes = value;
          break;
        case 5:
          row.numberOfKeys = value;
          break;
        case 6:
          row.stateEnterTime = value;
          break;
        case 8:
          row.deleteTransactionId = value;
          break;
        case 9:
          row.sequenceId = value;
          break;
        case 10:
          if ((row.replicationFactor = this.codes.factor[value] ?? -1) < 0) return undefined;
          break;
        case 11:
          if ((row.replicationType = this.codes.type[value] ?? -1) < 0) return undefined;
          break;
      }
    }
    const seen = fields.seen;
    if ((seen & REQUIRED_MASK) !== REQUIRED_MASK) return undefined;
    // Strings last: a record that falls back interns nothing.
    row.pipeline = pipelineStart < 0 ? this.strings.intern('') : this.pipelineCache.intern(buf, pipelineStart, pipelineEnd, this.strings);
    row.owner = this.ownerCache.intern(buf, ownerStart, ownerEnd, this.strings);
    return row;
  }
}

/** A `containers` key (8 bytes, big-endian) as a number; undefined when the general reader must judge it. */
export function fastContainerIdFromKey(key: Buffer): number | undefined {
  if (key.length !== 8) return undefined;
  const high = key.readUInt32BE(0);
  if (high > 0x1fffff) return undefined; // beyond 2^53
  return high * 0x100000000 + key.readUInt32BE(4);
}
