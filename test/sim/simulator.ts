// Deterministic simulation of an SCM Raft group (TigerBeetle/FoundationDB style) that runs the
// production code: each node is the real RaftDriver over the real RaftNode, the real
// ScmStateMachine (over memory-level, which has LevelDB's API), the real start-up recovery
// (raft-boot.ts) and the real snapshot catch-up (snapshot-catch-up.ts); messages travel through the
// real Raft codec. What is simulated is only what the node gets from the outside: time
// (sim-scheduler.ts), the disk (sim-log-store.ts: a crash loses what was not fsynced), the network
// and where checkpoints are downloaded from. All randomness comes from one seed.
//
// Faults: message drop, delay, reordering and duplication (late and duplicated snapshot statuses of
// the current term included, in bursts); symmetric, asymmetric and flapping partitions; leaders cut
// off alone or with a minority (at once or a few ms into their term); crashes, most of them with
// writes in flight (at the fsync point), some in the middle of a snapshot install; restarts from
// raft-meta and raft-meta.conf, sometimes with raft-meta.conf lost, sometimes from an older copy of
// the node's directories (copies taken while a cut-off side holds an uncommitted suffix, restored
// while the leader still counts what the copy lacks; or an older copy restored first by mistake,
// then the right one, with appends the node got in between arriving again late); pauses longer
// than the election timeout;
// tick-rate skew; scm.db writes left for later (an interval from the seed, 0 to 60 ms, as the
// node's ozone.scm.ha.dbtransactionbuffer.flush.interval: a crash loses the applies not written);
// slow disks (under the Raft log, under scm.db: applies lag commits and a crash
// loses the writes not done, or both), on one node or on several at once (shared storage that
// stalls); leadership transfers whose TimeoutNow lands after the transfer was given up; membership
// changes from one voter up; checkpoint swaps that take time (the installing node silent meanwhile);
// checkpoints older than the follower (the leader's latest one reused as
// its provider does, or taken while its scm.db lags); bursts of writes from many clients at once,
// and storms of them arriving over up to 300 ms; some runs with a production-sized snapshot threshold.
// Invariants are checked after every event (Raft's commit rule among them); after the faults heal
// the group must elect a leader, commit and converge (same applied index and scm.db digest
// everywhere) within a bound; a register workload (datanode registrations written through the log,
// read with ReadIndex or a lease) is checked for linearizability, and every read (also those sent
// to every node claiming to lead while a deposed leader may still think it leads) for being
// answered in no term after a later term committed.
import { MemoryLevel } from 'memory-level';
import {
  RaftNode,
  SeededRandom,
  type IndexedMembership,
  type LogEntry,
  type Message,
  type RaftPeer,
  type SnapshotNotice,
} from '../../src/raft/index.js';
import { ScmStateMachine, encodeCommand, readConfiguration, type ScmDb } from '../../src/statemachine/index.js';
import { RaftDriver } from '../../src/server/raft-driver.js';
import { RaftInbound } from '../../src/server/raft-inbound.js';
import { recoverRaftState } from '../../src/server/raft-boot.js';
import { decodeRaftMessage, encodeRaftMessage } from '../../src/server/raft-codec.js';
import type { CatchUpFailpoint, CheckpointSource, FetchedCheckpoint } from '../../src/server/snapshot-catch-up.js';
import { readTransactionInfo } from '../../src/statemachine/transaction-info.js';
import { raftMessageSizes } from '../../src/server/raft-message-sizes.js';
import { EventQueue, NodeScheduler } from './sim-scheduler.js';
import { cloneDisk, emptyDisk, SimLogStore, type DiskImage } from './sim-log-store.js';
import { checkRegister, type RegisterOp } from './linearizability.js';

export interface SimOptions {
  readonly seed: number;
  /** Servers that exist (some may start outside the group). */
  readonly nodes: number;
  /** Simulated milliseconds of faults and workload. */
  readonly faultMs?: number;
  /** After healing, the group must commit and converge within this many simulated ms. */
  readonly livenessBoundMs?: number;
  readonly traceSize?: number;
  readonly leaseRead?: boolean;
}

export interface SimResult {
  readonly seed: number;
  readonly events: number;
  readonly committed: number;
  readonly leaders: number;
  readonly crashes: number;
  readonly crashesWithWritesInFlight: number;
  readonly installs: number;
  readonly membershipChanges: number;
  readonly transfers: number;
  readonly writes: number;
  readonly reads: number;
  readonly initialVoters: number;
  readonly pauses: number;
  readonly restoredFromCopy: number;
  readonly confLost: number;
  readonly installCrashes: number;
}

export class SimulationFailure extends Error {
  constructor(
    readonly seed: number,
    reason: string,
    readonly trace: string,
  ) {
    super(`simulation seed ${seed} failed: ${reason}\n--- last events (replay: npm run sim -- --seed ${seed}) ---\n${trace}`);
    this.name = 'SimulationFailure';
  }
}

const TICK_MS = 10;
const ELECTION_TICKS = 10;
const HEARTBEAT_TICKS = 2;
const CLIENT_TIMEOUT_MS = 400;
const KEYS = ['dn-x', 'dn-y'];
/** As production's CheckpointProvider (reuseWindowMs): longer than any run, so reuse is bounded by the first index. */
const CHECKPOINT_REUSE_MS = 30_000;

/** Thrown into a node's code at a failpoint where the simulator crashed it: that incarnation stops. */
class SimCrash extends Error {}

interface Checkpoint {
  readonly db: ScmDb;
  readonly index: number;
  readonly createdAt: number;
}

interface Backup {
  readonly disk: DiskImage;
  readonly db: ScmDb;
  readonly at: number;
  /**
   * The membership committed when the copy was taken (every term's first entry repeats the
   * configuration: only a change of members makes a copy unsafe to restore).
   */
  readonly configuration: string;
  /** The copy holds entries nothing had applied yet when it was taken (perhaps never committed). */
  readonly uncommitted: boolean;
}

interface SimNode {
  readonly id: string;
  readonly ordinal: number;
  readonly rate: number;
  alive: boolean;
  incarnation: number;
  pausedUntil: number;
  /** Until then the disk under the Raft log is slow (fsyncs take tens of ms). */
  slowDiskUntil: number;
  /**
   * Until then the disk under scm.db is slow (ozone.scm.db.dirs may be another disk than the Raft
   * log's): the state machine's writes lag, so what is applied (and what a checkpoint holds) lags
   * what is committed, and a crash loses the writes not yet done.
   */
  slowDbUntil: number;
  /** Set: crash when the next write is issued (with it in flight), staying down this long. */
  crashAtNextWrite: number | undefined;
  /** This incarnation started from an older copy of the node's directories. */
  restoredFromCopy: boolean;
  /**
   * The highest term any node had when this one was last restored from a copy: leaders up to that
   * term may still count a match it lost, until it tells them (a later plain restart does not).
   */
  restoredBeforeTerm: number;
  /** The highest index this node told a leader it holds, and in which term. */
  acked: { term: number; index: number };
  // The node's disk: survives crashes.
  disk: DiskImage;
  db: ScmDb;
  backup: Backup | undefined;
  /**
   * Appends with entries delivered to this node since it was restored from its older copy:
   * sent again to it after the right copy is restored (late duplicates, as a transport that resends
   * what a broken connection left unacknowledged delivers them to the restarted process).
   */
  deliveredAppends: Uint8Array[] | undefined;
  // The running process.
  /** The latest checkpoint its provider took (gone with the process, as production's are). */
  checkpoint: Checkpoint | undefined;
  store: SimLogStore | undefined;
  sm: ScmStateMachine | undefined;
  driver: RaftDriver | undefined;
  /** The production inbound checks of the Raft port, in front of the driver. */
  inbound: RaftInbound | undefined;
  scheduler: NodeScheduler | undefined;
  booting: boolean;
  lastCommit: number;
  lastApplied: number;
  /** The term this node led in at the previous check (0: it did not lead). */
  lastLeaderTerm: number;
}

interface PendingOp {
  readonly key: string;
  readonly invoke: number;
  readonly label: string;
  readonly write?: number;
  /** A read: the term of the leader asked. */
  readonly term?: number;
  /**
   * A read at a node claiming to lead (readsAtClaimants): held to the term rule in complete(), not
   * added to the register history (dozens of them overlap every write whose outcome is unknown, and
   * the linearizability search would explode).
   */
  readonly probe?: boolean;
}

function newDb(): ScmDb {
  return new MemoryLevel<string, string>() as unknown as ScmDb;
}

/** Whether a node's scm.db can be read now (a checkpoint swap closes it for a while). */
function isOpen(db: ScmDb): boolean {
  return db.status === 'open';
}

