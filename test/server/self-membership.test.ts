// Whether a starting SCM was removed from its group, has never been a member (a bootstrapped node,
// which asks to be added), or is a member: decided from what the node holds on disk, through the
// production start-up path (RaftStorage, the LevelDB state machine with its removal record,
// recoverRaftState, the core, SnapshotCatchUp's install) and selfMembershipAtStart, as `scm start`
// runs it. Each row builds a node's disk, restarts it, and says what it must conclude.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RaftNode, SeededRandom, type LogEntry, type RaftPeer } from '../../src/raft/index.js';
import { RaftStorage } from '../../src/storage/index.js';
import { ScmStateMachine } from '../../src/statemachine/index.js';
import { recoverRaftState } from '../../src/server/raft-boot.js';
import { SnapshotCatchUp, type FetchedCheckpoint } from '../../src/server/snapshot-catch-up.js';
import { selfMembershipAtStart, type SelfMembership } from '../../src/server/self-membership.js';

const peer = (id: string): RaftPeer => ({ id, address: `${id}:9894`, priority: 0 });
const config = (index: number, voters: string[], nonVoters: string[] = []): LogEntry => ({
  term: 1,
  index,
  payload: { kind: 'config', peers: voters.map(peer), listeners: nonVoters.map(peer) },
});
const data = (index: number): LogEntry => ({ term: 1, index, payload: { kind: 'data', data: new Uint8Array() } });

const G1 = ['scm1'];
const G2 = ['scm1', 'scm2'];
const G3 = ['scm1', 'scm2', 'scm3'];

/** One node's directories, opened as `scm start` opens them. */
class Disk {
  storage!: RaftStorage;
  sm!: ScmStateMachine;
  private checkpoints = 0;

  private constructor(
    readonly dir: string,
    readonly selfId: string,
  ) {}

  static async create(selfId: string): Promise<Disk> {
    const disk = new Disk(await mkdtemp(join(tmpdir(), 'self-membership-')), selfId);
    await disk.open();
    return disk;
  }

  private async open(): Promise<void> {
    this.storage = RaftStorage.open(join(this.dir, 'group'));
    this.sm = await ScmStateMachine.open(join(this.dir, 'scm.db'), { selfId: this.selfId });
  }

  async close(): Promise<void> {
    await this.sm.close();
    await this.storage.close();
  }

  /** Entries the leader sent: in the log, not known committed. */
  async logged(entries: LogEntry[]): Promise<void> {
    await this.storage.append(entries);
  }

  /**
   * Entries known committed: in the log and in raft-meta.conf (the driver writes the committed
   * configuration there); applied too unless `applied` is false (a crash between commit and apply).
   */
  async committed(entries: LogEntry[], applied = true): Promise<void> {
    await this.storage.append(entries);
    const last = entries.filter((e) => e.payload.kind === 'config').at(-1);
    if (last !== undefined) await this.storage.saveConf(last);
    if (applied) await this.sm.applyBatch(entries);
  }

  /** A leader's scm.db after `entries`, as the checkpoint it would serve. */
  private async checkpoint(entries: LogEntry[]): Promise<string> {
    const path = join(this.dir, `leader-${++this.checkpoints}.db`);
    const leader = await ScmStateMachine.open(path, { selfId: 'scm1' });
    await leader.applyBatch(entries);
    await leader.close();
    return path;
  }

  /** A snapshot install of the leader's state after `entries`, through SnapshotCatchUp as the driver runs it. */
  async installed(entries: LogEntry[]): Promise<void> {
    const path = await this.checkpoint(entries);
    const boot = await recoverRaftState(this.storage, this.sm, { where: 'group', warn: () => undefined });
    const raft = core(this.selfId, this.storage, boot.initial);
    const last = entries.at(-1) as LogEntry;
    raft.step({ type: 'snapshot-notify', from: 'scm1', to: this.selfId, term: 1, firstIndex: last.index, prevTerm: 1, noticeId: 1 });
    const rd = raft.ready();
    assert.ok(rd?.snapshotNotice !== undefined, 'the core asks for an install');
    await this.storage.saveMeta(1, '');
    raft.advance();
    const leader = await ScmStateMachine.open(path);
    const configuration = leader.configuration();
    const termIndex = leader.lastApplied();
    await leader.close();
    assert.ok(configuration !== undefined);
    const checkpoint: FetchedCheckpoint = {
      termIndex,
      configuration,
      bytes: 0,
      swap: () => this.swapIn(path, true),
      discard: () => Promise.resolve(),
    };
    await new SnapshotCatchUp({ core: raft, log: this.storage, sm: this.sm, source: { fetch: () => Promise.resolve(checkpoint) } }).install(checkpoint, rd.snapshotNotice);
  }

