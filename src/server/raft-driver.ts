// Drives the pure Raft core with real storage, a real network and the state machine.
//
// One loop, one Ready at a time, exactly in the order of the core's driving contract: persist hard
// state and entries (the leader's appends go out to followers while its own fsync runs); send
// votes and acknowledgements only once durable; apply committed entries as one LevelDB batch;
// serve reads; then advance. Proposals and inputs arriving meanwhile pile up in the core and leave
// together in the next Ready, which is where group commit comes from: one fsync per round, not
// per entry. Everything that changes the storage or the state machine outside a Ready (snapshot
// install, log purge) runs between Readies, from the same loop.
import type { Message, RaftNode, Ready, Role, SnapshotNotice } from '../raft/index.js';
import type { RaftStorage } from '../storage/index.js';
import type { ApplyResult, LogEntry, ScmStateMachine } from '../statemachine/index.js';
import { NotLeaderError, UnavailableError } from '../errors.js';

export interface DriverHooks {
  /** Encoded and handed to the transport. */
  send(message: Message): void;
  /** The configuration changed (applied or appended): update transport peers, persist raft-meta.conf. */
  onMembershipChange?(): void;
  onSoftState?(role: Role, leader: string, term: number): void;
  /**
   * Follower told to install a snapshot. Downloads and verifies while the loop keeps running (so
   * heartbeats are still answered), then resolves to the swap step, which the driver runs between
   * Readies with nothing else touching storage or the DB; the swap returns the installed point.
   */
  installSnapshot?(notice: SnapshotNotice): Promise<() => Promise<{ term: number; index: number }>>;
  onApplied?(results: readonly ApplyResult[]): void;
  /** A recoverable problem worth logging (a malformed message, a failed download that will be retried). */
  onError(error: Error): void;
  /**
   * The loop cannot go on: persisting, applying or installing failed, so the core has a Ready it can
   * never advance past. The node must stop (and the process exit non-zero) rather than linger alive
   * and silent.
   */
  onFatal(error: Error): void;
  onInfo?(message: string, fields?: Record<string, unknown>): void;
}

export interface DriverOptions {
  readonly tickMs: number;
  /** Record a snapshot point every this many applied entries (ozone.scm.ha.ratis.snapshot.threshold). */
  readonly snapshotThreshold: number;
  readonly purgeEnabled: boolean;
  /** Keep this many entries below the snapshot point (ozone.scm.ha.ratis.log.purge.gap). */
  readonly purgeGap: number;
  /** How long a proposal may wait for commit before the client is told to retry. */
  readonly requestTimeoutMs: number;
  /** Leader id → client address (host:port), for NotLeader hints. */
  readonly clientAddressOf: (nodeId: string) => string | undefined;
}

/** Thrown by a snapshot swap once scm.db was replaced: nothing can be retried from there. */
export class FatalInstallError extends Error {
  override readonly name = 'FatalInstallError';
}

interface PendingProposal {
  readonly term: number;
  readonly resolve: (result: ApplyResult) => void;
  readonly reject: (error: Error) => void;
  readonly timer: NodeJS.Timeout;
}

interface AppliedWaiter {
  readonly index: number;
  readonly term: number;
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
}

interface PendingRead {
  index: number;
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
}

export class RaftDriver {
  private readonly proposals = new Map<number, PendingProposal>();
  private readonly readsWaitingForIndex = new Map<string, PendingRead>();
  private readonly readsWaitingForApply: PendingRead[] = [];
  private readonly betweenReadies: Array<() => Promise<void>> = [];
  private appliedWaiters: AppliedWaiter[] = [];
  private readonly conditionWaiters = new Set<() => void>();
  private ticker: NodeJS.Timeout | undefined;
  private running = false;
  private scheduled = false;
  private stopped = false;
  private idle: Promise<void> = Promise.resolve();
  private nextReadId = 0;
  private lastSnapshotIndex: number;
  private installing = false;
  private committedConfigIndex: number;
  private failed = false;

