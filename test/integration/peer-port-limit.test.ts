// Anyone who can reach a peer port used to be able to open connections to it without end: grpc-js
// gave each an HTTP/2 session, and idle ones took a leader to its file descriptor limit (which the
// Raft log needs) and 400 MB more RSS. On a real 3-node cluster with
// ozone.scm.peer.max.connections=32 (the least it takes; a quarter, 8, per address): connections
// flood the leader's Ratis and InterSCM ports from one address and from forty; the ones past an address's share or
// past the limit are closed as accepted, counted and logged once; the members' own connections
// (opened before) carry on, allocations go on being replicated to both followers. Then, while
// clients on addresses no member has (127.0.0.2 and up) hold every slot of both ports, a follower
// is restarted: its address is a member's, so the leader admits it past the limit (within its
// address's share) and it catches up. Once the flood ends a restarted follower connects again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { withCluster } from './harness.js';
import { allocate, openPipeline } from './workload.js';

const LIMIT = 32;
const SHARE = LIMIT / 4;

/** Opens a connection from `localAddress`; resolves to the socket once connected or closed. */
function open(port: number, localAddress: string): Promise<Socket> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, localAddress });
    socket.on('error', () => undefined);
    socket.resume();
    socket.once('connect', () => resolve(socket));
    socket.once('close', () => resolve(socket));
  });
}

test('a flood of connections to the leader\'s peer ports is bounded by ozone.scm.peer.max.connections; the group replicates on', { timeout: 240_000 }, async () => {
  await withCluster(
    3,
    async (cluster) => {
      await cluster.bootstrapAll();
      const client = cluster.client(cluster.allClientAddresses(), 30_000);
      await openPipeline(client, 'ONE');
      await allocate(client, 5, { factor: 'ONE' });
      const leader = await cluster.leaderIndex();
      const follower = leader === 1 ? 2 : 1;
      const ports = cluster.node(leader).ports;
      const metric = (name: string, labels: string): Promise<number> => cluster.metric(leader, `${name}{${labels}`);

      // One address: at most its share (the followers' own connections from 127.0.0.1 count too).
      const flood: Socket[] = [];
      for (const port of [ports.ratis, ports.grpc]) flood.push(...(await Promise.all(Array.from({ length: 40 }, () => open(port, '127.0.0.1')))));
      // Forty more addresses: the limit.
      for (const port of [ports.ratis, ports.grpc]) flood.push(...(await Promise.all(Array.from({ length: 40 }, (_, i) => open(port, `127.0.0.${10 + i}`)))));

      await cluster.waitFor('the refusals to be counted', 10_000, async () => (await metric('scm_peer_connection_refusals_total', 'port="ratis",reason="connection_limit"')) > 0);
      for (const port of ['ratis', 'grpc']) {
        const share = await metric('scm_peer_connection_refusals_total', `port="${port}",reason="address_share"`);
        const limit = await metric('scm_peer_connection_refusals_total', `port="${port}",reason="connection_limit"`);
        const openNow = await metric('scm_peer_connections', `port="${port}"`);
        assert.ok(share >= 40 - SHARE && share <= 40, `${port}: ${share} closed for their address's share (40 opened from 127.0.0.1, which may hold ${SHARE})`);
        assert.ok(limit >= 40 - (LIMIT - SHARE), `${port}: ${limit} closed at the limit`);
        assert.ok(openNow <= LIMIT, `${port}: ${openNow} open`);
      }
      const refusedLines = cluster
        .output(leader)
        .split('\n')
        .filter((l) => l.includes('"event":"peer_connection_refused"'));
      assert.equal(refusedLines.length, 4, `one line per port and reason while flooded:\n${refusedLines.join('\n')}`);
      assert.match(refusedLines.join('\n'), /ozone\.scm\.peer\.max\.connections \(32\)/);

      // The members' connections were open before: replication goes on, to both followers.
      await allocate(client, 20, { factor: 'ONE' });
      await cluster.waitFor('every member to apply the allocations made during the flood', 30_000, () => cluster.appliedAlike([1, 2, 3]));

      // A member restarted while addresses no member has hold every slot of the leader's peer
      // ports still gets in: only a client on the member's own address (the flood from 127.0.0.1
      // above, closed now) could keep it out. The flood is topped up after the follower's own
      // connections have closed, so that no slot is left free for it.
      const ownAddress = flood.splice(0, 80);
      for (const s of ownAddress) s.destroy();
      const topUp = async (from: number): Promise<void> => {
        for (const port of [ports.ratis, ports.grpc]) flood.push(...(await Promise.all(Array.from({ length: 40 }, (_, i) => open(port, `127.0.0.${from + i}`)))));
      };
      await topUp(60);
      assert.equal(await cluster.kill(follower, 'SIGTERM'), 0);
      await allocate(client, 5, { factor: 'ONE' });
      await topUp(100);
      for (const port of ['ratis', 'grpc']) {
        const openNow = await metric('scm_peer_connections', `port="${port}"`);
        assert.ok(openNow >= LIMIT, `${port}: ${openNow} open, the limit full before the restart`);
      }
      const refused = (): Promise<number> => metric('scm_peer_connection_refusals_total', 'port="ratis",reason="connection_limit"');
      const refusedBefore = await refused();
      flood.push(await open(ports.ratis, '127.0.0.250'));
      await cluster.waitFor('a non-member to be refused at the limit', 10_000, async () => (await refused()) > refusedBefore);
      // The node destroys a flood connection 40 s after it opened (it answers no keepalive ping):
      // new ones from fresh addresses take every slot that frees, so that the limit stays full.
      let fresh = 0;
      const refill = setInterval(() => {
        for (const port of [ports.ratis, ports.grpc]) {
          for (let i = 0; i < 4; i++) void open(port, `127.0.1.${(fresh++ % 250) + 1}`).then((s) => flood.push(s));
        }
      }, 1_000);
      try {
        cluster.start(follower);
        // Only a member's address can take the leader past its limit.
        await cluster.waitFor(`scm${follower}, restarted during the flood, to connect past the limit`, 60_000, async () => (await metric('scm_peer_connections', 'port="ratis"')) > LIMIT);
        await allocate(client, 5, { factor: 'ONE' });
        await cluster.waitFor(`scm${follower}, restarted during the flood, to catch up`, 60_000, () => cluster.appliedAlike([1, 2, 3]));
      } finally {
        clearInterval(refill);
      }

      // The flood ends; a follower restarted now gets its connection again.
      for (const s of flood) s.destroy();
      await cluster.waitFor('the flood to be closed', 10_000, async () => (await metric('scm_peer_connections', 'port="ratis"')) <= 4); // the followers' own, a reconnect aside
      assert.equal(await cluster.kill(follower, 'SIGTERM'), 0);
      cluster.start(follower);
      await allocate(client, 5, { factor: 'ONE' });
      await cluster.waitFor(`scm${follower} to catch up after its restart`, 60_000, () => cluster.appliedAlike([1, 2, 3]));
    },
    { 'ozone.scm.peer.max.connections': String(LIMIT) },
  );
});
