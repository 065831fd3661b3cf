// Reads a LevelDB MANIFEST: which table files the DB's current version holds, which logs it still
// needs, and the next file number it will hand out. A checkpoint made of links (leveldb-files.ts)
// must link exactly those tables: a linked file the copy's LevelDB would later create under the
// same number is opened with O_TRUNC, which would overwrite the live DB's file through the link.
// Also checks the framing of write-ahead logs, which share the MANIFEST's block format.
//
// Format (LevelDB doc/log_format.md and db/version_edit.cc):
// - The file is 32 KiB blocks of records: masked CRC32C of type + data (4 bytes LE), data length
//   (2 bytes LE), type (FULL 1, FIRST 2, MIDDLE 3, LAST 4); a block tail under 7 bytes is zero
//   padding. A logical record is a FULL, or a FIRST, MIDDLEs and a LAST.
// - Each logical record is a VersionEdit: tagged fields, varint32 tags. Edits apply in order, and
//   within an edit the deletions apply before the additions (a file moved a level is both).
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { crc32c } from '../crc32c.js';

const BLOCK_SIZE = 32 * 1024;
const HEADER_SIZE = 7;
const CRC_MASK_DELTA = 0xa282ead8;

const enum RecordType {
  Zero = 0,
  Full = 1,
  First = 2,
  Middle = 3,
  Last = 4,
}

const enum Tag {
  Comparator = 1,
  LogNumber = 2,
  NextFileNumber = 3,
  LastSequence = 4,
  CompactPointer = 5,
  DeletedFile = 6,
  NewFile = 7,
  PrevLogNumber = 9,
}

export interface ManifestState {
  /** Numbers of the table files of the current version, across all levels. */
  readonly liveTables: ReadonlySet<number>;
  /** Logs numbered at least this hold writes not yet in a table. */
  readonly logNumber: number;
  /** A log still needed from before `logNumber` (0 if none). */
  readonly prevLogNumber: number;
  readonly nextFileNumber: number;
  readonly edits: number;
}

export class LevelDbFormatError extends Error {
  override readonly name = 'LevelDbFormatError';
}

/**
 * Checks the framing and checksums of a write-ahead log (`<n>.log`, the same block format as the
 * MANIFEST) and returns how many whole records it holds. The log may still be growing: a record
 * cut short at the end is not an error. LevelDB's own recovery, with the paranoid checks that
 * classic-level leaves off, would skip a damaged record and go on, and a copy would then silently
 * miss a write in the middle of its history; this finds it first.
 */
export async function countLogRecords(bytes: Uint8Array, name: string): Promise<number> {
  let records = 0;
  const reader = logicalRecords(bytes, name);
  while (reader.next().done !== true) {
    records++;
    if (records % 4096 === 0) await yieldToEventLoop();
  }
  return records;
}

/** Edits replayed between yields to the event loop: a MANIFEST that has grown for months can hold
 *  hundreds of thousands, and the Raft loop of the same process must keep its heartbeats. */
const EDITS_PER_TURN = 2_000;

/**
 * Replays the edits in `bytes` (a MANIFEST, possibly cut short by a concurrent append: a record
 * that runs past the end is ignored, as LevelDB's own reader does).
 */
export async function readManifest(bytes: Uint8Array, name = 'MANIFEST'): Promise<ManifestState> {
  // Keyed by number * 8 + level (LevelDB has 7 levels): a file moved a level is deleted at one
  // and added at the other.
  const files = new Map<number, number>();
  let logNumber: number | undefined;
  let prevLogNumber = 0;
  let nextFileNumber: number | undefined;
  let edits = 0;
  for (const record of logicalRecords(bytes, name)) {
    const edit = decodeEdit(record.data, `${name} record at byte ${record.offset}`);
    for (const key of edit.deleted) files.delete(key);
    for (const [key, number] of edit.added) files.set(key, number);
    if (edit.logNumber !== undefined) logNumber = edit.logNumber;
    if (edit.prevLogNumber !== undefined) prevLogNumber = edit.prevLogNumber;
    if (edit.nextFileNumber !== undefined) nextFileNumber = edit.nextFileNumber;
    edits++;
    if (edits % EDITS_PER_TURN === 0) await yieldToEventLoop();
  }
  if (edits === 0) throw new LevelDbFormatError(`${name} holds no complete version edit`);
  if (logNumber === undefined || nextFileNumber === undefined) throw new LevelDbFormatError(`${name} never sets ${logNumber === undefined ? 'the log number' : 'the next file number'}`);
  const liveTables = new Set(files.values());
  for (const n of liveTables) {
    if (n >= nextFileNumber) throw new LevelDbFormatError(`${name} lists table ${n}, not below its next file number ${nextFileNumber}`);
  }
  return { liveTables, logNumber, prevLogNumber, nextFileNumber, edits };
}

interface LogicalRecord {
  readonly offset: number;
  readonly data: Uint8Array;
}

