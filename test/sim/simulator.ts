// Deterministic simulation of a Raft cluster (TigerBeetle/FoundationDB style): 3 or 5 RaftNode cores
// in one process on a simulated clock and network, all randomness from one seed. Faults: message
// drop, delay, reorder, duplication; symmetric, asymmetric and flapping partitions; crashes that lose
// (or tear) whatever was not fsynced; slow disks; leadership transfers and membership changes.
// Safety invariants are checked after every event; after the faults heal the cluster must elect a
// leader, commit a new proposal and converge within a bounded simulated time. A register workload
// (writes through the log, ReadIndex reads) is checked for linearizability at the end.
import {
  RaftNode,
  SeededRandom,
  type HardState,
  type IndexedMembership,
  type LogEntry,
  type Membership,
  type Message,
  type RaftPeer,
  type Ready,
  type SnapshotNotice,
} from '../../src/raft/index.js';
import { SimLog } from './sim-log.js';
import { checkRegister, type RegisterOp } from './linearizability.js';

export interface SimOptions {
  readonly seed: number;
  readonly nodes: number;
  /** Simulated milliseconds of faults and workload. */
  readonly faultMs?: number;
  /** After healing, the cluster must commit and converge within this many simulated ms. */
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
  readonly snapshotsInstalled: number;
  readonly membershipChanges: number;
  readonly transfers: number;
  readonly historyOps: number;
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
const SNAPSHOT_EVERY = 25;
const PURGE_GAP = 5;
const CLIENT_TIMEOUT_MS = 400;
const KEYS = ['x', 'y'];

interface StateMachine {
  applied: number;
  appliedTerm: number;
  kv: Map<string, number>;
  config: IndexedMembership;
}

interface SimNode {
  readonly id: string;
  readonly ordinal: number;
  alive: boolean;
  incarnation: number;
  // Durable state: survives crashes.
  dLog: SimLog;
  dHard: HardState;
  sm: StateMachine;
  // Volatile state.
  cLog: SimLog;
  raft: RaftNode;
  outstanding: Ready | null;
  lastCommit: number;
  /** Highest commit index verified against the global committed log. */
  checkedCommit: number;
  slowDiskUntil: number;
  installing: boolean;
}

interface Event {
  readonly time: number;
  readonly seq: number;
  readonly run: () => void;
}

interface PendingWrite {
  readonly client: number;
  readonly opId: string;
  readonly key: string;
  readonly value: number;
  readonly invoke: number;
  readonly node: string;
  readonly incarnation: number;
  readonly index: number;
}

interface PendingRead {
  readonly client: number;
  readonly reqId: string;
  readonly key: string;
  readonly invoke: number;
  readonly node: string;
  readonly incarnation: number;
}

/** A min-heap of events ordered by (time, insertion sequence): ties replay deterministically. */
class EventQueue {
  private readonly heap: Event[] = [];
  private seq = 0;

  push(time: number, run: () => void): void {
    const ev: Event = { time, seq: this.seq++, run };
    const h = this.heap;
    h.push(ev);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(ev, h[parent] as Event)) break;
      h[i] = h[parent] as Event;
      i = parent;
    }
    h[i] = ev;
  }

  pop(): Event | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (top === undefined || last === undefined || h.length === 0) return top;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= h.length) break;
      const r = l + 1;
      const c = r < h.length && before(h[r] as Event, h[l] as Event) ? r : l;
      if (!before(h[c] as Event, last)) break;
      h[i] = h[c] as Event;
      i = c;
    }
    h[i] = last;
    return top;
  }

  get size(): number {
    return this.heap.length;
  }
}

