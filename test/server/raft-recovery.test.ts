// The server's Raft recovery paths on real storage (RaftStorage in a temp dir) and the real state
// machine (LevelDB): the snapshot catch-up's install (bug 1: a follower adopts exactly the
// configuration its checkpoint holds) and start-up without raft-meta.conf (bug 7). Each scenario
// also runs with its bug switched back on, where it must fail.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RaftNode, SeededRandom, type LogEntry, type RaftPeer } from '../../src/raft/index.js';
import { setMutant, type MutantName } from '../../src/raft/mutants.js';
import { RaftStorage } from '../../src/storage/index.js';
import { ScmStateMachine } from '../../src/statemachine/index.js';
import { recoverRaftState } from '../../src/server/raft-boot.js';
import { SnapshotCatchUp, type FetchedCheckpoint } from '../../src/server/snapshot-catch-up.js';

const peer = (id: string): RaftPeer => ({ id, address: `${id}:9894`, priority: 0 });
const config = (index: number, term: number, voters: string[]): LogEntry => ({ term, index, payload: { kind: 'config', peers: voters.map(peer), listeners: [] } });
const data = (index: number, term: number): LogEntry => ({ term, index, payload: { kind: 'data', data: new Uint8Array() } });

interface Node {
  readonly storage: RaftStorage;
  readonly sm: ScmStateMachine;
  readonly dir: string;
}

async function withNode<T>(body: (node: Node, reopen: () => Promise<Node>) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'raft-recovery-'));
  let node: Node | undefined;
  const open = async (): Promise<Node> => {
    if (node !== undefined) {
      await node.sm.close();
      await node.storage.close();
    }
    node = { dir, storage: RaftStorage.open(join(dir, 'group')), sm: await ScmStateMachine.open(join(dir, 'scm.db')) };
    return node;
  };
  try {
    return await body(await open(), open);
  } finally {
    if (node !== undefined) {
      await node.sm.close();
      await node.storage.close();
    }
    await rm(dir, { recursive: true, force: true });
  }
}

async function withBug<T>(bug: MutantName | undefined, body: () => Promise<T>): Promise<T> {
  setMutant(bug);
  try {
    return await body();
  } finally {
    setMutant(undefined);
  }
}

/** Runs `scenario` as the code is, then with `bug` back on, where it must fail. */
async function regression(bug: MutantName, scenario: () => Promise<void>): Promise<void> {
  await scenario();
  await assert.rejects(withBug(bug, scenario), `the scenario does not notice the ${bug} bug`);
}

function core(id: string, storage: RaftStorage, initial: Awaited<ReturnType<typeof recoverRaftState>>['initial']): RaftNode {
  return new RaftNode(
    { id, electionTicks: 10, heartbeatTicks: 2, preVote: true, checkQuorum: true, leaseRead: false, maxInflightMsgs: 8, maxInflightBytes: 1 << 20, maxBytesPerMsg: 1 << 20, random: new SeededRandom(1) },
    storage,
    initial,
  );
}

