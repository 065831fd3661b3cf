// Client load never starves Raft. On this 2-core machine (1 s election timeout) a flood of invalid
// calls, 5k linearizable reads or 3k concurrent writes each once changed the leader. Now calls
// beyond ozone.scm.handler.count.key are refused at once with a retry hint the client honours, and
// the same floods leave the leader and the term where they were; every write still lands.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { ScmClientServiceClient } from '../../src/api/client-protocol.js';
import { TestCluster } from './harness.js';
import { openPipeline } from './workload.js';

async function terms(cluster: TestCluster): Promise<string> {
  const out: string[] = [];
  for (const k of [1, 2, 3]) {
    const s = (await (await fetch(`http://127.0.0.1:${cluster.node(k).ports.http}/status`)).json()) as { term: number; leaderId: string | null };
    out.push(`scm${k}:t${s.term}:${s.leaderId}`);
  }
  return out.join(' ');
}

test('floods of invalid calls, linearizable reads and concurrent writes change neither leader nor term', { timeout: 300_000 }, async () => {
  const cluster = await TestCluster.create(3, { 'ozone.scm.handler.count.key': '128' });
  try {
    await cluster.bootstrapAll();
    const leader = await cluster.leaderIndex();
    const admin = cluster.client(cluster.allClientAddresses(), 30_000);
    await openPipeline(admin, 'THREE', 'picked');
    const first = await admin.allocateContainer({ replicationType: 'RATIS', replicationFactor: 'THREE', owner: 'load' });
    const before = await terms(cluster);

    // 20,000 invalid calls (missing required fields), as fast as one process sends them.
    const raw = new ScmClientServiceClient(cluster.clientAddress(leader), grpc.credentials.createInsecure());
    const invalid = Array.from({ length: 20_000 }, () =>
      new Promise<void>((resolve) => {
        (raw as unknown as Record<string, (...a: unknown[]) => void>)['AllocateContainer']!.call(raw, {}, new grpc.Metadata(), { deadline: Date.now() + 60_000 }, () => resolve());
      }),
    );
    await Promise.all(invalid);
    raw.close();

    // 5,000 linearizable reads and 3,000 concurrent writes, from 16 clients.
    const clients = Array.from({ length: 16 }, () => cluster.client([cluster.clientAddress(leader)], 120_000));
    await Promise.all(Array.from({ length: 5_000 }, (_, i) => clients[i % 16]!.getContainer(first.container.containerId, { consistency: 'LINEARIZABLE' })));
    const writes = await Promise.all(
      Array.from({ length: 3_000 }, (_, i) => clients[i % 16]!.allocateContainer({ replicationType: 'RATIS', replicationFactor: 'THREE', owner: `w${i % 7}` })),
    );
    assert.equal(new Set(writes.map((w) => w.container.containerId)).size, 3_000, 'every write landed once');
    for (const c of clients) c.close();

    assert.equal(await terms(cluster), before, 'the leader and the term stayed');
  } catch (err) {
    (err as Error).message += `\n${cluster.tails(20)}`;
    throw err;
  } finally {
    await cluster.destroy();
  }
});
