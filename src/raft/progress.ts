// The leader's view of one follower's replication (etcd's Progress): how far it is known to match,
// what to send next, and how much is in flight. Three states:
//   probe     – we do not know where the follower's log matches; send one append and wait.
//   replicate – the follower is in sync; stream appends optimistically, bounded by the inflight window.
//   snapshot  – the follower needs entries we have purged; it was told to install a snapshot and gets
//               no appends until it reports back.

export type ProgressState = 'probe' | 'replicate' | 'snapshot';

/** A bounded window of in-flight append messages, each remembered by its last index and size. */
export class Inflights {
  private readonly lastIndexes: number[] = [];
  private readonly sizes: number[] = [];
  private head = 0;
  private totalBytes = 0;

  constructor(
    private readonly maxMessages: number,
    private readonly maxBytes: number,
  ) {}

  get count(): number {
    return this.lastIndexes.length - this.head;
  }

  get bytes(): number {
    return this.totalBytes;
  }

  full(): boolean {
    return this.count >= this.maxMessages || this.totalBytes >= this.maxBytes;
  }

  add(lastIndex: number, bytes: number): void {
    const n = this.lastIndexes.length;
    if (n > this.head && (this.lastIndexes[n - 1] as number) >= lastIndex) {
      throw new Error(`inflight append ${lastIndex} is not after the previous one ${this.lastIndexes[n - 1]}`);
    }
    this.lastIndexes.push(lastIndex);
    this.sizes.push(bytes);
    this.totalBytes += bytes;
  }

  /** Frees every in-flight message whose last index is at most `index` (they were acknowledged). */
  freeUpTo(index: number): void {
    while (this.head < this.lastIndexes.length && (this.lastIndexes[this.head] as number) <= index) {
      this.totalBytes -= this.sizes[this.head] as number;
      this.head++;
    }
    if (this.head > 64 && this.head * 2 > this.lastIndexes.length) {
      this.lastIndexes.splice(0, this.head);
      this.sizes.splice(0, this.head);
      this.head = 0;
    }
  }

  /** Frees the oldest slot: a heartbeat answer shows the peer is alive though appends may be lost. */
  freeFirstOne(): void {
    const first = this.lastIndexes[this.head];
    if (first !== undefined) this.freeUpTo(first);
  }

  reset(): void {
    this.lastIndexes.length = 0;
    this.sizes.length = 0;
    this.head = 0;
    this.totalBytes = 0;
  }
}

export class Progress {
  match = 0;
  next: number;
  state: ProgressState = 'probe';
  /** Probe state: an append is outstanding; wait for its answer (or the next heartbeat answer). */
  probeSent = false;
  /** Heard from since the last check-quorum round. */
  recentActive = false;
  /** Leader tick at which this peer was last heard from (any message). */
  lastHeardTick = Number.NEGATIVE_INFINITY;
  /**
   * Leader tick at which this peer was last seen making progress: an append answer that moved its
   * match, an installed checkpoint, or a heartbeat answer while it held every entry. A peer that
   * answers heartbeats but gets nothing through (a sick link or disk for data) stops counting as
   * catching up, so it neither holds the leader's log back nor gets promoted.
   */
  lastProgressTick = Number.NEGATIVE_INFINITY;
  /** Highest ReadIndex round this peer has confirmed. */
  readRoundAcked = 0;
  /** Highest leader tick echoed back by this peer's heartbeat answers (for lease reads). */
  leaseTickAcked = Number.NEGATIVE_INFINITY;
  /** The commit index last sent to this peer, so commit advances are forwarded promptly. */
  sentCommit = 0;
  /**
   * Replicate state: the peer answered a heartbeat but still lags; send an append even if it carries
   * no entries, so a lost append is detected (the follower rejects the gap and we probe).
   */
  resendWanted = false;
  /**
   * Snapshot state: the round of install notices this follower is in. Statuses name the round they
   * answer; one from another round (late, duplicated, or from before a restart of the round) is
   * ignored, so it can never move an up-to-date follower back to snapshot state.
   */
  noticeId = 0;
  /** Snapshot state: the leader's first index when this round of notices began. */
  noticeFirstIndex = 0;
  readonly inflights: Inflights;

  constructor(next: number, maxInflightMsgs: number, maxInflightBytes: number) {
    this.next = next;
    this.inflights = new Inflights(maxInflightMsgs, maxInflightBytes);
  }

  /** A message from this peer arrived at leader tick `tick`. */
  heard(tick: number): void {
    this.recentActive = true;
    this.lastHeardTick = tick;
  }

  becomeProbe(): void {
    // Restart from the last known match: after a rejection, or right after an installed snapshot
    // (whose index the caller has recorded as the match).
    this.state = 'probe';
    this.next = this.match + 1;
    this.probeSent = false;
    this.inflights.reset();
  }

  becomeReplicate(): void {
    this.state = 'replicate';
    this.next = this.match + 1;
    this.probeSent = false;
    this.inflights.reset();
  }

  becomeSnapshot(noticeId: number, firstIndex: number): void {
    this.state = 'snapshot';
    this.noticeId = noticeId;
    this.noticeFirstIndex = firstIndex;
    this.probeSent = false;
    this.inflights.reset();
  }

  /** Paused peers get no new appends until an answer arrives. */
  isPaused(): boolean {
    switch (this.state) {
      case 'probe':
        return this.probeSent;
      case 'replicate':
        return this.inflights.full();
      case 'snapshot':
        return true;
    }
  }

  /** A successful answer up to `index`. Returns true when it told us something new. */
  maybeUpdate(index: number): boolean {
    let updated = false;
    if (index > this.match) {
      this.match = index;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, index + 1);
    return updated;
  }

  /**
   * A rejection of the append after `rejected`; `matchHint` is the highest index that may match.
   * Returns false when the rejection is stale (answers a message we have since moved past).
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === 'replicate') {
      if (rejected <= this.match) return false;
      // Pipelined appends after the rejected one will fail too: restart from the known match.
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1);
    this.probeSent = false;
    return true;
  }
}
