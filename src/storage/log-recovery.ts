// Recovery of the segment files on open: validates every frame, cuts a torn tail left by a crash,
// strips preallocation padding, removes empty segments, repairs a closed segment left shorter than
// its name by an interrupted truncation, and refuses (or, under WARN_AND_RETURN, cuts at) corruption
// and index gaps.
//
// Zeros. A zero byte where a frame would start ends the data (Ratis pads the open segment with
// zeros). Which zeros are padding, and which replaced entries that were written?
// - A closed segment is fully synced before it gets its name, and the log closes (seals) its open
//   segment on a clean close, so a closed segment never holds padding: zeros in place of entries
//   its name promises are acknowledged entries lost. In the last segment they are dropped, with a
//   warning naming the file and the index range, and reported (onDropped) for a metric: the node
//   stays up and its leader sends the entries again. Before later segments they are refused: zeros
//   followed by valid data are corruption, not padding.
// - An open segment exists on disk only after a crash (or a version that did not seal on close).
//   Zeros to its end are padding, or a write in flight that never landed: nothing acknowledged can
//   be told apart from them, so they are cut as before. Zeros followed by a complete, CRC-checked,
//   later entry are refused: an interrupted write leaves a fragment of itself after a hole, while a
//   complete later entry means entries that were written are gone. (A power cut during an fdatasync
//   could in principle land a later page of the same unacknowledged write; the operator's way on is
//   ozone.scm.ha.ratis.log.corruption.policy=WARN_AND_RETURN, which cuts before the zeros and reports
//   what it cut.)
// - An open segment that holds nothing at all (no bytes, part of its header, its header, zeros) is
//   removed wherever it sits: a crash during its creation (or a reset) leaves it, and it must not
//   block start-up.

