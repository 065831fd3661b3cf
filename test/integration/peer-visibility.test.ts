// A stopped peer used to be invisible: the leader logged nothing, follower_lag stayed 0 and
// GetScmRoles under load called live members UNREACHABLE. On a real 3-node cluster: stop a
// follower; the leader's /status, GetScmRoles, metrics and log all say it is unreachable once an
// election timeout passes without contact, and say so again when it comes back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TestCluster } from './harness.js';

interface PeerView {
  id: string;
  reachable: boolean | null;
  lastContactSeconds: number | null;
}

async function statusOf(cluster: TestCluster, k: number): Promise<{ role: string; peers: PeerView[] }> {
  return (await (await fetch(`http://127.0.0.1:${cluster.node(k).ports.http}/status`)).json()) as { role: string; peers: PeerView[] };
}

test('a stopped follower shows as unreachable in /status, GetScmRoles, metrics and the log, and as back when it returns', { timeout: 180_000 }, async () => {
  const cluster = await TestCluster.create(3);
  try {
    await cluster.bootstrapAll();
    const leader = await cluster.leaderIndex();
    const follower = leader === 1 ? 2 : 1;
    const followerId = `scm${follower}`;
    const admin = cluster.client([cluster.clientAddress(leader)], 10_000);

    // Healthy: every peer reachable, contact recent, roles all answered.
    await cluster.waitFor('the leader to hear from every follower', 20_000, async () => {
      const s = await statusOf(cluster, leader);
      return s.peers.filter((p) => p.id !== `scm${leader}`).every((p) => p.reachable === true && (p.lastContactSeconds ?? 99) < 1);
    });
    assert.ok((await admin.getScmRoles()).every((r) => r.role !== 'UNREACHABLE'));

    await cluster.kill(follower, 'SIGKILL');
    await cluster.waitFor(`${followerId} to show as unreachable on the leader`, 20_000, async () => {
      const s = await statusOf(cluster, leader);
      return s.peers.find((p) => p.id === followerId)?.reachable === false;
    });
    const silent = (await statusOf(cluster, leader)).peers.find((p) => p.id === followerId)?.lastContactSeconds ?? 0;
    assert.ok(silent >= 1, `last contact ${silent} s ago`);
    const roles = await admin.getScmRoles();
    assert.equal(roles.find((r) => r.nodeId === followerId)?.role, 'UNREACHABLE');
    assert.ok(roles.filter((r) => r.nodeId !== followerId).every((r) => r.role !== 'UNREACHABLE'), JSON.stringify(roles));
    await cluster.waitFor('the last-contact gauge to grow', 10_000, async () => {
      const text = await (await fetch(`http://127.0.0.1:${cluster.node(leader).ports.http}/prom`)).text();
      const line = text.split('\n').find((l) => l.startsWith(`scm_raft_peer_last_contact_seconds{peer="${followerId}"`));
      return line !== undefined && Number(line.split(' ').pop()) >= 1;
    });
    await cluster.waitFor('the leader to log the peer as unreachable', 10_000, () =>
      Promise.resolve(cluster.output(leader).split('\n').some((l) => l.includes('"event":"peer_unreachable"') && l.includes(`"peer":"${followerId}"`))),
    );

    cluster.start(follower);
    await cluster.waitFor(`${followerId} to be reachable again`, 60_000, async () => {
      const s = await statusOf(cluster, leader);
      return s.peers.find((p) => p.id === followerId)?.reachable === true;
    });
    await cluster.waitFor('the leader to log the peer as back', 10_000, () =>
      Promise.resolve(cluster.output(leader).split('\n').some((l) => l.includes('"event":"peer_reachable"') && l.includes(`"peer":"${followerId}"`))),
    );
  } catch (err) {
    (err as Error).message += `\n${cluster.tails(25)}`;
    throw err;
  } finally {
    await cluster.destroy();
  }
});