function* logicalRecords(bytes: Uint8Array, name: string): Generator<LogicalRecord> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = 0;
  let fragments: Uint8Array[] | undefined;
  let fragmentStart = 0;
  while (pos < bytes.length) {
    const leftInBlock = BLOCK_SIZE - (pos % BLOCK_SIZE);
    if (leftInBlock < HEADER_SIZE) {
      pos += leftInBlock; // trailer padding
      continue;
    }
    if (pos + HEADER_SIZE > bytes.length) return; // header cut short by a concurrent append
    const storedCrc = view.getUint32(pos, true);
    const length = view.getUint16(pos + 4, true);
    const type = bytes[pos + 6] as number;
    if (type === RecordType.Zero && length === 0) {
      // Zeros where the writer preallocated or padded: nothing more in this block.
      pos += leftInBlock;
      continue;
    }
    if (HEADER_SIZE + length > leftInBlock) throw new LevelDbFormatError(`${name}: record at byte ${pos} is ${length} bytes, longer than its block`);
    if (pos + HEADER_SIZE + length > bytes.length) return; // data cut short by a concurrent append
    const data = bytes.subarray(pos + HEADER_SIZE, pos + HEADER_SIZE + length);
    const actual = crc32c(data, crc32c(bytes, 0, pos + 6, pos + 7));
    if (unmask(storedCrc) !== actual) throw new LevelDbFormatError(`${name}: checksum mismatch in the record at byte ${pos}`);
    const offset = pos;
    pos += HEADER_SIZE + length;
    switch (type) {
      case RecordType.Full:
        if (fragments !== undefined) throw new LevelDbFormatError(`${name}: record at byte ${offset} starts inside a fragmented record`);
        yield { offset, data };
        break;
      case RecordType.First:
        if (fragments !== undefined) throw new LevelDbFormatError(`${name}: record at byte ${offset} starts inside a fragmented record`);
        fragments = [data];
        fragmentStart = offset;
        break;
      case RecordType.Middle:
      case RecordType.Last:
        if (fragments === undefined) throw new LevelDbFormatError(`${name}: fragment at byte ${offset} has no first part`);
        fragments.push(data);
        if (type === RecordType.Last) {
          yield { offset: fragmentStart, data: Buffer.concat(fragments) };
          fragments = undefined;
        }
        break;
      default:
        throw new LevelDbFormatError(`${name}: unknown record type ${type} at byte ${offset}`);
    }
  }
}

function unmask(masked: number): number {
  const rot = (masked - CRC_MASK_DELTA) >>> 0;
  return ((rot >>> 17) | (rot << 15)) >>> 0;
}

interface Edit {
  readonly deleted: number[];
  readonly added: Array<[number, number]>;
  logNumber?: number;
  prevLogNumber?: number;
  nextFileNumber?: number;
}

function decodeEdit(data: Uint8Array, where: string): Edit {
  const reader = new FieldReader(data, where);
  const edit: Edit = { deleted: [], added: [] };
  while (!reader.done) {
    const tag = reader.varint();
    switch (tag) {
      case Tag.Comparator:
        reader.lengthPrefixed();
        break;
      case Tag.LogNumber:
        edit.logNumber = reader.varint();
        break;
      case Tag.PrevLogNumber:
        edit.prevLogNumber = reader.varint();
        break;
      case Tag.NextFileNumber:
        edit.nextFileNumber = reader.varint();
        break;
      case Tag.LastSequence:
        reader.varint();
        break;
      case Tag.CompactPointer:
        reader.varint();
        reader.lengthPrefixed();
        break;
      case Tag.DeletedFile: {
        const level = reader.level();
        edit.deleted.push(reader.varint() * 8 + level);
        break;
      }
      case Tag.NewFile: {
        const level = reader.level();
        const number = reader.varint();
        reader.varint(); // file size
        reader.lengthPrefixed(); // smallest key
        reader.lengthPrefixed(); // largest key
        edit.added.push([number * 8 + level, number]);
        break;
      }
      default:
        throw new LevelDbFormatError(`${where}: unknown version edit tag ${tag}`);
    }
  }
  return edit;
}

class FieldReader {
  private pos = 0;
  constructor(
    private readonly data: Uint8Array,
    private readonly where: string,
  ) {}

  get done(): boolean {
    return this.pos >= this.data.length;
  }

  /** A varint of up to 64 bits; file numbers and sizes stay far below 2^50. */
  varint(): number {
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.data.length) throw new LevelDbFormatError(`${this.where}: varint runs past the end of the edit`);
      const byte = this.data[this.pos++] as number;
      result += (byte & 0x7f) * scale;
      if ((byte & 0x80) === 0) {
        if (result >= 2 ** 50) throw new LevelDbFormatError(`${this.where}: varint ${result} is beyond 2^50`);
        return result;
      }
      scale *= 128;
    }
    throw new LevelDbFormatError(`${this.where}: varint longer than 10 bytes`);
  }

  /** A level number: LevelDB has 7 (0-6). */
  level(): number {
    const level = this.varint();
    if (level > 6) throw new LevelDbFormatError(`${this.where}: level ${level} is beyond LevelDB's 7 levels`);
    return level;
  }

  lengthPrefixed(): Uint8Array {
    const length = this.varint();
    if (this.pos + length > this.data.length) throw new LevelDbFormatError(`${this.where}: a ${length}-byte field runs past the end of the edit`);
    const out = this.data.subarray(this.pos, this.pos + length);
    this.pos += length;
    return out;
  }
}
