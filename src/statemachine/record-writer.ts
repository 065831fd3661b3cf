// Writing the records every allocation stores, ContainerRecord and RetryCacheRecord (with a
// container or an error outcome), straight into bytes: every replica encodes both for every entry
// it applies, and protobufjs' create + encode (a message object, a writer's list of operations, a
// LongBits per 64-bit field) cost a large share of applying one. The bytes are protobufjs' own,
// field for field: every field written (records.ts sets them all), in field-number order, varints
// for integers and enums, strings as UTF-8 (test/statemachine/record-writer.test.ts compares the two
// on generated records). It handles non-negative safe integers and strings without UTF-16
// surrogates (for a lone surrogate protobufjs' writer and Node's differ); for anything else it
// returns undefined and the caller encodes through protobufjs (records.ts).
import { LIFE_CYCLE_STATES, REPLICATION_FACTORS, REPLICATION_TYPES, type ContainerInfo } from './model.js';
import { enumNumber } from './proto.js';
import type { CommandOutcome, RetryCacheRecord } from './records.js';

const VARINT = 0;
const LENGTH_DELIMITED = 2;

/** Thrown inside the writer for a value it does not handle; the caller falls back to protobufjs. */
class Unsupported extends Error {}
const UNSUPPORTED = new Unsupported('a value the record writer does not handle');

/** Enum numbers by our names, read once from the .proto (enumNumber) into plain maps. */
interface EnumNumbers {
  readonly state: ReadonlyMap<string, number>;
  readonly type: ReadonlyMap<string, number>;
  readonly factor: ReadonlyMap<string, number>;
}
let enumNumbers: EnumNumbers | undefined;

function numbers(): EnumNumbers {
  enumNumbers ??= {
    state: new Map(LIFE_CYCLE_STATES.map((s) => [s, enumNumber('LifeCycleState', s)])),
    type: new Map(REPLICATION_TYPES.map((t) => [t, enumNumber('ReplicationType', t)])),
    factor: new Map(REPLICATION_FACTORS.map((f) => [f, enumNumber('ReplicationFactor', f)])),
  };
  return enumNumbers;
}

/** Protobuf fields written forward into one reused scratch buffer (apply is synchronous). */
class Writer {
  buf = Buffer.allocUnsafe(1024);
  pos = 0;

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(bigger, 0, 0, this.pos);
    this.buf = bigger;
  }

  /** A non-negative safe integer as a varint. */
  varint(v: number): void {
    this.ensure(8);
    const buf = this.buf;
    let pos = this.pos;
    while (v > 127) {
      buf[pos++] = (v & 127) | 128;
      v = Math.floor(v / 128);
    }
    buf[pos++] = v;
    this.pos = pos;
  }

  /** A uint64/int64/enum field holding a non-negative safe integer. */
  uint(field: number, v: number): void {
    if (!Number.isSafeInteger(v) || v < 0) throw UNSUPPORTED;
    this.varint((field << 3) | VARINT);
    this.varint(v);
  }

  enumValue(field: number, name: string, values: ReadonlyMap<string, number>): void {
    const n = values.get(name);
    if (n === undefined) throw UNSUPPORTED;
    this.uint(field, n);
  }

  string(field: number, value: string): void {
    this.varint((field << 3) | LENGTH_DELIMITED);
    const n = value.length;
    if (n < 128) {
      // Short ASCII (ids, owners) is copied here; a call into Buffer costs more.
      this.ensure(n + 1);
      const buf = this.buf;
      const start = this.pos;
      buf[start] = n;
      let i = 0;
      for (; i < n; i++) {
        const c = value.charCodeAt(i);
        if (c > 127) break;
        buf[start + 1 + i] = c;
      }
      if (i === n) {
        this.pos = start + 1 + n;
        return;
      }
    }
    for (let i = 0; i < n; i++) {
      const c = value.charCodeAt(i);
      if (c >= 0xd800 && c <= 0xdfff) throw UNSUPPORTED;
    }
    const length = Buffer.byteLength(value, 'utf8');
    this.varint(length);
    this.ensure(length);
    this.pos += this.buf.write(value, this.pos, length, 'utf8');
  }

  bytes(field: number, src: Uint8Array): void {
    this.varint((field << 3) | LENGTH_DELIMITED);
    this.varint(src.length);
    this.ensure(src.length);
    this.buf.set(src, this.pos);
    this.pos += src.length;
  }

  /** Starts a length-delimited sub-message; returns where its length goes (see end()). */
  begin(field: number): number {
    this.varint((field << 3) | LENGTH_DELIMITED);
    this.ensure(1);
    return this.pos++;
  }

  /** Ends the sub-message begun at `at`, writing its length there; returns where its contents start. */
  end(at: number): number {
    const length = this.pos - at - 1;
    let lengthBytes = 1;
    for (let v = length; v > 127; v = Math.floor(v / 128)) lengthBytes++;
    if (lengthBytes > 1) {
      this.ensure(lengthBytes - 1);
      this.buf.copyWithin(at + lengthBytes, at + 1, this.pos);
      this.pos += lengthBytes - 1;
    }
    const end = this.pos;
    this.pos = at;
    this.varint(length);
    this.pos = end;
    return at + lengthBytes;
  }

  /** The bytes written since `start`, copied out; the scratch is reset. */
  take(start = 0): Buffer {
    const out = Buffer.allocUnsafe(this.pos - start);
    this.buf.copy(out, 0, start, this.pos);
    this.pos = 0;
    return out;
  }
}