  /** The install's first step only, and then a crash: scm.db is the checkpoint, nothing reloaded it. */
  async installCrashedAfterSwap(entries: LogEntry[]): Promise<void> {
    await this.swapIn(await this.checkpoint(entries), false);
  }

  private async swapIn(checkpoint: string, reload: boolean): Promise<void> {
    await this.sm.close();
    await rm(this.sm.dbDir, { recursive: true, force: true });
    await cp(checkpoint, this.sm.dbDir, { recursive: true });
    if (reload) await this.sm.reload();
  }

  /** A restart: what the node concludes before its Raft loop runs. */
  async restart(): Promise<SelfMembership> {
    await this.close();
    await this.open();
    const boot = await recoverRaftState(this.storage, this.sm, { where: 'group', warn: () => undefined });
    return selfMembershipAtStart({ selfId: this.selfId, core: core(this.selfId, this.storage, boot.initial), sm: this.sm, savedConf: boot.savedConf });
  }

  /** What the driver does first: raft-meta.conf follows the committed configuration. */
  async confRewrittenToCommitted(): Promise<void> {
    const boot = await recoverRaftState(this.storage, this.sm, { where: 'group', warn: () => undefined });
    const committed = core(this.selfId, this.storage, boot.initial).committedMembership();
    await this.storage.saveConf({ term: 1, index: committed.index, payload: { kind: 'config', peers: committed.membership.voters, listeners: committed.membership.nonVoters } });
  }

  async destroy(): Promise<void> {
    await this.close();
    await rm(this.dir, { recursive: true, force: true });
  }
}

function core(id: string, storage: RaftStorage, initial: Awaited<ReturnType<typeof recoverRaftState>>['initial']): RaftNode {
  return new RaftNode(
    { id, electionTicks: 10, heartbeatTicks: 2, preVote: true, checkQuorum: true, leaseRead: false, maxInflightMsgs: 8, maxInflightBytes: 1 << 20, maxBytesPerMsg: 1 << 20, random: new SeededRandom(1) },
    storage,
    initial,
  );
}

interface Row {
  readonly name: string;
  readonly self: string;
  readonly build: (disk: Disk) => Promise<void>;
  readonly expect: SelfMembership['kind'];
  /** For `removed`: the index of the configuration it names. */
  readonly removedAt?: number;
}

