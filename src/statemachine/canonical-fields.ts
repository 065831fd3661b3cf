// The one loop the load decoders (container-decoder.ts, retry-record-decoder.ts) share: it steps
// through a protobuf record in its canonical form only — field numbers 1..15, each field at most
// once and with the wire type its schema gives, varints of at most 8 bytes holding safe integers,
// length-delimited fields inside the record. Anything else stops it, and the caller falls back to
// the general protobufjs decoder. One reused cursor, no allocation per field (the load path).
export const VARINT = 0;
export const LENGTH_DELIMITED = 2;

export class CanonicalFields {
  private buf: Uint8Array = new Uint8Array(0);
  private end = 0;
  /** Bytes read so far; after a length-delimited field, the first byte of its contents. */
  pos = 0;
  /** One bit per field number read. */
  seen = 0;
  /** The field just read. */
  field = 0;
  /** Its varint value, or the length of its contents when length-delimited. */
  value = 0;

  /** `wireTypes[n]` is field n's wire type (-1 or absent: not a field of the record). */
  constructor(private readonly wireTypes: readonly number[]) {}

  start(buf: Uint8Array, start = 0, end = buf.length): void {
    this.buf = buf;
    this.pos = start;
    this.end = end;
    this.seen = 0;
  }

  /**
   * Reads the next field: 'field' (field and value set; a length-delimited field's contents are
   * at pos..pos+value and skipped by skipContents), 'end' at the record's end, or 'other' when the
   * record is not in the canonical form.
   */
  next(): 'field' | 'end' | 'other' {
    const buf = this.buf;
    const end = this.end;
    if (this.pos >= end) return 'end';
    const tag = buf[this.pos++] as number;
    const field = tag >>> 3;
    if (tag >= 0x80 || field === 0 || field >= this.wireTypes.length || this.wireTypes[field] !== (tag & 7)) return 'other';
    const bit = 1 << field;
    if ((this.seen & bit) !== 0) return 'other';
    this.seen |= bit;
    // A varint of at most 8 bytes (< 2^56), read without 32-bit truncation.
    let value = 0;
    let scale = 1;
    for (let n = 0; ; n++) {
      if (n === 8 || this.pos >= end) return 'other';
      const b = buf[this.pos++] as number;
      value += (b & 0x7f) * scale;
      scale *= 128;
      if (b < 0x80) break;
    }
    if (value > Number.MAX_SAFE_INTEGER) return 'other';
    if (this.wireTypes[field] === LENGTH_DELIMITED && this.pos + value > end) return 'other';
    this.field = field;
    this.value = value;
    return 'field';
  }

  /** Whether the contents of the length-delimited field just read are all ASCII. */
  contentsAreAscii(): boolean {
    for (let i = this.pos; i < this.pos + this.value; i++) if ((this.buf[i] as number) >= 0x80) return false;
    return true;
  }

  /** Moves past the contents of the length-delimited field just read. */
  skipContents(): void {
    this.pos += this.value;
  }
}