const writer = new Writer();

/** ContainerRecord's fields (proto/scm_commands.proto; Ozone's ContainerInfoProto numbers). */
function writeContainer(w: Writer, c: ContainerInfo): void {
  const e = numbers();
  w.uint(1, c.containerID);
  w.enumValue(2, c.state, e.state);
  w.string(3, c.pipelineID);
  w.uint(4, c.usedBytes);
  w.uint(5, c.numberOfKeys);
  w.uint(6, c.stateEnterTime);
  w.string(7, c.owner);
  w.uint(8, c.deleteTransactionId);
  w.uint(9, c.sequenceId);
  w.enumValue(10, c.replicationFactor, e.factor);
  w.enumValue(11, c.replicationType, e.type);
}

/** A ContainerRecord's bytes, or undefined for a value it does not handle (encode through protobufjs). */
export function writeContainerRecord(c: ContainerInfo): Buffer | undefined {
  try {
    writeContainer(writer, c);
    return writer.take();
  } catch (err) {
    writer.pos = 0;
    if (err === UNSUPPORTED) return undefined;
    throw err;
  }
}

/** A RetryCacheRecord's bytes and where its CommandResult lies in them. */
export interface WrittenRetryRecord {
  readonly bytes: Buffer;
  readonly resultStart: number;
  readonly resultEnd: number;
}

/**
 * A RetryCacheRecord's bytes for a container or error outcome, or undefined for any other outcome
 * or a value it does not handle (encode through protobufjs). `containerBytes`, when given, are the
 * container's ContainerRecord bytes already written for its table (the same bytes either way).
 */
export function writeRetryRecord(r: RetryCacheRecord, containerBytes?: Uint8Array): WrittenRetryRecord | undefined {
  const w = writer;
  try {
    w.string(1, r.clientId);
    w.uint(2, r.callId);
    w.uint(3, r.recordedAt);
    const result = w.begin(4);
    if (!writeOutcome(w, r.outcome, containerBytes)) {
      w.pos = 0;
      return undefined;
    }
    const resultStart = w.end(result);
    const resultEnd = w.pos;
    w.uint(5, r.logIndex);
    return { bytes: w.take(), resultStart, resultEnd };
  } catch (err) {
    w.pos = 0;
    if (err === UNSUPPORTED) return undefined;
    throw err;
  }
}

/** CommandResult's fields for a container (1) or error (4) outcome; false for any other. */
function writeOutcome(w: Writer, outcome: CommandOutcome, containerBytes: Uint8Array | undefined): boolean {
  if (!outcome.ok) {
    const at = w.begin(4);
    w.string(1, outcome.error.code);
    w.string(2, outcome.error.message);
    w.end(at);
    return true;
  }
  if (outcome.value.kind !== 'container') return false;
  if (containerBytes !== undefined) {
    w.bytes(1, containerBytes);
  } else {
    const at = w.begin(1);
    writeContainer(w, outcome.value.container);
    w.end(at);
  }
  return true;
}