  constructor(
    readonly core: RaftNode,
    private readonly storage: RaftStorage,
    private readonly sm: ScmStateMachine,
    private readonly options: DriverOptions,
    private readonly hooks: DriverHooks,
  ) {
    this.lastSnapshotIndex = sm.snapshotPoint().index;
    this.committedConfigIndex = core.committedMembership().index;
  }

  start(): void {
    this.ticker = setInterval(() => {
      this.core.tick();
      this.schedule();
    }, this.options.tickMs);
    this.schedule();
  }

  /** Stops ticking and waits for the Ready in progress (and its fsync) to finish. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.ticker !== undefined) clearInterval(this.ticker);
    await this.idle;
    const err = new UnavailableError('this SCM is shutting down');
    for (const p of this.proposals.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.proposals.clear();
    for (const r of [...this.readsWaitingForIndex.values(), ...this.readsWaitingForApply]) r.reject(err);
    this.readsWaitingForIndex.clear();
    this.readsWaitingForApply.length = 0;
    for (const w of this.appliedWaiters) w.reject(err);
    this.appliedWaiters = [];
  }

  /** Asks the loop to look at the core again (after a direct call such as transferLeadership). */
  kick(): void {
    this.schedule();
  }

  /**
   * Resolves once the entry (index, term) is applied here; rejects with NotLeaderError if another
   * entry ended up at that index (it was overwritten after a leader change).
   */
  waitApplied(index: number, term: number): Promise<void> {
    this.schedule();
    return new Promise((resolve, reject) => {
      this.appliedWaiters.push({ index, term, resolve, reject });
      this.releaseAppliedWaiters();
    });
  }

