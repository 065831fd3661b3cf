// Recovery of the segment files on open: validates every frame, cuts a torn tail left by a crash,
// strips preallocation padding, removes empty segments, repairs a closed segment left shorter than
// its name by an interrupted truncation, and refuses (or, under WARN_AND_RETURN, cuts at) corruption
// and index gaps.

import { copyFileSync, readdirSync, readFileSync, renameSync, truncateSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { fsyncPathSync } from '../durable-fs.js';
import { SEGMENT_HEADER, SEGMENT_HEADER_SIZE, scanSegment, type FrameInfo } from './segment-format.js';
import { closedSegmentName, parseSegmentName } from './segment-names.js';

/** Named after ozone.scm.ha.ratis.log.corruption.policy (Ratis raft.server.log.corruption.policy). */
export type CorruptionPolicy = 'EXCEPTION' | 'WARN_AND_RETURN';

export interface RecoveredSegment {
  readonly fileName: string;
  readonly startIndex: number;
  readonly closed: boolean;
  readonly frames: readonly FrameInfo[];
  /** Header plus frames, in bytes (the file has been cut to this length). */
  readonly size: number;
}

interface Listed {
  fileName: string;
  startIndex: number;
  endIndex: number | undefined;
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

/**
 * Recovers the segments in `currentDir`, returning them in index order. Repairs are made on disk
 * (and the directory fsynced) before returning.
 */
export function recoverSegments(
  currentDir: string,
  policy: CorruptionPolicy,
  warn: (message: string) => void,
): RecoveredSegment[] {
  const listed: Listed[] = [];
  for (const fileName of readdirSync(currentDir)) {
    const name = parseSegmentName(fileName);
    if (name) listed.push({ fileName, startIndex: name.startIndex, endIndex: name.endIndex });
  }
  listed.sort((a, b) => a.startIndex - b.startIndex || (a.endIndex === undefined ? 1 : -1));

  let changed = false;
  const result: RecoveredSegment[] = [];
  const setAside = (fileName: string, why: string): void => {
    const aside = `${fileName}.corrupt`;
    renameSync(join(currentDir, fileName), join(currentDir, aside));
    warn(`moved segment ${fileName} aside as ${aside}: ${why}`);
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
      setAside(seg.fileName, `it follows the corruption at index ${stopAt}`);
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
    if (bytes.length < SEGMENT_HEADER_SIZE || !bytes.subarray(0, SEGMENT_HEADER_SIZE).equals(SEGMENT_HEADER)) {
      const zeroOrShort = bytes.every((b) => b === 0) || SEGMENT_HEADER.subarray(0, bytes.length).equals(bytes);
      if (isOpen && bytes.length <= SEGMENT_HEADER_SIZE && zeroOrShort) {
        unlinkSync(path);
        warn(`removed empty open segment ${seg.fileName} (interrupted creation)`);
        changed = true;
        continue;
      }
      problem(seg.fileName, 0, `missing "RaftLog1" header`);
      stopAt = seg.startIndex;
      setAside(seg.fileName, 'bad header');
      continue;
    }

    const scan = scanSegment(bytes);
    let frames = scan.frames;
    let validEnd = scan.validEnd;
    // Frames must carry consecutive indexes starting at the name's first index.
    const gapAt = frames.findIndex((f, i) => f.index !== seg.startIndex + i);
    if (gapAt >= 0) {
      const f = frames[gapAt]!;
      problem(seg.fileName, f.offset, `expected index ${seg.startIndex + gapAt}, found ${f.index}`);
      frames = frames.slice(0, gapAt);
      validEnd = f.offset;
      stopAt = seg.startIndex + gapAt;
    } else if (scan.end.kind === 'torn' && isOpen) {
      warn(`log segment ${path}: cut a torn tail at byte offset ${scan.end.offset} (${scan.end.reason})`);
    } else if (scan.end.kind !== 'clean') {
      // A closed segment was fully synced before it got its name: nothing in it may be torn.
      problem(seg.fileName, scan.end.offset, scan.end.reason);
      stopAt = seg.startIndex + frames.length;
      if (policy === 'WARN_AND_RETURN') copyFileSync(path, `${path}.corrupt`);
    }

    if (validEnd !== bytes.length) {
      truncateSync(path, validEnd);
      changed = true;
    }
    if (frames.length === 0) {
      unlinkSync(path);
      warn(`removed empty segment ${seg.fileName}`);
      changed = true;
      continue;
    }
    const lastIndex = seg.startIndex + frames.length - 1;
    let fileName = seg.fileName;
    if (seg.endIndex !== undefined && seg.endIndex !== lastIndex) {
      if (lastIndex > seg.endIndex) {
        problem(seg.fileName, frames[seg.endIndex - seg.startIndex + 1]!.offset, `entries beyond the last index ${seg.endIndex} in its name`);
        // Keep what the name promises; the rest cannot be trusted to belong to this log.
        const keep = seg.endIndex - seg.startIndex + 1;
        truncateSync(path, frames[keep]!.offset);
        validEnd = frames[keep]!.offset;
        frames = frames.slice(0, keep);
        stopAt = seg.endIndex + 1;
      } else if (isLast || stopAt !== undefined) {
        // Interrupted truncation (file cut, rename not done) or a WARN_AND_RETURN cut.
        fileName = closedSegmentName(seg.startIndex, lastIndex);
        renameSync(path, join(currentDir, fileName));
        warn(`renamed segment ${seg.fileName} to ${fileName} to match its entries`);
        changed = true;
      } else {
        problem(seg.fileName, validEnd, `ends at index ${lastIndex} but its name says ${seg.endIndex}`);
        stopAt = lastIndex + 1;
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
        setAside(fileName, 'index gap');
        continue;
      }
    }
    result.push({ fileName, startIndex: seg.startIndex, closed: !isOpen, frames, size: validEnd });
  }
  if (changed) fsyncPathSync(currentDir);
  return result;
}
