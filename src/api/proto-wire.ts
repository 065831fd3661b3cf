// The protobuf wire format, for the few messages of ScmClientProtocol.proto that are written and read
// here without protobufjs (container-response-codec.ts, allocate-request-codec.ts): a forward writer
// into one scratch buffer, a strict reader, and the proto's enum numbers. Both are deliberately
// narrow: a value or an encoding they are not sure of ends in `Decline`, and the caller takes the
// generic (protobufjs) path for that message, so that path keeps deciding every unusual case.
import protobuf from 'protobufjs';
import { protoFile } from './proto-files.js';
import { ScratchWriter } from '../scratch-writer.js';

/** Thrown for a value or encoding the fast path does not handle; the caller falls back. */
export class Decline extends Error {}

/** One instance: declining is control flow, not an error worth a stack trace. */
export const DECLINE = new Decline('declined');

export const WIRE_VARINT = 0;
export const WIRE_BYTES = 2;

/** An enum of the proto: number by name, name by number. */
export interface ProtoEnum {
  /** A Map: the four enums' plain objects differ in shape, and a lookup across them is slow. */
  readonly byName: ReadonlyMap<string, number>;
  readonly byNumber: ReadonlyMap<number, string>;
}

export interface ClientEnums {
  readonly lifeCycleState: ProtoEnum;
  readonly pipelineState: ProtoEnum;
  readonly replicationType: ProtoEnum;
  readonly replicationFactor: ProtoEnum;
}

let enums: ClientEnums | undefined;

/** The enums of ScmClientProtocol.proto, read from the .proto once. */
export function clientEnums(): ClientEnums {
  if (enums === undefined) {
    const root = protobuf.loadSync(protoFile('ScmClientProtocol.proto'));
    const load = (name: string): ProtoEnum => {
      const values = Object.entries(root.lookupEnum(`scm.client.${name}`).values);
      return { byName: new Map(values), byNumber: new Map(values.map(([key, value]) => [value, key])) };
    };
    enums = {
      lifeCycleState: load('LifeCycleState'),
      pipelineState: load('PipelineState'),
      replicationType: load('ReplicationType'),
      replicationFactor: load('ReplicationFactor'),
    };
  }
  return enums;
}

/**
 * The domain values by enum number: those whose wire name (`prefix` + value) the proto defines.
 * Numbers without one (0, UNSPECIFIED, values the domain does not have) are absent.
 */
export function domainByNumber<T extends string>(e: ProtoEnum, domain: readonly T[], prefix = ''): ReadonlyMap<number, T> {
  const out = new Map<number, T>();
  for (const value of domain) {
    const n = e.byName.get(`${prefix}${value}`);
    if (n !== undefined && n !== 0) out.set(n, value);
  }
  return out;
}

/** A UTF-16 surrogate not part of a pair (in a `u` regex a pair is one code point). */
const LONE_SURROGATE = /\p{Cs}/u;

/** A lone surrogate in a string under 40 characters: protobufjs writes it as three bytes of its own, Buffer as U+FFFD. */
const protobufjsWritesOwnWay = (value: string): boolean => value.length < 40 && LONE_SURROGATE.test(value);

/**
 * The client API's fields into the shared scratch writer (src/scratch-writer.ts), from wire-object
 * values: anything the generic serializer would write differently, or that is not the expected
 * type, throws DECLINE.
 */
export class Writer extends ScratchWriter {
  constructor() {
    super(4096);
  }

  override string(field: number, value: unknown): boolean {
    if (typeof value !== 'string' || !super.string(field, value, protobufjsWritesOwnWay)) throw DECLINE;
    return true;
  }

  /**
   * A string of ASCII characters only (any other declines): protobufjs writes a short string's lone
   * surrogates differently from Buffer, and for ASCII every encoder writes the same bytes.
   */
  asciiString(field: number, value: unknown): void {
    if (typeof value !== 'string') throw DECLINE;
    const n = value.length;
    this.tag(field, WIRE_BYTES);
    this.varint(n);
    this.ensure(n);
    const buf = this.buf;
    const start = this.pos;
    for (let i = 0; i < n; i++) {
      const c = value.charCodeAt(i);
      if (c > 127) throw DECLINE;
      buf[start + i] = c;
    }
    this.pos = start + n;
  }

