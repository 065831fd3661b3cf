// A serializer for the client service's most frequent answer, ContainerWithPipeline (AllocateContainer,
// GetContainerWithPipeline), that writes the protobuf bytes straight from the wire object the
// handlers build (client-codec.ts: uint64 fields as decimal strings, enums by name). The generic
// serializer of @grpc/proto-loader goes through protobufjs' fromObject, which parses every uint64
// string into a Long and builds a message object tree first: about 40 µs per answer against a few
// here. It writes the same bytes, field for field (test/api/container-response-codec.test.ts holds
// it to that); anything it does not expect (a missing field, an unknown enum name, a number beyond
// 2^53) makes it return undefined and the caller uses the generic serializer.
import protobuf from 'protobufjs';
import { protoFile } from './proto-files.js';
import type { Wire } from './client-codec.js';

interface EnumMaps {
  readonly lifeCycleState: Readonly<Record<string, number>>;
  readonly pipelineState: Readonly<Record<string, number>>;
  readonly replicationType: Readonly<Record<string, number>>;
  readonly replicationFactor: Readonly<Record<string, number>>;
}

let enums: EnumMaps | undefined;

function enumMaps(): EnumMaps {
  if (enums === undefined) {
    const root = protobuf.loadSync(protoFile('ScmClientProtocol.proto'));
    const values = (name: string): Readonly<Record<string, number>> => root.lookupEnum(`scm.client.${name}`).values;
    enums = {
      lifeCycleState: values('LifeCycleState'),
      pipelineState: values('PipelineState'),
      replicationType: values('ReplicationType'),
      replicationFactor: values('ReplicationFactor'),
    };
  }
  return enums;
}

/** Thrown inside the writer for a value it does not expect; the caller falls back. */
class Unexpected extends Error {}

const WIRE_VARINT = 0;
const WIRE_BYTES = 2;

/** Writes protobuf fields forward into one growing scratch buffer (serialization is synchronous). */
class Writer {
  buf = Buffer.allocUnsafe(4096);
  pos = 0;

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(bigger, 0, 0, this.pos);
    this.buf = bigger;
  }

  /** A non-negative integer up to 2^53 as a varint. */
  varint(v: number): void {
    this.ensure(10);
    const buf = this.buf;
    while (v > 127) {
      buf[this.pos++] = (v & 127) | 128;
      v = Math.floor(v / 128);
    }
    buf[this.pos++] = v;
  }

  tag(field: number, wireType: number): void {
    this.varint((field << 3) | wireType);
  }

  string(field: number, value: unknown): void {
    if (typeof value !== 'string') throw new Unexpected();
    this.tag(field, WIRE_BYTES);
    const n = value.length;
    if (n < 128) {
      // Short ASCII (ids, names, addresses) is copied here; a call into Buffer costs more.
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
    const length = Buffer.byteLength(value, 'utf8');
    this.varint(length);
    this.ensure(length);
    this.pos += this.buf.write(value, this.pos, length, 'utf8');
  }

  /** A uint64 the wire object holds as a decimal string (or a number). */
  uint64(field: number, value: unknown): void {
    const n = typeof value === 'string' ? decimal(value) : typeof value === 'number' ? value : Number.NaN;
    if (!Number.isSafeInteger(n) || n < 0) throw new Unexpected();
    this.tag(field, WIRE_VARINT);
    this.varint(n);
  }

  uint32(field: number, value: unknown): void {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 0xffffffff) throw new Unexpected();
    this.tag(field, WIRE_VARINT);
    this.varint(value);
  }

  enumValue(field: number, value: unknown, names: Readonly<Record<string, number>>): void {
    const n = typeof value === 'string' && Object.hasOwn(names, value) ? names[value] : undefined;
    if (n === undefined || n < 0) throw new Unexpected();
    this.tag(field, WIRE_VARINT);
    this.varint(n);
  }

  /** Starts a length-delimited sub-message; returns where its length goes (see end()). */
  begin(field: number): number {
    this.tag(field, WIRE_BYTES);
    this.ensure(1);
    return this.pos++;
  }

  /** Ends the sub-message begun at `at`: writes its length there, moving the body if it needs more than one byte. */
  end(at: number): void {
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
  }

  take(): Buffer {
    const out = Buffer.allocUnsafe(this.pos);
    this.buf.copy(out, 0, 0, this.pos);
    this.pos = 0;
    return out;
  }
}

const writer = new Writer();

/** A decimal string of up to 16 digits as a number (NaN for anything else). */
function decimal(s: string): number {
  const n = s.length;
  if (n === 0 || n > 16) return Number.NaN;
  let v = 0;
  for (let i = 0; i < n; i++) {
    const d = s.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return Number.NaN;
    v = v * 10 + d;
  }
  return v;
}

function keyCount(o: Wire): number {
  let n = 0;
  for (const _ in o) n++;
  return n;
}

function record(value: unknown): Wire {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Unexpected();
  return value as Wire;
}

function list(value: unknown): readonly unknown[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new Unexpected();
  return value;
}

function containerInfo(w: Writer, field: number, c: Wire, e: EnumMaps): void {
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

function pipeline(w: Writer, field: number, p: Wire, e: EnumMaps): void {
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
    if (keyCount(p) !== 2) throw new Unexpected();
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
    const e = enumMaps();
    writer.pos = 0;
    containerInfo(writer, 1, container, e);
    pipeline(writer, 2, pipe, e);
    for (const d of datanodes) {
      const dn = record(d);
      if (keyCount(dn) !== DATANODE_FIELDS) throw new Unexpected();
      datanode(writer, 3, dn);
    }
    return writer.take();
  } catch (err) {
    writer.pos = 0;
    if (err instanceof Unexpected) return undefined;
    throw err;
  }
}
