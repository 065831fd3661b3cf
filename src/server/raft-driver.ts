// Drives the pure Raft core with a log store, a state machine, a transport and a scheduler, all
// passed in as small interfaces (raft-ports.ts). The node passes the real ones; the simulator passes
// in-memory ones with seeded faults and runs this very class.
//
// One loop, one Ready at a time, in the order of the core's driving contract: persist hard state
// and entries (the leader's appends go out to followers while its own fsync runs); send votes and
// acknowledgements only once durable; hand committed entries to the state machine as one batch;
// then advance. Applying runs beside the loop, as etcd's apply runs beside its Ready loop: the next
// Ready's persist does not wait for the previous Ready's apply (the state machine applies batches
// strictly in order, and a proposal is answered, a read served, only once its entry is applied).
// At most MAX_APPLIES_IN_FLIGHT batches wait to be applied; beyond that the loop waits.
// Proposals and inputs arriving meanwhile pile up in the core and leave together in the next
// Ready, which is where group commit comes from: one fsync per round, not per entry. Everything
// that changes the log or the state machine outside a Ready (snapshot install, log purge) runs
// between Readies, from the same loop, once every apply handed out has finished.
import { entrySize, type IndexedMembership, type LogEntry, type Message, type RaftNode, type Ready, type Role, type SnapshotNotice } from '../raft/index.js';
import type { ApplyResult } from '../statemachine/index.js';
import { InvalidArgumentError, NotLeaderError, UnavailableError } from '../errors.js';
import type { RaftLogStore, RaftMessageSink, ReplicatedStateMachine, Scheduler, TimerHandle } from './raft-ports.js';
import { FatalInstallError, SnapshotCatchUp, type CatchUpFailpoint, type CheckpointSource } from './snapshot-catch-up.js';

export interface DriverHooks {
  /** The configuration changed (appended, applied or installed): update transport peers. */
  onMembershipChange?(): void;
  onSoftState?(role: Role, leader: string, term: number): void;
  onApplied?(results: readonly ApplyResult[]): void;
  /** A proposal did not commit: it timed out, or leadership was lost before it committed. */
  onProposalFailed?(reason: 'timeout' | 'lost'): void;
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
  /**
   * Purge up to the snapshot point even past entries a live follower has not got yet (it is then
   * sent to install a checkpoint); false, as Ratis by default, keeps them until it has them.
   */
  readonly purgeUptoSnapshotIndex: boolean;
  /** How long a proposal may wait for commit before the client is told to retry. */
  readonly requestTimeoutMs: number;
  /** Leader id → client address (host:port), for NotLeader hints. */
  readonly clientAddressOf: (nodeId: string) => string | undefined;
  /**
   * How long a commit advance waits for an append to carry it before it is sent on its own (an
   * empty append per follower). 0 (the default): at once. Followers learn a commit at most twice
   * this much later (and at most one tick later whatever the timer does).
   */
  readonly commitForwardDelayMs?: number;
  /**
   * How long applied entries may stay unwritten in scm.db (ozone.scm.ha.dbtransactionbuffer.flush.interval):
   * each apply leaves its write for later (ApplyOptions.deferWrite), and this long after the first
   * such apply one write carries them all. They are committed in the Raft log already, and a crash
   * applies them again. 0 (the default): each apply writes its batch.
   */
  readonly applyWriteDelayMs?: number;
  /**
   * The largest entry (entrySize) a proposal may make, and where that comes from, for the
   * refusal's text: an entry larger than an append may carry could never reach a follower
   * (raft-message-sizes.ts).
   */
  readonly maxEntryBytes: { readonly bytes: number; readonly from: string };
}

export interface RaftDriverParts {
  readonly core: RaftNode;
  readonly log: RaftLogStore;
  readonly sm: ReplicatedStateMachine;
  readonly transport: RaftMessageSink;
  readonly scheduler: Scheduler;
  /** Where a follower downloads checkpoints from; without one, install requests fail. */
  readonly checkpoints?: CheckpointSource;
  /** Test and simulator hook between the steps of an install. */
  readonly catchUpFailpoint?: (name: CatchUpFailpoint) => void;
  /** The configuration index raft-meta.conf holds at start (-1: none); newer committed ones are written. */
  readonly savedConfIndex: number;
}

/** Most entries kept below the purge point for followers still catching up (Ozone's default purge gap). */
export const MAX_ENTRIES_HELD = 1_000_000;