import { copyFileSync, readdirSync, readFileSync, renameSync, truncateSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { fsyncPathSync } from '../durable-fs.js';
import { findFrameAfter, scanFrames, SEGMENT_HEADER, SEGMENT_HEADER_SIZE, type CompactSegmentScan } from './segment-format.js';
import type { FrameIndex } from './frame-index.js';
import { closedSegmentName, parseSegmentName } from './segment-names.js';

/** Named after ozone.scm.ha.ratis.log.corruption.policy (Ratis raft.server.log.corruption.policy). */
export type CorruptionPolicy = 'EXCEPTION' | 'WARN_AND_RETURN';

export interface RecoveredSegment {
  readonly fileName: string;
  readonly startIndex: number;
  readonly closed: boolean;
  /** Offsets and terms of its entries (the log adopts this index as it is). */
  readonly frames: FrameIndex;
  /** Header plus frames, in bytes (the file has been cut to this length). */
  readonly size: number;
}

interface Listed {
  fileName: string;
  startIndex: number;
  endIndex: number | undefined;
}

/** Entries recovery removed from the log: for a metric (storage does no metrics itself). */
export interface DroppedEntries {
  /** The segment file they were in (as named before recovery renamed it). */
  readonly file: string;
  readonly firstIndex: number;
  readonly lastIndex: number;
  /**
   * zeroed: acknowledged entries at the end of the log were zeros (lost); corruption-policy:
   * WARN_AND_RETURN ended the log before corruption.
   */
  readonly reason: 'zeroed' | 'corruption-policy';
}

export class LogCorruptionError extends Error {
  constructor(
    message: string,
    readonly file: string,
    readonly offset: number,
  ) {
    super(message);
    this.name = 'LogCorruptionError';
  }
}

/** What an open segment that holds no entries looks like, or undefined when it holds something. */
function emptySegmentShape(bytes: Uint8Array): string | undefined {
  if (bytes.length === 0) return 'no bytes';
  const headEnd = Math.min(bytes.length, SEGMENT_HEADER_SIZE);
  const head = bytes.subarray(0, headEnd);
  const zeroHead = head.every((b) => b === 0);
  if (!zeroHead && !SEGMENT_HEADER.subarray(0, headEnd).equals(head)) return undefined;
  for (let i = headEnd; i < bytes.length; i++) if (bytes[i] !== 0) return undefined;
  if (zeroHead) return `${bytes.length} zero bytes`;
  if (headEnd < SEGMENT_HEADER_SIZE) return 'part of its header';
  return bytes.length === SEGMENT_HEADER_SIZE ? 'its header alone' : 'its header and zeros';
}

/**
 * Recovers the segments in `currentDir`, returning them in index order. Repairs are made on disk
 * (and the directory fsynced) before returning. `onDropped` hears of every entry range removed.
 */
export function recoverSegments(
  currentDir: string,
  policy: CorruptionPolicy,
  warn: (message: string) => void,
  onDropped: (dropped: DroppedEntries) => void = () => undefined,
): RecoveredSegment[] {
  let changed = false;
  const listed: Listed[] = [];
  for (const fileName of readdirSync(currentDir)) {
    const name = parseSegmentName(fileName);
    if (!name) continue;
    if (name.endIndex === undefined) {
      const path = join(currentDir, fileName);
      const shape = emptySegmentShape(readFileSync(path));
      if (shape !== undefined) {
        unlinkSync(path);
        warn(`removed empty open segment ${path}: it holds no entries (${shape}); a crash interrupted its creation`);
        changed = true;
        continue;
      }
    }
    listed.push({ fileName, startIndex: name.startIndex, endIndex: name.endIndex });
  }
  listed.sort((a, b) => a.startIndex - b.startIndex || (a.endIndex === undefined ? 1 : -1));

  const result: RecoveredSegment[] = [];
  const dropped = (file: string, firstIndex: number, lastIndex: number, reason: DroppedEntries['reason']): void => {
    if (lastIndex >= firstIndex) onDropped({ file: join(currentDir, file), firstIndex, lastIndex, reason });
  };
  const setAside = (seg: Listed, why: string): void => {
    const path = join(currentDir, seg.fileName);
    const held = seg.endIndex ?? seg.startIndex + scanFrames(readFileSync(path), SEGMENT_HEADER_SIZE).frames.length - 1;
    const aside = `${seg.fileName}.corrupt`;
    renameSync(path, join(currentDir, aside));
    warn(`moved segment ${seg.fileName} aside as ${aside}: ${why}`);
    dropped(seg.fileName, seg.startIndex, held, 'corruption-policy');
    changed = true;
  };

  // Under WARN_AND_RETURN the log ends at the first problem; later segments are moved aside
  // (not deleted), so nothing is destroyed that an operator may want to examine.
  let stopAt: number | undefined;
  const problem = (file: string, offset: number, message: string): void => {
    const full = `log segment ${join(currentDir, file)} at byte offset ${offset}: ${message}`;
    if (policy === 'EXCEPTION') throw new LogCorruptionError(full, join(currentDir, file), offset);
    warn(`${full}; corruption policy WARN_AND_RETURN: the log ends before this point`);
  };

  for (let s = 0; s < listed.length; s++) {
    const seg = listed[s]!;
    const path = join(currentDir, seg.fileName);
    if (stopAt !== undefined) {
      setAside(seg, `it follows the corruption at index ${stopAt}`);
      continue;
    }
    const isOpen = seg.endIndex === undefined;
    const isLast = s === listed.length - 1;
    if (isOpen && !isLast) {
      const next = listed[s + 1]!;
      throw new LogCorruptionError(
        `log segment ${path}: an open segment is followed by ${next.fileName}; only the last segment may be open`,
        path,
        0,
      );
    }
    const bytes = readFileSync(path);
    let scan: CompactSegmentScan;
    if (bytes.length >= SEGMENT_HEADER_SIZE && bytes.subarray(0, SEGMENT_HEADER_SIZE).equals(SEGMENT_HEADER)) {
      scan = scanFrames(bytes, SEGMENT_HEADER_SIZE);
    } else if (!isOpen && bytes.length > 0 && bytes.every((b) => b === 0)) {
      // A closed segment of zeros, header included: every entry its name promises is lost.
      scan = scanFrames(new Uint8Array(0), 0);
    } else {
      problem(seg.fileName, 0, `missing "RaftLog1" header`);
      stopAt = seg.startIndex;
      setAside(seg, 'bad header');
      continue;
    }
    const frames = scan.frames;
    let validEnd = scan.validEnd;
    let reported = false;
    const end = scan.end;
    // Frames must carry consecutive indexes starting at the name's first index.
    const gapAt = scan.indexes.firstMismatch(seg.startIndex);
    if (gapAt >= 0) {
      const offset = frames.offsetAt(gapAt);
      problem(seg.fileName, offset, `expected index ${seg.startIndex + gapAt}, found ${scan.indexes.at(gapAt)}`);
      frames.truncate(gapAt);
      validEnd = offset;
      stopAt = seg.startIndex + gapAt;
    } else if (isOpen && end.kind === 'torn' && end.dataAt !== undefined) {
      const lastKept = seg.startIndex + frames.length - 1;
      const later = findFrameAfter(bytes, end.dataAt, lastKept, frames.length > 0 ? frames.termAt(frames.length - 1) : 0);
      if (later !== undefined) {
        // See the top of this file: zeros followed by valid data are corruption, not padding.
        problem(
          seg.fileName,
          end.offset,
          `zeros where entry ${lastKept + 1} should start, then entry ${later.index} complete at byte offset ${later.offset}: ` +
            'an interrupted write leaves a fragment after a hole, never a complete later entry, so these zeros replaced entries that were written',
        );
        const after = scanFrames(bytes, later.offset).indexes;
        copyFileSync(path, `${path}.corrupt`);
        dropped(seg.fileName, lastKept + 1, Math.max(later.index, after.length > 0 ? after.at(after.length - 1) : later.index), 'corruption-policy');
        stopAt = lastKept + 1;
      } else {
        warn(`log segment ${path}: cut a torn tail at byte offset ${end.offset} (${end.reason}, and no complete entry after them)`);
      }
    } else if (end.kind === 'torn' && isOpen) {
      warn(`log segment ${path}: cut a torn tail at byte offset ${end.offset} (${end.reason})`);
    } else if (end.kind !== 'clean') {
      // A closed segment was fully synced before it got its name: nothing in it may be torn.
      problem(seg.fileName, end.offset, end.reason);
      stopAt = seg.startIndex + frames.length;
      if (policy === 'WARN_AND_RETURN') copyFileSync(path, `${path}.corrupt`);
    } else if (seg.endIndex !== undefined && validEnd < bytes.length && seg.startIndex + frames.length <= seg.endIndex) {
      // Zeros in a closed segment where its name promises entries (see the top of this file).
      const first = seg.startIndex + frames.length;
      const range = `${first}..${seg.endIndex}`;
      if (isLast) {
        warn(
          `log segment ${path}: entries ${range} are zeros (from byte offset ${validEnd}); a closed segment is complete on disk, ` +
            `so these acknowledged entries are lost on this node: dropped them, the log now ends at ${first - 1} and the leader sends them again`,
        );
        dropped(seg.fileName, first, seg.endIndex, 'zeroed');
      } else {
        problem(seg.fileName, validEnd, `entries ${range} are zeros, and later segments hold entries: zeros followed by valid data are corruption, not padding`);
        stopAt = first;
        copyFileSync(path, `${path}.corrupt`);
        dropped(seg.fileName, first, seg.endIndex, 'corruption-policy');
      }
      reported = true;
    }

    if (validEnd !== bytes.length) {
      truncateSync(path, validEnd);
      changed = true;
    }
    if (frames.length === 0) {
      if (!reported && stopAt !== undefined && seg.endIndex !== undefined) dropped(seg.fileName, seg.startIndex, seg.endIndex, 'corruption-policy');
      unlinkSync(path);
      warn(`removed empty segment ${seg.fileName}`);
      changed = true;
      continue;
    }
    const lastIndex = seg.startIndex + frames.length - 1;
    let fileName = seg.fileName;
    if (seg.endIndex !== undefined && seg.endIndex !== lastIndex) {
      if (lastIndex > seg.endIndex) {
        problem(seg.fileName, frames.offsetAt(seg.endIndex - seg.startIndex + 1), `entries beyond the last index ${seg.endIndex} in its name`);
        // Keep what the name promises; the rest cannot be trusted to belong to this log.
        const keep = seg.endIndex - seg.startIndex + 1;
        truncateSync(path, frames.offsetAt(keep));
        validEnd = frames.offsetAt(keep);
        frames.truncate(keep);
        stopAt = seg.endIndex + 1;
      } else if (isLast || stopAt !== undefined) {
        // Interrupted truncation (file cut, rename not done), zeroed entries, or a WARN_AND_RETURN cut.
        if (!reported && stopAt !== undefined) dropped(seg.fileName, lastIndex + 1, seg.endIndex, 'corruption-policy');
        fileName = closedSegmentName(seg.startIndex, lastIndex);
        renameSync(path, join(currentDir, fileName));
        warn(`renamed segment ${seg.fileName} to ${fileName} to match its entries`);
        changed = true;
      } else {
        problem(seg.fileName, validEnd, `ends at index ${lastIndex} but its name says ${seg.endIndex}`);
        stopAt = lastIndex + 1;
        dropped(seg.fileName, lastIndex + 1, seg.endIndex, 'corruption-policy');
        fileName = closedSegmentName(seg.startIndex, lastIndex);
        renameSync(path, join(currentDir, fileName));
        changed = true;
      }
    }
    const prev = result[result.length - 1];
    if (prev) {
      const prevEnd = prev.startIndex + prev.frames.length - 1;
      if (seg.startIndex !== prevEnd + 1) {
        problem(fileName, SEGMENT_HEADER_SIZE, `index gap: previous segment ${prev.fileName} ends at ${prevEnd}, this one starts at ${seg.startIndex}`);
        stopAt = prevEnd + 1;
        setAside({ fileName, startIndex: seg.startIndex, endIndex: fileName === seg.fileName ? seg.endIndex : lastIndex }, 'index gap');
        continue;
      }
    }
    result.push({ fileName, startIndex: seg.startIndex, closed: !isOpen, frames, size: validEnd });
  }
  if (changed) fsyncPathSync(currentDir);
  return result;
}
