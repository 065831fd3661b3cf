// Real processes: SCMs an administrator removed do not put themselves back into the group, neither
// while they run nor when restarted on their old data; both the removed follower (the leader tells
// it) and the removed leader learn it, say so (log, /status, /readyz, scm_raft_removed), do not
// campaign and refuse client calls; an administrator's AddScm still brings one back. A bootstrapped
// SCM restarted in the middle of joining still joins.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { ScmClient } from '../../src/client/scm-client.js';
import { initNode } from '../../src/server/node-setup.js';
import { bootstrapFromRunningScms } from '../../src/cli/bootstrap.js';
import { TestCluster, withCluster } from './harness.js';


async function registerDatanodes(client: ScmClient, from: number, count: number): Promise<void> {
  for (let i = from; i < from + count; i++) {
    await client.registerDatanode({ uuid: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`, hostname: `dn${i}`, ipAddress: `10.0.${i >> 8}.${i & 255}`, ports: [{ name: 'RATIS', value: 9858 }] });
  }
}

interface StatusJson {
  readonly nodeId: string;
  readonly role: string;
  readonly removedFromGroup: { readonly index: number } | null;
}

async function statusOf(cluster: TestCluster, k: number): Promise<StatusJson> {
  return JSON.parse(await cluster.httpGet(k, '/status')) as StatusJson;
}

/** Fails as soon as one of `nodeIds` is a member in the eyes of the group's other SCMs, during `ms`. */
async function staysOut(members: ScmClient, nodeIds: string[], ms: number, when: string): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const ids = (await members.getClusterInfo()).members.map((m) => m.nodeId);
    for (const nodeId of nodeIds) assert.ok(!ids.includes(nodeId), `${nodeId} is a member again ${when}, without an administrator: ${ids.join(', ')}`);
    await sleep(250);
  }
}

const JOIN_INTERVAL_MS = 1_000; // how often a joining node asks the leader to add it (admin-operations.ts)

test('SCMs removed from the group stay out, running and restarted on their old data; the removed follower and the removed leader both know and say so; an administrator adds one back', { timeout: 120_000 }, async () => {
  await withCluster(4, async (cluster) => {
    await cluster.bootstrapAll();
    const admin = cluster.client(cluster.allClientAddresses(), 30_000);
    await registerDatanodes(admin, 1, 5);

    // A follower is removed first, then the leader. The leader applies the configuration without
    // itself; the follower applies it because the leader goes on sending it appends and heartbeats
    // until it has acknowledged the commit of its removal (README, "Removing an SCM").
    const removed = await cluster.leaderIndex();
    const follower = [1, 2, 3, 4].find((k) => k !== removed) as number;
    const removedId = `scm${removed}`;
    const followerId = `scm${follower}`;
    const rest = [1, 2, 3, 4].filter((k) => k !== removed && k !== follower);
    const members = cluster.client(rest.map((k) => cluster.clientAddress(k)), 30_000);
    await admin.removeScm(followerId);
    const after = await admin.removeScm(removedId);
    assert.deepEqual(after.map((m) => m.nodeId).sort(), rest.map((k) => `scm${k}`));
    await registerDatanodes(members, 6, 3);

    // Running: nothing puts them back, and both know.
    await staysOut(members, [removedId, followerId], 3 * JOIN_INTERVAL_MS, 'while they run');
    const whileRunning = await statusOf(cluster, removed);
    await cluster.waitFor(`${followerId} to know it was removed`, 15_000, async () => (await statusOf(cluster, follower)).removedFromGroup !== null);
    const followerWhileRunning = await statusOf(cluster, follower);
    assert.equal(followerWhileRunning.role, 'LISTENER', `${followerId} does not campaign: ${JSON.stringify(followerWhileRunning)}`);
    assert.equal(await cluster.metric(follower, 'scm_raft_removed'), 1);
    assert.match(cluster.output(follower), /"event":"removed_from_group"/);

    // Restarted on their old data: they must not ask to be added again.
    for (const k of [removed, follower]) {
      assert.equal(await cluster.kill(k, 'SIGTERM'), 0);
      cluster.start(k);
      await cluster.waitFor(`scm${k} to serve /status again`, 30_000, async () => (await statusOf(cluster, k)).nodeId === `scm${k}`);
    }
    await staysOut(members, [removedId, followerId], 5 * JOIN_INTERVAL_MS, 'after a restart');

    // Both say what happened, where an operator looks.
    assert.ok(whileRunning.removedFromGroup !== null && whileRunning.removedFromGroup.index > 0, `/status while running: ${JSON.stringify(whileRunning)}`);
    const restarted = await statusOf(cluster, removed);
    assert.deepEqual(restarted.removedFromGroup, whileRunning.removedFromGroup, '/status after the restart names the same removal');
    assert.equal(await cluster.metric(removed, 'scm_raft_removed'), 1);
    const followerRestarted = await statusOf(cluster, follower);
    assert.deepEqual(followerRestarted.removedFromGroup, followerWhileRunning.removedFromGroup, `${followerId}'s /status after the restart names the same removal`);
    assert.ok((followerRestarted.removedFromGroup?.index ?? 0) < (whileRunning.removedFromGroup?.index ?? 0), 'the follower was removed first');
    assert.equal(followerRestarted.role, 'LISTENER');
    assert.equal(await cluster.metric(follower, 'scm_raft_removed'), 1);
    const readiness = await fetch(`http://127.0.0.1:${cluster.node(removed).ports.http}/readyz`);
    assert.equal(readiness.status, 503);
    assert.match(await readiness.text(), /removed from the group at index \d+/);
    const said = cluster.output(removed).match(/"msg":"[^"]*was removed from the group at index \d+[^"]*"/g) ?? [];
    assert.equal(said.length, 1, `one error line after the restart: ${said.join('\n')}`);
    assert.match(said[0] as string, /unless a later configuration adds it back, it will not ask to rejoin by itself/);
    // It serves no client, not even a stale read of what it held when it was removed.
    const direct = cluster.client([cluster.clientAddress(removed)], 2_000);
    await assert.rejects(direct.listContainers({ count: 10, consistency: 'STALE' }), /removed from the group at index \d+/);
    assert.equal(restarted.role, 'LISTENER', 'it does not campaign');

    // An administrator adds it back: it catches up on its old data and is promoted.
    const self = cluster.config(removed).peers.find((p) => p.nodeId === removedId);
    assert.ok(self !== undefined);
    await admin.addScm({ nodeId: removedId, address: self.ratisAddress, clientAddress: self.clientAddress });
    await cluster.waitFor(`${removedId} to be a voter again`, 60_000, async () => (await members.getScmRoles()).some((r) => r.nodeId === removedId && r.role === 'FOLLOWER'));
    await cluster.waitFor(`${removedId} to say it is a member again`, 15_000, async () => (await statusOf(cluster, removed)).removedFromGroup === null && (await cluster.metric(removed, 'scm_raft_removed')) === 0);
    assert.equal((await direct.listContainers({ count: 10, consistency: 'STALE' })).length, 0);
    assert.ok(!(await members.getClusterInfo()).members.some((m) => m.nodeId === followerId), `${followerId} stayed out`);
  });
});