test('bug 1: an install adopts the checkpoint\'s configuration and writes it to raft-meta.conf', async () => {
  await regression('install-keeps-old-config', () =>
    withNode(async (follower) => {
      // The follower applied up to 3 in the group {a, b, c}; the leader purged up to 40 meanwhile,
      // removed b and added d. The leader's checkpoint (another scm.db) is at 50 and holds the
      // configuration of index 40.
      await follower.storage.saveConf(config(0, 0, ['a', 'b', 'c']));
      await follower.storage.append([config(1, 1, ['a', 'b', 'c']), data(2, 1), data(3, 1)]);
      await follower.sm.applyBatch([config(1, 1, ['a', 'b', 'c']), data(2, 1), data(3, 1)]);
      const boot = await recoverRaftState(follower.storage, follower.sm, { where: 'g', warn: () => undefined });
      const raft = core('b', follower.storage, boot.initial);
      raft.step({ type: 'snapshot-notify', from: 'a', to: 'b', term: 2, firstIndex: 41, prevTerm: 2, noticeId: 9 });
      const rd = raft.ready();
      assert.ok(rd?.snapshotNotice !== undefined);
      await follower.storage.saveMeta(rd.hardState?.term ?? 2, '');
      raft.advance();

      const leaderDb = await ScmStateMachine.open(join(follower.dir, 'leader.db'));
      const leaderLog = [config(1, 1, ['a', 'b', 'c'])];
      for (let i = 2; i <= 50; i++) leaderLog.push(i === 40 ? config(40, 2, ['a', 'c', 'd']) : data(i, i < 40 ? 1 : 2));
      await leaderDb.applyBatch(leaderLog);
      const leaderConfig = leaderDb.configuration();
      assert.ok(leaderConfig !== undefined);
      const point = leaderDb.lastApplied();
      await leaderDb.close();
      const checkpoint: FetchedCheckpoint = {
        termIndex: point,
        configuration: leaderConfig,
        bytes: 0,
        swap: async () => {
          // What the installer does, in short: the follower's scm.db becomes the leader's.
          await follower.sm.close();
          await rm(join(follower.dir, 'scm.db'), { recursive: true });
          const { rename } = await import('node:fs/promises');
          await rename(join(follower.dir, 'leader.db'), join(follower.dir, 'scm.db'));
          await follower.sm.reload();
        },
        discard: () => Promise.resolve(),
      };
      const catchUp = new SnapshotCatchUp({ core: raft, log: follower.storage, sm: follower.sm, source: { fetch: () => Promise.resolve(checkpoint) } });
      const installed = await catchUp.install(checkpoint, rd.snapshotNotice);
      assert.deepEqual(installed, point);
      const m = raft.status().membership;
      assert.deepEqual(m.voters.map((p) => p.id), ['a', 'c', 'd'], 'the voters the checkpoint holds');
      assert.equal(raft.committedMembership().index, leaderConfig.index);
      assert.equal(raft.currentRole, 'non-voter', 'b was removed: it must not campaign');
      const conf = follower.storage.readConf();
      assert.ok(conf !== undefined && conf.payload.kind === 'config');
      assert.deepEqual([conf.index, conf.payload.peers.map((p) => p.id)], [leaderConfig.index, ['a', 'c', 'd']]);
      assert.equal(follower.storage.firstIndex(), point.index + 1, 'the log, which did not hold the checkpoint\'s entry, was reset');
      const status = [...(raft.ready()?.messagesAfterPersist ?? [])].find((msg) => msg.type === 'snapshot-status');
      assert.ok(status !== undefined && status.type === 'snapshot-status');
      assert.deepEqual([status.status, status.index, status.configIndex, status.noticeId], ['installed', point.index, leaderConfig.index, 9]);
    }),
  );
});

