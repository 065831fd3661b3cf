// Applies the log's physical changes to disk strictly in the order the log issued them, on one
// asynchronous lane. Everything queued while a batch is being written and synced becomes the next
// batch, and each batch ends with one fdatasync per touched file (normally just the open segment)
// plus one directory fsync if names changed: group commit. Barriers (the promises of append,
// truncate, purge and reset) complete only after their batch is durable, in order.
//
// Metadata changes (rename, unlink) use synchronous calls so that a segment's recorded path is
// never out of step with the file system as seen by the log's synchronous readers.

import { open } from 'node:fs/promises';
import { fdatasyncSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { fsyncPath } from '../durable-fs.js';
import { diskFailpoint } from '../failpoints.js';
import { SEGMENT_HEADER } from './segment-format.js';
import type { SegmentFile } from './segment.js';

export type WriteOp =
  /** Create a new (open) segment file with the header. */
  | { readonly kind: 'create'; readonly file: SegmentFile }
  /** Write frames at a byte offset of an open segment. */
  | { readonly kind: 'write'; readonly file: SegmentFile; readonly offset: number; readonly bytes: Buffer; readonly entries: number }
  /** Close the open segment at `size` bytes and rename it to its closed name. */
  | { readonly kind: 'seal'; readonly file: SegmentFile; readonly size: number; readonly newName: string }
  /** Cut a segment to `size` bytes, renaming it when given a new name (a closed segment's end changed). */
  | { readonly kind: 'truncate'; readonly file: SegmentFile; readonly size: number; readonly newName: string | undefined }
  | { readonly kind: 'delete'; readonly file: SegmentFile }
  /** Completes when everything queued before it is durable. */
  | { readonly kind: 'barrier'; readonly done: (error: Error | undefined) => void };

/** How long one write batch spent writing and then making itself durable (fdatasync + dir fsync). */
export interface DiskTimings {
  readonly writeSeconds: number;
  readonly syncSeconds: number;
  /** Log entries this fsync made durable. */
  readonly entries: number;
}

const secondsSince = (start: bigint): number => Number(process.hrtime.bigint() - start) / 1e9;

/**
 * Frames up to this size are written with a synchronous pwrite: copying a few KiB into the page
 * cache takes microseconds, while an asynchronous write costs a thread-pool round trip (a worker
 * wake-up, an event-loop wake-up) on every group commit, before its fdatasync can even start. The
 * fdatasync stays asynchronous unless fsyncOnLoop says otherwise. Larger writes (catch-up batches)
 * stay asynchronous too.
 */
export const SYNC_WRITE_MAX_BYTES = 256 * 1024;

export class SegmentWriter {
  private queue: WriteOp[] = [];
  private running = false;
  private failure: Error | undefined;
  private idleWaiters: (() => void)[] = [];
  /** Counts fdatasync calls on segment files, for tests and metrics. */
  syncCount = 0;
  /**
   * fdatasync segments with a synchronous call on the event loop's thread instead of on the thread
   * pool. The thread-pool call adds a worker wake-up and an event-loop wake-up to every group
   * commit: measured in one process, 447-527 µs from call to resolution against 141-154 µs for
   * the synchronous call; in a 1-caller cluster a follower's write-and-sync p50 went from 0.49-0.53
   * ms to 0.41-0.42 on a quiet machine, and from 1.4-1.9 ms to 0.8-1.2 beside a test run
   * (wake-ups cost more on a busy machine). The price is a loop that does nothing else meanwhile,
   * which a follower can afford (its fsync is on the path of every acknowledgement, and it has
   * little else to do) and a leader cannot (its appends to followers, its clients and its
   * heartbeats would wait). A follower's driver ticks per timer callback, so a long sync does not
   * make it time out its leader (raft-driver.ts, tickForElapsedTime). The node sets it by role
   * (ozone.scm.ha.raft.server.log.follower.sync.on.loop).
   */
  fsyncOnLoop = false;

  constructor(
    private readonly dir: string,
    private readonly preallocateBytes: number,
    private readonly onFailure: (error: Error) => void,
    private readonly onTimings?: (timings: DiskTimings) => void,
    private readonly beforeCreate?: () => Promise<void>,
  ) {}

  get failed(): Error | undefined {
    return this.failure;
  }

  enqueue(op: WriteOp): void {
    if (this.failure) {
      if (op.kind === 'barrier') op.done(this.failure);
      return;
    }
    this.queue.push(op);
    if (!this.running) {
      this.running = true;
      void this.run();
    }
  }

  /** Resolves once the queue is empty and nothing is in flight. */
  idle(): Promise<void> {
    if (!this.running) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Closes any write handles still open (after idle()). */
  async closeHandles(files: Iterable<SegmentFile>): Promise<void> {
    for (const file of files) {
      if (file.handle) {
        const h = file.handle;
        file.handle = undefined;
        await h.close();
      }
    }
  }

  private async run(): Promise<void> {
    while (this.queue.length > 0 && !this.failure) {
      const batch = this.queue;
      this.queue = [];
      const barriers: ((error: Error | undefined) => void)[] = [];
      try {
        await this.applyBatch(batch, barriers);
      } catch (err) {
        // After a failed write or fsync the on-disk state is unknown (and on Linux a failed fsync
        // may have dropped dirty pages), so the log refuses all further writes.
        this.failure = err instanceof Error ? err : new Error(String(err));
        for (const done of barriers) done(this.failure);
        for (const op of this.queue) if (op.kind === 'barrier') op.done(this.failure);
        this.queue = [];
        this.onFailure(this.failure);
        break;
      }
      for (const done of barriers) done(undefined);
    }
    this.running = false;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  private async applyBatch(batch: WriteOp[], barriers: ((error: Error | undefined) => void)[]): Promise<void> {
    const dirty = new Set<SegmentFile>();
    let dirChanged = false;
    const started = process.hrtime.bigint();
    let entries = 0;
    for (const op of batch) {
      switch (op.kind) {
        case 'create': {
          await this.beforeCreate?.();
          op.file.handle = await open(op.file.path, 'wx');
          await op.file.handle.write(SEGMENT_HEADER, 0, SEGMENT_HEADER.length, 0);
          op.file.allocatedSize = SEGMENT_HEADER.length;
          dirty.add(op.file);
          dirChanged = true;
          break;
        }
        case 'write': {
          const handle = await this.handleOf(op.file);
          const end = op.offset + op.bytes.length;
          if (this.preallocateBytes > 0 && end > op.file.allocatedSize) {
            // Extend with real zeros ahead of the data, so later appends overwrite allocated
            // blocks and fdatasync need not update the file size each time.
            const padTo = end + this.preallocateBytes;
            await writeZeros(handle, end, padTo - end);
            op.file.allocatedSize = padTo;
          }
          await diskFailpoint('storage.write');
          if (op.bytes.length <= SYNC_WRITE_MAX_BYTES) writeFullySync(handle.fd, op.bytes, op.offset);
          else await writeFully(handle, op.bytes, op.offset);
          entries += op.entries;
          if (end > op.file.allocatedSize) op.file.allocatedSize = end;
          dirty.add(op.file);
          break;
        }
        case 'seal': {
          const handle = await this.handleOf(op.file);
          if (op.file.allocatedSize !== op.size) await handle.truncate(op.size);
          // The data must be durable before the closed name is: recovery trusts closed segments.
          await handle.datasync();
          this.syncCount++;
          await handle.close();
          op.file.handle = undefined;
          dirty.delete(op.file);
          this.rename(op.file, op.newName);
          op.file.allocatedSize = op.size;
          dirChanged = true;
          break;
        }
        case 'truncate': {
          const handle = await this.handleOf(op.file);
          await handle.truncate(op.size);
          await handle.sync();
          this.syncCount++;
          op.file.allocatedSize = op.size;
          if (op.newName !== undefined) {
            // A closed segment: cut first, then rename, so a crash in between leaves a segment
            // shorter than its name, which recovery repairs.
            await handle.close();
            op.file.handle = undefined;
            dirty.delete(op.file);
            this.rename(op.file, op.newName);
            dirChanged = true;
          }
          break;
        }
        case 'delete': {
          if (op.file.handle) {
            await op.file.handle.close();
            op.file.handle = undefined;
          }
          dirty.delete(op.file);
          unlinkSync(op.file.path);
          dirChanged = true;
          break;
        }
        case 'barrier':
          barriers.push(op.done);
          break;
      }
    }
    const writeSeconds = secondsSince(started);
    const syncStarted = process.hrtime.bigint();
    if (dirty.size > 0) await diskFailpoint('storage.fsync');
    let synced = false;
    for (const file of dirty) {
      if (file.handle) {
        if (this.fsyncOnLoop) fdatasyncSync(file.handle.fd);
        else await file.handle.datasync();
        this.syncCount++;
        synced = true;
      }
    }
    if (dirChanged) await fsyncPath(this.dir);
    if (synced) this.onTimings?.({ writeSeconds, syncSeconds: secondsSince(syncStarted), entries });
  }

  private async handleOf(file: SegmentFile) {
    if (!file.handle) {
      file.handle = await open(file.path, 'r+');
      file.allocatedSize = (await file.handle.stat()).size;
    }
    return file.handle;
  }

  private rename(file: SegmentFile, newName: string): void {
    const target = join(this.dir, newName);
    if (target === file.path) return;
    renameSync(file.path, target);
    file.path = target;
  }
}

async function writeFully(handle: import('node:fs/promises').FileHandle, bytes: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, done, bytes.length - done, position + done);
    if (bytesWritten <= 0) throw new Error(`write returned ${bytesWritten} bytes`);
    done += bytesWritten;
  }
}

function writeFullySync(fd: number, bytes: Buffer, position: number): void {
  let done = 0;
  while (done < bytes.length) {
    const bytesWritten = writeSync(fd, bytes, done, bytes.length - done, position + done);
    if (bytesWritten <= 0) throw new Error(`write returned ${bytesWritten} bytes`);
    done += bytesWritten;
  }
}

const ZERO_CHUNK = Buffer.alloc(1 << 20);

async function writeZeros(handle: import('node:fs/promises').FileHandle, position: number, length: number): Promise<void> {
  let done = 0;
  while (done < length) {
    const n = Math.min(ZERO_CHUNK.length, length - done);
    await writeFully(handle, ZERO_CHUNK.subarray(0, n), position + done);
    done += n;
  }
}