  /** Re-checks `predicate` after every Ready until it holds, or fails after `timeoutMs`. */
  waitFor(predicate: () => boolean, timeoutMs: number, what: string): Promise<void> {
    if (predicate()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (!predicate()) return;
        clearTimeout(timer);
        this.conditionWaiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.conditionWaiters.delete(check);
        reject(new UnavailableError(`${what} did not happen within ${timeoutMs} ms`));
      }, timeoutMs);
      timer.unref();
      this.conditionWaiters.add(check);
    });
  }

  private releaseAppliedWaiters(): void {
    if (this.appliedWaiters.length === 0) return;
    const applied = this.sm.lastApplied().index;
    const still: AppliedWaiter[] = [];
    for (const w of this.appliedWaiters) {
      if (w.index > applied) still.push(w);
      else {
        const term = this.core.logTerm(w.index);
        if (term === w.term) w.resolve();
        else if (term === undefined) w.reject(new UnavailableError(`entry ${w.index} was applied and purged before its term could be checked; retry`));
        else w.reject(this.notLeaderError());
      }
    }
    this.appliedWaiters = still;
  }

  step(message: Message): void {
    if (this.stopped) return;
    try {
      this.core.step(message);
    } catch (err) {
      this.hooks.onError(err as Error);
      return;
    }
    this.schedule();
  }

  notLeaderError(): NotLeaderError {
    const leader = this.core.status().leader;
    if (leader === '') return new NotLeaderError();
    return new NotLeaderError(leader, this.options.clientAddressOf(leader));
  }

  isLeader(): boolean {
    return this.core.status().role === 'leader';
  }

  /** Proposes a command; resolves with its apply result on this node. */
  propose(data: Uint8Array): Promise<ApplyResult> {
    if (this.stopped) return Promise.reject(new UnavailableError('this SCM is shutting down'));
    const result = this.core.propose(data);
    if (!result.ok) {
      if (result.error === 'transferring') {
        return Promise.reject(new UnavailableError('leadership is being transferred; retry shortly'));
      }
      return Promise.reject(this.notLeaderError());
    }
    this.schedule();
    return new Promise((resolve, reject) => {
      // An older proposal at this index was truncated away (we lost and regained leadership).
      const displaced = this.proposals.get(result.index);
      if (displaced !== undefined) {
        clearTimeout(displaced.timer);
        displaced.reject(this.notLeaderError());
      }
      const pending: PendingProposal = {
        term: result.term,
        resolve,
        reject,
        timer: setTimeout(() => {
          if (this.proposals.get(result.index) === pending) this.proposals.delete(result.index);
          reject(new UnavailableError(`entry ${result.index} was not committed within ${this.options.requestTimeoutMs} ms; retry with the same call id`));
        }, this.options.requestTimeoutMs),
      };
      pending.timer.unref();
      this.proposals.set(result.index, pending);
    });
  }

  /** ReadIndex: resolves once this leader confirmed its leadership and applied up to the read index. */
  readBarrier(): Promise<void> {
    if (this.stopped) return Promise.reject(new UnavailableError('this SCM is shutting down'));
    const requestId = `r${++this.nextReadId}`;
    const started = this.core.readIndex(requestId);
    if (!started.ok) return Promise.reject(this.notLeaderError());
    this.schedule();
    return new Promise((resolve, reject) => {
      this.readsWaitingForIndex.set(requestId, { index: 0, resolve, reject });
    });
  }

  /** Runs `action` between Readies, in the loop, with nothing else touching storage or the DB. */
  runBetweenReadies<T>(action: () => Promise<T>): Promise<T> {
    return new Promise((resolve, reject) => {
      this.betweenReadies.push(async () => {
        try {
          resolve(await action());
        } catch (err) {
          reject(err as Error);
        }
      });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.running || this.stopped) return;
    if (this.betweenReadies.length === 0 && !this.core.hasReady()) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      if (this.running || this.stopped) return;
      this.running = true;
      this.idle = this.loop()
        .catch((err: unknown) => this.fail(err as Error))
        .finally(() => {
          this.running = false;
          this.schedule();
        });
    });
  }

  private fail(err: Error): void {
    if (this.failed) return;
    this.failed = true;
    this.stopped = true;
    if (this.ticker !== undefined) clearInterval(this.ticker);
    this.hooks.onFatal(err);
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      const action = this.betweenReadies.shift();
      if (action !== undefined) {
        await action();
        continue;
      }
      const rd = this.core.ready();
      if (rd === null) return;
      await this.handleReady(rd);
      this.core.advance();
      this.releaseAppliedWaiters();
      for (const check of [...this.conditionWaiters]) check();
      // A configuration can also become committed without an applied entry (adopted from a
      // leader's snapshot notice): persist and connect it all the same.
      const committedConfig = this.core.committedMembership().index;
      if (committedConfig !== this.committedConfigIndex) {
        this.committedConfigIndex = committedConfig;
        this.hooks.onMembershipChange?.();
      }
      await this.afterAdvance();
    }
  }

  private async handleReady(rd: Ready): Promise<void> {
    if (rd.softState !== undefined) {
      this.hooks.onSoftState?.(rd.softState.role, rd.softState.leader, rd.softState.term);
      if (rd.softState.role !== 'leader') this.failReadsWaitingForIndex();
    }
    // 1. Persist (asynchronously), 2. meanwhile let the leader's appends go out.
    const persisted: Array<Promise<void>> = [];
    if (rd.hardState !== undefined) persisted.push(this.storage.saveMeta(rd.hardState.term, rd.hardState.votedFor));
    let configAppended = false;
    if (rd.entries.length > 0) {
      const first = rd.entries[0]!.index;
      if (first <= this.storage.lastIndex()) persisted.push(this.storage.truncateFrom(first));
      persisted.push(this.storage.append(rd.entries as LogEntry[]));
      configAppended = rd.entries.some((e) => e.payload.kind === 'config') || rd.truncateFrom !== undefined;
    }
    for (const m of rd.messages) this.hooks.send(m);
    await Promise.all(persisted);
    // 3. Durable now: votes and acknowledgements may leave.
    for (const m of rd.messagesAfterPersist) this.hooks.send(m);
    if (configAppended) this.hooks.onMembershipChange?.();

    // 4. Apply.
    if (rd.committedEntries.length > 0) await this.apply(rd.committedEntries);

    // 5. Reads.
    for (const rs of rd.readStates) {
      const read = this.readsWaitingForIndex.get(rs.requestId);
      if (read === undefined) continue;
      this.readsWaitingForIndex.delete(rs.requestId);
      read.index = rs.index;
      this.readsWaitingForApply.push(read);
    }
    for (const id of rd.droppedReads) {
      const read = this.readsWaitingForIndex.get(id);
      this.readsWaitingForIndex.delete(id);
      read?.reject(this.notLeaderError());
    }
    this.releaseReads();

    // 6. Snapshot notice: install between Readies, pausing the loop meanwhile.
    if (rd.snapshotNotice !== undefined) this.beginInstall(rd.snapshotNotice);
  }

  private async apply(entries: readonly LogEntry[]): Promise<void> {
    const results = await this.sm.applyBatch(entries);
    for (const result of results) {
      const pending = this.proposals.get(result.index);
      if (pending === undefined) continue;
      this.proposals.delete(result.index);
      clearTimeout(pending.timer);
      if (result.term === pending.term) pending.resolve(result);
      else pending.reject(this.notLeaderError());
    }
    // Proposals whose index was applied without a result (overwritten by a config/no-op entry of a
    // newer leader) were lost: the client must retry, on the new leader.
    const applied = this.sm.lastApplied().index;
    for (const [index, pending] of this.proposals) {
      if (index > applied) continue;
      this.proposals.delete(index);
      clearTimeout(pending.timer);
      pending.reject(this.notLeaderError());
    }
    if (entries.some((e) => e.payload.kind === 'config')) this.hooks.onMembershipChange?.();
    this.hooks.onApplied?.(results);
  }

  private releaseReads(): void {
    const applied = this.sm.lastApplied().index;
    for (let i = this.readsWaitingForApply.length - 1; i >= 0; i--) {
      const read = this.readsWaitingForApply[i]!;
      if (read.index <= applied) {
        this.readsWaitingForApply.splice(i, 1);
        read.resolve();
      }
    }
  }

  private failReadsWaitingForIndex(): void {
    const err = this.notLeaderError();
    for (const read of this.readsWaitingForIndex.values()) read.reject(err);
    this.readsWaitingForIndex.clear();
  }

  /** After advance(): take snapshot points and purge the log they make unnecessary. */
  private async afterAdvance(): Promise<void> {
    const applied = this.sm.lastApplied();
    if (applied.index - this.lastSnapshotIndex < this.options.snapshotThreshold) return;
    const point = await this.sm.recordSnapshotPoint();
    this.lastSnapshotIndex = point.index;
    this.hooks.onInfo?.('snapshot point recorded', { term: point.term, index: point.index });
    if (!this.options.purgeEnabled) return;
    const purgeBelow = point.index - this.options.purgeGap;
    if (purgeBelow <= this.storage.firstIndex()) return;
    const before = this.storage.firstIndex();
    await this.storage.purgeBelow(purgeBelow);
    const first = this.storage.firstIndex();
    if (first > before) {
      const term = this.storage.term(first - 1);
      if (term !== undefined) this.core.compacted(first - 1, term);
      this.hooks.onInfo?.('purged log segments', { firstIndex: first, snapshotIndex: point.index });
    }
  }

  private beginInstall(notice: SnapshotNotice): void {
    const install = this.hooks.installSnapshot;
    if (install === undefined || this.installing) return;
    this.installing = true;
    install(notice)
      .then((swap) =>
        this.runBetweenReadies(async () => {
          const installed = await swap();
          this.lastSnapshotIndex = installed.index;
          this.core.snapshotInstalled(installed.term, installed.index);
          this.hooks.onMembershipChange?.();
          this.hooks.onInfo?.('snapshot installed', { term: installed.term, index: installed.index, leader: notice.leaderId });
        }),
      )
      .catch((err: unknown) => {
        const error = new Error(`snapshot install from ${notice.leaderId} failed: ${(err as Error).message}`, { cause: err });
        if (err instanceof FatalInstallError) {
          this.fail(error);
          return;
        }
        this.hooks.onError(error);
        return this.runBetweenReadies(() => Promise.resolve(this.core.snapshotInstallFailed()));
      })
      .catch((err: unknown) => this.fail(err as Error))
      .finally(() => {
        this.installing = false;
      });
  }

  /** Whether a snapshot download/install is under way. */
  isInstalling(): boolean {
    return this.installing;
  }
}