function before(a: Event, b: Event): boolean {
  return a.time < b.time || (a.time === b.time && a.seq < b.seq);
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class Simulation {
  private readonly rng: SeededRandom;
  private readonly queue = new EventQueue();
  private now = 0;
  private events = 0;
  private readonly nodes: SimNode[] = [];
  private readonly byId = new Map<string, SimNode>();
  private readonly allPeers: RaftPeer[];
  private readonly faultMs: number;
  private readonly livenessBoundMs: number;
  private readonly leaseRead: boolean;
  // Small, seed-chosen batch limits split replication into many messages (more interleavings).
  private readonly maxBytesPerMsg: number;
  private readonly maxInflightMsgs: number;
  // Some seeds run without pre-vote or check-quorum: more disruptive elections, deposed leaders
  // that linger (which ReadIndex must cope with).
  private readonly preVote: boolean;
  private readonly checkQuorum: boolean;

  // Network state.
  private readonly blocked = new Set<string>();
  private dropRate = 0;
  private dupRate = 0;
  private reorderRate = 0;

  // Checker state.
  private readonly leaderOfTerm = new Map<number, string>();
  private readonly globalTerm: number[] = [0];
  private readonly globalHash: number[] = [0];
  private globalCommit = 0;

  // Workload.
  /** Each client keeps using the node it believes leads until that node says otherwise. */
  private readonly clientLeader = new Map<number, string>();
  private readonly pendingWrites = new Map<string, PendingWrite>();
  private readonly pendingReads = new Map<string, PendingRead>();
  private readonly history = new Map<string, RegisterOp[]>();
  private nextValue = 1;
  private nextOp = 1;
  private workloadOpen = true;

  // Liveness.
  private marker: { opId: string; node: string; term: number; index: number } | undefined;
  private markerCommitted: { index: number } | undefined;
  private converged = false;

  // Trace and counters.
  private readonly trace: string[] = [];
  private traceHead = 0;
  private readonly traceSize: number;
  private crashes = 0;
  private snapshotsInstalled = 0;
  private membershipChanges = 0;
  private transfers = 0;

  constructor(private readonly opts: SimOptions) {
    if (!Number.isSafeInteger(opts.seed)) throw new Error(`seed must be an integer, got ${opts.seed}`);
    if (opts.nodes < 1 || opts.nodes > 9) throw new Error(`nodes must be 1..9, got ${opts.nodes}`);
    this.rng = new SeededRandom(opts.seed);
    this.faultMs = opts.faultMs ?? 2000;
    this.livenessBoundMs = opts.livenessBoundMs ?? 5000;
    this.traceSize = opts.traceSize ?? 150;
    this.leaseRead = opts.leaseRead ?? false;
    this.maxBytesPerMsg = [60, 200, 1000, 4096][this.rng.nextInt(4)] as number;
    this.maxInflightMsgs = 1 + this.rng.nextInt(8);
    this.preVote = this.rng.chance(0.75);
    this.checkQuorum = this.leaseRead || this.rng.chance(0.6);
    this.allPeers = [];
    for (let k = 0; k < opts.nodes; k++) {
      const id = String.fromCharCode(97 + k);
      this.allPeers.push({ id, address: `${id}:9894`, priority: 0 });
    }
    const initial: IndexedMembership = { index: 0, membership: { voters: this.allPeers, nonVoters: [] } };
    for (let k = 0; k < opts.nodes; k++) {
      const id = (this.allPeers[k] as RaftPeer).id;
      const dLog = new SimLog();
      const node: SimNode = {
        id,
        ordinal: k,
        alive: true,
        incarnation: 0,
        dLog,
        dHard: { term: 0, votedFor: '' },
        sm: { applied: 0, appliedTerm: 0, kv: new Map(), config: initial },
        cLog: dLog.clone(),
        raft: undefined as unknown as RaftNode,
        outstanding: null,
        lastCommit: 0,
        checkedCommit: 0,
        slowDiskUntil: 0,
        installing: false,
      };
      node.raft = this.makeRaft(node);
      this.nodes.push(node);
      this.byId.set(id, node);
    }
  }

  run(): SimResult {
    try {
      return this.runUnchecked();
    } catch (err) {
      if (err instanceof SimulationFailure) throw err;
      const reason = err instanceof Error ? (err.stack ?? err.message) : String(err);
      throw new SimulationFailure(this.opts.seed, `exception at t=${this.now}ms: ${reason}`, this.formatTrace());
    }
  }

  private runUnchecked(): SimResult {
    for (const n of this.nodes) {
      const phase = this.rng.nextInt(TICK_MS);
      this.at(phase, () => this.tickLoop(n));
    }
    for (let c = 0; c < 3; c++) this.at(50 + this.rng.nextInt(50), () => this.clientStep(c));
    this.at(100 + this.rng.nextInt(200), () => this.faultStep());
    this.at(this.faultMs, () => this.heal());
    const deadline = this.faultMs + this.livenessBoundMs;
    this.at(this.faultMs, () => this.livenessStep());
    while (this.queue.size > 0 && !this.converged) {
      const ev = this.queue.pop() as Event;
      if (ev.time > deadline) break;
      this.now = ev.time;
      this.events++;
      ev.run();
    }
    if (!this.converged) {
      const state = this.nodes
        .map((n) => `${n.id}:${n.alive ? n.raft.currentRole : 'dead'} t${n.raft.currentTerm} commit=${n.raft.commitIndex} last=${n.raft.lastIndex}`)
        .join('  ');
      this.fail(`liveness: no leader committed and converged within ${this.livenessBoundMs}ms after healing (${state}; marker ${JSON.stringify(this.markerCommitted)})`);
    }
    this.checkHistory();
    let historyOps = 0;
    for (const h of this.history.values()) historyOps += h.length;
    return {
      seed: this.opts.seed,
      events: this.events,
      committed: this.globalCommit,
      leaders: this.leaderOfTerm.size,
      crashes: this.crashes,
      snapshotsInstalled: this.snapshotsInstalled,
      membershipChanges: this.membershipChanges,
      transfers: this.transfers,
      historyOps,
    };
  }

  // ------------------------------------------------------------ plumbing

  private at(time: number, run: () => void): void {
    this.queue.push(time, run);
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

  private makeRaft(n: SimNode): RaftNode {
    return new RaftNode(
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
        random: new SeededRandom(this.opts.seed * 131 + n.ordinal * 7919 + n.incarnation * 104729),
      },
      n.cLog,
      {
        hardState: n.dHard,
        membership: n.sm.config.membership,
        membershipIndex: n.sm.config.index,
        applied: n.sm.applied,
      },
    );
  }

  // ------------------------------------------------------------ node driving

  private tickLoop(n: SimNode): void {
    if (n.alive) {
      n.raft.tick();
      this.afterActivity(n);
    }
    this.at(this.now + TICK_MS, () => this.tickLoop(n));
  }

  /** After any input to a node: check invariants, then hand out its next Ready. */
  private afterActivity(n: SimNode): void {
    this.checkNode(n);
    this.processReady(n);
  }

  private processReady(n: SimNode): void {
    if (!n.alive || n.outstanding !== null) return;
    const rd = n.raft.ready();
    if (rd === null) return;
    n.outstanding = rd;
    if (rd.softState !== undefined) {
      this.note(`${n.id} becomes ${rd.softState.role} t${rd.softState.term} leader=${rd.softState.leader || '-'}`);
      if (rd.softState.role === 'leader') this.checkLeaderCompleteness(n);
    }
    if (rd.entries.length > 0) {
      n.cLog.append(rd.entries);
      this.checkLogMatching(n, rd.entries);
    }
    for (const m of rd.messages) this.send(m);
    if (rd.snapshotNotice !== undefined) this.scheduleInstall(n, rd.snapshotNotice);
    const needsSync = rd.entries.length > 0 || rd.hardState !== undefined;
    if (!needsSync) {
      this.completeReady(n, rd);
      return;
    }
    const slow = this.now < n.slowDiskUntil;
    const delay = slow ? 20 + this.rng.nextInt(60) : 1 + this.rng.nextInt(3);
    const inc = n.incarnation;
    this.at(this.now + delay, () => {
      if (n.alive && n.incarnation === inc && n.outstanding === rd) this.completeReady(n, rd);
    });
  }

  /** The Ready's writes are durable: send what waited for them, apply, advance. */
  private completeReady(n: SimNode, rd: Ready): void {
    if (rd.entries.length > 0) n.dLog.append(rd.entries);
    if (rd.hardState !== undefined) n.dHard = rd.hardState;
    for (const m of rd.messagesAfterPersist) this.send(m);
    for (const e of rd.committedEntries) this.apply(n, e);
    for (const r of rd.readStates) this.completeRead(n, r.requestId, r.index);
    for (const id of rd.droppedReads) this.pendingReads.delete(id);
    n.outstanding = null;
    n.raft.advance();
    this.maybeCompact(n);
    this.afterActivity(n);
  }

  private apply(n: SimNode, e: LogEntry): void {
    if (e.index !== n.sm.applied + 1) this.fail(`${n.id} applies ${e.index} after ${n.sm.applied}`);
    const h = n.cLog.hash(e.index);
    const g = this.globalHash[e.index];
    if (g !== undefined && h !== undefined && g !== h) {
      this.fail(`state machine safety: ${n.id} applies entry ${e.index} (term ${e.term}) that differs from the committed one (term ${this.globalTerm[e.index]})`);
    }
    n.sm.applied = e.index;
    n.sm.appliedTerm = e.term;
    const p = e.payload;
    if (p.kind === 'config') {
      n.sm.config = { index: e.index, membership: { voters: p.peers, nonVoters: p.listeners } };
      return;
    }
    if (p.kind !== 'data') return;
    const text = decoder.decode(p.data);
    const [kind, opId, key, value] = text.split('|');
    if (kind === 'w' && key !== undefined && value !== undefined) n.sm.kv.set(key, Number(value));
    if (opId === undefined) return;
    const w = this.pendingWrites.get(opId);
    if (w !== undefined && w.node === n.id && w.incarnation === n.incarnation) {
      this.pendingWrites.delete(opId);
      this.record(w.key, { kind: 'write', value: w.value, invoke: w.invoke, complete: this.now, label: `c${w.client} ${opId}` });
      this.scheduleClient(w.client);
    }
    if (this.marker !== undefined && this.marker.opId === opId && this.markerCommitted === undefined) {
      this.markerCommitted = { index: e.index };
      this.note(`liveness marker ${opId} committed at ${e.index}`);
    }
    // A pending write of this node at this index that is not this entry can never commit.
    for (const [id, pw] of this.pendingWrites) {
      if (pw.node === n.id && pw.index === e.index && id !== opId) {
        this.pendingWrites.delete(id);
        this.scheduleClient(pw.client);
      }
    }
  }

  private maybeCompact(n: SimNode): void {
    const applied = n.sm.applied;
    const first = n.cLog.firstIndex();
    if (applied - first + 1 < SNAPSHOT_EVERY + PURGE_GAP) return;
    const to = applied - PURGE_GAP;
    const term = n.cLog.term(to);
    if (term === undefined) return;
    // Compact both the page cache and the disk: the state machine (durable) covers up to applied.
    n.cLog.compact(to);
    if (n.dLog.lastIndex() >= to && n.dLog.firstIndex() <= to) n.dLog.compact(to);
    n.raft.compacted(to, term);
  }

  // ------------------------------------------------------------ snapshots

  private scheduleInstall(n: SimNode, notice: SnapshotNotice): void {
    n.installing = true;
    const inc = n.incarnation;
    this.note(`${n.id} told by ${notice.leaderId} to install a snapshot (leader log starts at ${notice.firstIndex})`);
    const attempt = (): void => {
      if (!n.alive || n.incarnation !== inc) return;
      if (n.outstanding !== null) {
        this.at(this.now + 1, attempt);
        return;
      }
      const source = this.byId.get(notice.leaderId) as SimNode;
      n.installing = false;
      if (!source.alive || this.isBlocked(source.id, n.id) || this.isBlocked(n.id, source.id)) {
        this.note(`${n.id} snapshot download from ${source.id} failed`);
        n.raft.snapshotInstallFailed();
        this.afterActivity(n);
        return;
      }
      const sm = source.sm;
      if (sm.applied < notice.firstIndex - 1) this.fail(`leader ${source.id} snapshot ${sm.applied} is older than its log start ${notice.firstIndex}`);
      const hash = this.globalHash[sm.applied];
      if (hash === undefined) this.fail(`snapshot at ${sm.applied} is not known to be committed`);
      n.sm = { applied: sm.applied, appliedTerm: sm.appliedTerm, kv: new Map(sm.kv), config: sm.config };
      n.dLog.resetToSnapshot(sm.applied, sm.appliedTerm, hash);
      n.cLog.resetToSnapshot(sm.applied, sm.appliedTerm, hash);
      this.snapshotsInstalled++;
      this.note(`${n.id} installed snapshot ${sm.appliedTerm}:${sm.applied} from ${source.id}`);
      n.raft.snapshotInstalled(sm.appliedTerm, sm.applied, sm.config);
      this.afterActivity(n);
    };
    this.at(this.now + 5 + this.rng.nextInt(40), attempt);
  }

  // ------------------------------------------------------------ network

  private isBlocked(from: string, to: string): boolean {
    return this.blocked.has(`${from}>${to}`);
  }

  private send(m: Message): void {
    if (this.isBlocked(m.from, m.to) || this.rng.chance(this.dropRate)) return;
    const copies = this.rng.chance(this.dupRate) ? 2 : 1;
    for (let c = 0; c < copies; c++) {
      let delay = 1 + this.rng.nextInt(5);
      if (this.rng.chance(this.reorderRate)) delay += this.rng.nextInt(40);
      this.at(this.now + delay, () => this.deliver(m));
    }
  }

  private deliver(m: Message): void {
    const target = this.byId.get(m.to);
    if (target === undefined || !target.alive || this.isBlocked(m.from, m.to)) return;
    this.note(`${m.from}→${m.to} ${describe(m)}`);
    target.raft.step(m);
    this.afterActivity(target);
  }

  // ------------------------------------------------------------ invariants

  private checkNode(n: SimNode): void {
    const raft = n.raft;
    if (raft.currentRole === 'leader') {
      const term = raft.currentTerm;
      const known = this.leaderOfTerm.get(term);
      if (known === undefined) this.leaderOfTerm.set(term, n.id);
      else if (known !== n.id) this.fail(`election safety: ${known} and ${n.id} are both leaders of term ${term}`);
    }
    const commit = raft.commitIndex;
    if (commit < n.lastCommit) this.fail(`${n.id} commit index decreased from ${n.lastCommit} to ${commit}`);
    n.lastCommit = commit;
    // The page cache lags the core until the Ready holding new entries is processed: verify the
    // commit point once the cache holds the same entry as the core.
    if (commit > n.checkedCommit && n.cLog.term(commit) === raft.logTerm(commit)) {
      n.checkedCommit = commit;
      this.recordCommit(n, commit);
    }
  }

  /** Every commit index a node reaches must name the same log prefix everywhere. */
  private recordCommit(n: SimNode, commit: number): void {
    const h = n.cLog.hash(commit);
    if (h === undefined) return; // committed entries still unstable in the core: checked when they land
    const g = this.globalHash[commit];
    if (g !== undefined) {
      if (g !== h) this.fail(`${n.id} commits a different entry at ${commit} than was committed before (term ${n.cLog.term(commit)} vs ${this.globalTerm[commit]})`);
      return;
    }
    for (let i = this.globalCommit + 1; i <= commit; i++) {
      const hi = n.cLog.hash(i);
      if (hi !== undefined) {
        this.globalHash[i] = hi;
        this.globalTerm[i] = n.cLog.term(i) ?? -1;
      }
    }
    if (commit > this.globalCommit) this.globalCommit = commit;
  }

  /** Log Matching: an entry with the same index and term means identical prefixes on every node. */
  private checkLogMatching(n: SimNode, entries: readonly LogEntry[]): void {
    for (const e of entries) {
      const h = n.cLog.hash(e.index);
      for (const other of this.nodes) {
        if (other === n) continue;
        const log = other.alive ? other.cLog : other.dLog;
        if (log.term(e.index) === e.term && log.hash(e.index) !== undefined && log.hash(e.index) !== h) {
          this.fail(`log matching: ${n.id} and ${other.id} both have term ${e.term} at ${e.index} but different prefixes`);
        }
      }
    }
  }

  /** Leader Completeness: a new leader's log holds every entry committed so far. */
  private checkLeaderCompleteness(n: SimNode): void {
    const c = this.globalCommit;
    if (c === 0) return;
    if (n.cLog.lastIndex() < c) this.fail(`leader completeness: ${n.id} leads with last index ${n.cLog.lastIndex()} < committed ${c}`);
    const h = n.cLog.hash(c);
    if (h !== undefined && h !== this.globalHash[c]) this.fail(`leader completeness: ${n.id} leads without the committed entry at ${c}`);
  }

  // ------------------------------------------------------------ faults

  private faultStep(): void {
    if (this.now >= this.faultMs) return;
    const r = this.rng.nextInt(100);
    if (r < 14) this.partitionSymmetric();
    else if (r < 24) this.partitionAsymmetric();
    else if (r < 30) this.flap(this.rng.nextInt(this.nodes.length), 6 + this.rng.nextInt(8));
    else if (r < 44) this.healNetwork();
    else if (r < 58) this.crashRandom();
    else if (r < 66) this.slowDisk();
    else if (r < 74) this.transfer();
    else if (r < 86) this.changeMembership();
    else this.networkQuality();
    this.at(this.now + 40 + this.rng.nextInt(260), () => this.faultStep());
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

  private healNetwork(): void {
    this.blocked.clear();
    this.note('fault: network healed');
  }

  private crashRandom(): void {
    const n = this.nodes[this.rng.nextInt(this.nodes.length)] as SimNode;
    if (!n.alive) return;
    this.crash(n);
    const downFor = 20 + this.rng.nextInt(400);
    this.at(Math.min(this.now + downFor, this.faultMs), () => this.restart(n));
  }

  /** A crash keeps what was fsynced; an in-flight write may be torn (any prefix of it survives). */
  private crash(n: SimNode): void {
    const rd = n.outstanding;
    let torn = '';
    if (rd !== null) {
      if (rd.hardState !== undefined && this.rng.chance(0.5)) {
        n.dHard = rd.hardState;
        torn += ' hardstate';
      }
      if (rd.entries.length > 0) {
        const keep = this.rng.nextInt(rd.entries.length + 1);
        if (keep > 0) n.dLog.append(rd.entries.slice(0, keep));
        else if (this.rng.chance(0.5)) n.dLog.truncateAfter((rd.entries[0] as LogEntry).index - 1);
        torn += ` ${keep}/${rd.entries.length} entries`;
      }
    }
    n.alive = false;
    n.incarnation++;
    n.outstanding = null;
    n.installing = false;
    this.crashes++;
    this.note(`fault: crash ${n.id}${torn ? ` (torn write kept:${torn})` : ''}`);
  }

  private restart(n: SimNode): void {
    if (n.alive) return;
    n.alive = true;
    n.cLog = n.dLog.clone();
    n.raft = this.makeRaft(n);
    n.lastCommit = n.raft.commitIndex;
    n.checkedCommit = n.lastCommit;
    this.note(`restart ${n.id} term=${n.dHard.term} vote=${n.dHard.votedFor || '-'} last=${n.cLog.lastIndex()} applied=${n.sm.applied}`);
    this.afterActivity(n);
  }

  private slowDisk(): void {
    const n = this.nodes[this.rng.nextInt(this.nodes.length)] as SimNode;
    n.slowDiskUntil = this.now + 100 + this.rng.nextInt(400);
    this.note(`fault: slow disk on ${n.id}`);
  }

  private currentLeader(): SimNode | undefined {
    let best: SimNode | undefined;
    for (const n of this.nodes) {
      if (n.alive && n.raft.currentRole === 'leader' && (best === undefined || n.raft.currentTerm > best.raft.currentTerm)) best = n;
    }
    return best;
  }

  private transfer(): void {
    const leader = this.currentLeader();
    if (leader === undefined) return;
    const voters = leader.raft.status().membership.voters.filter((p) => p.id !== leader.id);
    if (voters.length === 0) return;
    const target = (voters[this.rng.nextInt(voters.length)] as RaftPeer).id;
    const r = leader.raft.transferLeadership(target);
    this.note(`fault: transfer leadership ${leader.id} → ${target}: ${r.ok ? 'started' : r.error}`);
    if (r.ok) this.transfers++;
    this.afterActivity(leader);
  }

  private changeMembership(): void {
    const leader = this.currentLeader();
    if (leader === undefined) return;
    const m: Membership = leader.raft.status().membership;
    const inConfig = new Set([...m.voters, ...m.nonVoters].map((p) => p.id));
    const outside = this.allPeers.filter((p) => !inConfig.has(p.id));
    const minVoters = this.nodes.length >= 5 ? 3 : 2;
    let result: string;
    let ok: boolean;
    if (m.nonVoters.length > 0 && this.rng.chance(0.5)) {
      const p = m.nonVoters[0] as RaftPeer;
      const r = leader.raft.promote(p.id);
      ok = r.ok;
      result = `promote ${p.id}: ${r.ok ? 'proposed' : r.error}`;
    } else if (outside.length > 0 && this.rng.chance(0.7)) {
      const p = outside[this.rng.nextInt(outside.length)] as RaftPeer;
      const r = leader.raft.addNonVoter(p, this.rng.chance(0.5));
      ok = r.ok;
      result = `add non-voter ${p.id}: ${r.ok ? 'proposed' : r.error}`;
    } else if (m.voters.length > minVoters) {
      const p = m.voters[this.rng.nextInt(m.voters.length)] as RaftPeer;
      const r = leader.raft.removeServer(p.id);
      ok = r.ok;
      result = `remove ${p.id}: ${r.ok ? 'proposed' : r.error}`;
    } else {
      return;
    }
    if (ok) this.membershipChanges++;
    this.note(`fault: membership via ${leader.id}: ${result}`);
    this.afterActivity(leader);
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
      if (!n.alive) this.restart(n);
    }
    this.note('heal: all faults cleared, every node running');
    this.at(this.now + 300, () => {
      this.workloadOpen = false;
    });
  }

  // ------------------------------------------------------------ liveness

  private livenessStep(): void {
    if (this.converged) return;
    const leader = this.currentLeader();
    if (this.markerCommitted === undefined && leader !== undefined) {
      if (this.marker === undefined || this.marker.term !== leader.raft.currentTerm || this.marker.node !== leader.id) {
        const opId = `L${this.nextOp++}`;
        const r = leader.raft.propose(encoder.encode(`m|${opId}`));
        if (r.ok) {
          this.marker = { opId, node: leader.id, term: r.term, index: r.index };
          this.note(`liveness marker ${opId} proposed on ${leader.id} at ${r.index}`);
          this.afterActivity(leader);
        }
      }
    }
    if (this.markerCommitted !== undefined && leader !== undefined) {
      // Converged: every member of the leader's configuration applied the marker.
      const m = leader.raft.status().membership;
      const members = [...m.voters, ...m.nonVoters].map((p) => this.byId.get(p.id) as SimNode);
      if (members.every((x) => x.alive && x.sm.applied >= (this.markerCommitted as { index: number }).index)) {
        this.converged = true;
        this.note('converged');
        return;
      }
    }
    this.at(this.now + 20, () => this.livenessStep());
  }

  // ------------------------------------------------------------ workload

  private scheduleClient(client: number): void {
    if (!this.workloadOpen) return;
    this.at(this.now + this.rng.nextInt(20), () => this.clientStep(client));
  }

  private clientStep(client: number): void {
    if (!this.workloadOpen) return;
    const leader = this.clientTarget(client);
    if (leader === undefined) {
      this.at(this.now + 20, () => this.clientStep(client));
      return;
    }
    const key = KEYS[this.rng.nextInt(KEYS.length)] as string;
    const opId = `o${this.nextOp++}`;
    if (this.rng.chance(0.5)) {
      const value = this.nextValue++;
      const r = leader.raft.propose(encoder.encode(`w|${opId}|${key}|${value}`));
      if (!r.ok) {
        this.at(this.now + 10, () => this.clientStep(client));
        return;
      }
      const w: PendingWrite = { client, opId, key, value, invoke: this.now, node: leader.id, incarnation: leader.incarnation, index: r.index };
      this.pendingWrites.set(opId, w);
      this.at(this.now + CLIENT_TIMEOUT_MS, () => {
        if (this.pendingWrites.get(opId) !== w) return;
        // Outcome unknown: it may take effect at any later point, or never.
        this.pendingWrites.delete(opId);
        this.record(key, { kind: 'write', value, invoke: w.invoke, complete: Infinity, label: `c${client} ${opId}?` });
        this.scheduleClient(client);
      });
    } else {
      const r = leader.raft.readIndex(opId);
      if (!r.ok) {
        this.at(this.now + 10, () => this.clientStep(client));
        return;
      }
      const pr: PendingRead = { client, reqId: opId, key, invoke: this.now, node: leader.id, incarnation: leader.incarnation };
      this.pendingReads.set(opId, pr);
      this.at(this.now + CLIENT_TIMEOUT_MS, () => {
        if (this.pendingReads.get(opId) !== pr) return;
        this.pendingReads.delete(opId);
        this.scheduleClient(client);
      });
    }
    this.afterActivity(leader);
  }

  /** The client's cached leader if it still claims to lead (it may be deposed), else any claimant. */
  private clientTarget(client: number): SimNode | undefined {
    const cached = this.byId.get(this.clientLeader.get(client) ?? '');
    if (cached !== undefined && cached.alive && cached.raft.currentRole === 'leader' && this.rng.chance(0.8)) return cached;
    const claimants = this.nodes.filter((n) => n.alive && n.raft.currentRole === 'leader');
    const pick = claimants[this.rng.nextInt(Math.max(1, claimants.length))];
    if (pick !== undefined) this.clientLeader.set(client, pick.id);
    return pick;
  }

  private completeRead(n: SimNode, reqId: string, index: number): void {
    const pr = this.pendingReads.get(reqId);
    if (pr === undefined || pr.node !== n.id || pr.incarnation !== n.incarnation) return;
    if (n.sm.applied < index) this.fail(`read ${reqId} released at applied ${n.sm.applied} < read index ${index}`);
    this.pendingReads.delete(reqId);
    const value = n.sm.kv.get(pr.key) ?? null;
    this.record(pr.key, { kind: 'read', value, invoke: pr.invoke, complete: this.now, label: `c${pr.client} ${reqId}@${n.id}` });
    this.scheduleClient(pr.client);
  }

  private record(key: string, op: RegisterOp): void {
    let h = this.history.get(key);
    if (h === undefined) {
      h = [];
      this.history.set(key, h);
    }
    h.push(op);
  }

  private checkHistory(): void {
    // Writes still pending at the end have unknown outcomes.
    for (const w of this.pendingWrites.values()) {
      this.record(w.key, { kind: 'write', value: w.value, invoke: w.invoke, complete: Infinity, label: `c${w.client} ${w.opId}?` });
    }
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
      return `snapshot-notify t${m.term} first=${m.firstTerm}:${m.firstIndex}`;
    case 'snapshot-status':
      return `snapshot-status t${m.term} ${m.status} ${m.snapshotTerm}:${m.index}`;
  }
}

/** Runs one seed; throws SimulationFailure (with seed and trace) on any violation. */
export function runSeed(seed: number, nodes: number, options: Partial<SimOptions> = {}): SimResult {
  return new Simulation({ seed, nodes, leaseRead: seed % 4 === 3, ...options }).run();
}