const rows: Row[] = [
  // Never a member: a bootstrapped node asks to be added, whatever it has received so far.
  { name: 'bootstrapped, nothing received yet', self: 'scm4', build: () => Promise.resolve(), expect: 'joining' },
  {
    name: 'bootstrapped, caught up on configurations that never held it',
    self: 'scm4',
    build: (d) => d.committed([config(1, G1), config(2, G2), config(3, G3), data(4)]),
    expect: 'joining',
  },
  {
    name: 'bootstrapped, installed a checkpoint taken before it was added',
    self: 'scm4',
    build: (d) => d.installed([config(1, G3), data(2), data(3)]),
    expect: 'joining',
  },
  {
    name: 'removed earlier, wiped and bootstrapped again, installed a checkpoint taken before its re-add',
    self: 'scm3',
    build: (d) => d.installed([config(1, G3), config(2, G2), data(3)]),
    expect: 'joining',
  },
  // Joining and restarted mid-join: a member once it knows the entry adding it committed. Before
  // that the entry may still be cut (its leader died, and the next one never had it nor contacts
  // this node), so it goes on asking (join-cut-add.test.ts).
  {
    name: 'joining, restarted with the entry that adds it logged, not known committed',
    self: 'scm4',
    build: async (d) => {
      await d.committed([config(1, G3), data(2)]);
      await d.logged([config(3, G3, ['scm4'])]);
    },
    expect: 'joining',
  },
  {
    name: 'joining, restarted after the entry that adds it committed and applied',
    self: 'scm4',
    build: (d) => d.committed([config(1, G3), data(2), config(3, G3, ['scm4'])]),
    expect: 'member',
  },
  // Removed: a committed configuration without it followed one with it.
  {
    name: 'removed: applied the configuration without it',
    self: 'scm3',
    build: (d) => d.committed([config(1, G3), data(2), config(3, G2), data(4)]),
    expect: 'removed',
    removedAt: 3,
  },
  {
    name: 'removed as a non-voter, before its promotion',
    self: 'scm3',
    build: (d) => d.committed([config(1, G2), config(2, G2, ['scm3']), data(3), config(4, G2)]),
    expect: 'removed',
    removedAt: 4,
  },
  {
    name: 'removed: the removal committed (raft-meta.conf) but the node stopped before applying it',
    self: 'scm3',
    build: async (d) => {
      await d.committed([config(1, G3), data(2)]);
      await d.committed([config(3, G2)], false);
    },
    expect: 'removed',
    removedAt: 3,
  },
  {
    name: 'removed through a snapshot install: a checkpoint without it over a state with it',
    self: 'scm3',
    build: async (d) => {
      await d.committed([config(1, G3), data(2)]);
      await d.installed([config(1, G3), data(2), config(3, G2), data(4), data(5)]);
    },
    expect: 'removed',
    removedAt: 3,
  },
  {
    name: 'removed through an install that crashed after the swap, before anything recorded it',
    self: 'scm3',
    build: async (d) => {
      await d.committed([config(1, G3), data(2)]);
      await d.installCrashedAfterSwap([config(1, G3), data(2), config(3, G2), data(4), data(5)]);
    },
    expect: 'removed',
    removedAt: 3,
  },
  {
    name: 'removed, then installed a checkpoint taken before its re-add',
    self: 'scm3',
    build: async (d) => {
      await d.committed([config(1, G3), config(2, G2)]);
      await d.installed([config(1, G3), config(2, G2), data(3), data(4)]);
    },
    expect: 'removed',
    removedAt: 2,
  },
  // A removal not committed is not a removal; neither is one an administrator undid.
  {
    name: 'the removal is logged but not known committed',
    self: 'scm3',
    build: async (d) => {
      await d.committed([config(1, G3), data(2)]);
      await d.logged([config(3, G2)]);
    },
    expect: 'member',
  },
  {
    name: 'removed, then added back by an administrator (applied)',
    self: 'scm3',
    build: (d) => d.committed([config(1, G3), config(2, G2), data(3), config(4, G2, ['scm3'])]),
    expect: 'member',
  },
  {
    name: 'removed, and the re-add is logged, not known committed yet',
    self: 'scm3',
    build: async (d) => {
      await d.committed([config(1, G3), config(2, G2)]);
      await d.logged([data(3), config(4, G2, ['scm3'])]);
    },
    expect: 'member',
  },
  {
    name: 'removed, then installed a checkpoint that holds the re-add',
    self: 'scm3',
    build: async (d) => {
      await d.committed([config(1, G3), config(2, G2)]);
      await d.installed([config(1, G3), config(2, G2), data(3), config(4, G2, ['scm3']), data(5)]);
    },
    expect: 'member',
  },
];

for (const row of rows) {
  test(`start-up judges ${row.self}: ${row.name} → ${row.expect}`, async () => {
    const disk = await Disk.create(row.self);
    try {
      await row.build(disk);
      const first = await disk.restart();
      assert.equal(first.kind, row.expect);
      if (first.kind === 'removed') assert.equal(first.index, row.removedAt);
      // It stays so after the Raft loop rewrote raft-meta.conf and the node restarted again: the
      // evidence that showed it a member is gone by then, so it must have been recorded.
      await disk.confRewrittenToCommitted();
      const again = await disk.restart();
      assert.deepEqual(again, first);
    } finally {
      await disk.destroy();
    }
  });
}
