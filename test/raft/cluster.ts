// A synchronous in-memory cluster for unit tests: every Ready is persisted at once, messages sit in
// a queue until delivered (so tests control exactly what arrives), and filters can drop traffic.
import {
  MemoryLog,
  RaftNode,
  SeededRandom,
  type LogEntry,
  type Membership,
  type Message,
  type RaftConfig,
  type RaftPeer,
  type Ready,
  type ReadState,
} from '../../src/raft/index.js';

export function peer(id: string): RaftPeer {
  return { id, address: `${id}:9894`, priority: 0 };
}

export function membership(voters: string[], nonVoters: string[] = []): Membership {
  return { voters: voters.map(peer), nonVoters: nonVoters.map(peer) };
}

export interface TestNode {
  readonly id: string;
  raft: RaftNode;
  log: MemoryLog;
  applied: LogEntry[];
  readStates: ReadState[];
  dropped: string[];
  snapshotNotices: NonNullable<Ready['snapshotNotice']>[];
}

export type ConfigOverrides = Partial<Omit<RaftConfig, 'id' | 'random'>>;

export function makeConfig(id: string, seed: number, overrides: ConfigOverrides = {}): RaftConfig {
  return {
    id,
    electionTicks: 10,
    heartbeatTicks: 1,
    preVote: true,
    checkQuorum: true,
    leaseRead: false,
    maxInflightMsgs: 64,
    maxInflightBytes: 1 << 20,
    maxBytesPerMsg: 64 * 1024,
    random: new SeededRandom(seed),
    ...overrides,
  };
}

export class TestCluster {
  readonly nodes = new Map<string, TestNode>();
  queue: Message[] = [];
  /** Returns false to drop a message. */
  filter: (m: Message) => boolean = () => true;

  constructor(ids: string[], overrides: ConfigOverrides = {}, initial: Membership = membership(ids)) {
    ids.forEach((id, k) => this.addNode(id, initial, overrides, k + 1));
  }

  addNode(id: string, initial: Membership, overrides: ConfigOverrides = {}, seed = 99): TestNode {
    const log = new MemoryLog();
    const raft = new RaftNode(makeConfig(id, seed, overrides), log, {
      hardState: { term: 0, votedFor: '' },
      membership: initial,
      membershipIndex: 0,
      applied: 0,
    });
    const node: TestNode = { id, raft, log, applied: [], readStates: [], dropped: [], snapshotNotices: [] };
    this.nodes.set(id, node);
    return node;
  }

  node(id: string): TestNode {
    const n = this.nodes.get(id);
    if (n === undefined) throw new Error(`no node ${id}`);
    return n;
  }

  /** Handles every pending Ready of every node (persist, queue messages, apply). */
  processReadies(): void {
    let again = true;
    while (again) {
      again = false;
      for (const n of this.nodes.values()) {
        const rd = n.raft.ready();
        if (rd === null) continue;
        again = true;
        n.log.append(rd.entries);
        this.queue.push(...rd.messages, ...rd.messagesAfterPersist);
        n.applied.push(...rd.committedEntries);
        n.readStates.push(...rd.readStates);
        n.dropped.push(...rd.droppedReads);
        if (rd.snapshotNotice !== undefined) n.snapshotNotices.push(rd.snapshotNotice);
        n.raft.advance();
      }
    }
  }

  /** Delivers queued messages (and the ones they cause) until the network is quiet. */
  stabilize(maxSteps = 100_000): void {
    this.processReadies();
    let steps = 0;
    while (this.queue.length > 0) {
      if (++steps > maxSteps) throw new Error('cluster did not stabilize');
      const m = this.queue.shift() as Message;
      const target = this.nodes.get(m.to);
      if (target !== undefined && this.filter(m)) target.raft.step(m);
      this.processReadies();
    }
  }

  /**
   * What the driver does shortly after a commit: every leader sends the commit index to followers
   * that have not been sent it (a commit advance alone does not leave at once; see
   * commit-forward.test.ts). Then delivers everything.
   */
  forwardCommit(): void {
    for (const n of this.nodes.values()) n.raft.forwardCommit();
    this.stabilize();
  }

  tick(id: string, n = 1): void {
    for (let k = 0; k < n; k++) this.node(id).raft.tick();
    this.processReadies();
  }

  tickAll(n = 1): void {
    for (let k = 0; k < n; k++) {
      for (const node of this.nodes.values()) node.raft.tick();
      this.stabilize();
    }
  }

  /** Makes `id` leader: time it out alone, then let the election run. */
  elect(id: string): void {
    const n = this.node(id);
    for (let k = 0; k < 100 && n.raft.status().role !== 'leader'; k++) {
      n.raft.tick();
      this.stabilize();
    }
    if (n.raft.status().role !== 'leader') throw new Error(`${id} did not become leader`);
  }

  leader(): TestNode | undefined {
    return [...this.nodes.values()].find((n) => n.raft.status().role === 'leader');
  }

  /** `id` purges its log up to `index` (applied), keeping the term there, as a node does after a snapshot. */
  compact(id: string, index: number): void {
    const n = this.node(id);
    n.log.compact(index);
    n.raft.compacted(index, n.log.term(index) as number);
  }

  propose(id: string, text: string): number {
    const r = this.node(id).raft.propose(new TextEncoder().encode(text));
    if (!r.ok) throw new Error(`propose on ${id} failed: ${r.error}`);
    this.stabilize();
    return r.index;
  }
}

/**
 * Leader a of {a, b, c} wrote ten entries while c was cut off, then compacted its log below 9; c is
 * back and has been told to install a checkpoint.
 */
export function followerBehindLeaderCompaction(): { c: TestCluster; a: TestNode } {
  const c = new TestCluster(['a', 'b', 'c']);
  c.elect('a');
  c.filter = (m) => m.to !== 'c' && m.from !== 'c';
  for (let i = 0; i < 10; i++) c.propose('a', `v${i}`);
  const a = c.node('a');
  c.compact('a', 8);
  c.filter = () => true;
  c.tickAll(2);
  return { c, a };
}

export function dataTexts(entries: readonly LogEntry[]): string[] {
  const out: string[] = [];
  for (const e of entries) if (e.payload.kind === 'data') out.push(new TextDecoder().decode(e.payload.data));
  return out;
}