test('an install that is not ahead of the state machine is refused and changes nothing', async () => {
  await withNode(async (node) => {
    await node.storage.append([config(1, 1, ['a', 'b']), data(2, 1), data(3, 1)]);
    await node.sm.applyBatch([config(1, 1, ['a', 'b']), data(2, 1), data(3, 1)]);
    const boot = await recoverRaftState(node.storage, node.sm, { where: 'g', warn: () => undefined });
    const raft = core('b', node.storage, boot.initial);
    let swapped = false;
    const stale: FetchedCheckpoint = {
      termIndex: { term: 1, index: 2 },
      configuration: { term: 1, index: 1, voters: [peer('a'), peer('b')], nonVoters: [] },
      bytes: 0,
      swap: () => {
        swapped = true;
        return Promise.resolve();
      },
      discard: () => Promise.resolve(),
    };
    const catchUp = new SnapshotCatchUp({ core: raft, log: node.storage, sm: node.sm, source: { fetch: () => Promise.resolve(stale) } });
    await assert.rejects(catchUp.install(stale, { leaderId: 'a', term: 1, noticeId: 1, firstIndex: 2 }), /not ahead of what is applied \(1#3\)/);
    assert.equal(swapped, false);
    assert.equal(node.storage.lastIndex(), 3);
  });
});

test('bug 7: a deleted raft-meta.conf is rebuilt from scm.db and the log, with a warning', async () => {
  await regression('missing-conf-is-empty', () =>
    withNode(async (first, reopen) => {
      // A voter of {a, b, c} that applied the configuration at 1 and purged the log past it.
      await first.storage.saveConf(config(1, 1, ['a', 'b', 'c']));
      const log = [config(1, 1, ['a', 'b', 'c']), ...Array.from({ length: 9 }, (_, k) => data(k + 2, 1))];
      await first.storage.append(log);
      await first.sm.applyBatch(log);
      await first.storage.reset(11, 1); // as a purge past every entry that held a configuration
      const { unlink } = await import('node:fs/promises');
      await unlink(join(first.dir, 'group', 'current', 'raft-meta.conf'));
      const node = await reopen();
      const warnings: string[] = [];
      const boot = await recoverRaftState(node.storage, node.sm, { where: 'g', warn: (message) => warnings.push(message) });
      assert.deepEqual(boot.initial.membership.voters.map((p) => p.id), ['a', 'b', 'c']);
      assert.equal(boot.configurationSource, 'scm.db');
      assert.equal(core('b', node.storage, boot.initial).currentRole, 'follower', 'a voter, not a non-voter');
      assert.match(warnings.join('\n'), /raft-meta\.conf is missing in g: rebuilt from the configuration scm\.db holds \(index 1\)/);
    }),
  );
});

test('a node that has run, with no configuration anywhere, refuses to start naming raft-meta.conf', async () => {
  await withNode(async (node) => {
    await node.storage.append([data(1, 1), data(2, 1)]);
    await assert.rejects(recoverRaftState(node.storage, node.sm, { where: '/data/ratis/g', warn: () => undefined }), /raft-meta\.conf is missing in \/data\/ratis\/g and neither scm\.db .* nor the log holds a configuration/);
  });
});

test('the primordial SCM without raft-meta.conf and without data refuses to start naming the file', async () => {
  await withNode(async (node) => {
    await assert.rejects(recoverRaftState(node.storage, node.sm, { where: 'g', primordial: true, warn: () => undefined }), /raft-meta\.conf is missing in g on the primordial SCM/);
  });
});

test('a fresh node that only ran scm bootstrap starts without a configuration (it waits to be added)', async () => {
  await withNode(async (node) => {
    const boot = await recoverRaftState(node.storage, node.sm, { where: 'g', warn: () => assert.fail('no warning expected') });
    assert.deepEqual(boot.initial.membership, { voters: [], nonVoters: [] });
    assert.equal(boot.configurationSource, 'none');
  });
});

test('raft-meta.conf written before scm.db applied its entry: the configuration is in force, committed at its own index', async () => {
  // The simulator found a node that restarted with raft-meta.conf at 49 and scm.db at 48: it used to
  // invent a configuration "at index 48" holding 49's voters.
  await withNode(async (node) => {
    const log = [config(1, 1, ['a', 'b']), data(2, 1), config(3, 1, ['a', 'b', 'c'])];
    await node.storage.append(log);
    await node.sm.applyBatch(log.slice(0, 2));
    await node.storage.saveConf(config(3, 1, ['a', 'b', 'c']));
    const boot = await recoverRaftState(node.storage, node.sm, { where: 'g', warn: () => undefined });
    assert.equal(boot.initial.commit, 3);
    const raft = core('c', node.storage, boot.initial);
    assert.deepEqual(raft.committedMembership().index, 3);
    assert.deepEqual(raft.status().membership.voters.map((p) => p.id), ['a', 'b', 'c']);
  });
});

test('raft-meta.conf beyond scm.db and no longer in the log is not believed', async () => {
  await withNode(async (node) => {
    await node.storage.append([config(1, 1, ['a', 'b']), data(2, 1)]);
    await node.sm.applyBatch([config(1, 1, ['a', 'b']), data(2, 1)]);
    await node.storage.saveConf(config(7, 2, ['a', 'b', 'c']));
    const warnings: string[] = [];
    const boot = await recoverRaftState(node.storage, node.sm, { where: 'g', warn: (m) => warnings.push(m) });
    assert.equal(boot.initial.membershipIndex, 1);
    assert.equal(boot.configurationSource, 'scm.db');
    assert.match(warnings.join('\n'), /names the configuration at index 7, beyond what scm\.db applied \(2\) and no longer in the log/);
  });
});