test('a bootstrapped SCM restarted in the middle of joining still joins', { timeout: 120_000 }, async () => {
  await withCluster(3, async (cluster) => {
    await initNode(cluster.config(1));
    cluster.start(1);
    const admin = cluster.client([cluster.clientAddress(1), cluster.clientAddress(2)], 30_000);
    await cluster.waitFor('scm1 to lead', 60_000, async () => (await admin.getClusterInfo()).leaderId === 'scm1');
    await bootstrapFromRunningScms(cluster.config(2), 30_000);
    cluster.start(2);
    await cluster.waitFor('scm2 to be a voter', 60_000, async () => (await admin.getScmRoles()).filter((r) => r.role === 'FOLLOWER').length === 1);
    await registerDatanodes(admin, 1, 50);

    // scm3 joins with a disk that fills up at its second Raft log write: it stops holding the
    // entries of its first append (the group's history up to the entry that added it), before the
    // entry that promotes it is in its own log. Then it is started again on that data.
    await bootstrapFromRunningScms(cluster.config(3), 30_000);
    const joining = cluster.start(3, { SCM_FAILPOINTS: 'storage.write:enospc=2' });
    const giveUp = new AbortController();
    const code = await Promise.race([joining.exited, sleep(60_000, 'still running', { signal: giveUp.signal })]);
    giveUp.abort();
    assert.ok(code !== 'still running' && code !== 0, `scm3 stopped at its second log write (exit code ${String(code)})`);
    assert.match(cluster.output(3), /ENOSPC/);
    assert.match(cluster.output(3), /joined the SCM Raft group/);
    cluster.start(3);
    await cluster.waitForVoters(3, 60_000);
    // (`?? null`: this test also runs on code from before /status had the field.)
    assert.equal((await statusOf(cluster, 3)).removedFromGroup ?? null, null);
    assert.doesNotMatch(cluster.output(3), /removed from the group/);
  });
});