  /** A uint64 the wire object holds as a decimal string (or a number). */
  uint64(field: number, value: unknown): void {
    const n = typeof value === 'string' ? decimal(value) : typeof value === 'number' ? value : Number.NaN;
    if (!Number.isSafeInteger(n) || n < 0) throw DECLINE;
    this.varintField(field, n);
  }

  uint32(field: number, value: unknown): void {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 0xffffffff) throw DECLINE;
    this.varintField(field, value);
  }

  enumValue(field: number, value: unknown, e: ProtoEnum): void {
    const n = typeof value === 'string' ? e.byName.get(value) : undefined;
    if (n === undefined || n < 0) throw DECLINE;
    this.varintField(field, n);
  }
}

/** A decimal string of up to 16 digits as a number (NaN for anything else). */
export function decimal(s: string): number {
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

type SliceableBuffer = Buffer & { utf8Slice?: (start: number, end: number) => string };

/** Buffer's own UTF-8 decoder (what protobufjs' BufferReader calls), without toString's argument checks. */
const utf8Slice: (buf: Buffer, start: number, end: number) => string =
  typeof (Buffer.prototype as SliceableBuffer).utf8Slice === 'function'
    ? (buf, start, end) => (buf as SliceableBuffer & { utf8Slice(start: number, end: number): string }).utf8Slice(start, end)
    : (buf, start, end) => buf.toString('utf8', start, end);

/**
 * Reads the fields of one message strictly: one-byte tags (fields 1 to 15), varints of at most 8
 * bytes holding at most 2^53 - 1, lengths inside the message. Anything else declines; the reader
 * never reads past `end`.
 */
export class Reader {
  buf: Buffer = Buffer.alloc(0);
  pos = 0;
  end = 0;

  reset(buf: Buffer, pos: number, end: number): void {
    this.buf = buf;
    this.pos = pos;
    this.end = end;
  }

  /** The next field's tag (field number << 3 | wire type), one byte. */
  tag(): number {
    if (this.pos >= this.end) throw DECLINE;
    const tag = this.buf[this.pos++] as number;
    if (tag >= 128) throw DECLINE;
    return tag;
  }

  /** A varint up to Number.MAX_SAFE_INTEGER in at most 8 bytes. */
  varint(): number {
    const buf = this.buf;
    const end = this.end;
    let pos = this.pos;
    if (pos >= end) throw DECLINE;
    let b = buf[pos++] as number;
    if (b < 128) {
      this.pos = pos;
      return b;
    }
    let value = b & 127;
    let scale = 128;
    for (let i = 1; i < 8; i++) {
      if (pos >= end) throw DECLINE;
      b = buf[pos++] as number;
      value += (b & 127) * scale;
      if (b < 128) {
        // Rounding is monotonic: a sum beyond 2^53 - 1 never rounds back into range.
        if (value > Number.MAX_SAFE_INTEGER) throw DECLINE;
        this.pos = pos;
        return value;
      }
      scale *= 128;
    }
    throw DECLINE;
  }

  /** A uint32 field's value (protobufjs would truncate a wider one). */
  uint32(): number {
    const v = this.varint();
    if (v > 0xffffffff) throw DECLINE;
    return v;
  }

  /** A length-delimited field's length; the bytes lie inside the message. */
  length(): number {
    const n = this.varint();
    if (n > this.end - this.pos) throw DECLINE;
    return n;
  }

  /** A string field as protobufjs reads it from a Buffer (utf8Slice: the same replacement of bad UTF-8). */
  string(): string {
    const n = this.length();
    const start = this.pos;
    this.pos = start + n;
    return utf8Slice(this.buf, start, start + n);
  }

  /** A string field whose bytes are all printable ASCII (0x21-0x7e), at most `max` long; else declines. */
  printable(max: number): string {
    const n = this.length();
    if (n > max) throw DECLINE;
    const buf = this.buf;
    const start = this.pos;
    const end = start + n;
    for (let i = start; i < end; i++) {
      const c = buf[i] as number;
      if (c < 0x21 || c > 0x7e) throw DECLINE;
    }
    this.pos = end;
    return utf8Slice(buf, start, end);
  }
}
