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
import { ScratchWriter } from '../scratch-writer.js';

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

/** Any UTF-16 surrogate: for a lone one protobufjs' writer and Buffer differ, so none is written here. */
function hasSurrogate(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdfff) return true;
  }
  return false;
}

/** The records' fields into the shared scratch writer (src/scratch-writer.ts; apply is synchronous). */
class Writer extends ScratchWriter {
  constructor() {
    super(1024);
  }

  /** A uint64/int64/enum field holding a non-negative safe integer. */
  uint(field: number, v: number): void {
    if (!Number.isSafeInteger(v) || v < 0) throw UNSUPPORTED;
    this.varintField(field, v);
  }

  enumValue(field: number, name: string, values: ReadonlyMap<string, number>): void {
    const n = values.get(name);
    if (n === undefined) throw UNSUPPORTED;
    this.uint(field, n);
  }

  override string(field: number, value: string): boolean {
    if (!super.string(field, value, hasSurrogate)) throw UNSUPPORTED;
    return true;
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
