// A joining SCM whose add was cut before it committed must not be stranded. The leader appends
// AddNonVoter(scm4), only scm4 receives the entry, and the leader dies; the new leader's log has no
// such entry, so it never contacts scm4 and nothing cuts the entry from scm4's log. scm4 is in its
// latest configuration but not in its committed one: it must go on asking (self-membership.ts says
// `joining`), and its AddScm at the new leader (AdminOperations, as the node runs it) appends a
// configuration with it, which reaches scm4, replaces the stale entry and commits.
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import assert from 'node:assert/strict';
import type { Message } from '../../src/raft/index.js';
import { isMember } from '../../src/raft/index.js';
import { TestCluster, membership, peer, type TestNode } from '../raft/cluster.js';
import { judgeSelfMembership, type SelfMembership } from '../../src/server/self-membership.js';
import { AdminOperations } from '../../src/server/admin-operations.js';
import type { RaftDriver } from '../../src/server/raft-driver.js';
import type { PeerCalls } from '../../src/server/peer-calls.js';
import type { ScmConfig, ScmPeerConfig } from '../../src/server/config.js';
import type { ScmMember } from '../../src/api/scm-api.js';
import { NotLeaderError } from '../../src/errors.js';

const ids = ['scm1', 'scm2', 'scm3', 'scm4'];
const peerConfig = (id: string): ScmPeerConfig => ({ nodeId: id, ratisAddress: `${id}:9894`, clientAddress: `${id}:9860` }) as ScmPeerConfig;
const config = { peers: ids.map(peerConfig), raft: { requestTimeoutMs: 5_000 } } as unknown as ScmConfig;

/** What a node with no configuration files holds: only its core (no scm.db configuration, no record). */
function verdict(n: TestNode): SelfMembership {
  return judgeSelfMembership({
    selfId: n.id,
    current: n.raft.status().membership,
    committed: n.raft.committedMembership(),
    applied: undefined,
    removal: undefined,
    savedConf: undefined,
    termAt: (i) => n.raft.logTerm(i),
  });
}

/** The parts of RaftDriver AdminOperations.addScm uses, over a TestCluster node. */
function driverOf(c: TestCluster, n: TestNode): RaftDriver {
  return {
    core: n.raft,
    isLeader: () => n.raft.currentRole === 'leader',
    notLeaderError: () => new NotLeaderError(),
    kick: () => undefined,
    waitApplied: (index: number, term: number) => {
      for (let k = 0; k < 50 && !n.applied.some((e) => e.index === index); k++) c.tickAll(1);
      const entry = n.applied.find((e) => e.index === index);
      return entry !== undefined && entry.term === term ? Promise.resolve() : Promise.reject(new NotLeaderError());
    },
  } as unknown as RaftDriver;
}

const silentLog = { info: () => undefined };

for (const addReachedNewLeader of [false, true]) {
  const name = addReachedNewLeader
    ? 'the add reached the new leader too, which commits it'
    : 'the new leader never had the add: asked again, it adds scm4 anew, cutting the stale entry';
  test(`a joiner whose leader died before committing its add goes on asking: ${name}`, async () => {
    const c = new TestCluster(['scm1', 'scm2', 'scm3']);
    c.elect('scm1');
    c.propose('scm1', 'a');
    const joiner = c.addNode('scm4', membership([]));
    const admins = new Map<string, AdminOperations>();
    const asked: { leader: string; appended: boolean }[] = [];
    // AddScm over the wire: the live leader answers it (PeerCalls follows NOT_LEADER hints).
    const peers = {
      addMember: async (_addresses: readonly string[], member: ScmMember): Promise<void> => {
        const leader = c.leader();
        if (leader === undefined || leader.id === 'scm4') throw new Error('no leader reachable');
        const before = leader.raft.lastIndex;
        await (admins.get(leader.id) as AdminOperations).addScm(member);
        asked.push({ leader: leader.id, appended: leader.log.entries(before + 1, leader.raft.lastIndex + 1, Infinity).some((e) => e.payload.kind === 'config') });
      },
    } as unknown as PeerCalls;
    for (const id of ids) {
      admins.set(
        id,
        new AdminOperations({
          driver: () => driverOf(c, c.node(id)),
          config,
          self: peerConfig(id),
          log: silentLog,
          peers,
          stillJoining: () => verdict(c.node(id)).kind === 'joining',
        }),
      );
    }

    // scm1 appends the add; scm4 (and, in one case, scm2, whose answer is lost) receive it, then
    // scm1 dies before committing it.
    const cutOff = addReachedNewLeader ? ['scm3'] : ['scm2', 'scm3'];
    c.filter = (m: Message) => !(m.from === 'scm1' && cutOff.includes(m.to)) && !(m.from === 'scm2' && m.to === 'scm1');
    assert.ok(c.node('scm1').raft.addNonVoter(peer('scm4'), true).ok);
    c.stabilize();
    assert.ok(isMember(joiner.raft.status().membership, 'scm4'), 'the uncommitted add reached scm4');
    assert.ok(!isMember(joiner.raft.committedMembership().membership, 'scm4'));
    assert.equal(verdict(joiner).kind, 'joining', 'an add in the log that has not committed may be cut: still joining');
    c.nodes.delete('scm1');
    c.filter = () => true;
    c.queue = [];
    for (let k = 0; k < 100 && c.leader() === undefined; k++) c.tickAll(1);
    const leader = c.leader();
    assert.ok(leader !== undefined && leader.id !== 'scm4');
    assert.equal(isMember(leader.raft.status().membership, 'scm4'), addReachedNewLeader);
    if (!addReachedNewLeader) {
      // Without asking, scm4 is stranded: the new leader never sends it anything.
      let toScm4 = 0;
      c.filter = (m) => (m.to === 'scm4' ? (toScm4++, true) : true);
      c.propose(leader.id, 'b');
      c.tickAll(30);
      c.filter = () => true;
      assert.equal(toScm4, 0);
      assert.equal(verdict(joiner).kind, 'joining', 'so it must still be asking');
    }

    // The node's join loop, as scm-node.ts starts it for a joining node.
    const joinLoop = admins.get('scm4') as AdminOperations;
    joinLoop.startJoining();
    for (let k = 0; k < 200 && verdict(joiner).kind === 'joining'; k++) {
      await sleep(20);
      c.tickAll(1);
    }
    joinLoop.stop();

    if (addReachedNewLeader) {
      // The new leader commits the add with the first entry of its term and brings scm4 up to
      // date; an AddScm it answers meanwhile appends nothing.
      assert.ok(asked.every((a) => a.leader === leader.id && !a.appended), JSON.stringify(asked));
    } else {
      assert.ok(asked.length > 0 && asked.every((a) => a.leader === leader.id), `scm4 asked the new leader: ${JSON.stringify(asked)}`);
      assert.ok(asked[0]?.appended, 'the new leader appended a configuration with scm4');
    }
    assert.equal(verdict(joiner).kind, 'member');
    assert.ok(isMember(joiner.raft.committedMembership().membership, 'scm4'), 'scm4 knows a committed configuration with itself');
    assert.ok(isMember(leader.raft.committedMembership().membership, 'scm4'), 'the leader committed the add');
    const at = joiner.raft.committedMembership().index;
    assert.equal(joiner.raft.logTerm(at), leader.raft.logTerm(at), 'scm4 holds the leader’s entry, not the stale one');
  });
}
