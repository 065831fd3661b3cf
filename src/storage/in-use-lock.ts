// in_use.lock: marks a storage directory as used by one running process. Node has no flock, so
// the lock is a file created atomically (link of a fully written temp file, which fails if the
// lock exists) and recording its holder. A lock whose holder is gone (pid not alive, or our own
// pid, which is what a container restart looks like) is taken over.

import { closeSync, fsyncSync, linkSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { fsyncPathSync } from '../durable-fs.js';

export const LOCK_FILE_NAME = 'in_use.lock';

export interface LockHolder {
  readonly pid: number;
  readonly host: string;
  readonly startTime: string;
}

/** Directories locked by this process, so a second open from the same process is refused too. */
const heldByThisProcess = new Set<string>();

export class StorageLockedError extends Error {
  constructor(
    readonly directory: string,
    readonly holder: LockHolder | undefined,
  ) {
    super(
      holder
        ? `storage directory ${directory} is in use by pid ${holder.pid} on ${holder.host} (started ${holder.startTime}); lock file ${join(directory, LOCK_FILE_NAME)}`
        : `storage directory ${directory} is already open in this process`,
    );
    this.name = 'StorageLockedError';
  }
}

function parseHolder(text: string): LockHolder | undefined {
  try {
    const v = JSON.parse(text) as Partial<LockHolder>;
    if (typeof v.pid === 'number' && typeof v.host === 'string' && typeof v.startTime === 'string') {
      return { pid: v.pid, host: v.host, startTime: v.startTime };
    }
  } catch {
    // Unreadable content: treated as no holder below.
  }
  return undefined;
}

/** Whether a process with this pid exists (EPERM: it does, but belongs to someone else). */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function writeTemp(path: string, content: string): void {
  const fd = openSync(path, 'w');
  try {
    writeSync(fd, content);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export class InUseLock {
  private released = false;

  private constructor(
    readonly directory: string,
    readonly holder: LockHolder,
  ) {}

  /**
   * Takes the lock on `directory`. `onWarning` hears about a stale lock being taken over.
   * Throws StorageLockedError naming the holder when the directory is in use.
   */
  static acquire(directory: string, onWarning: (message: string) => void): InUseLock {
    if (heldByThisProcess.has(directory)) throw new StorageLockedError(directory, undefined);
    const lockPath = join(directory, LOCK_FILE_NAME);
    const holder: LockHolder = { pid: process.pid, host: hostname(), startTime: new Date().toISOString() };
    const tmpPath = `${lockPath}.${process.pid}.tmp`;
    writeTemp(tmpPath, JSON.stringify(holder) + '\n');
    try {
      try {
        linkSync(tmpPath, lockPath);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        let existing: LockHolder | undefined;
        try {
          existing = parseHolder(readFileSync(lockPath, 'utf8'));
        } catch (readErr) {
          if ((readErr as NodeJS.ErrnoException).code !== 'ENOENT') throw readErr;
        }
        // A lock from another host cannot be checked; with the local disks this layout assumes,
        // it is left over from an earlier container (hostnames change when they are recreated).
        const stale =
          existing === undefined ||
          existing.pid === process.pid ||
          existing.host !== holder.host ||
          !isProcessAlive(existing.pid);
        if (!stale) throw new StorageLockedError(directory, existing);
        onWarning(
          `taking over stale lock ${lockPath}` +
            (existing ? ` of pid ${existing.pid} on ${existing.host} (started ${existing.startTime})` : ' (unreadable)'),
        );
        renameSync(tmpPath, lockPath);
      }
    } finally {
      try {
        unlinkSync(tmpPath);
      } catch {
        // Already renamed into place.
      }
    }
    fsyncPathSync(directory);
    heldByThisProcess.add(directory);
    return new InUseLock(directory, holder);
  }

  /** Removes the lock file if it is still ours. */
  release(): void {
    if (this.released) return;
    this.released = true;
    heldByThisProcess.delete(this.directory);
    const lockPath = join(this.directory, LOCK_FILE_NAME);
    try {
      const current = parseHolder(readFileSync(lockPath, 'utf8'));
      if (current && current.pid === this.holder.pid && current.startTime === this.holder.startTime) unlinkSync(lockPath);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
}
