// Hostile packets on a live 3-node cluster's Raft and client ports, each a failure once observed:
// one heartbeat response of term 2^53 - 1 crashed every node for good; a stranger's heartbeat of
// term + 1000 forced an election; a TimeoutNow or a transfer vote from a non-member deposed the
// leader; a message naming another sender than its connection was believed; a 200 MiB frame was
// buffered; random bytes as a client request got INTERNAL. Now each is dropped (or refused) and
// counted, and the cluster neither changes leader nor term.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { ScmClientServiceClient } from '../../src/api/client-protocol.js';
import type { Message } from '../../src/raft/index.js';
import { encodeRaftMessage } from '../../src/server/raft-codec.js';
import { TestCluster } from './harness.js';
import { rawStream } from './raw-raft.js';

interface StatusDoc {
  term: number;
  leaderId: string | null;
}

async function statusOf(cluster: TestCluster, k: number): Promise<StatusDoc> {
  return (await (await fetch(`http://127.0.0.1:${cluster.node(k).ports.http}/status`)).json()) as StatusDoc;
}

async function dropped(cluster: TestCluster, k: number, reason: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${cluster.node(k).ports.http}/prom`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`scm_raft_messages_dropped_total{reason="${reason}"`));
  return Number(line?.split(' ').pop() ?? 0);
}

test('hostile Raft and client packets are dropped or refused; no node crashes, no term moves, no leader changes', { timeout: 240_000 }, async () => {
  const cluster = await TestCluster.create(3);
  try {
    await cluster.bootstrapAll();
    const leader = await cluster.leaderIndex();
    const follower = leader === 1 ? 2 : 1;
    const leaderId = `scm${leader}`;
    const admin = cluster.client(cluster.allClientAddresses(), 10_000);
    const { clusterId } = await admin.getClusterInfo();
    const raftAddress = (k: number): string => `127.0.0.1:${cluster.node(k).ports.ratis}`;
    const before = await statusOf(cluster, follower);
    const to = `scm${follower}`;
    const msg = (m: Message): Uint8Array => encodeRaftMessage(m);

    // 1. The packet that crashed every node: the stream is refused, the term stays.
    const huge = new Uint8Array(encodeRaftMessage({ type: 'heartbeat-response', from: leaderId, to, term: 2 ** 52, readRound: 0, sentTick: 0 }));
    // Patch the term varint to 2^53 - 1 (the encoder itself refuses to write it).
    const tampered = Buffer.concat([Buffer.from(huge.subarray(0, huge.indexOf(0x20))), Buffer.from([0x20, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f])]);
    const refused = await rawStream(raftAddress(follower), clusterId, leaderId, [[tampered]]);
    assert.equal(refused?.code, grpc.status.INVALID_ARGUMENT, JSON.stringify(refused));
    assert.match(refused?.details ?? '', /malformed Raft message .* above the largest term or index a node accepts/);

    // 2. A stranger inflating the term, 3. a non-member's TimeoutNow and transfer vote, 4. a spoofed sender.
    await rawStream(raftAddress(follower), clusterId, 'intruder', [[msg({ type: 'heartbeat', from: 'intruder', to, term: before.term + 1000, commit: 0, commitTerm: 0, readRound: 0, sentTick: 0 })]]);
    await rawStream(raftAddress(follower), clusterId, 'intruder', [[msg({ type: 'timeout-now', from: 'intruder', to, term: before.term, sentTick: 0 })]]);
    await rawStream(raftAddress(follower), clusterId, 'intruder', [[msg({ type: 'vote', from: 'intruder', to, term: before.term + 1, lastIndex: 1e9, lastTerm: before.term, transfer: true, transferTick: 0 })]]);
    const other = [1, 2, 3].find((k) => k !== leader && k !== follower)!;
    await rawStream(raftAddress(follower), clusterId, `scm${other}`, [[msg({ type: 'heartbeat', from: leaderId, to, term: before.term + 5, commit: 0, commitTerm: 0, readRound: 0, sentTick: 0 })]]);
    // A non-member's TimeoutNow to the leader's own followers must not depose the leader either.
    await rawStream(raftAddress(other), clusterId, 'intruder', [[msg({ type: 'timeout-now', from: 'intruder', to: `scm${other}`, term: before.term, sentTick: 0 })]]);

    // 5. A frame beyond the Raft port's cap (32 MiB by default) is refused before it is buffered.
    const frame = await rawStream(raftAddress(follower), clusterId, leaderId, [[new Uint8Array(40 * 1024 * 1024)]]);
    assert.equal(frame?.code, grpc.status.RESOURCE_EXHAUSTED, JSON.stringify(frame));

    // 6. Random bytes as a client request: INVALID_ARGUMENT naming the method.
    const client = new ScmClientServiceClient(cluster.clientAddress(leader), grpc.credentials.createInsecure());
    const garbage = await new Promise<grpc.ServiceError | null>((resolve) => {
      client.makeUnaryRequest('/scm.client.StorageContainerLocationProtocolService/AllocateContainer', (b: Buffer) => b, (b: Buffer) => b, Buffer.from([0xff, 0xee, 0xdd, 0x01, 0x02]), (err) => resolve(err));
    });
    client.close();
    assert.equal(garbage?.code, grpc.status.INVALID_ARGUMENT, JSON.stringify(garbage));
    assert.match(garbage?.details ?? '', /not a AllocateContainer request/);

    // Two election timeouts later: same leader, same term, every node alive and counting.
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    for (const k of [1, 2, 3]) {
      const s = await statusOf(cluster, k);
      assert.equal(s.term, before.term, `scm${k}'s term moved`);
      assert.equal(s.leaderId, leaderId, `scm${k} follows another leader`);
    }
    assert.equal(await cluster.leaderIndex(), leader);
    assert.ok((await dropped(cluster, follower, 'non_member')) >= 3);
    assert.ok((await dropped(cluster, follower, 'sender_mismatch')) >= 1);
    assert.ok((await dropped(cluster, follower, 'malformed')) >= 1);
    await admin.allocateContainer({ replicationType: 'RATIS', replicationFactor: 'ONE', owner: 'after' }).catch(() => undefined);

    // The follower restarts fine: nothing out of range reached raft-meta.
    await cluster.kill(follower, 'SIGTERM');
    cluster.start(follower);
    await cluster.waitFor(`scm${follower} back in term ${before.term}`, 60_000, async () => {
      try {
        const s = await statusOf(cluster, follower);
        return s.term === before.term && s.leaderId === leaderId;
      } catch {
        return false;
      }
    });
  } catch (err) {
    (err as Error).message += `\n${cluster.tails(25)}`;
    throw err;
  } finally {
    await cluster.destroy();
  }
});
