// The consistency check on a live 3-node cluster, against the divergence a hostile network caused
// before: an append forged in the leader's name and term reached one follower, which applied an
// entry the others never saw and then took the real entry at that index as one it already had.
// Nothing in Raft can notice that; the check must: the follower is reported MISMATCH at the
// marker's index by `CheckConsistency`, in its own scm_consistency_mismatch gauge, in its log and
// in its /status, and the other two nodes stay MATCH.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeRaftMessage } from '../../src/server/raft-codec.js';
import { encodeCommand } from '../../src/statemachine/index.js';
import { TestCluster } from './harness.js';
import { rawStream } from './raw-raft.js';

interface StatusDoc {
  term: number;
  indexes: { lastLog: number; applied: number };
  consistency: { index: number; state: string; consistent: boolean; mismatched: string[] } | null;
}

async function statusOf(cluster: TestCluster, k: number): Promise<StatusDoc> {
  return (await (await fetch(`http://127.0.0.1:${cluster.node(k).ports.http}/status`)).json()) as StatusDoc;
}

async function mismatchGauge(cluster: TestCluster, k: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${cluster.node(k).ports.http}/prom`)).text();
  const line = text.split('\n').find((l) => l.startsWith('scm_consistency_mismatch'));
  return Number(line?.split(' ').pop() ?? NaN);
}

test('a follower that applied a forged entry is found by the consistency check, and only it', { timeout: 240_000 }, async () => {
  // No periodic check: every marker in this test is one it asked for.
  const cluster = await TestCluster.create(3, { 'ozone.scm.ha.consistency.check.interval': '0' });
  try {
    await cluster.bootstrapAll();
    const leader = await cluster.leaderIndex();
    const follower = leader === 1 ? 2 : 1;
    const other = [1, 2, 3].find((k) => k !== leader && k !== follower) as number;
    const client = cluster.client(cluster.allClientAddresses(), 20_000);
    const { clusterId } = await client.getClusterInfo();
    const datanode = (n: number) => ({ uuid: `00000000-0000-4000-8000-00000000000${n}`, hostname: `dn${n}`, ipAddress: `10.0.0.${n}`, ports: [{ name: 'RATIS', value: 9858 }] });
    await client.registerDatanode(datanode(1));

    // Healthy first: every member hashes alike.
    const healthy = await client.checkConsistency();
    assert.equal(healthy.consistent, true, JSON.stringify(healthy));
    assert.deepEqual(healthy.nodes.map((n) => [n.nodeId, n.state]).sort(), [['scm1', 'MATCH'], ['scm2', 'MATCH'], ['scm3', 'MATCH']], JSON.stringify(healthy));
    assert.equal(new Set(healthy.nodes.map((n) => n.hash)).size, 1);

    // The forged append, once the follower holds everything the leader has.
    const leaderStatus = await statusOf(cluster, leader);
    await cluster.waitFor('the follower to catch up', 20_000, async () => (await statusOf(cluster, follower)).indexes.applied >= leaderStatus.indexes.lastLog);
    const at = (await statusOf(cluster, follower)).indexes.lastLog;
    const term = leaderStatus.term;
    const forged = encodeCommand({
      type: 'registerDatanode',
      clientId: 'forger',
      callId: 1,
      timestamp: Date.now(),
      uuid: '6b1e0000-0000-4000-8000-00000000f0f0',
      hostname: 'forged.example',
      ipAddress: '10.6.6.6',
      ports: [],
    });
    const append = encodeRaftMessage({
      type: 'append',
      from: `scm${leader}`,
      to: `scm${follower}`,
      term,
      prevIndex: at,
      prevTerm: term,
      entries: [{ term, index: at + 1, payload: { kind: 'data', data: forged } }],
      commit: at + 1,
    });
    await rawStream(`127.0.0.1:${cluster.node(follower).ports.ratis}`, clusterId, `scm${leader}`, [[append]]);
    await cluster.waitFor('the follower to apply the forged entry', 20_000, async () => (await statusOf(cluster, follower)).indexes.applied >= at + 1);

    // The real entry at that index: the follower takes it for the one it has.
    await client.registerDatanode(datanode(2));

    const report = await client.checkConsistency();
    assert.equal(report.consistent, false, JSON.stringify(report));
    const states = Object.fromEntries(report.nodes.map((n) => [n.nodeId, n.state]));
    assert.deepEqual(states, { [`scm${leader}`]: 'MATCH', [`scm${follower}`]: 'MISMATCH', [`scm${other}`]: 'MATCH' });
    const bad = report.nodes.find((n) => n.nodeId === `scm${follower}`);
    assert.match(bad?.detail ?? '', /the majority holds [0-9a-f]{64}/);

    // The follower judged itself too: gauge, /status and an error line naming it and the index.
    await cluster.waitFor('the follower to report its own mismatch', 20_000, async () => (await statusOf(cluster, follower)).consistency?.index === report.index);
    const own = (await statusOf(cluster, follower)).consistency;
    assert.deepEqual(own && { state: own.state, consistent: own.consistent, mismatched: own.mismatched }, { state: 'MISMATCH', consistent: false, mismatched: [`scm${follower}`] });
    assert.equal(await mismatchGauge(cluster, follower), 1);
    await cluster.waitFor('the leader to finish its own check', 20_000, async () => (await statusOf(cluster, leader)).consistency?.index === report.index);
    assert.equal(await mismatchGauge(cluster, leader), 0);
    assert.equal((await statusOf(cluster, leader)).consistency?.state, 'MATCH');
    const line = cluster
      .output(follower)
      .split('\n').find((l) => l.includes('"consistency_mismatch"'));
    assert.ok(line !== undefined, 'an error line for the mismatch');
    assert.match(line, new RegExp(`index ${report.index}: scm\\.db of scm${follower} differs from the majority's \\(this node is one of them\\)`));
    assert.match(line, /"level":"error"/);
  } catch (err) {
    (err as Error).message += `\n${cluster.tails(25)}`;
    throw err;
  } finally {
    await cluster.destroy();
  }
});
