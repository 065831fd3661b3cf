// Serves checkpoints to downloading followers.
//
// - Followers asking at the same time share one in-flight checkpoint.
// - A recent checkpoint is reused while it is younger than `reuseWindowMs` and not older than the
//   leader's first available log index (a follower would reject it otherwise).
// - A follower resuming a download gets the same checkpoint back by id while it still exists.
// - At most `maxConcurrentTransfers` leases exist at once; callers beyond that get a
//   ResourceExhaustedError (the gRPC service maps it to RESOURCE_EXHAUSTED).
// - Checkpoints nobody is transferring are deleted once superseded or stale; leftovers of a
//   previous run are deleted on first use.
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { createCheckpoint, listCheckpointDirs, type Checkpoint, type CheckpointOptions, type RootDb } from './checkpoint.js';

/**
 * A download refused for want of capacity. `retryAfterMs`, when known, is how long the refused
 * caller should wait before it asks again; the InterSCM service sends it as the
 * `scm-retry-after-ms` trailer (src/retry-after.ts).
 */
export class ResourceExhaustedError extends Error {
  override readonly name = 'ResourceExhaustedError';
  constructor(
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

/**
 * The retry hint of a refusal because downloads are in progress (a requester's, a peer's, or all of
 * the leader's transfer slots). When one of them ends is not known: a healthy transfer may run for
 * minutes, a stalled one is reclaimed within the idle timeout (10 s). So the hint is a polling
 * interval, not a promise: half that timeout, so that a follower whose own stalled download holds
 * its slot gets back in soon after the leader takes the slot back, while a refusal (answered before
 * any checkpoint is taken) stays cheap. Without a hint the follower would count each such refusal as
 * a failed attempt and give up after a few, though nothing is wrong with it.
 */
export const IN_PROGRESS_RETRY_AFTER_MS = 5_000;

export interface CheckpointProviderOptions {
  /** The live scm.db root (a getter: the node may reopen its DB). */
  readonly db: () => RootDb;
  /** `<dbParent>/db.checkpoints`. */
  readonly checkpointsDir: string;
  /** Default 4. */
  readonly maxConcurrentTransfers?: number;
  /** Reuse the latest checkpoint while younger than this (default 30 s). */
  readonly reuseWindowMs?: number;
  /** The leader's first available log index; a checkpoint below it is never reused. */
  readonly minUsefulIndex?: () => number;
  readonly now?: () => number;
  readonly checkpointOptions?: CheckpointOptions;
  /** Each checkpoint taken, and how long taking it took (for the node's metrics). */
  readonly onCreated?: (checkpoint: Checkpoint, seconds: number) => void;
}

export interface CheckpointLease {
  readonly checkpoint: Checkpoint;
  /** Idempotent. */
  release(): Promise<void>;
}

interface Tracked {
  readonly checkpoint: Checkpoint;
  users: number;
}

interface InFlight {
  waiters: number;
  promise: Promise<Tracked>;
}

export class CheckpointProvider {
  private readonly maxTransfers: number;
  private readonly reuseWindowMs: number;
  private readonly now: () => number;
  private readonly tracked = new Map<string, Tracked>();
  private latest: Tracked | undefined;
  private inFlight: InFlight | undefined;
  private activeLeases = 0;
  private startup: Promise<void> | undefined;
  private checkpointsCreated = 0;

  constructor(private readonly options: CheckpointProviderOptions) {
    this.maxTransfers = options.maxConcurrentTransfers ?? 4;
    this.reuseWindowMs = options.reuseWindowMs ?? 30_000;
    this.now = options.now ?? Date.now;
    if (!Number.isInteger(this.maxTransfers) || this.maxTransfers < 1) throw new Error(`maxConcurrentTransfers must be a positive integer, got ${this.maxTransfers}`);
    if (!(this.reuseWindowMs >= 0)) throw new Error(`reuseWindowMs must be >= 0, got ${this.reuseWindowMs}`);
  }

  /** Number of checkpoints this provider has taken (for tests and metrics). */
  get created(): number {
    return this.checkpointsCreated;
  }

  get activeTransfers(): number {
    return this.activeLeases;
  }

  /**
   * Leases a checkpoint for one transfer: the one named `resumeCheckpointId` if it still exists,
   * else a fresh-enough or in-flight one, else a new one.
   */
  async acquire(resumeCheckpointId?: string): Promise<CheckpointLease> {
    if (this.activeLeases >= this.maxTransfers) {
      throw new ResourceExhaustedError(`too many checkpoint transfers in progress (${this.activeLeases} of at most ${this.maxTransfers}); retry later`, IN_PROGRESS_RETRY_AFTER_MS);
    }
    this.activeLeases++;
    let entry: Tracked;
    try {
      this.startup ??= this.removeLeftovers();
      await this.startup;
      entry = await this.choose(resumeCheckpointId);
    } catch (err) {
      this.activeLeases--;
      throw err;
    }
    let released = false;
    return {
      checkpoint: entry.checkpoint,
      release: async () => {
        if (released) return;
        released = true;
        entry.users--;
        this.activeLeases--;
        await this.collectGarbage();
      },
    };
  }

  /** Deletes every checkpoint not in use (e.g. at shutdown). */
  async removeUnused(): Promise<void> {
    for (const t of [...this.tracked.values()]) if (t.users === 0) await this.remove(t);
  }

  /** Returns the chosen checkpoint with this caller already counted as a user. */
  private async choose(resumeCheckpointId: string | undefined): Promise<Tracked> {
    if (resumeCheckpointId !== undefined) {
      const same = this.tracked.get(resumeCheckpointId);
      if (same !== undefined) {
        same.users++;
        return same;
      }
    }
    if (this.latest !== undefined && this.isReusable(this.latest.checkpoint)) {
      this.latest.users++;
      return this.latest;
    }
    if (this.inFlight === undefined) {
      const flight: InFlight = { waiters: 0, promise: Promise.resolve(undefined as unknown as Tracked) };
      flight.promise = this.createTracked(flight);
      this.inFlight = flight;
    }
    // Counted now, credited to the new checkpoint the moment it exists, so garbage collection can
    // never remove it between creation and its waiters resuming.
    this.inFlight.waiters++;
    return this.inFlight.promise;
  }

  private isReusable(c: Checkpoint): boolean {
    const minIndex = this.options.minUsefulIndex?.() ?? 0;
    return this.now() - c.createdAtMs <= this.reuseWindowMs && c.termIndex.index >= minIndex;
  }

  private async createTracked(flight: InFlight): Promise<Tracked> {
    let checkpoint: Checkpoint;
    const started = this.now();
    try {
      checkpoint = await createCheckpoint(this.options.db(), this.options.checkpointsDir, {
        ...this.options.checkpointOptions,
        now: this.now,
      });
    } finally {
      this.inFlight = undefined;
    }
    this.checkpointsCreated++;
    this.options.onCreated?.(checkpoint, Math.max(0, this.now() - started) / 1000);
    const entry: Tracked = { checkpoint, users: flight.waiters };
    this.tracked.set(checkpoint.id, entry);
    this.latest = entry;
    await this.collectGarbage();
    return entry;
  }

  private async collectGarbage(): Promise<void> {
    for (const t of [...this.tracked.values()]) {
      if (t.users > 0) continue;
      const superseded = t !== this.latest;
      if (superseded || !this.isReusable(t.checkpoint)) await this.remove(t);
    }
  }

  private async remove(t: Tracked): Promise<void> {
    this.tracked.delete(t.checkpoint.id);
    if (this.latest === t) this.latest = undefined;
    await rm(t.checkpoint.dir, { recursive: true, force: true });
  }

  private async removeLeftovers(): Promise<void> {
    for (const name of await listCheckpointDirs(this.options.checkpointsDir)) {
      await rm(join(this.options.checkpointsDir, name), { recursive: true, force: true });
    }
  }
}