/**
 * Where to purge below after a snapshot point: `gap` entries below it, but not past `floor`, what a
 * follower installing a checkpoint resumes from or (unless purging up to the snapshot index) what a
 * live follower still needs; and a follower slower than the writes for good must not grow the log
 * without end: beyond MAX_ENTRIES_HELD held back, it installs instead.
 */
export function purgeBound(snapshotIndex: number, gap: number, floor: number | undefined): number {
  const wanted = snapshotIndex - gap;
  return floor === undefined ? wanted : Math.min(wanted, Math.max(floor, wanted - MAX_ENTRIES_HELD));
}

/** Apply batches handed to the state machine and not yet finished before the loop waits for them. */
const MAX_APPLIES_IN_FLIGHT = 2;

interface PendingProposal {
  readonly term: number;
  readonly resolve: (result: ApplyResult) => void;
  readonly reject: (error: Error) => void;
  readonly timer: TimerHandle;
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

/** Most ticks one catch-up runs (far more than any election timeout in ticks). */
const MAX_CATCH_UP_TICKS = 1000;

export class RaftDriver {
  readonly core: RaftNode;
  private readonly log: RaftLogStore;
  private readonly sm: ReplicatedStateMachine;
  private readonly scheduler: Scheduler;
  private readonly transport: RaftMessageSink;
  private readonly catchUp: SnapshotCatchUp | undefined;
  private readonly proposals = new Map<number, PendingProposal>();
  private readonly readsWaitingForIndex = new Map<string, PendingRead>();
  private readonly readsWaitingForApply: PendingRead[] = [];
  private readonly betweenReadies: Array<() => Promise<void>> = [];
  private appliedWaiters: AppliedWaiter[] = [];
  private readonly conditionWaiters = new Set<() => void>();
  private ticker: TimerHandle | undefined;
  /** Armed while a commit advance waits for an append to carry it (see commitForwardDelayMs). */
  private commitForwardTimer: TimerHandle | undefined;
  /** Clock time the last tick stands for (see tickForElapsedTime). */
  private lastTickAt = 0;
  private running = false;
  private scheduled = false;
  private stopped = false;
  private idle: Promise<void> = Promise.resolve();
  private nextReadId = 0;
  private lastSnapshotIndex: number;
  private installing = false;
  /** The download under way: aborted at stop, or as soon as a newer term begins. */
  private download: { readonly term: number; readonly abort: AbortController } | undefined;
  private committedConfigIndex: number;
  /** The core's departuresVersion the node's links were last set for. */
  private departuresVersion = 0;
  private savedConfIndex: number;
  /** raft-meta.conf writes, one after another. */
  private confWrites: Promise<void> = Promise.resolve();
  private failed = false;
  /** The applies handed to the state machine, chained in order; settles when the last one has. */
  private applying: Promise<void> = Promise.resolve();
  private appliesInFlight = 0;
  /** Set while applied entries may be unwritten: the write of them all, due then. */
  private applyWriteTimer: TimerHandle | undefined;

  constructor(
    parts: RaftDriverParts,
    private readonly options: DriverOptions,
    private readonly hooks: DriverHooks,
  ) {
    this.core = parts.core;
    this.log = parts.log;
    this.sm = parts.sm;
    this.scheduler = parts.scheduler;
    this.transport = parts.transport;
    this.catchUp =
      parts.checkpoints === undefined
        ? undefined
        : new SnapshotCatchUp({
            core: parts.core,
            log: parts.log,
            sm: parts.sm,
            source: parts.checkpoints,
            ...(parts.catchUpFailpoint !== undefined ? { failpoint: parts.catchUpFailpoint } : {}),
          });
    this.lastSnapshotIndex = parts.sm.snapshotPoint().index;
    this.committedConfigIndex = parts.core.committedMembership().index;
    this.savedConfIndex = parts.savedConfIndex;
  }

  start(): void {
    this.lastTickAt = this.scheduler.now();
    this.ticker = this.scheduler.every(this.options.tickMs, () => {
      if (this.stopped) return;
      this.tickForElapsedTime(1);
      this.schedule();
    });
    this.persistCommittedConfiguration();
    this.schedule();
  }