/** A consistent copy of a database (memory-level iterators read a snapshot). */
async function copyDb(src: ScmDb): Promise<ScmDb> {
  const dst = newDb();
  await dst.open();
  const ops: { type: 'put'; key: Buffer; value: Buffer }[] = [];
  for await (const [key, value] of src.iterator<Buffer, Buffer>({ keyEncoding: 'buffer', valueEncoding: 'buffer' })) ops.push({ type: 'put', key, value });
  await dst.batch<Buffer, Buffer>(ops, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  return dst;
}

/** FNV-1a over an entry's position and content: two committed entries must hash alike. */
function entryHash(e: LogEntry): string {
  let h = 0x811c9dc5;
  const mix = (b: number): void => {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  };
  const text = e.payload.kind === 'data' ? '' : JSON.stringify(e.payload);
  for (let i = 0; i < text.length; i++) mix(text.charCodeAt(i) & 0xff);
  if (e.payload.kind === 'data') for (const b of e.payload.data) mix(b);
  return `${e.term}:${e.payload.kind}:${h.toString(16)}`;
}

export class Simulation {
  private readonly rng: SeededRandom;
  private readonly queue = new EventQueue();
  private events = 0;
  private readonly nodes: SimNode[] = [];
  private readonly byId = new Map<string, SimNode>();
  private readonly allPeers: RaftPeer[];
  private readonly faultMs: number;
  private readonly livenessBoundMs: number;
  private readonly leaseRead: boolean;
  private readonly preVote: boolean;
  private readonly checkQuorum: boolean;
  private readonly maxBytesPerMsg: number;
  private readonly maxInflightMsgs: number;
  private readonly snapshotThreshold: number;
  private readonly purgeGap: number;
  /** Half the runs purge up to the snapshot point (Ozone SCM's way), half keep what live followers need (the default). */
  private readonly purgeUptoSnapshotIndex: boolean;
  private readonly initialVoters: number;
  /**
   * Draws for the faults added after the others (sharedStorageStall, writeStorm): a source of their
   * own, so that the other faults' draws stay as they were until the first of these lands.
   */
  private readonly sharedFaultRng: SeededRandom;
  /** Draws for restoring the wrong copy first (wrongCopyFirst), likewise. */
  private readonly wrongCopyRng: SeededRandom;
  /** How long each checkpoint swap takes (its own stream: the other draws stay where they were). */
  private readonly swapRng: SeededRandom;

  // Network.
  private readonly blocked = new Set<string>();
  private dropRate = 0;
  private dupRate = 0;
  private reorderRate = 0;
  private noTransfersUntil = 0;
  /** Snapshot statuses seen on the wire, for late replays. */
  private readonly pastStatuses: Uint8Array[] = [];

  // What is known committed: index → entry hash (and the configuration entries among them).
  private readonly leaderOfTerm = new Map<number, string>();
  private readonly committedHash: string[] = [''];
  /**
   * The term of the node that applied each entry first: the entry was committed in that term or an
   * earlier one (a node learns a commit only from a leader of its term, or commits as one).
   */
  private readonly firstAppliedInTerm: number[] = [0];
  private readonly committedConfigs: IndexedMembership[] = [];
  /** When the first entry of each term was applied anywhere. */
  private readonly termFirstApplied = new Map<number, number>();
  private globalCommit = 0;

  // Workload.
  private readonly clientTarget = new Map<number, string>();
  private readonly history = new Map<string, RegisterOp[]>();
  private readonly pending = new Set<PendingOp>();
  private nextValue = 1;
  private nextCall = 1;
  private workloadOpen = true;
  private writes = 0;
  private reads = 0;

  // Liveness.
  private marker: { readonly node: string; readonly incarnation: number; readonly term: number } | undefined;
  private markerIndex: number | undefined;
  private converged = false;
  private finalRead = false;
  private finalDone = false;

  // Trace and counters.
  private readonly trace: string[] = [];
  private traceHead = 0;
  private readonly traceSize: number;
  private crashes = 0;
  private crashesWithWrites = 0;
  private installs = 0;
  private membershipChanges = 0;
  private transfers = 0;
  private pauses = 0;
  private restoredFromCopy = 0;
  private confLost = 0;
  private installCrashes = 0;
  private failure: string | undefined;

  constructor(private readonly opts: SimOptions) {
    if (!Number.isSafeInteger(opts.seed)) throw new Error(`seed must be an integer, got ${opts.seed}`);
    if (opts.nodes < 1 || opts.nodes > 9) throw new Error(`nodes must be 1..9, got ${opts.nodes}`);
    this.rng = new SeededRandom(opts.seed);
    this.faultMs = opts.faultMs ?? 2000;
    this.livenessBoundMs = opts.livenessBoundMs ?? 6000;
    this.traceSize = opts.traceSize ?? 200;
    this.leaseRead = opts.leaseRead ?? false;
    this.maxBytesPerMsg = [200, 1000, 4096, 64 * 1024][this.rng.nextInt(4)] as number;
    this.maxInflightMsgs = 1 + this.rng.nextInt(8);
    this.preVote = this.rng.chance(0.75);
    this.checkQuorum = this.leaseRead || this.rng.chance(0.6);
    // Often tiny: snapshot points, purges and installs all the time, the leader's first index right
    // behind followers' commit indexes. Sometimes as large as in production (no purge in the run):
    // then only the protocol, not an install after a purge, gets a follower that lost entries going
    // again.
    this.snapshotThreshold = [3, 5, 10, 25, 100_000][this.rng.nextInt(5)] as number;
    this.purgeGap = this.rng.nextInt(4);
    // From a source of its own, so the draws above and below (and every seed's run) stay as they were.
    this.purgeUptoSnapshotIndex = new SeededRandom(opts.seed * 7 + 1).nextInt(2) === 0;
    this.sharedFaultRng = new SeededRandom(opts.seed * 7 + 3);
    this.wrongCopyRng = new SeededRandom(opts.seed * 7 + 5);
    this.swapRng = new SeededRandom(opts.seed * 7 + 9);
    // Groups start from one voter (the primordial SCM, the others joining as non-voters), from two,
    // or with every server a voter.
    const r = this.rng.nextInt(10);
    this.initialVoters = opts.nodes === 1 ? 1 : r < 2 ? 1 : r < 4 ? Math.min(2, opts.nodes) : opts.nodes;
    this.allPeers = [];
    for (let k = 0; k < opts.nodes; k++) {
      const id = String.fromCharCode(97 + k);
      this.allPeers.push({ id, address: `${id}:9894`, priority: 0 });
    }
    const bootstrap: LogEntry = { term: 0, index: 0, payload: { kind: 'config', peers: this.allPeers.slice(0, this.initialVoters), listeners: [] } };
    this.committedConfigs.push({ index: 0, membership: { voters: this.allPeers.slice(0, this.initialVoters), nonVoters: [] } });
    for (let k = 0; k < opts.nodes; k++) {
      const id = (this.allPeers[k] as RaftPeer).id;
      // Tick-rate skew: each node's clock runs up to 4% fast or slow. (Leases assume bounded drift:
      // the lease keeps one tick of margin in ten.)
      const rate = 0.96 + this.rng.nextInt(9) / 100;
      const node: SimNode = {
        id,
        ordinal: k,
        rate,
        alive: false,
        incarnation: 0,
        pausedUntil: 0,
        slowDiskUntil: 0,
        slowDbUntil: 0,
        crashAtNextWrite: undefined,
        restoredFromCopy: false,
        restoredBeforeTerm: 0,
        acked: { term: 0, index: 0 },
        // `scm init` writes the bootstrap configuration on the initial voters; the others have run
        // `scm bootstrap` (no configuration: they wait to be added).
        disk: emptyDisk(k < this.initialVoters ? bootstrap : undefined),
        db: undefined as unknown as ScmDb, // set just below, once the node exists
        backup: undefined,
        deliveredAppends: undefined,
        checkpoint: undefined,
        store: undefined,
        sm: undefined,
        driver: undefined,
        inbound: undefined,
        scheduler: undefined,
        booting: false,
        lastCommit: 0,
        lastApplied: 0,
        lastLeaderTerm: 0,
      };
      node.db = this.onNodeDisk(node, newDb());
      this.nodes.push(node);
      this.byId.set(id, node);
    }
  }

  async run(): Promise<SimResult> {
    try {
      return await this.runUnchecked();
    } catch (err) {
      if (err instanceof SimulationFailure) throw err;
      const reason = err instanceof Error ? (err.stack ?? err.message) : String(err);
      throw new SimulationFailure(this.opts.seed, `exception at t=${this.queue.now}ms: ${reason}`, this.formatTrace());
    }
  }

  private async runUnchecked(): Promise<SimResult> {
    for (const n of this.nodes) this.at(this.rng.nextInt(TICK_MS), () => this.boot(n));
    for (let c = 0; c < 3; c++) this.at(80 + this.rng.nextInt(50), () => this.clientStep(c));
    this.at(100 + this.rng.nextInt(200), () => this.faultStep());
    this.at(100 + this.sharedFaultRng.nextInt(400), () => this.sharedStorageStall());
    this.at(100 + this.sharedFaultRng.nextInt(400), () => this.writeStorm());
    if (this.wrongCopyRng.chance(0.7)) this.at(300 + this.wrongCopyRng.nextInt(Math.max(1, this.faultMs - 1300)), () => this.wrongCopyFirst(20));
    // Just before the faults end: fresh copies, then often a follower restored from its copy while
    // the leader (which, with the faults over, goes on leading) still counts what the follower lost.
    this.at(this.faultMs - 250 - this.rng.nextInt(100), () => this.takeBackup(undefined, true));
    if (this.rng.chance(0.6)) this.at(this.faultMs - 40 - this.rng.nextInt(100), () => this.restoreFollower());
    this.at(this.faultMs, () => this.heal());
    const deadline = this.faultMs + this.livenessBoundMs;
    while (this.queue.size > 0 && !this.converged) {
      const ev = this.queue.pop()!;
      if (ev.time > deadline) break;
      this.events++;
      ev.run();
      // Let every promise continuation of that event run (the production code is async) before
      // simulated time moves on. memory-level and the driver only use microtasks.
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (this.failure !== undefined) this.fail(this.failure);
      this.checkAll();
    }
    if (!this.converged) {
      const state = this.nodes
        .map((n) => {
          const c = n.driver?.core;
          return `${n.id}:${!n.alive ? 'dead' : c === undefined ? 'booting' : `${c.currentRole} t${c.currentTerm} commit=${c.commitIndex} last=${c.lastIndex} applied=${n.sm?.lastApplied().index}`}`;
        })
        .join('  ');
      this.fail(`liveness: no leader committed and converged within ${this.livenessBoundMs}ms after healing (${state}; marker at ${this.markerIndex ?? 'none'})`);
    }
    await this.checkConvergence();
    this.checkHistory();
    return {
      seed: this.opts.seed,
      events: this.events,
      committed: this.globalCommit,
      leaders: this.leaderOfTerm.size,
      crashes: this.crashes,
      crashesWithWritesInFlight: this.crashesWithWrites,
      installs: this.installs,
      membershipChanges: this.membershipChanges,
      transfers: this.transfers,
      writes: this.writes,
      reads: this.reads,
      initialVoters: this.initialVoters,
      pauses: this.pauses,
      restoredFromCopy: this.restoredFromCopy,
      confLost: this.confLost,
      installCrashes: this.installCrashes,
    };
  }

  // ------------------------------------------------------------ plumbing

  private get now(): number {
    return this.queue.now;
  }

  private at(time: number, run: () => void): void {
    this.queue.at(time, run);
  }

  private note(text: string): void {
    const line = `${String(this.now).padStart(6)}ms ${text}`;
    if (this.trace.length < this.traceSize) this.trace.push(line);
    else {
      this.trace[this.traceHead] = line;
      this.traceHead = (this.traceHead + 1) % this.traceSize;
    }
  }

  private formatTrace(): string {
    return [...this.trace.slice(this.traceHead), ...this.trace.slice(0, this.traceHead)].join('\n');
  }

  private fail(reason: string): never {
    throw new SimulationFailure(this.opts.seed, `t=${this.now}ms: ${reason}`, this.formatTrace());
  }

  /** Records a violation found inside a callback of the node's own code; thrown after the event. */
  private violation(reason: string): void {
    this.failure ??= reason;
  }

  private running(n: SimNode): RaftDriver | undefined {
    return n.alive && !n.booting ? n.driver : undefined;
  }

  // ------------------------------------------------------------ a node's life

  private boot(n: SimNode): void {
    n.alive = true;
    n.booting = true;
    const incarnation = n.incarnation;
    const scheduler = new NodeScheduler(this.queue, { alive: (inc) => n.alive && n.incarnation === inc, pausedUntil: () => n.pausedUntil }, incarnation, n.rate);
    n.scheduler = scheduler;
    const store = new SimLogStore(n.disk, {
      onWritePending: () => {
        const downFor = n.crashAtNextWrite;
        if (downFor !== undefined && n.incarnation === incarnation) {
          // Crash with this write in flight, at the fsync point.
          n.crashAtNextWrite = undefined;
          this.at(this.now, () => {
            if (!(n.alive && n.incarnation === incarnation)) return;
            this.crash(n, 'at the fsync point');
            this.at(Math.min(this.now + downFor, this.faultMs), () => this.restart(n));
          });
          return;
        }
        const slow = this.now < n.slowDiskUntil;
        scheduler.after(slow ? 20 + this.rng.nextInt(60) : 1 + this.rng.nextInt(3), () => store.flush());
      },
    });
    n.store = store;
    const live = (): boolean => n.alive && n.incarnation === incarnation;
    void (async () => {
      const sm = await ScmStateMachine.open(`sim/${n.id}/scm.db`, { openDb: () => n.db });
      const boot = await recoverRaftState(store, sm, {
        where: `sim/${n.id}`,
        warn: (message) => this.note(`${n.id} warns: ${message}`),
      });
      if (!live()) return;
      const core = new RaftNode(
        {
          id: n.id,
          electionTicks: ELECTION_TICKS,
          heartbeatTicks: HEARTBEAT_TICKS,
          preVote: this.preVote,
          checkQuorum: this.checkQuorum,
          leaseRead: this.leaseRead,
          maxInflightMsgs: this.maxInflightMsgs,
          maxInflightBytes: 64 * 1024,
          maxBytesPerMsg: this.maxBytesPerMsg,
          maxCommittedBytesPerReady: 4 * 1024,
          promoteNonVoters: true, // as the node runs
          random: new SeededRandom(this.opts.seed * 131 + n.ordinal * 7919 + n.incarnation * 104729),
          onWarning: (message) => this.note(`${n.id} warns: ${message}`),
        },
        store,
        boot.initial,
      );
      const driver = new RaftDriver(
        {
          core,
          log: store,
          // The real state machine; the simulator watches what it is given to apply.
          sm: {
            applyBatch: (entries, onComputed, options) => {
              this.recordApplied(n, entries);
              return sm.applyBatch(entries, onComputed, options);
            },
            writeApplied: () => sm.writeApplied(),
            lastApplied: () => sm.lastApplied(),
            snapshotPoint: () => sm.snapshotPoint(),
            recordSnapshotPoint: () => sm.recordSnapshotPoint(),
            configuration: () => sm.configuration(),
          },
          scheduler,
          savedConfIndex: boot.savedConfIndex,
          transport: { send: (m) => (live() ? this.send(m) : undefined) },
          checkpoints: this.checkpointSource(n, incarnation),
          catchUpFailpoint: (name) => this.installFailpoint(n, incarnation, name),
        },
        {
          tickMs: TICK_MS,
          snapshotThreshold: this.snapshotThreshold,
          purgeEnabled: true,
          purgeGap: this.purgeGap,
          purgeUptoSnapshotIndex: this.purgeUptoSnapshotIndex,
          requestTimeoutMs: CLIENT_TIMEOUT_MS,
          clientAddressOf: (id) => id,
          // At once, or after a few ms as the node does (from the seed, not the random stream, so
          // the rest of a seed's schedule stays as it was).
          commitForwardDelayMs: (this.opts.seed % 3) * 3,
          // scm.db written per apply, or (as the node does) applies left unwritten for a while: a
          // crash then loses them from scm.db, and the node applies them again from its log.
          applyWriteDelayMs: (this.opts.seed % 4) * 20,
          maxEntryBytes: { bytes: raftMessageSizes().entryBytes, from: 'the default Raft frame cap' },
        },
        {
          onSoftState: (role, leader, term) => {
            if (!live()) return;
            this.note(`${n.id} becomes ${role} t${term} leader=${leader || '-'}`);
            if (role === 'leader') {
              this.checkLeaderCompleteness(n);
              this.maybeCutShort(n);
            }
          },
          onError: (err) => {
            if (live() && !(err.cause instanceof SimCrash) && !(err instanceof SimCrash)) this.note(`${n.id} error: ${err.message}`);
          },
          onFatal: (err) => {
            if (!live() || err.cause instanceof SimCrash || (err.cause as Error | undefined)?.cause instanceof SimCrash) return;
            this.violation(`${n.id} stopped on a fatal error: ${err.stack ?? err.message}`);
          },
          onInfo: (message, fields) => {
            if (live() && message === 'snapshot installed') {
              this.installs++;
              this.note(`${n.id} installed a checkpoint at ${String(fields?.['index'])}`);
            }
          },
        },
      );
      n.sm = sm;
      n.driver = driver;
      n.inbound = new RaftInbound({
        selfId: n.id,
        core: () => driver.core,
        // As a node's ozone-site.xml: every server of the service.
        configuredPeers: this.allPeers.map((p) => p.id).filter((id) => id !== n.id),
        step: (m) => driver.step(m),
        accepted: () => undefined,
        dropped: (reason) => {
          // Honest nodes never send what does not decode or breaks the protocol's rules.
          if (reason === 'malformed' || reason === 'invalid') this.violation(`${n.id} dropped a message from an honest peer as ${reason}`);
        },
        warn: (_fields, message) => this.note(`${n.id} warns: ${message}`),
      });
      n.booting = false;
      n.lastCommit = core.commitIndex;
      n.lastApplied = sm.lastApplied().index;
      this.note(`${n.id} started (incarnation ${incarnation}): term=${boot.initial.hardState.term} applied=${boot.initial.applied} config from ${boot.configurationSource} voters=${boot.initial.membership.voters.map((p) => p.id).join(',')}`);
      driver.start();
    })().catch((err: unknown) => {
      if (live()) this.violation(`${n.id} failed to start: ${(err as Error).stack ?? String(err)}`);
    });
  }

  /**
   * Some leaderships end at once: the new leader is cut off, or crashes with its first writes in
   * flight, before its first entries reach a majority. Successive short leaderships leave followers
   * with different suffixes of different terms, which is what Raft's commit rules are about
   * (Figure 8 of the Raft paper).
   */
  private maybeCutShort(n: SimNode): void {
    if (this.now >= this.faultMs || !this.rng.chance(0.25)) return;
    if (this.rng.chance(0.5)) {
      // At once, or a few ms in: after its first appends went out, so that some followers hold
      // some of what it sent (in small messages, entries of earlier terms before its own first).
      const after = this.rng.chance(0.5) ? 0 : 1 + this.rng.nextInt(12);
      const incarnation = n.incarnation;
      this.at(this.now + after, () => {
        if (n.incarnation === incarnation && this.running(n)?.core.currentRole === 'leader') this.isolate(n.id);
      });
      this.at(this.now + after + 50 + this.rng.nextInt(150), () => this.healNetwork());
    } else if (n.crashAtNextWrite === undefined) {
      n.crashAtNextWrite = 20 + this.rng.nextInt(200);
      this.note(`fault: new leader ${n.id} will crash at its next fsync`);
    }
  }

  /** A crash keeps what was fsynced; writes in flight may be torn (any prefix of them survives). */
  private crash(n: SimNode, why: string): void {
    const store = n.store;
    let torn = '';
    if (store !== undefined && store.pendingWrites > 0) {
      const keep = this.rng.nextInt(store.pendingWrites + 1);
      const tornEntries = this.rng.chance(0.5) ? this.rng.nextInt(4) : undefined;
      store.crash(keep, tornEntries);
      torn = ` with writes in flight (kept ${keep}${tornEntries !== undefined ? `, the last torn to ${tornEntries} entries` : ''})`;
      this.crashesWithWrites++;
    }
    // The process is gone: its timers, its pending writes and its loop. stop() only marks the
    // driver stopped here (its awaits never complete); scm.db is left as the process left it.
    void n.driver?.stop();
    n.alive = false;
    n.booting = false;
    n.incarnation++;
    n.driver = undefined;
    n.inbound = undefined;
    n.sm = undefined;
    n.store = undefined;
    n.pausedUntil = 0;
    n.crashAtNextWrite = undefined;
    // The checkpoint provider lives in the process; a new one deletes what it finds left over.
    n.checkpoint = undefined;
    this.crashes++;
    this.note(`fault: crash ${n.id} ${why}${torn}`);
  }

  /**
   * `fromCopy`: an operator restores the node from a copy (when that is safe), not a plain restart:
   * from `copy` if given, else from the node's `backup`.
   */
  private restart(n: SimNode, fromCopy = false, copy?: Backup): void {
    if (n.alive) return;
    n.restoredFromCopy = false;
    // Lost after the node has run (a fresh primordial node without it has nothing to rebuild from:
    // that is a wiped disk, not a lost file).
    if (this.rng.chance(0.1) && n.disk.conf !== undefined && (n.disk.entries.length > 0 || n.disk.first > 1)) {
      n.disk.conf = undefined;
      this.confLost++;
      this.note(`fault: ${n.id} loses raft-meta.conf`);
    }
    const source = copy ?? n.backup;
    if (source !== undefined && (fromCopy || this.rng.chance(0.9)) && this.oldCopyIsSafe(n, source)) {
      // Restored from an older copy of its directories: its log and scm.db go back in time. Its
      // term and vote do not (raft-meta from the old copy could let it vote twice in a term).
      const meta = n.disk.meta;
      n.disk = cloneDisk(source.disk);
      n.disk.meta = meta;
      n.db = this.onNodeDisk(n, source.db);
      this.note(`fault: ${n.id} restored from its copy taken at t=${source.at}ms (log now ends at ${n.disk.first + n.disk.entries.length - 1})`);
      if (source === n.backup) n.backup = undefined;
      n.restoredFromCopy = true;
      n.restoredBeforeTerm = Math.max(...this.nodes.map((x) => x.disk.meta.term));
      n.acked = { term: 0, index: 0 }; // what it acknowledged is exactly what it lost
      this.restoredFromCopy++;
    }
    this.boot(n);
  }

  /**
   * Rolling a node back loses entries it acknowledged. That is survivable only while a majority of
   * the other voters hold everything it may have acknowledged (its whole durable log).
   */
  private oldCopyIsSafe(n: SimNode, backup: Backup): boolean {
    // An old copy from before a configuration change can hold a group in which this node has more
    // say (a lone voter, say): restoring it would be an operator's mistake Raft cannot undo.
    if (backup.configuration !== this.committedMembers()) return false;
    const last = n.disk.first + n.disk.entries.length - 1;
    if (last < n.disk.first) return true;
    const term = n.disk.entries[last - n.disk.first]?.term;
    const voters = this.latestVoters().filter((id) => id !== n.id);
    let holders = 0;
    for (const id of voters) {
      const other = this.byId.get(id) as SimNode;
      const d = other.disk;
      const t = last === d.first - 1 ? d.prevTerm : d.entries[last - d.first]?.term;
      const applied = other.sm?.lastApplied().index ?? 0;
      if (t === term || (last <= this.globalCommit && applied >= last)) holders++;
    }
    return holders >= Math.floor(this.latestVoters().length / 2) + 1;
  }

  /** The members of the last committed configuration, as a comparable string. */
  private committedMembers(): string {
    const m = (this.committedConfigs[this.committedConfigs.length - 1] as IndexedMembership).membership;
    return `${m.voters.map((p) => p.id).join(',')}/${m.nonVoters.map((p) => p.id).join(',')}`;
  }

  private latestVoters(): string[] {
    let best: SimNode | undefined;
    for (const n of this.nodes) {
      const c = this.running(n)?.core;
      if (c === undefined) continue;
      if (best === undefined || c.status().membershipIndex > best.driver!.core.status().membershipIndex) best = n;
    }
    const m = best?.driver?.core.status().membership ?? this.committedConfigs[this.committedConfigs.length - 1]!.membership;
    return m.voters.map((p) => p.id);
  }

  /**
   * Puts a database on the node's scm.db disk: each write batch waits while that disk is slow, and
   * one still waiting when the node crashes never lands (its timer belongs to the crashed
   * incarnation). The state machine writes one batch at a time, so they land in order.
   */
  private onNodeDisk(n: SimNode, db: ScmDb): ScmDb {
    const level = db as unknown as Record<'_batch' | '_put', (...args: unknown[]) => Promise<void>>;
    for (const method of ['_batch', '_put'] as const) {
      const write = level[method].bind(level);
      level[method] = async (...args) => {
        const scheduler = n.scheduler;
        if (scheduler !== undefined && this.now < n.slowDbUntil) {
          await new Promise<void>((resolve) => scheduler.after(10 + this.rng.nextInt(70), resolve));
        }
        return write(...args);
      };
    }
    return db;
  }

  private installFailpoint(n: SimNode, incarnation: number, name: CatchUpFailpoint): void {
    if (!(n.alive && n.incarnation === incarnation) || this.now >= this.faultMs || !this.rng.chance(0.15)) return;
    this.crash(n, `during a snapshot install (${name})`);
    this.installCrashes++;
    this.at(this.now + 20 + this.rng.nextInt(200), () => this.restart(n));
    throw new SimCrash(`crashed at ${name}`);
  }

  /** Checkpoints come from the node's current leader, as the InterSCM download asks it. */
  private checkpointSource(n: SimNode, incarnation: number): CheckpointSource {
    return {
      fetch: (notice: SnapshotNotice, signal: AbortSignal): Promise<FetchedCheckpoint> =>
        new Promise((resolve, reject) => {
          const sourceId = n.driver?.core.leaderId || notice.leaderId;
          const reachable = (): SimNode | undefined => {
            const source = this.byId.get(sourceId);
            const sourceDriver = source === undefined ? undefined : this.running(source);
            if (source === undefined || sourceDriver === undefined || source.pausedUntil > this.now || this.isBlocked(source.id, n.id) || this.isBlocked(n.id, source.id)) return undefined;
            return source;
          };
          const unreachable = (): void => {
            this.note(`${n.id} checkpoint download from ${sourceId} failed`);
            reject(new Error(`download from ${sourceId} failed: unreachable`));
          };
          // The request reaches the leader within a network hop: the checkpoint is chosen (or taken)
          // then, as the leader's checkpoint provider does; the transfer takes longer.
          n.scheduler!.after(1 + this.rng.nextInt(5), () => {
            if (signal.aborted) return reject(new Error('aborted'));
            const source = reachable();
            if (source === undefined) return unreachable();
            void this.serveCheckpoint(source)
              .then(async (cp) => {
                if (!(n.alive && n.incarnation === incarnation)) return;
                const termIndex = await readTransactionInfo(cp.db);
                if (termIndex.index < notice.firstIndex) throw new Error(`checkpoint at ${termIndex.index} is older than needed (${notice.firstIndex})`);
                const configuration = await readConfiguration(cp.db);
                if (configuration === undefined) throw new Error(`checkpoint at ${termIndex.index} holds no configuration`);
                const copy = await copyDb(cp.db); // what the follower extracted under snapshot/
                n.scheduler!.after(10 + this.rng.nextInt(60), () => {
                  if (signal.aborted) return reject(new Error('aborted'));
                  if (reachable() === undefined) return unreachable(); // the stream broke off
                  this.note(`${n.id} downloaded ${source.id}'s checkpoint at ${termIndex.term}#${termIndex.index} (asked for ≥ ${notice.firstIndex})`);
                  resolve({
                    termIndex,
                    configuration,
                    bytes: 0,
                    swap: async () => {
                      const sm = n.sm!;
                      await sm.close();
                      // Moving directories, syncing them and loading the new scm.db take time, and the
                      // node's loop waits for the install meanwhile: it answers nothing (half the
                      // swaps quick, half 0.5 to 1.8 election timeouts).
                      const swapMs = this.swapRng.nextInt(2) === 0 ? 1 + this.swapRng.nextInt(5) : (ELECTION_TICKS * TICK_MS * (50 + this.swapRng.nextInt(131))) / 100;
                      await new Promise<void>((resolve) => n.scheduler!.after(swapMs, resolve));
                      n.db = this.onNodeDisk(n, copy);
                      await sm.reload();
                    },
                    discard: () => Promise.resolve(),
                  });
                });
              })
              .catch(reject);
          });
        }),
    };
  }

  /**
   * As production's CheckpointProvider: the latest checkpoint is served again while it is younger
   * than the reuse window and still at or above the leader's first log index (so often older than
   * the follower's log); otherwise a fresh one is taken of what scm.db holds now (which lags what
   * is committed while scm.db's disk is slow).
   */
  private async serveCheckpoint(source: SimNode): Promise<Checkpoint> {
    const cp = source.checkpoint;
    const recent = cp !== undefined && this.now - cp.createdAt <= CHECKPOINT_REUSE_MS;
    if (cp !== undefined && recent && cp.index >= (source.store?.firstIndex() ?? 0)) return cp;
    const db = await copyDb(source.db);
    const fresh = { db, index: (await readTransactionInfo(db)).index, createdAt: this.now };
    source.checkpoint = fresh;
    return fresh;
  }

  // ------------------------------------------------------------ network

  private isBlocked(from: string, to: string): boolean {
    return this.blocked.has(`${from}>${to}`);
  }

  private send(m: Message): void {
    // Nothing of a term leaves a node before that term is on its disk (a pre-vote asks about the
    // next term without entering it, and a granted pre-vote answers in the term asked about).
    const preVote = m.type === 'pre-vote' || (m.type === 'pre-vote-response' && !m.reject);
    const sender = this.byId.get(m.from);
    const durableTerm = sender?.disk.meta.term ?? 0;
    if (!preVote && m.term > durableTerm) this.violation(`${m.from} sent ${describe(m)} while its durable term is ${durableTerm}`);
    // What a follower acknowledges it must keep (checked after every event in checkAcknowledged).
    const ackIndex = m.type === 'append-response' && !m.reject ? m.index : m.type === 'snapshot-status' && (m.status === 'installed' || m.status === 'already-installed') ? m.index : 0;
    if (sender !== undefined && ackIndex > 0) {
      if (sender.acked.term !== m.term) sender.acked = { term: m.term, index: ackIndex };
      else if (ackIndex > sender.acked.index) sender.acked = { term: m.term, index: ackIndex };
    }
    if (this.isBlocked(m.from, m.to) || this.rng.chance(this.dropRate)) return;
    const bytes = encodeRaftMessage(m);
    if (m.type === 'snapshot-status') {
      this.pastStatuses.push(bytes);
      if (this.pastStatuses.length > 32) this.pastStatuses.shift();
    }
    let copies = this.rng.chance(this.dupRate) ? 2 : 1;
    // Snapshot statuses are what a late or duplicated copy can do the most harm with.
    if (m.type === 'snapshot-status' && this.now < this.faultMs && this.rng.chance(0.3)) copies++;
    if (m.type === 'timeout-now' && this.now < this.faultMs && this.rng.chance(0.5)) {
      // Delayed past the transfer's timeout: the leader has given the transfer up when it lands
      // (just, while it would hold a lease again, or long after), and sometimes has just been cut
      // off too, so it goes on believing it leads while the target wins.
      const timeoutMs = ELECTION_TICKS * TICK_MS;
      const late = timeoutMs + 5 + (this.rng.chance(0.6) ? this.rng.nextInt(40) : this.rng.nextInt(2 * timeoutMs));
      const cutOff = this.rng.chance(0.7);
      this.noTransfersUntil = this.now + late + 50;
      this.note(`fault: ${describe(m)} ${m.from}→${m.to} delayed by ${late}ms${cutOff ? `, ${m.from} cut off just before it lands` : ''}`);
      if (cutOff) this.at(this.now + late - 1, () => this.isolate(m.from));
      this.at(this.now + late, () => {
        this.deliver(m.to, bytes, true); // it left before the cut
        this.readsAtClaimants(this.now + 200);
      });
      return;
    }
    for (let c = 0; c < copies; c++) {
      let delay = 1 + this.rng.nextInt(5);
      if (c > 0 || this.rng.chance(this.reorderRate)) delay += this.rng.nextInt(c > 0 ? 200 : 40);
      this.at(this.now + delay, () => this.deliver(m.to, bytes));
    }
  }

  private deliver(to: string, bytes: Uint8Array, inFlightBeforeCut = false): void {
    const target = this.byId.get(to);
    if (target === undefined) return;
    const m = decodeRaftMessage(bytes);
    if (this.isBlocked(m.from, m.to) && !inFlightBeforeCut) return;
    const driver = this.running(target);
    if (driver === undefined) return;
    if (target.pausedUntil > this.now) {
      this.at(target.pausedUntil, () => this.deliver(to, bytes));
      return;
    }
    this.note(`${m.from}→${m.to} ${describe(m)}`);
    if (m.type === 'append' && m.entries.length > 0 && target.deliveredAppends !== undefined && target.deliveredAppends.length < 64) target.deliveredAppends.push(bytes);
    target.inbound?.receive(m.from, [bytes]);
  }

  // ------------------------------------------------------------ invariants

  private checkAll(): void {
    for (const n of this.nodes) {
      const driver = this.running(n);
      if (driver === undefined) continue;
      const core = driver.core;
      if (core.currentRole === 'leader') {
        const known = this.leaderOfTerm.get(core.currentTerm);
        if (known === undefined) this.leaderOfTerm.set(core.currentTerm, n.id);
        else if (known !== n.id) this.fail(`election safety: ${known} and ${n.id} are both leaders of term ${core.currentTerm}`);
      }
      const commit = core.commitIndex;
      if (commit < n.lastCommit) this.fail(`${n.id} commit index decreased from ${n.lastCommit} to ${commit}`);
      // Raft §5.4.2 (Figure 8): a leader moves its commit index only to an entry of its own term,
      // counting replicas; entries of earlier terms are committed under it, never by themselves.
      // Checked as it happens, since the loss it leads to needs three more leaderships to show.
      if (commit > n.lastCommit && core.currentRole === 'leader' && n.lastLeaderTerm === core.currentTerm) {
        const t = core.logTerm(commit);
        if (t !== undefined && t !== core.currentTerm) this.fail(`${n.id}, leader of term ${core.currentTerm}, committed up to ${commit}, an entry of term ${t}, by counting replicas (Raft §5.4.2)`);
      }
      n.lastLeaderTerm = core.currentRole === 'leader' ? core.currentTerm : 0;
      n.lastCommit = commit;
      const applied = n.sm!.lastApplied().index;
      if (applied < n.lastApplied) this.fail(`${n.id} applied index went back from ${n.lastApplied} to ${applied}`);
      n.lastApplied = applied;
      this.checkCommittedConfiguration(n);
      this.checkAcknowledged(n);
      if (core.currentRole === 'leader') this.checkMatches(n);
    }
  }

  /**
   * A follower never loses an entry it acknowledged in its current term (an install must not take it
   * below what it told the leader it holds). Within one term only one leader sends entries and its
   * log only grows, so nothing legitimately truncates them; nodes restored from an older copy are
   * exempt (they really lost them).
   */
  private checkAcknowledged(n: SimNode): void {
    const core = n.driver!.core;
    const a = n.acked;
    if (a.index === 0 || a.term !== core.currentTerm || n.restoredFromCopy) return;
    const d = n.disk;
    const lastOnDisk = d.first + d.entries.length - 1;
    const applied = n.sm?.lastApplied().index ?? 0;
    if (a.index <= lastOnDisk && a.index >= d.first - 1) return;
    if (applied >= a.index) return;
    this.fail(`${n.id} acknowledged entry ${a.index} in term ${a.term}, but now holds only ${lastOnDisk} on disk (applied ${applied})`);
  }

  /**
   * A leader never counts a match a follower does not hold: every follower of its term holds, on
   * disk, the entry the leader records as its match (or has applied past it). Nodes restored from an
   * older copy are exempt for the terms that had begun by then (they really lost entries; the
   * leader learns it from their next rejection, which it ignores while it waits for them to install
   * a checkpoint, and which a crash can keep from it: restored, then crashed and restarted before
   * it told the leader, the node is no less behind).
   */
  private checkMatches(leader: SimNode): void {
    const core = leader.driver!.core;
    for (const p of core.status().progress) {
      if (p.id === leader.id || p.match === 0) continue;
      const f = this.byId.get(p.id);
      const fc = f === undefined ? undefined : this.running(f)?.core;
      if (f === undefined || fc === undefined || fc.currentTerm !== core.currentTerm || core.currentTerm <= f.restoredBeforeTerm) continue;
      // The leader's entry there (from its log, or from what was applied if it compacted it).
      const known = this.committedHash[p.match];
      const expected = core.logTerm(p.match) ?? (known === undefined ? undefined : Number(known.slice(0, known.indexOf(':'))));
      if (expected === undefined) continue;
      const d = f.disk;
      const held = d.entries[p.match - d.first]?.term;
      const applied = f.sm?.lastApplied().index ?? 0;
      if (held === expected || (held === undefined && p.match < d.first && applied >= p.match)) continue;
      this.fail(`${leader.id} counts ${f.id} as holding entry ${p.match}, but ${f.id}'s disk ${held === undefined ? `ends at ${d.first + d.entries.length - 1} (applied ${applied})` : `has term ${held} there`}`);
    }
  }

  /**
   * State machine safety: every entry any node applies at an index is the same entry. Applies (and
   * checkpoints, which are copies of applied state) come in index order, so the entries recorded
   * here are always a contiguous prefix of the log.
   */
  private recordApplied(n: SimNode, entries: readonly LogEntry[]): void {
    for (const e of entries) {
      const h = entryHash(e);
      const known = this.committedHash[e.index];
      if (known === undefined) {
        if (e.index !== this.globalCommit + 1) {
          this.violation(`${n.id} applies entry ${e.index} but only entries up to ${this.globalCommit} were ever applied`);
          return;
        }
        this.committedHash[e.index] = h;
        this.firstAppliedInTerm[e.index] = n.driver?.core.currentTerm ?? Number.MAX_SAFE_INTEGER;
        this.globalCommit = e.index;
        if (!this.termFirstApplied.has(e.term)) this.termFirstApplied.set(e.term, this.now);
        if (e.payload.kind === 'config') this.committedConfigs.push({ index: e.index, membership: { voters: e.payload.peers, nonVoters: e.payload.listeners } });
      } else if (known !== h) {
        this.violation(`state machine safety: ${n.id} applies ${h} at ${e.index}, where ${known} was applied before`);
        return;
      }
    }
  }

  /** A node's committed configuration is the last configuration entry at or below its commit index. */
  private checkCommittedConfiguration(n: SimNode): void {
    const core = n.driver!.core;
    const commit = core.commitIndex;
    if (commit > this.globalCommit) return;
    let expected: IndexedMembership | undefined;
    for (const c of this.committedConfigs) if (c.index <= commit && (expected === undefined || c.index > expected.index)) expected = c;
    if (expected === undefined) return;
    const mine = core.committedMembership();
    if (mine.index !== expected.index) {
      this.fail(`configuration agreement: ${n.id} (commit ${commit}) holds the configuration of index ${mine.index}, but the one committed at ${expected.index} is in force`);
    }
  }

  /**
   * Leader Completeness (Raft §5.4): a leader's log holds every entry committed in an earlier term.
   * A leader of an old term is no violation: a candidate paused since an early term may still win
   * it with votes granted back then (seed 509, 5 nodes), and it can commit nothing. So the bound is
   * the last entry first applied by a node of an earlier term than the leader's (it was committed
   * in that term or before).
   */
  private checkLeaderCompleteness(n: SimNode): void {
    const core = n.driver?.core;
    if (core === undefined) return;
    let bound = this.globalCommit;
    while (bound > 0 && (this.firstAppliedInTerm[bound] ?? 0) >= core.currentTerm) bound--;
    if (bound === 0) return;
    if (core.lastIndex < bound) {
      this.violation(`leader completeness: ${n.id} leads term ${core.currentTerm} with last index ${core.lastIndex} < ${bound}, committed in an earlier term`);
      return;
    }
    const t = core.logTerm(bound);
    const known = this.committedHash[bound];
    if (t !== undefined && known !== undefined && !known.startsWith(`${t}:`)) {
      this.violation(`leader completeness: ${n.id} leads term ${core.currentTerm} without the entry committed at ${bound}`);
    }
  }

  // ------------------------------------------------------------ faults

  private faultStep(): void {
    if (this.now >= this.faultMs) return;
    const r = this.rng.nextInt(100);
    if (r < 12) this.partitionSymmetric();
    else if (r < 19) this.partitionAsymmetric();
    else if (r < 22) this.flap(this.rng.nextInt(this.nodes.length), 6 + this.rng.nextInt(8));
    else if (r < 30) this.isolateLeader();
    else if (r < 38) this.healNetwork();
    else if (r < 52) this.crashRandom();
    else if (r < 55) this.restoreFollower();
    else if (r < 59) this.pauseRandom();
    else if (r < 63) this.slowDisk();
    else if (r < 70) this.transfer();
    else if (r < 78) this.changeMembership();
    else if (r < 83) this.takeBackup();
    else if (r < 92) this.replayStatus();
    else if (r < 96) this.burst();
    else this.networkQuality();
    this.at(this.now + 40 + this.rng.nextInt(220), () => this.faultStep());
  }

  private partitionSymmetric(): void {
    this.blocked.clear();
    const ids = this.nodes.map((n) => n.id);
    const side = new Set<string>();
    for (const id of ids) if (this.rng.chance(0.5)) side.add(id);
    for (const a of ids) for (const b of ids) if (side.has(a) !== side.has(b)) this.blocked.add(`${a}>${b}`);
    this.note(`fault: partition {${[...side].join(',')}} | {${ids.filter((i) => !side.has(i)).join(',')}}`);
  }

  private partitionAsymmetric(): void {
    const ids = this.nodes.map((n) => n.id);
    const k = 1 + this.rng.nextInt(ids.length);
    const links: string[] = [];
    for (let i = 0; i < k; i++) {
      const a = ids[this.rng.nextInt(ids.length)] as string;
      const b = ids[this.rng.nextInt(ids.length)] as string;
      if (a !== b) {
        this.blocked.add(`${a}>${b}`);
        links.push(`${a}>${b}`);
      }
    }
    this.note(`fault: one-way blocks ${links.join(' ')}`);
  }

  private flap(ordinal: number, remaining: number): void {
    if (remaining === 0 || this.now >= this.faultMs) return;
    const id = (this.nodes[ordinal] as SimNode).id;
    const isolated = this.blocked.has(`${id}>*`);
    for (const other of this.nodes) {
      if (other.id === id) continue;
      for (const link of [`${id}>${other.id}`, `${other.id}>${id}`]) {
        if (isolated) this.blocked.delete(link);
        else this.blocked.add(link);
      }
    }
    if (isolated) this.blocked.delete(`${id}>*`);
    else this.blocked.add(`${id}>*`);
    this.note(`fault: flapping ${id} ${isolated ? 'reconnected' : 'isolated'}`);
    this.at(this.now + 15 + this.rng.nextInt(60), () => this.flap(ordinal, remaining - 1));
  }

  /**
   * The leader on the minority side, alone or (in larger groups) with followers: it keeps taking
   * writes it cannot commit, and the followers with it hold them (a divergent suffix the other side
   * will overwrite). A copy of their directories is taken while they hold it; often, once the
   * network is healed and the next leader has overwritten that suffix (and counts them as holding
   * its entries there), one of them is restored from that copy: uncommitted entries of an old term
   * come back at indexes the leader counts as matched.
   */
  private isolateLeader(): void {
    const leader = this.currentLeader();
    if (leader === undefined) return;
    const others = this.nodes.filter((n) => n !== leader);
    const minority = new Set([leader.id]);
    const extra = this.rng.nextInt(Math.floor((this.nodes.length - 1) / 2));
    for (let i = 0; i < extra; i++) minority.add((others[this.rng.nextInt(others.length)] as SimNode).id);
    if (minority.size === 1) {
      this.isolate(leader.id);
    } else {
      for (const a of this.nodes) for (const b of this.nodes) if (minority.has(a.id) !== minority.has(b.id)) this.blocked.add(`${a.id}>${b.id}`);
      this.note(`fault: leader ${leader.id} cut off with {${[...minority].join(',')}}`);
      this.readsAtClaimants(this.now + 200);
    }
    const side = this.nodes.filter((n) => minority.has(n.id));
    this.at(this.now + 30 + this.rng.nextInt(80), () => {
      if (this.now < this.faultMs) this.takeBackup(side);
    });
    const healAt = this.now + 200 + this.rng.nextInt(250);
    this.at(healAt, () => {
      if (this.now < this.faultMs) this.healNetwork();
    });
    if (this.rng.chance(0.85)) {
      const n = side[this.rng.nextInt(side.length)] as SimNode;
      this.at(healAt + 80 + this.rng.nextInt(220), () => {
        if (this.now < this.faultMs && this.currentLeader() !== n) this.restoreFromCopy(n);
      });
    }
  }

  private isolate(id: string): void {
    if (this.now >= this.faultMs) return; // a fault scheduled earlier never lands after the heal
    for (const other of this.nodes) {
      if (other.id === id) continue;
      this.blocked.add(`${id}>${other.id}`);
      this.blocked.add(`${other.id}>${id}`);
    }
    this.note(`fault: ${id} isolated`);
    const n = this.byId.get(id);
    if (n !== undefined && this.running(n)?.core.currentRole === 'leader') this.readsAtClaimants(this.now + 200);
  }

  private healNetwork(): void {
    this.blocked.clear();
    this.note('fault: network healed');
  }

  private crashRandom(): void {
    // Half the crashes hit the leader: its appends go out before its own fsync, which is what
    // leaves followers with different suffixes (Raft's Figure 8 needs that).
    const n = (this.rng.chance(0.5) ? this.currentLeader() : undefined) ?? (this.nodes[this.rng.nextInt(this.nodes.length)] as SimNode);
    if (!n.alive || n.booting) return;
    const downFor = 20 + this.rng.nextInt(400);
    if (this.rng.chance(0.85)) {
      // Most crashes land with a write in flight: crash when the next one is issued (or in 600 ms).
      n.crashAtNextWrite = downFor;
      const inc = n.incarnation;
      this.note(`fault: ${n.id} will crash at its next fsync`);
      this.at(this.now + 600, () => {
        if (n.incarnation !== inc || !n.alive || n.crashAtNextWrite === undefined) return;
        this.crash(n, 'while idle');
        this.at(Math.min(this.now + downFor, this.faultMs), () => this.restart(n));
      });
      return;
    }
    this.crash(n, 'while idle');
    this.at(Math.min(this.now + downFor, this.faultMs), () => this.restart(n));
  }

  private pauseRandom(): void {
    const n = this.nodes[this.rng.nextInt(this.nodes.length)] as SimNode;
    if (!n.alive) return;
    const ms = ELECTION_TICKS * TICK_MS + this.rng.nextInt(3 * ELECTION_TICKS * TICK_MS);
    n.pausedUntil = Math.min(this.now + ms, this.faultMs);
    this.pauses++;
    this.note(`fault: pause ${n.id} for ${n.pausedUntil - this.now}ms`);
  }

  private slowDisk(): void {
    const n = this.nodes[this.rng.nextInt(this.nodes.length)] as SimNode;
    // The Raft log's disk, scm.db's, or one disk holding both.
    const which = this.rng.nextInt(3);
    const until = this.now + 100 + this.rng.nextInt(400);
    if (which !== 1) n.slowDiskUntil = until;
    if (which !== 0) n.slowDbUntil = until;
    this.note(`fault: slow disk under ${['the Raft log', 'scm.db', 'the Raft log and scm.db'][which]} on ${n.id}`);
  }

  /**
   * The nodes' disks stall together: they share the storage under them (one SAN or filer, one
   * cloud block-storage backend throttling the account, one hypervisor whose I/O queue stalls
   * behind a noisy neighbour or a snapshot of its VMs). Each node's volumes feel it for their own
   * while, some not at all, the Raft log's apart from scm.db's (ozone.scm.db.dirs and the Raft
   * storage dir are often separate volumes). So in the same few milliseconds a follower is slow to
   * acknowledge, the leader's own fsync lags or not, and the leader's applies (and what its
   * checkpoints hold) lag what it commits: slowDisk's faults, on several nodes at once.
   */
  private sharedStorageStall(): void {
    if (this.now >= this.faultMs) return;
    const r = this.sharedFaultRng;
    const hit: string[] = [];
    for (const n of this.nodes) {
      const what: string[] = [];
      if (r.chance(0.8)) {
        n.slowDiskUntil = Math.max(n.slowDiskUntil, this.now + 50 + r.nextInt(350));
        what.push('log');
      }
      if (r.chance(0.8)) {
        n.slowDbUntil = Math.max(n.slowDbUntil, this.now + 50 + r.nextInt(350));
        what.push('scm.db');
      }
      if (what.length > 0) hit.push(`${n.id} (${what.join(', ')})`);
    }
    this.note(`fault: shared storage stalls under ${hit.join(' ') || 'no node'}`);
    this.at(this.now + 300 + r.nextInt(900), () => this.sharedStorageStall());
  }

  /**
   * A storm of datanode registrations: a rack of datanodes restarts (or its switch comes back) and
   * every one of them registers within a few hundred ms, at whichever node leads when its call
   * arrives. Unlike burst() the writes keep arriving while the first ones are replicated,
   * committed, applied and purged below, so followers hold entries the leader has not applied yet
   * while their commit indexes lag its first index. Outside the register history, as burst().
   */
  private writeStorm(): void {
    if (this.now >= this.faultMs) return;
    const r = this.sharedFaultRng;
    const k = 5 + r.nextInt(40);
    let at = this.now;
    for (let i = 0; i < k; i++) {
      at += r.nextInt(8);
      const key = `dn-bulk-${r.nextInt(16)}`;
      this.at(at, () => {
        const leader = this.currentLeader();
        const driver = leader === undefined ? undefined : this.running(leader);
        driver?.propose(this.command(key, `s${this.nextCall}`)).catch(() => undefined);
      });
    }
    this.note(`fault: a storm of ${k} registrations over ${at - this.now}ms`);
    this.at(this.now + 100 + r.nextInt(400), () => this.writeStorm());
  }

  /**
   * A follower the leader counts as holding entries is restored from an older copy of its
   * directories (an operator's restore) and is back at once, while the leader still counts the
   * match the follower acknowledged before.
   */
  private restoreFollower(): void {
    const leader = this.currentLeader();
    if (leader === undefined) return;
    const all = this.nodes.filter((n) => n !== leader && n.alive && !n.booting && n.backup !== undefined && this.oldCopyIsSafe(n, n.backup));
    // Mostly one whose copy holds entries nothing had applied when it was taken.
    const uncommitted = all.filter((n) => n.backup!.uncommitted);
    const candidates = uncommitted.length > 0 && this.rng.chance(0.8) ? uncommitted : all;
    const n = candidates[this.rng.nextInt(Math.max(1, candidates.length))];
    if (n !== undefined) this.restoreFromCopy(n);
  }

  /** Crashes a running node and brings it back at once from its copy (when that is safe). */
  private restoreFromCopy(n: SimNode): void {
    if (!n.alive || n.booting || n.backup === undefined || !this.oldCopyIsSafe(n, n.backup)) return;
    this.crash(n, 'to restore it from its copy');
    this.at(this.now + 5 + this.rng.nextInt(30), () => this.restart(n, true));
  }

  /**
   * An operator restores a node from the wrong one of two copies first, and from the right one a
   * little later. The leader's directories are copied (the older copy); it is cut off alone and
   * goes on appending writes it cannot commit (first only what comes back to it is lost: the
   * followers take its last appends but their answers do not arrive, so its commit index stops
   * short of entries the next leader keeps); its directories are copied again (the right copy,
   * holding that uncommitted suffix); the network heals and the next leader overwrites the suffix.
   * Then the node is restored from the older copy and catches up from where that copy ends, in
   * appends that may stop short of where the suffix began while carrying a commit index beyond
   * it; then from the right copy, and those appends arrive again late (as a transport that resends
   * what a broken connection left unacknowledged delivers them to the new process). A follower that
   * took such an append as proof of more than the entries it carries would commit the old suffix
   * (Raft: the commit index moves to min(leaderCommit, index of the last new entry)).
   */
  private wrongCopyFirst(tries: number): void {
    if (this.now >= this.faultMs - 800) return;
    const r = this.wrongCopyRng;
    const n = this.currentLeader();
    // With fewer than three voters no restore of a voter is safe (the others are no majority).
    if (n === undefined || this.running(n)?.core.commitIndex === 0 || this.latestVoters().length < 3) {
      if (tries > 1) this.at(this.now + 50, () => this.wrongCopyFirst(tries - 1));
      return;
    }
    const incarnation = n.incarnation;
    const copies: { older?: Backup; right?: Backup } = {};
    const copy = (which: 'older' | 'right'): void => {
      const disk = cloneDisk(n.disk);
      const at = this.now;
      const configuration = this.committedMembers();
      const uncommitted = disk.first + disk.entries.length - 1 > this.globalCommit;
      if (!isOpen(n.db)) return; // mid-swap: its scm.db is being replaced (no copy is taken)
      void copyDb(n.db).then((db) => {
        copies[which] = { disk, db, at, configuration, uncommitted };
      });
      this.note(`fault: a copy of ${n.id}'s directories taken (the ${which} one)`);
    };
    copy('older');
    const cutAt = this.now + 15 + r.nextInt(50);
    this.at(cutAt, () => {
      if (n.incarnation !== incarnation || this.running(n)?.core.currentRole !== 'leader' || this.now >= this.faultMs) return;
      for (const other of this.nodes) if (other !== n) this.blocked.add(`${other.id}>${n.id}`);
      this.note(`fault: nothing reaches ${n.id}`);
    });
    this.at(cutAt + 2 + r.nextInt(15), () => {
      if (n.incarnation === incarnation) this.isolate(n.id);
    });
    // A busy cluster: registrations keep arriving at the leader from the first copy until after the
    // cut, so the copies differ, appends are in flight when the answers stop, and the cut-off
    // leader goes on appending what it cannot commit.
    for (let t = this.now + 1; t < cutAt + 40; t += 1 + r.nextInt(4)) {
      const key = `dn-bulk-${r.nextInt(16)}`;
      this.at(t, () => {
        if (n.incarnation === incarnation) this.running(n)?.propose(this.command(key, `w${this.nextCall}`)).catch(() => undefined);
      });
    }
    this.at(cutAt + 30 + r.nextInt(80), () => {
      if (n.incarnation === incarnation && this.now < this.faultMs) copy('right');
    });
    const healAt = cutAt + 200 + r.nextInt(200);
    this.at(healAt, () => {
      if (this.now < this.faultMs) this.healNetwork();
    });
    this.at(healAt + 60 + r.nextInt(150), () => this.restoreWrongThenRight(n, copies, 150));
  }

  /** Whether the node can be restored from `copy` now (not leading, running, nothing it may have acknowledged lost). */
  private canRestore(n: SimNode, copy: Backup): boolean {
    return this.currentLeader() !== n && n.alive && !n.booting && this.oldCopyIsSafe(n, copy);
  }

  /** The older copy as soon as restoring it is safe (the operator's timing is anyone's), then the right one. */
  private restoreWrongThenRight(n: SimNode, copies: { older?: Backup; right?: Backup }, tries: number): void {
    const { older, right } = copies;
    if (this.now >= this.faultMs || older === undefined || right === undefined) return;
    if (!this.canRestore(n, older)) {
      if (tries > 1) this.at(this.now + 3, () => this.restoreWrongThenRight(n, copies, tries - 1));
      return;
    }
    if (older.disk.first + older.disk.entries.length >= n.disk.first + n.disk.entries.length) return; // not older
    this.crash(n, 'to restore it from its older copy (the wrong one)');
    n.deliveredAppends = [];
    this.at(this.now + 5 + this.wrongCopyRng.nextInt(20), () => this.restart(n, true, older));
    this.at(this.now + 40 + this.wrongCopyRng.nextInt(120), () => this.restoreRightCopy(n, right, 100));
  }

  private restoreRightCopy(n: SimNode, right: Backup, tries: number): void {
    if (this.now >= this.faultMs) return;
    if (!this.canRestore(n, right)) {
      if (tries > 1) this.at(this.now + 3, () => this.restoreRightCopy(n, right, tries - 1));
      return;
    }
    const late = n.deliveredAppends ?? [];
    n.deliveredAppends = undefined;
    this.crash(n, 'to restore it from its right copy');
    this.at(this.now + 5 + this.wrongCopyRng.nextInt(20), () => this.restart(n, true, right));
    if (late.length > 0) this.whenRunning(n, n.incarnation, () => this.replayLate(n, late));
  }

  /** Runs `then` once the given incarnation of the node is up (never, if it goes down first). */
  private whenRunning(n: SimNode, incarnation: number, then: () => void): void {
    if (n.incarnation !== incarnation) return;
    if (this.running(n) !== undefined) then();
    else this.at(this.now + 2, () => this.whenRunning(n, incarnation, then));
  }

  /** Late duplicates of appends the node's previous incarnation got, in the order they came. */
  private replayLate(n: SimNode, late: readonly Uint8Array[]): void {
    this.note(`fault: ${late.length} appends ${n.id}'s previous incarnation got arrive again`);
    late.forEach((bytes, k) => this.at(this.now + k, () => this.deliver(n.id, bytes)));
  }

  /** An old snapshot status arrives once more, long after its round ended (a late duplicate). */
  private replayStatus(): void {
    // One of the recent ones, of the current leader's term when there are such (older terms are
    // ignored anyway), and sometimes again a little later, when the leader's view has moved on.
    const leader = this.currentLeader();
    const term = leader?.driver?.core.currentTerm;
    const recent = this.pastStatuses.slice(-16);
    const current = recent.filter((b) => {
      const m = decodeRaftMessage(b);
      return m.term === term && m.to === leader?.id;
    });
    const pool = current.length > 0 ? current : recent.slice(-8);
    const bytes = pool[this.rng.nextInt(Math.max(1, pool.length))];
    if (bytes === undefined) return;
    const m = decodeRaftMessage(bytes);
    for (let k = this.rng.nextInt(3); k >= 0; k--) {
      this.at(this.now + (k === 0 ? 0 : this.rng.nextInt(150)), () => {
        this.note(`fault: late duplicate of ${m.from}→${m.to} ${describe(m)}`);
        this.deliver(m.to, bytes);
      });
    }
  }

  /**
   * A copy of every running node's directories (`only`: of those; `onlyMissing`: of those without
   * a usable one), for a later "restored from an old copy" restart.
   */
  private takeBackup(only?: readonly SimNode[], onlyMissing = false): void {
    for (const n of only ?? this.nodes) {
      if (!n.alive || n.booting) continue;
      // A usable copy is kept when asked only for missing ones, and mostly when it holds entries
      // nothing had applied (the copies whose restore is the hard case for the protocol).
      const usable = n.backup !== undefined && n.backup.configuration === this.committedMembers();
      if (usable && (onlyMissing || (only === undefined && n.backup!.uncommitted && this.rng.chance(0.75)))) continue;
      const disk = cloneDisk(n.disk);
      const at = this.now;
      const configuration = this.committedMembers();
      const uncommitted = disk.first + disk.entries.length - 1 > this.globalCommit;
      if (!isOpen(n.db)) continue; // mid-swap: its scm.db is being replaced (no copy is taken)
      void copyDb(n.db).then((db) => {
        n.backup = { disk, db, at, configuration, uncommitted };
      });
    }
    this.note(`fault: copies of ${only === undefined ? 'the nodes\'' : `${only.map((n) => n.id).join(',')}'s`} directories taken`);
  }

  private currentLeader(): SimNode | undefined {
    let best: SimNode | undefined;
    for (const n of this.nodes) {
      const c = this.running(n)?.core;
      if (c?.currentRole === 'leader' && (best === undefined || c.currentTerm > best.driver!.core.currentTerm)) best = n;
    }
    return best;
  }

  private transfer(): void {
    if (this.now < this.noTransfersUntil) return; // one delayed TimeoutNow at a time
    const leader = this.currentLeader();
    if (leader === undefined) return;
    const core = leader.driver!.core;
    const voters = core.status().membership.voters.filter((p) => p.id !== leader.id);
    if (voters.length === 0) return;
    const target = (voters[this.rng.nextInt(voters.length)] as RaftPeer).id;
    const r = core.transferLeadership(target);
    this.note(`fault: transfer leadership ${leader.id} → ${target}: ${r.ok ? 'started' : r.error}`);
    if (r.ok) this.transfers++;
    leader.driver!.kick();
  }

  private changeMembership(): void {
    const leader = this.currentLeader();
    if (leader === undefined) return;
    const core = leader.driver!.core;
    const m = core.status().membership;
    const inConfig = new Set([...m.voters, ...m.nonVoters].map((p) => p.id));
    const outside = this.allPeers.filter((p) => !inConfig.has(p.id));
    // Down to one voter: removing the leader of two voters is a case of its own.
    const minVoters = 1;
    let result: string;
    let ok: boolean;
    if (m.nonVoters.length > 0 && this.rng.chance(0.5)) {
      const p = m.nonVoters[0] as RaftPeer;
      const r = core.promote(p.id);
      ok = r.ok;
      result = `promote ${p.id}: ${r.ok ? 'proposed' : r.error}`;
    } else if (outside.length > 0 && this.rng.chance(0.8)) {
      const p = outside[this.rng.nextInt(outside.length)] as RaftPeer;
      const r = core.addNonVoter(p, this.rng.chance(0.7));
      ok = r.ok;
      result = `add non-voter ${p.id}: ${r.ok ? 'proposed' : r.error}`;
    } else if (m.voters.length > minVoters) {
      const p = m.voters[this.rng.nextInt(m.voters.length)] as RaftPeer;
      const r = core.removeServer(p.id);
      ok = r.ok;
      result = `remove ${p.id}: ${r.ok ? 'proposed' : r.error}`;
    } else {
      return;
    }
    if (ok) this.membershipChanges++;
    this.note(`fault: membership via ${leader.id}: ${result}`);
    leader.driver!.kick();
  }

  /**
   * Many clients at once (an SCM serves every datanode and OM): the leader takes a burst of writes
   * in one go, so followers hold a long stretch of entries before they learn it is committed, and
   * its commits, applies and snapshot points come in jumps. Outside the register history: the
   * scm.db digest checks them.
   */
  private burst(): void {
    const leader = this.currentLeader();
    const driver = leader === undefined ? undefined : this.running(leader);
    if (driver === undefined) return;
    const k = 5 + this.rng.nextInt(40);
    for (let i = 0; i < k; i++) {
      driver.propose(this.command(`dn-bulk-${this.rng.nextInt(16)}`, `b${this.nextCall}`)).catch(() => undefined);
    }
    this.note(`fault: a burst of ${k} writes at ${leader!.id}`);
  }

  private networkQuality(): void {
    this.dropRate = [0, 0.02, 0.1][this.rng.nextInt(3)] as number;
    this.dupRate = [0, 0.02, 0.08][this.rng.nextInt(3)] as number;
    this.reorderRate = [0, 0.1, 0.3][this.rng.nextInt(3)] as number;
    this.note(`fault: network drop=${this.dropRate} dup=${this.dupRate} reorder=${this.reorderRate}`);
  }

  private heal(): void {
    this.blocked.clear();
    this.dropRate = 0;
    this.dupRate = 0;
    this.reorderRate = 0;
    for (const n of this.nodes) {
      n.slowDiskUntil = 0;
      n.slowDbUntil = 0;
      n.pausedUntil = 0;
      n.crashAtNextWrite = undefined;
      if (!n.alive) this.restart(n);
    }
    this.note('heal: all faults cleared, every node running');
    // Every server that exists ends up in the group, so all of them must converge.
    this.at(this.now + 50, () => this.joinEveryone());
    this.at(this.now + 300, () => {
      this.workloadOpen = false;
    });
    this.at(this.now, () => this.livenessStep());
  }

  private joinEveryone(): void {
    if (this.converged) return;
    const leader = this.currentLeader();
    if (leader !== undefined) {
      const core = leader.driver!.core;
      const m = core.status().membership;
      const inConfig = new Set([...m.voters, ...m.nonVoters].map((p) => p.id));
      const outside = this.allPeers.find((p) => !inConfig.has(p.id));
      if (outside !== undefined && core.addNonVoter(outside, true).ok) {
        this.note(`heal: adding ${outside.id} to the group`);
        leader.driver!.kick();
      }
    }
    this.at(this.now + 50, () => this.joinEveryone());
  }

  // ------------------------------------------------------------ liveness

  private livenessStep(): void {
    if (this.converged) return;
    const leader = this.currentLeader();
    if (leader !== undefined && this.markerIndex === undefined) {
      const core = leader.driver!.core;
      if (this.marker === undefined || this.marker.term !== core.currentTerm || this.marker.node !== leader.id || this.marker.incarnation !== leader.incarnation) {
        const term = core.currentTerm;
        this.marker = { node: leader.id, incarnation: leader.incarnation, term };
        this.note(`liveness marker proposed on ${leader.id}`);
        leader.driver!
          .propose(this.command('marker', 'marker'))
          .then((r) => {
            this.markerIndex ??= r.index;
            this.note(`liveness marker committed at ${r.index}`);
          })
          .catch((err: unknown) => {
            // Refused (a transfer under way) or lost: propose again on the next step.
            this.note(`liveness marker not committed: ${(err as Error).message}`);
            this.marker = undefined;
          });
      }
    }
    if (this.markerIndex !== undefined && leader !== undefined) {
      // Converged: every server is a member of the leader's configuration and applied the marker,
      // and a final write and read went through the client path.
      const m = leader.driver!.core.status().membership;
      const members = [...m.voters, ...m.nonVoters].map((p) => p.id);
      const all = this.nodes.every((x) => members.includes(x.id) && x.alive && (x.sm?.lastApplied().index ?? 0) >= (this.markerIndex as number));
      if (all && !this.finalRead) {
        this.finalRead = true;
        this.finalOps(leader);
      }
      if (all && this.pending.size === 0 && this.finalDone) {
        this.converged = true;
        this.note('converged');
        return;
      }
    }
    this.at(this.now + 20, () => this.livenessStep());
  }

  /** One write and one linearizable read after healing: a seed without them proves nothing. */
  private finalOps(leader: SimNode): void {
    const key = KEYS[0] as string;
    const driver = leader.driver!;
    const value = this.nextValue++;
    const write: PendingOp = { key, invoke: this.now, label: `final write ${value}`, write: value };
    this.pending.add(write);
    driver
      .propose(this.command(key, `v${value}`))
      .then(() => {
        this.complete(write, value);
        const read: PendingOp = { key, invoke: this.now, label: 'final read', term: driver.core.currentTerm };
        this.pending.add(read);
        return driver.readBarrier().then(() => this.complete(read, this.readValue(leader, key)));
      })
      .then(() => {
        this.finalDone = true;
      })
      .catch((err: unknown) => {
        // Leadership moved meanwhile (a transfer, an election): try again on the next step.
        this.note(`final write/read on ${leader.id} failed: ${(err as Error).message}`);
        for (const op of [...this.pending]) if (op.label.startsWith('final')) this.unknown(op);
        this.finalRead = false;
      });
  }

  // ------------------------------------------------------------ workload

  /** A registerDatanode command: datanode `key` gets hostname `value` (a register write). */
  private command(key: string, value: string): Uint8Array {
    const call = this.nextCall++;
    return encodeCommand({ type: 'registerDatanode', clientId: 'sim', callId: call, timestamp: this.now, uuid: key, hostname: value, ipAddress: '10.0.0.1', ports: [] });
  }

  private readValue(n: SimNode, key: string): number | null {
    const host = n.sm?.getDatanode(key)?.hostname;
    return host === undefined ? null : Number(host.slice(1));
  }

  private complete(op: PendingOp, value: number | null): void {
    if (!this.pending.delete(op)) return;
    if (op.term !== undefined) {
      // A leader of term t may answer a read only if no later term had committed anything before
      // the read began (ReadIndex needs a quorum still in term t after it began; a lease, that no
      // voter has moved on).
      for (const [term, at] of this.termFirstApplied) {
        if (term > op.term && at < op.invoke) this.violation(`${op.label} was answered in term ${op.term}, though term ${term} had committed at t=${at}ms, before the read began at t=${op.invoke}ms`);
      }
    }
    if (op.probe === true) return;
    if (op.write !== undefined) this.writes++;
    else this.reads++;
    this.record(op.key, { kind: op.write !== undefined ? 'write' : 'read', value: op.write ?? value, invoke: op.invoke, complete: this.now, label: op.label });
  }

  /** The outcome is unknown (timed out, the node crashed): it may take effect later, or never. */
  private unknown(op: PendingOp): void {
    if (!this.pending.delete(op)) return;
    if (op.write !== undefined) this.record(op.key, { kind: 'write', value: op.write, invoke: op.invoke, complete: Infinity, label: `${op.label}?` });
  }

  private scheduleClient(client: number): void {
    if (this.workloadOpen) this.at(this.now + this.rng.nextInt(20), () => this.clientStep(client));
  }

  private clientStep(client: number): void {
    if (!this.workloadOpen) return;
    const target = this.pickTarget(client);
    const driver = target === undefined ? undefined : this.running(target);
    if (target === undefined || driver === undefined) {
      this.at(this.now + 20, () => this.clientStep(client));
      return;
    }
    const key = KEYS[this.rng.nextInt(KEYS.length)] as string;
    const incarnation = target.incarnation;
    const gone = (): boolean => !(target.alive && target.incarnation === incarnation);
    if (this.rng.chance(0.5)) {
      const value = this.nextValue++;
      const op: PendingOp = { key, invoke: this.now, label: `c${client} w${value}@${target.id}`, write: value };
      this.pending.add(op);
      driver
        .propose(this.command(key, `v${value}`))
        .then(() => (gone() ? this.unknown(op) : this.complete(op, value)))
        .catch((err: unknown) => {
          // NotLeader means it was never appended, or another entry took its index: it failed.
          if ((err as Error).name === 'NotLeaderError' && !gone()) this.pending.delete(op);
          else this.unknown(op);
        })
        .finally(() => this.scheduleClient(client));
      this.at(this.now + CLIENT_TIMEOUT_MS + 50, () => this.unknown(op));
    } else {
      const op: PendingOp = { key, invoke: this.now, label: `c${client} read@${target.id}`, term: driver.core.currentTerm };
      this.pending.add(op);
      driver
        .readBarrier()
        .then(() => {
          if (gone()) this.pending.delete(op);
          else this.complete(op, this.readValue(target, key));
        })
        .catch(() => this.pending.delete(op))
        .finally(() => this.scheduleClient(client));
      this.at(this.now + CLIENT_TIMEOUT_MS + 50, () => this.pending.delete(op));
    }
  }

  /**
   * Reads at every node that claims to lead, every few ms for a while: started when a leader is cut
   * off or a late TimeoutNow lands, when a deposed leader may still believe it leads. A read it
   * answers then (by lease, or by a ReadIndex round) must not miss what a newer term committed.
   */
  private readsAtClaimants(until: number): void {
    if (!this.workloadOpen || this.now >= until) return;
    for (const n of this.nodes) {
      const driver = this.running(n);
      if (driver === undefined || driver.core.currentRole !== 'leader') continue;
      const key = KEYS[this.rng.nextInt(KEYS.length)] as string;
      const incarnation = n.incarnation;
      const op: PendingOp = { key, invoke: this.now, label: `probe read@${n.id}`, term: driver.core.currentTerm, probe: true };
      this.pending.add(op);
      driver
        .readBarrier()
        .then(() => {
          if (n.alive && n.incarnation === incarnation) this.complete(op, this.readValue(n, key));
          else this.pending.delete(op);
        })
        .catch(() => this.pending.delete(op));
      this.at(this.now + CLIENT_TIMEOUT_MS + 50, () => this.pending.delete(op));
    }
    this.at(this.now + 3 + this.rng.nextInt(8), () => this.readsAtClaimants(until));
  }

  /** The client's cached leader while it still claims to lead (it may be deposed), else any claimant. */
  private pickTarget(client: number): SimNode | undefined {
    const cached = this.byId.get(this.clientTarget.get(client) ?? '');
    if (cached !== undefined && this.running(cached)?.core.currentRole === 'leader' && this.rng.chance(0.8)) return cached;
    const claimants = this.nodes.filter((n) => this.running(n)?.core.currentRole === 'leader');
    const pick = claimants[this.rng.nextInt(Math.max(1, claimants.length))];
    if (pick !== undefined) this.clientTarget.set(client, pick.id);
    return pick;
  }

  private record(key: string, op: RegisterOp): void {
    let h = this.history.get(key);
    if (h === undefined) {
      h = [];
      this.history.set(key, h);
    }
    h.push(op);
  }

  // ------------------------------------------------------------ the end

  /** Every member reached the same applied index and holds byte-identical scm.db contents. */
  private async checkConvergence(): Promise<void> {
    const applied = new Map<string, number>();
    const digests = new Map<string, string>();
    // Let everyone apply what is committed (and a late election, say from a TimeoutNow that was
    // still in flight, finish).
    const until = this.now + this.livenessBoundMs;
    for (let round = 0; round < 50 || (this.currentLeader() === undefined && this.now < until); round++) {
      if (!(await this.runOneEvent())) break;
    }
    const leader = this.currentLeader();
    if (leader === undefined) this.fail('convergence: no leader at the end');
    const target = leader.sm!.lastApplied().index;
    await this.runEventsWhile(() => this.nodes.some((n) => (n.sm?.lastApplied().index ?? -1) < target));
    for (const n of this.nodes) {
      const sm = n.sm;
      if (sm === undefined || sm.isClosed) this.fail(`convergence: ${n.id} is not running at the end`);
      if (sm.lastApplied().index < target) this.fail(`convergence: ${n.id} applied ${sm.lastApplied().index}, the leader ${target}`);
      applied.set(n.id, sm.lastApplied().index);
    }
    // Compare at the same point: every node's DB as of the leader's applied index.
    for (const n of this.nodes) {
      if (n.sm!.lastApplied().index !== target) continue;
      // digest() waits its turn behind the applies and writes in progress, which wait for
      // simulated time: events run meanwhile. It hashes what is applied when it runs.
      const digest = await this.runEventsUntil(n.sm!.digest(), `the digest of ${n.id}`);
      if (n.sm!.lastApplied().index === target) digests.set(n.id, digest);
    }
    const distinct = new Set(digests.values());
    if (distinct.size > 1) this.fail(`convergence: scm.db differs between nodes at index ${target}: ${[...digests].map(([id, d]) => `${id}=${d.slice(0, 12)}`).join(' ')}`);
  }

  /** After the faults: runs events (up to 2,000, each checked) while `condition` holds. */
  private async runEventsWhile(condition: () => boolean): Promise<void> {
    for (let spin = 0; spin < 2000 && condition(); spin++) {
      if (!(await this.runOneEvent())) break;
    }
  }

  /** Runs the next event, lets the promises it started settle, checks the invariants; false when none is left. */
  private async runOneEvent(): Promise<boolean> {
    const ev = this.queue.pop();
    if (ev === undefined) return false;
    ev.run();
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (this.failure !== undefined) this.fail(this.failure);
    this.checkAll();
    return true;
  }

  /** Runs events until `work` settles; fails the run if the events run out first. */
  private async runEventsUntil<T>(work: Promise<T>, what: string): Promise<T> {
    let settled = false;
    void work.then(
      () => (settled = true),
      () => (settled = true),
    );
    await new Promise<void>((resolve) => setImmediate(resolve)); // what needs no event settles first
    await this.runEventsWhile(() => !settled);
    return settled ? work : this.fail(`convergence: ${what} never finished`);
  }

  private checkHistory(): void {
    for (const op of this.pending) this.unknown(op);
    if (this.writes === 0 || this.reads === 0) this.fail(`vacuous: the history has ${this.writes} completed writes and ${this.reads} reads`);
    for (const [key, ops] of this.history) {
      const result = checkRegister(ops);
      if (!result.ok) this.fail(`linearizability of register ${key}: ${result.explanation}`);
    }
  }
}

function describe(m: Message): string {
  switch (m.type) {
    case 'append':
      return `append t${m.term} prev=${m.prevTerm}:${m.prevIndex} n=${m.entries.length} commit=${m.commit}`;
    case 'append-response':
      return `append-resp t${m.term} ${m.reject ? `reject ${m.index} hint=${m.hintTerm}:${m.hintIndex}` : `ok ${m.index}`}`;
    case 'heartbeat':
      return `heartbeat t${m.term} commit=${m.commit} round=${m.readRound}`;
    case 'heartbeat-response':
      return `heartbeat-resp t${m.term} round=${m.readRound}`;
    case 'vote':
    case 'pre-vote':
      return `${m.type} t${m.term} last=${m.lastTerm}:${m.lastIndex}${m.transfer ? ' transfer' : ''}`;
    case 'vote-response':
    case 'pre-vote-response':
      return `${m.type} t${m.term} ${m.reject ? 'reject' : 'grant'}`;
    case 'timeout-now':
      return `timeout-now t${m.term}`;
    case 'snapshot-notify':
      return `snapshot-notify t${m.term} #${m.noticeId} first=${m.firstIndex} prevTerm=${m.prevTerm}`;
    case 'snapshot-status':
      return `snapshot-status t${m.term} #${m.noticeId} ${m.status} ${m.snapshotTerm}:${m.index} conf=${m.configIndex}`;
  }
}

/** Runs one seed; rejects with SimulationFailure (with seed and trace) on any violation. */
export function runSeed(seed: number, nodes: number, options: Partial<SimOptions> = {}): Promise<SimResult> {
  return new Simulation({ seed, nodes, leaseRead: seed % 4 === 3, ...options }).run();
}
