// The Ratis segment file format: an 8-byte "RaftLog1" header, then frames of
//   varint32 length n | n bytes of LogEntryProto | CRC32C(varint + proto), 4 bytes big-endian.
// A zero byte where a frame would start ends the data (the rest is preallocation padding).

import { crc32c } from '../crc32c.js';
import { encodedEntrySize, encodeLogEntryInto, decodeLogEntry } from './log-entry-codec.js';
import type { LogEntry } from '../log-entry.js';
import { ProtoReader, ProtoWriter, varintSize, WIRE_LENGTH_DELIMITED, WIRE_VARINT } from './protobuf-wire.js';
import { FrameIndex } from './frame-index.js';

export const SEGMENT_HEADER = Buffer.from('RaftLog1', 'ascii');
export const SEGMENT_HEADER_SIZE = SEGMENT_HEADER.length;
const CRC_SIZE = 4;
const MAX_VARINT32_BYTES = 5;
/** Ratis reads the length as an int32; a frame body can never be larger than this. */
export const MAX_ENTRY_BYTES = 0x7fffffff;

/** Encodes one entry as a complete frame (length, LogEntryProto, CRC32C). */
export function encodeFrame(entry: LogEntry): Buffer {
  const size = encodedEntrySize(entry);
  if (size > MAX_ENTRY_BYTES) throw new RangeError(`entry ${entry.index} is ${size} bytes, above the int32 frame limit`);
  const lengthBytes = varintSize(size);
  const frame = Buffer.allocUnsafe(lengthBytes + size + CRC_SIZE);
  const w = new ProtoWriter(frame);
  w.varint(size);
  const end = encodeLogEntryInto(entry, frame, lengthBytes, size);
  frame.writeUInt32BE(crc32c(frame, 0, 0, end), end);
  return frame;
}

/** Where a frame sits in its segment, and what it holds (term and index only). */
export interface FrameInfo {
  readonly offset: number;
  readonly size: number;
  readonly term: number;
  readonly index: number;
}

/**
 * Checks a frame read back from disk and decodes it. `what` names its location for the error
 * (file and byte offset): a mismatch is corruption and must never be returned as data.
 */
export function decodeFrame(frame: Uint8Array, what: string): LogEntry {
  const r = new ProtoReader(frame, 0, frame.length, `frame at ${what}`);
  const length = r.varint();
  const bodyStart = r.pos;
  if (bodyStart + length + CRC_SIZE !== frame.length) {
    throw new Error(`corrupt log entry at ${what}: frame length ${length} does not match the indexed size ${frame.length}`);
  }
  const stored = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength).readUInt32BE(bodyStart + length);
  const actual = crc32c(frame, 0, 0, bodyStart + length);
  if (stored !== actual) {
    throw new Error(`corrupt log entry at ${what}: CRC32C mismatch (stored ${hex(stored)}, computed ${hex(actual)})`);
  }
  return decodeLogEntry(frame, bodyStart, bodyStart + length);
}

function hex(n: number): string {
  return '0x' + n.toString(16).padStart(8, '0');
}

/** How the scan of a segment's bytes ended. */
export type ScanEnd =
  /** At EOF, or at zero padding that runs to EOF. */
  | { readonly kind: 'clean' }
  /**
   * An incomplete frame, as an interrupted (never acknowledged) append leaves it. `dataAt`: the
   * frame position holds a zero but non-zero bytes follow at that offset (a hole, then data).
   */
  | { readonly kind: 'torn'; readonly offset: number; readonly reason: string; readonly dataAt?: number }
  /** Bytes that cannot be the result of an interrupted append: a CRC or structure mismatch. */
  | { readonly kind: 'corrupt'; readonly offset: number; readonly reason: string };

export interface SegmentScan {
  readonly frames: FrameInfo[];
  /** Byte offset just past the last good frame. */
  readonly validEnd: number;
  readonly end: ScanEnd;
}

/**
 * The index of each frame a scan found, as runs: each run starts at a frame position with some
 * index and goes on by one per frame. A well-formed segment is one run; a second run marks the
 * first frame whose index does not follow its predecessor's.
 */
export class IndexRuns {
  private readonly starts: number[] = [];
  private readonly firsts: number[] = [];
  private count = 0;

  get length(): number {
    return this.count;
  }