  /** Stops ticking and waits for the Ready in progress (and its fsync) to finish. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.ticker?.cancel();
    this.commitForwardTimer?.cancel();
    this.download?.abort.abort(new Error('this SCM is stopping'));
    await this.idle;
    await this.applying;
    // Whatever the applies left unwritten is written by the state machine's close.
    this.applyWriteTimer?.cancel();
    this.applyWriteTimer = undefined;
    await this.confWrites;
    const err = new UnavailableError('this SCM is shutting down');
    for (const p of this.proposals.values()) {
      p.timer.cancel();
      p.reject(err);
    }
    this.proposals.clear();
    for (const r of [...this.readsWaitingForIndex.values(), ...this.readsWaitingForApply]) r.reject(err);
    this.readsWaitingForIndex.clear();
    this.readsWaitingForApply.length = 0;
    for (const w of this.appliedWaiters) w.reject(err);
    this.appliedWaiters = [];
  }

  /** Proposals accepted by the core and not yet answered. */
  get pendingProposals(): number {
    return this.proposals.size;
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
        timer.cancel();
        this.conditionWaiters.delete(check);
        resolve();
      };
      const timer = this.scheduler.after(timeoutMs, () => {
        this.conditionWaiters.delete(check);
        reject(new UnavailableError(`${what} did not happen within ${timeoutMs} ms`));
      });
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

  /** Feeds a peer's message to the core; returns why the core refused it (a broken rule), if it did. */
  step(message: Message): Error | undefined {
    if (this.stopped) return undefined;
    try {
      this.core.step(message);
    } catch (err) {
      return err as Error;
    }
    this.schedule();
    return undefined;
  }

  notLeaderError(): NotLeaderError {
    const leader = this.core.leaderId;
    if (leader === '') return new NotLeaderError();
    return new NotLeaderError(leader, this.options.clientAddressOf(leader));
  }

  isLeader(): boolean {
    return this.core.currentRole === 'leader';
  }

