// Minimal protobuf wire-format primitives: varints for JS safe integers, length-delimited fields,
// and skipping unknown fields. Hand-written because LogEntryProto is tiny and on the hot path.

export const WIRE_VARINT = 0;
export const WIRE_FIXED64 = 1;
export const WIRE_LENGTH_DELIMITED = 2;
export const WIRE_FIXED32 = 5;

/** Bytes needed to encode `value` (a non-negative safe integer) as a varint. */
export function varintSize(value: number): number {
  if (value < 0x80) return 1;
  if (value < 0x4000) return 2;
  if (value < 0x200000) return 3;
  if (value < 0x10000000) return 4;
  let size = 4;
  let rest = Math.floor(value / 0x10000000);
  while (rest > 0) {
    size++;
    rest = Math.floor(rest / 0x80);
  }
  return size;
}

/** Writes protobuf fields into a buffer that the caller sized exactly with the *Size helpers. */
export class ProtoWriter {
  pos: number;
  constructor(readonly buf: Uint8Array, start = 0) {
    this.pos = start;
  }

  varint(value: number): void {
    const buf = this.buf;
    let v = value;
    // Above 2^31 bitwise operators would truncate, so divide instead.
    while (v >= 0x80000000) {
      buf[this.pos++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    while (v >= 0x80) {
      buf[this.pos++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    buf[this.pos++] = v;
  }

  tag(field: number, wireType: number): void {
    this.varint(field * 8 + wireType);
  }

  bytes(data: Uint8Array): void {
    this.varint(data.length);
    this.buf.set(data, this.pos);
    this.pos += data.length;
  }

  utf8(text: string, byteLength: number): void {
    this.varint(byteLength);
    const written = Buffer.from(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength).write(text, this.pos, 'utf8');
    if (written !== byteLength) throw new Error(`utf8 length mismatch writing ${JSON.stringify(text)}`);
    this.pos += written;
  }
}

/** Reads protobuf fields from `buf[start, end)`; every overrun is reported with the offset. */
export class ProtoReader {
  pos: number;
  constructor(
    readonly buf: Uint8Array,
    start: number,
    readonly end: number,
    private readonly what: string,
  ) {
    this.pos = start;
  }

  get done(): boolean {
    return this.pos >= this.end;
  }

  fail(message: string): never {
    throw new Error(`malformed ${this.what} at byte ${this.pos}: ${message}`);
  }

  varint(): number {
    let result = 0;
    let multiplier = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) this.fail('varint runs past the end');
      const b = this.buf[this.pos++]!;
      result += (b & 0x7f) * multiplier;
      if ((b & 0x80) === 0) {
        if (!Number.isSafeInteger(result)) this.fail(`varint ${result} exceeds the safe integer range`);
        return result;
      }
      multiplier *= 0x80;
    }
    return this.fail('varint longer than 10 bytes');
  }

  /** Returns the [start, end) of a length-delimited field's body and moves past it. */
  delimited(): [number, number] {
    const length = this.varint();
    const start = this.pos;
    if (length > this.end - start) this.fail(`length ${length} runs past the end of the message`);
    this.pos = start + length;
    return [start, this.pos];
  }

  skip(wireType: number): void {
    switch (wireType) {
      case WIRE_VARINT:
        this.varint();
        return;
      case WIRE_FIXED64:
        this.advance(8);
        return;
      case WIRE_LENGTH_DELIMITED:
        this.delimited();
        return;
      case WIRE_FIXED32:
        this.advance(4);
        return;
      default:
        this.fail(`unsupported wire type ${wireType}`);
    }
  }

  private advance(n: number): void {
    if (this.end - this.pos < n) this.fail(`fixed field runs past the end`);
    this.pos += n;
  }
}