  push(index: number): void {
    const k = this.starts.length - 1;
    if (k < 0 || this.firsts[k]! + (this.count - this.starts[k]!) !== index) {
      this.starts.push(this.count);
      this.firsts.push(index);
    }
    this.count++;
  }

  at(position: number): number {
    if (!Number.isInteger(position) || position < 0 || position >= this.count) throw new RangeError(`frame ${position} outside [0, ${this.count})`);
    let k = this.starts.length - 1;
    while (this.starts[k]! > position) k--;
    return this.firsts[k]! + (position - this.starts[k]!);
  }

  /** The first position whose index is not `firstIndex + position`, or -1. */
  firstMismatch(firstIndex: number): number {
    if (this.count === 0) return -1;
    if (this.firsts[0] !== firstIndex) return 0;
    return this.starts.length > 1 ? this.starts[1]! : -1;
  }
}

/** A scan without an object per frame: what recovery keeps (the log adopts `frames`). */
export interface CompactSegmentScan {
  readonly frames: FrameIndex;
  readonly indexes: IndexRuns;
  /** Byte offset just past the last good frame. */
  readonly validEnd: number;
  readonly end: ScanEnd;
}

function allZero(bytes: Uint8Array, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (bytes[i] !== 0) return false;
  return true;
}

/**
 * A write into preallocated space that only partly reached the disk leaves a prefix of the frame
 * followed by zeros up to EOF. If the zeros cover the whole CRC, nothing more can be checked; if
 * they cover only its tail, the CRC bytes that did land must match the computed CRC. A flipped bit
 * in a complete frame fails that test.
 */
function isTornIntoPadding(bytes: Uint8Array, bodyEnd: number, stored: number, actual: number): boolean {
  const frameEnd = bodyEnd + CRC_SIZE;
  if (!allZero(bytes, frameEnd, bytes.length)) return false;
  let zeroTail = 0;
  while (zeroTail < CRC_SIZE && bytes[frameEnd - 1 - zeroTail] === 0) zeroTail++;
  if (zeroTail === 0) return false;
  if (zeroTail === CRC_SIZE) return true;
  const keptBits = (CRC_SIZE - zeroTail) * 8;
  return stored >>> (32 - keptBits) === actual >>> (32 - keptBits);
}

/**
 * Term and index of a LogEntryProto, and whether it holds a configuration: as decodeLogEntry
 * decides it, the last of stateMachineLogEntry (3), configurationEntry (4) and metadataEntry (5)
 * written as a length-delimited field is the payload.
 */
function readTermAndIndex(bytes: Uint8Array, start: number, end: number): { term: number; index: number; configuration: boolean } {
  const r = new ProtoReader(bytes, start, end, 'LogEntryProto');
  let term = 0;
  let index = 0;
  let payloadField = 0;
  while (!r.done) {
    const tag = r.varint();
    const field = Math.floor(tag / 8);
    const wire = tag & 7;
    if (field === 1 && wire === WIRE_VARINT) term = r.varint();
    else if (field === 2 && wire === WIRE_VARINT) index = r.varint();
    else {
      if (field >= 3 && field <= 5 && wire === WIRE_LENGTH_DELIMITED) payloadField = field;
      r.skip(wire);
    }
  }
  return { term, index, configuration: payloadField === 4 };
}

/**
 * Scans the frames of a whole segment file (header included). Decides nothing about repair: the
 * caller knows whether the segment is the open one, where a torn tail is expected after a crash.
 */
export function scanSegment(bytes: Uint8Array): SegmentScan {
  const scan = scanFrames(bytes, SEGMENT_HEADER_SIZE);
  const frames: FrameInfo[] = [];
  for (let i = 0; i < scan.frames.length; i++) {
    frames.push({ offset: scan.frames.offsetAt(i), size: scan.frames.sizeAt(i), term: scan.frames.termAt(i), index: scan.indexes.at(i) });
  }
  return { frames, validEnd: scan.validEnd, end: scan.end };
}