  /** Proposes a command; resolves with its apply result on this node. */
  propose(data: Uint8Array): Promise<ApplyResult> {
    if (this.stopped) return Promise.reject(new UnavailableError('this SCM is shutting down'));
    const limit = this.options.maxEntryBytes;
    const size = entrySize({ term: 0, index: 0, payload: { kind: 'data', data } });
    if (size > limit.bytes) {
      return Promise.reject(new InvalidArgumentError(`the command is ${size} bytes as a Raft entry, over the ${limit.bytes} one entry may hold (${limit.from})`));
    }
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
        displaced.timer.cancel();
        displaced.reject(this.notLeaderError());
        this.hooks.onProposalFailed?.('lost');
      }
      const pending: PendingProposal = {
        term: result.term,
        resolve,
        reject,
        timer: this.scheduler.after(this.options.requestTimeoutMs, () => {
          if (this.proposals.get(result.index) === pending) this.proposals.delete(result.index);
          this.hooks.onProposalFailed?.('timeout');
          reject(new UnavailableError(`entry ${result.index} was not committed within ${this.options.requestTimeoutMs} ms; retry with the same call id`));
        }),
      };
      this.proposals.set(result.index, pending);
    });
  }

  /**
   * On a leader, ticks the core once per tickMs of clock time since the last tick (at least
   * `atLeast` times). A timer fires once however long the process was stopped (SIGSTOP, a long
   * pause), so counting timer callbacks would let a paused leader's lease outlive real time:
   * resumed, it served a lease read while another leader had committed meanwhile (simulation seeds
   * 683 and 703). A long gap is capped (MAX_CATCH_UP_TICKS): past an election timeout, more ticks
   * change nothing.
   *
   * Any other role ticks `atLeast` times, whatever the clock says. After its loop was held up (a
   * follower's fdatasync runs on it, a process was stopped), Node runs the timers before the I/O
   * that waited: the leader's heartbeats of the whole gap are stepped only after this tick, so
   * counting the gap here would have a follower of a live leader campaign. Counting too little is
   * safe on a follower: it only refuses votes for longer (the leader's lease assumes it refuses
   * them for at least an election timeout of its own time) and campaigns later.
   */
  private tickForElapsedTime(atLeast: number): void {
    const now = this.scheduler.now();
    if (this.core.currentRole !== 'leader') {
      this.lastTickAt = now;
      for (let k = 0; k < atLeast; k++) this.core.tick();
      return;
    }
    const elapsed = Math.floor((now - this.lastTickAt) / this.options.tickMs);
    const due = Math.max(atLeast, elapsed);
    // The ticks stand for whole periods of clock time; a timer tick that came early restarts them.
    this.lastTickAt = elapsed >= due ? this.lastTickAt + due * this.options.tickMs : now;
    for (let k = 0; k < Math.min(due, MAX_CATCH_UP_TICKS); k++) this.core.tick();
  }

  /** ReadIndex: resolves once this leader confirmed its leadership and applied up to the read index. */
  readBarrier(): Promise<void> {
    if (this.stopped) return Promise.reject(new UnavailableError('this SCM is shutting down'));
    // Time this process did not see (it was stopped) counts before a lease is believed.
    this.tickForElapsedTime(0);
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
    this.followDepartures();
    if (this.scheduled || this.running || this.stopped) return;
    if (this.betweenReadies.length === 0 && !this.core.hasReady()) return;
    this.scheduled = true;
    this.scheduler.soon(() => {
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

  /**
   * The members a leader tells of their removal (RaftNode status().departing) changed: the node's
   * links and admitted senders follow them, as they follow configurations.
   */
  private followDepartures(): void {
    const version = this.core.departuresVersion;
    if (version === this.departuresVersion || this.stopped) return;
    this.departuresVersion = version;
    this.hooks.onMembershipChange?.();
  }

  private fail(err: Error): void {
    if (this.failed) return;
    this.failed = true;
    this.stopped = true;
    this.ticker?.cancel();
    this.commitForwardTimer?.cancel();
    this.applyWriteTimer?.cancel();
    this.applyWriteTimer = undefined;
    this.download?.abort.abort(err);
    this.hooks.onFatal(err);
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      if (this.betweenReadies.length > 0) {
        // Nothing touches the log or the state machine beside an action: the applies finish first.
        await this.applying;
        if (this.stopped) return;
        const action = this.betweenReadies.shift() as () => Promise<void>;
        await action();
        continue;
      }
      if (this.appliesInFlight >= MAX_APPLIES_IN_FLIGHT) {
        await this.applying;
        continue;
      }
      // Before the Ready's messages go: a link to a member the leader now tells of its removal.
      this.followDepartures();
      const rd = this.core.ready();
      if (rd === null) return;
      await this.handleReady(rd);
      this.core.advance();
      this.releaseAppliedWaiters();
      for (const check of [...this.conditionWaiters]) check();
      const committedConfig = this.core.committedMembership().index;
      if (committedConfig !== this.committedConfigIndex) {
        this.committedConfigIndex = committedConfig;
        this.persistCommittedConfiguration();
        this.hooks.onMembershipChange?.();
      }
      this.maybeForwardCommit();
      await this.afterAdvance();
    }
  }

  /**
   * A commit advance that no append has carried to some follower yet: forward it at once, or arm
   * a timer that does so after commitForwardDelayMs unless an append carried it meanwhile. Each
   * advance gets the whole delay: if the one the timer was armed for was carried but a newer one
   * waits, the timer is armed again for that one.
   */
  private maybeForwardCommit(): void {
    if (this.commitForwardTimer !== undefined || !this.core.commitForwardPending()) return;
    const delay = this.options.commitForwardDelayMs ?? 0;
    if (delay <= 0) {
      this.core.forwardCommit();
      return;
    }
    const armedFor = this.core.commitIndex;
    this.commitForwardTimer = this.scheduler.after(delay, () => {
      this.commitForwardTimer = undefined;
      if (this.stopped) return;
      if (this.core.commitForwardPending(armedFor)) {
        this.core.forwardCommit();
        this.schedule();
      } else {
        this.maybeForwardCommit();
      }
    });
  }

  private async handleReady(rd: Ready): Promise<void> {
    if (this.download !== undefined && rd.softState !== undefined && rd.softState.term > this.download.term) {
      // The leader we download from may be hung or cut off; a new term's leader asks again.
      this.download.abort.abort(new Error(`term ${rd.softState.term} began while downloading from the leader of term ${this.download.term}`));
    }
    if (rd.softState !== undefined) {
      this.hooks.onSoftState?.(rd.softState.role, rd.softState.leader, rd.softState.term);
      if (rd.softState.role !== 'leader') this.failReadsWaitingForIndex();
    }
    // 1. Let the leader's appends go out, 2. persist (asynchronously) while they travel. In this
    // order: the transport writes to its sockets in flush(), and the log's write (a synchronous
    // pwrite, then the fsync handed to the thread pool) would otherwise hold them back, while the
    // followers' fsyncs are what a commit waits for.
    for (const m of rd.messages) this.transport.send(m);
    this.transport.flush?.();
    const persisted: Array<Promise<void>> = [];
    if (rd.hardState !== undefined) persisted.push(this.log.saveMeta(rd.hardState.term, rd.hardState.votedFor));
    let configAppended = false;
    if (rd.entries.length > 0) {
      const first = rd.entries[0]!.index;
      if (first <= this.log.lastIndex()) persisted.push(this.log.truncateFrom(first));
      persisted.push(this.log.append(rd.entries));
      configAppended = rd.entries.some((e) => e.payload.kind === 'config') || rd.truncateFrom !== undefined;
    }
    await Promise.all(persisted);
    // 3. Durable now: votes and acknowledgements may leave.
    for (const m of rd.messagesAfterPersist) this.transport.send(m);
    this.transport.flush?.();
    if (configAppended) this.hooks.onMembershipChange?.();

    // 4. Apply, beside the loop (after the applies handed out before, in order).
    if (rd.committedEntries.length > 0) this.startApply(rd.committedEntries);

    // 5. Reads: served once applied up to their index (releaseReads, also after every apply).
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

    // 6. Snapshot notice: download now, install between Readies.
    if (rd.snapshotNotice !== undefined) this.beginInstall(rd.snapshotNotice);
  }

  /**
   * Hands committed entries to the state machine without waiting for it. The core counts them as
   * applied at advance(): it never hands them out again. The driver's own view of what is applied
   * (answers, reads, waiters, snapshot points) is the state machine's lastApplied(), which moves
   * only once the batch is done. A failed apply stops the node.
   */
  private startApply(entries: readonly LogEntry[]): void {
    this.appliesInFlight++;
    // Started on the next turn of the event loop, after what this Ready sent has left: a
    // follower's acknowledgement of new entries must not wait while it computes the entries that
    // the same append committed (applying computes in microtasks, ahead of the transport's write).
    // Proposals are answered as soon as their results are computed (the entries are committed:
    // durable on a majority), without waiting for the state machine's own write; and the write
    // waits a turn for them: the answers (a chain of promise reactions per call, then each
    // response's encoding and framing) would otherwise run only after the write's synchronous
    // part (encoding every record, handing the batch to LevelDB), which is on no client's path.
    const deferWrite = (this.options.applyWriteDelayMs ?? 0) > 0;
    const applied = new Promise<void>((resolve) => this.scheduler.soon(resolve)).then(() =>
      this.sm.applyBatch(
        entries,
        (results) => {
          if (!this.failed) this.answerProposals(results);
          return new Promise<void>((resolve) => this.scheduler.soon(resolve));
        },
        { deferWrite },
      ),
    );
    applied.catch(() => undefined); // handled in order below, once the applies before it are done
    this.applying = this.applying
      .then(() => applied)
      .then((results) => {
        this.appliesInFlight--;
        if (this.failed) return;
        if (deferWrite) this.writeAppliedLater();
        this.answer(entries, results);
        this.releaseReads();
        this.releaseAppliedWaiters();
        for (const check of [...this.conditionWaiters]) check();
        this.schedule();
      })
      .catch((err: unknown) => {
        this.appliesInFlight--;
        this.fail(err as Error);
      });
  }

  /**
   * Arms the write of what applies leave unwritten, unless it is armed: one write per
   * applyWriteDelayMs however many applies come meanwhile. Ordered after the applies handed over
   * before it fires; a failure stops the node, as a failed apply does.
   */
  private writeAppliedLater(): void {
    if (this.applyWriteTimer !== undefined || this.stopped) return;
    this.applyWriteTimer = this.scheduler.after(this.options.applyWriteDelayMs ?? 0, () => {
      this.applyWriteTimer = undefined;
      if (this.stopped) return;
      this.applying = this.applying
        .then(async () => void (await this.sm.writeApplied()))
        .catch((err: unknown) => this.fail(err as Error));
    });
  }

  private answer(entries: readonly LogEntry[], results: readonly ApplyResult[]): void {
    this.answerProposals(results);
    // Up to this batch only: a later batch may be written already, its results not yet handed over.
    this.settleProposalsAppliedWithoutResult((entries[entries.length - 1] as LogEntry).index);
    if (entries.some((e) => e.payload.kind === 'config')) this.hooks.onMembershipChange?.();
    this.hooks.onApplied?.(results);
  }

  /** Answers the proposals these results are for (each once: answered ones leave the map). */
  private answerProposals(results: readonly ApplyResult[]): void {
    for (const result of results) {
      const pending = this.proposals.get(result.index);
      if (pending === undefined) continue;
      this.proposals.delete(result.index);
      pending.timer.cancel();
      if (result.term === pending.term) pending.resolve(result);
      else {
        pending.reject(this.notLeaderError());
        this.hooks.onProposalFailed?.('lost');
      }
    }
  }

  /**
   * Proposals at or below the applied index that got no result here. If another entry holds their
   * index (a newer leader's configuration entry, say) they were lost: NotLeader, the client retries
   * on the leader. If their own entry may be there (it was applied inside an installed checkpoint,
   * or its term is no longer known) the outcome is unknown, never "failed": the client retries with
   * the same call id and the retry cache answers with the original result.
   */
  private settleProposalsAppliedWithoutResult(upTo = this.sm.lastApplied().index): void {
    const applied = upTo;
    for (const [index, pending] of this.proposals) {
      if (index > applied) continue;
      this.proposals.delete(index);
      pending.timer.cancel();
      const term = this.core.logTerm(index);
      this.hooks.onProposalFailed?.('lost');
      if (term !== undefined && term !== pending.term) pending.reject(this.notLeaderError());
      else pending.reject(new UnavailableError(`entry ${index} was applied here by a snapshot install; its outcome is unknown here: retry with the same call id`));
    }
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

  /**
   * raft-meta.conf follows the committed configuration. It is a cache of what the log and scm.db
   * hold (start-up takes the newest of them), so a failed write is logged, not fatal.
   */
  private persistCommittedConfiguration(): void {
    const committed: IndexedMembership = this.core.committedMembership();
    if (committed.index <= this.savedConfIndex) return;
    this.savedConfIndex = committed.index;
    const fromDb = this.sm.configuration();
    const term = this.core.logTerm(committed.index) ?? (fromDb?.index === committed.index ? fromDb.term : 0);
    const entry: LogEntry = { term, index: committed.index, payload: { kind: 'config', peers: committed.membership.voters, listeners: committed.membership.nonVoters } };
    this.confWrites = this.confWrites
      .then(() => this.log.saveConf(entry))
      .catch((err: unknown) => this.hooks.onError(new Error(`could not write raft-meta.conf: ${(err as Error).message}`, { cause: err })));
  }

  /** After advance(): take snapshot points and purge the log they make unnecessary. */
  private async afterAdvance(): Promise<void> {
    const applied = this.sm.lastApplied();
    if (applied.index - this.lastSnapshotIndex < this.options.snapshotThreshold) return;
    const point = await this.sm.recordSnapshotPoint();
    this.lastSnapshotIndex = point.index;
    this.hooks.onInfo?.('snapshot point recorded', { term: point.term, index: point.index });
    if (!this.options.purgeEnabled) return;
    const purgeBelow = purgeBound(point.index, this.options.purgeGap, this.core.purgeFloor(!this.options.purgeUptoSnapshotIndex));
    if (purgeBelow <= this.log.firstIndex()) return;
    const before = this.log.firstIndex();
    await this.log.purgeBelow(purgeBelow);
    const first = this.log.firstIndex();
    if (first > before) {
      const term = this.log.term(first - 1);
      if (term !== undefined) this.core.compacted(first - 1, term);
      this.hooks.onInfo?.('purged log segments', { firstIndex: first, snapshotIndex: point.index });
    }
  }

  private beginInstall(notice: SnapshotNotice): void {
    if (this.installing) return; // the install under way answers this notice too (the core tracks whom)
    const catchUp = this.catchUp;
    if (catchUp === undefined) {
      void this.runBetweenReadies(() => Promise.resolve(this.core.snapshotInstallFailed()));
      return;
    }
    this.installing = true;
    const download = { term: notice.term, abort: new AbortController() };
    this.download = download;
    catchUp
      .fetch(notice, download.abort.signal)
      .finally(() => {
        if (this.download === download) this.download = undefined;
      })
      .then((checkpoint) =>
        this.runBetweenReadies(async () => {
          const installed = await catchUp.install(checkpoint, notice).finally(() => {
            this.installing = false;
          });
          this.lastSnapshotIndex = installed.index;
          this.committedConfigIndex = this.core.committedMembership().index;
          this.settleProposalsAppliedWithoutResult();
          this.releaseAppliedWaiters();
          this.releaseReads();
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
        return this.runBetweenReadies(() => {
          this.installing = false;
          this.core.snapshotInstallFailed();
          return Promise.resolve();
        });
      })
      .catch((err: unknown) => this.fail(err as Error));
  }

  /** Whether a snapshot download/install is under way. */
  isInstalling(): boolean {
    return this.installing;
  }
}
