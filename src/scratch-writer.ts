// Protobuf fields written forward into one reused, growing scratch buffer: the mechanics the
// hand-written serializers share (src/api/proto-wire.ts for the client API's hot messages,
// src/statemachine/record-writer.ts for the records apply stores). What each accepts, and how it
// declines a value it does not handle, stays with it; this writes what it is given.
const WIRE_VARINT = 0;
const WIRE_LENGTH_DELIMITED = 2;

export class ScratchWriter {
  buf: Buffer;
  pos = 0;

  constructor(initialBytes: number) {
    this.buf = Buffer.allocUnsafe(initialBytes);
  }

  protected ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(bigger, 0, 0, this.pos);
    this.buf = bigger;
  }

  /** A non-negative integer up to 2^53 (the caller checks) as a varint. */
  varint(v: number): void {
    this.ensure(10);
    const buf = this.buf;
    let pos = this.pos;
    while (v > 127) {
      buf[pos++] = (v & 127) | 128;
      v = Math.floor(v / 128);
    }
    buf[pos++] = v;
    this.pos = pos;
  }

  tag(field: number, wireType: number): void {
    this.varint((field << 3) | wireType);
  }

  /** A varint field (uint64, int64 or enum) holding a non-negative safe integer the caller checked. */
  varintField(field: number, v: number): void {
    this.tag(field, WIRE_VARINT);
    this.varint(v);
  }

  /**
   * A string field as UTF-8. Short ASCII (ids, names, addresses) is copied here, a call into Buffer
   * costing more; any other string is written by Buffer unless `refuse` says no, and then nothing
   * is written and the answer is false (the caller's encoder writes some strings differently).
   */
  string(field: number, value: string, refuse: (value: string) => boolean): boolean {
    const n = value.length;
    if (n < 128) {
      const at = this.pos;
      this.tag(field, WIRE_LENGTH_DELIMITED);
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
        return true;
      }
      this.pos = at;
    }
    if (refuse(value)) return false;
    this.tag(field, WIRE_LENGTH_DELIMITED);
    const length = Buffer.byteLength(value, 'utf8');
    this.varint(length);
    this.ensure(length);
    this.pos += this.buf.write(value, this.pos, length, 'utf8');
    return true;
  }

  /** A bytes field. */
  bytes(field: number, src: Uint8Array): void {
    this.tag(field, WIRE_LENGTH_DELIMITED);
    this.varint(src.length);
    this.ensure(src.length);
    this.buf.set(src, this.pos);
    this.pos += src.length;
  }

  /** Starts a length-delimited sub-message; returns where its length goes (see end()). */
  begin(field: number): number {
    this.tag(field, WIRE_LENGTH_DELIMITED);
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
    // TypedArray.set costs less than a call into Buffer.copy for messages this size.
    out.set(this.buf.subarray(start, this.pos));
    this.pos = 0;
    return out;
  }
}