/** scanSegment from byte offset `start` (a frame boundary) on, without an object per frame. */
export function scanFrames(bytes: Uint8Array, start: number): CompactSegmentScan {
  const frames = new FrameIndex(start);
  const indexes = new IndexRuns();
  const len = bytes.length;
  let p = start;
  const stop = (end: ScanEnd): CompactSegmentScan => ({ frames, indexes, validEnd: p, end });
  while (true) {
    if (p === len) return stop({ kind: 'clean' });
    if (bytes[p] === 0) {
      if (allZero(bytes, p, len)) return stop({ kind: 'clean' });
      // Pages of an unacknowledged write may reach the disk out of order, leaving data after a
      // hole; only the open segment may legitimately look like this (log-recovery.ts decides).
      let dataAt = p;
      while (bytes[dataAt] === 0) dataAt++;
      return stop({ kind: 'torn', offset: p, reason: `zeros from byte offset ${p}, then non-zero bytes at ${dataAt}`, dataAt });
    }
    let length = 0;
    let shift = 1;
    let q = p;
    let varintDone = false;
    for (let i = 0; i < MAX_VARINT32_BYTES && q < len; i++) {
      const b = bytes[q++]!;
      length += (b & 0x7f) * shift;
      shift *= 0x80;
      if ((b & 0x80) === 0) {
        varintDone = true;
        break;
      }
    }
    if (!varintDone) {
      if (q === len) return stop({ kind: 'torn', offset: p, reason: 'end of file inside the length prefix' });
      return stop({ kind: 'corrupt', offset: p, reason: 'length prefix longer than 5 bytes' });
    }
    if (length > MAX_ENTRY_BYTES) return stop({ kind: 'corrupt', offset: p, reason: `entry length ${length} above int32` });
    const bodyEnd = q + length;
    if (bodyEnd + CRC_SIZE > len) {
      return stop({ kind: 'torn', offset: p, reason: `end of file inside an entry of ${length} bytes` });
    }
    const stored = ((bytes[bodyEnd]! << 24) | (bytes[bodyEnd + 1]! << 16) | (bytes[bodyEnd + 2]! << 8) | bytes[bodyEnd + 3]!) >>> 0;
    const actual = crc32c(bytes, 0, p, bodyEnd);
    if (stored !== actual) {
      if (isTornIntoPadding(bytes, bodyEnd, stored, actual)) {
        return stop({ kind: 'torn', offset: p, reason: 'partially written entry followed by zero padding' });
      }
      return stop({ kind: 'corrupt', offset: p, reason: `CRC32C mismatch (stored ${hex(stored)}, computed ${hex(actual)})` });
    }
    let ti: { term: number; index: number; configuration: boolean };
    try {
      ti = readTermAndIndex(bytes, q, bodyEnd);
    } catch (err) {
      return stop({ kind: 'corrupt', offset: p, reason: (err as Error).message });
    }
    const size = bodyEnd + CRC_SIZE - p;
    frames.push(size, ti.term, ti.configuration);
    indexes.push(ti.index);
    p += size;
  }
}

/**
 * The first complete frame at or after `from` (any byte offset) that holds an entry after
 * `afterIndex` of a term at least `minTerm` and whose CRC32C matches, or undefined. Used to tell a
 * hole left by an interrupted write (what follows is a fragment) from entries that were replaced by
 * zeros (a complete later entry follows).
 */
export function findFrameAfter(bytes: Uint8Array, from: number, afterIndex: number, minTerm: number): FrameInfo | undefined {
  const len = bytes.length;
  // A frame is at least a 1-byte length, a 2-byte body and a 4-byte CRC: no more entries than that fit.
  const maxIndex = afterIndex + Math.ceil((len - from) / 7) + 1;
  for (let q = from; q < len; q++) {
    if (bytes[q] === 0) continue;
    let length = 0;
    let shift = 1;
    let r = q;
    let done = false;
    for (let i = 0; i < MAX_VARINT32_BYTES && r < len; i++) {
      const b = bytes[r++]!;
      length += (b & 0x7f) * shift;
      shift *= 0x80;
      if ((b & 0x80) === 0) {
        done = true;
        break;
      }
    }
    const bodyEnd = r + length;
    if (!done || length < 2 || bodyEnd + CRC_SIZE > len) continue;
    let ti: { term: number; index: number };
    try {
      ti = readTermAndIndex(bytes, r, bodyEnd);
    } catch {
      continue;
    }
    if (ti.index <= afterIndex || ti.index > maxIndex || ti.term < minTerm) continue;
    const stored = ((bytes[bodyEnd]! << 24) | (bytes[bodyEnd + 1]! << 16) | (bytes[bodyEnd + 2]! << 8) | bytes[bodyEnd + 3]!) >>> 0;
    if (stored !== crc32c(bytes, 0, q, bodyEnd)) continue;
    return { offset: q, size: bodyEnd + CRC_SIZE - q, term: ti.term, index: ti.index };
  }
  return undefined;
}
