// A real 3-node SCM quorum of separate processes on loopback: allocation under a leader crash,
// exactly-once retries, catch-up of the restarted node, identical replicas; bad input; refusal to
// share directories or to join a foreign cluster.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { ScmClientError } from '../../src/client/scm-client.js';
import { initNode } from '../../src/server/node-setup.js';
import { newClusterId } from '../../src/server/version-file.js';
import { withCluster } from './harness.js';
import { openPipeline } from './workload.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

test('1,000 allocations survive a leader kill -9; retries are exactly-once; the old leader catches up; replicas are identical', { timeout: 300_000 }, async () => {
  await withCluster(3, async (cluster) => {
    await cluster.bootstrapAll();
    const admin = cluster.client(cluster.allClientAddresses(), 30_000);
    await openPipeline(admin);

    const total = 1_000;
    const concurrency = 16;
    const acknowledged = new Map<number, number>(); // call number → container id
    const perWorker: number[][] = [];
    let issued = 0;
    let killedLeader = 0;
    // Each worker is one client (own clientId); a call is retried with the same callId inside the
    // client until it succeeds, which is what the replicated retry cache makes exactly-once.
    const worker = async (): Promise<void> => {
      const client = cluster.client(cluster.allClientAddresses(), 60_000);
      const mine: number[] = [];
      perWorker.push(mine);
      while (issued < total) {
        const call = issued++;
        const result = await client.allocateContainer({ replicationType: 'RATIS', replicationFactor: 'THREE', owner: `owner-${call % 7}` });
        acknowledged.set(call, result.container.containerId);
        mine.push(result.container.containerId);
        if (acknowledged.size === 300 && killedLeader === 0) {
          killedLeader = await cluster.leaderIndex();
          await cluster.kill(killedLeader, 'SIGKILL');
        }
      }
    };
    await Promise.all(Array.from({ length: concurrency }, () => worker()));
    assert.ok(killedLeader > 0, 'the leader was killed during the load');
    assert.equal(acknowledged.size, total);

    const ids = [...acknowledged.values()];
    assert.equal(new Set(ids).size, total, 'container ids are unique');
    const newLeader = await cluster.leaderIndex();
    assert.notEqual(newLeader, killedLeader);
    const reader = cluster.client([cluster.clientAddress(newLeader)], 30_000);
    const listed = [];
    for (let startId = 0; ; ) {
      const page = await reader.listContainers({ startId, count: 400 });
      listed.push(...page);
      if (page.length < 400) break;
      startId = page[page.length - 1]!.containerId + 1;
    }
    assert.equal(listed.length, total, 'exactly one container per acknowledged call: no duplicate from a retry');
    const listedIds = listed.map((c) => c.containerId);
    assert.deepEqual(listedIds, [...listedIds].sort((a, b) => a - b), 'listed in increasing id order');
    assert.deepEqual(new Set(listedIds), new Set(ids), 'every acknowledged allocation is on the new leader');
    // Ids are handed out in commit order, across leader changes: a worker's later call was
    // committed after its earlier one was applied, so it must have got a larger id.
    for (const ids of perWorker) {
      for (let i = 1; i < ids.length; i++) assert.ok(ids[i]! > ids[i - 1]!, `ids not increasing for one client: ${ids[i - 1]} then ${ids[i]}`);
    }

    // The old leader comes back and catches up.
    cluster.start(killedLeader);
    await cluster.waitFor(`scm${killedLeader} to catch up`, 90_000, async () => {
      // Each node asked itself: the leader reports its own match index for a member it heard from
      // lately, before that member has applied anything.
      const roles = await admin.getScmRoles();
      return roles.length === 3 && roles.every((r) => r.role === 'LEADER' || r.role === 'FOLLOWER') && (await cluster.appliedAlike([1, 2, 3]));
    });
    for (const [k, code] of await cluster.stopAllLeaderLast()) assert.equal(code, 0, `scm${k} stops cleanly on SIGTERM`);
    const digests = await Promise.all([1, 2, 3].map((k) => cluster.digest(k)));
    assert.equal(new Set(digests).size, 1, `scm.db digests differ: ${digests.join(' ')}`);
  });
});

test('bad input gets the right status and message and changes nothing', { timeout: 120_000 }, async () => {
  await withCluster(1, async (cluster) => {
    await initNode(cluster.config(1));
    cluster.start(1);
    await cluster.waitFor('the node to lead', 60_000, async () => (await cluster.client([cluster.clientAddress(1)]).getClusterInfo()).leaderId !== '');
    const client = cluster.client([cluster.clientAddress(1)], 10_000);
    await openPipeline(client);
    const container = (await client.allocateContainer({ replicationType: 'RATIS', replicationFactor: 'THREE', owner: 'o' })).container;
    const before = await client.listContainers({ startId: 0, count: 100 });

    const expectError = async (call: () => Promise<unknown>, code: string, pattern: RegExp): Promise<void> => {
      await assert.rejects(call, (err: unknown) => {
        assert.ok(err instanceof ScmClientError, String(err));
        assert.equal(err.codeName, code, err.message);
        assert.match(err.message, pattern);
        return true;
      });
    };
    await expectError(() => client.getContainer(999_999), 'NOT_FOUND', /999999/);
    await expectError(() => client.updateContainerState(999_999, 'FINALIZE'), 'NOT_FOUND', /999999/);
    // CLEANUP is only valid from DELETING; the message names the current state.
    await expectError(() => client.updateContainerState(container.containerId, 'CLEANUP'), 'FAILED_PRECONDITION', /OPEN/);
    await expectError(() => client.allocateContainer({ replicationType: 'EC', replicationFactor: 'THREE', owner: 'o' }), 'FAILED_PRECONDITION', /EC/);
    await expectError(() => client.allocateContainer({ replicationType: 'RATIS', replicationFactor: 'THREE', owner: 'x'.repeat(100_000) }), 'INVALID_ARGUMENT', /owner/);
    await expectError(() => client.closePipeline('not-a-uuid'), 'INVALID_ARGUMENT', /pipelineId/);
    await expectError(() => client.closePipeline('00000000-0000-4000-8000-0000000000ff'), 'NOT_FOUND', /00000000-0000-4000-8000-0000000000ff/);

    assert.deepEqual(await client.listContainers({ startId: 0, count: 100 }), before, 'no container changed');
  });
});

test('a second process on the same directories refuses to start; a node of a foreign cluster refuses to start', { timeout: 120_000 }, async () => {
  await withCluster(2, async (cluster) => {
    await initNode(cluster.config(1));
    cluster.start(1);
    await cluster.waitFor('node 1 to lead', 60_000, async () => (await cluster.client([cluster.clientAddress(1)]).getClusterInfo()).leaderId !== '');

    // Same node again: its storage directory is locked.
    const second = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli/main.ts'), 'start', '--config', cluster.siteXml, '--node-id', 'scm1'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    second.stdout.on('data', (b: Buffer) => (out += b.toString()));
    second.stderr.on('data', (b: Buffer) => (out += b.toString()));
    const code = await new Promise<number | null>((resolve) => second.on('exit', resolve));
    assert.notEqual(code, 0, out);
    assert.match(out, /in_use\.lock|locked/i);
    assert.match(out, new RegExp(`${cluster.basePort}|scm1|pid`));

    // Node 2 initialised on its own, with another clusterID, must not run beside node 1.
    await initNode(cluster.config(2), newClusterId());
    const foreign = cluster.start(2);
    const foreignCode = await foreign.exited;
    assert.notEqual(foreignCode, 0);
    assert.match(cluster.output(2), /clusterID mismatch/);

    // Node 1 is untouched and still leads.
    assert.notEqual((await cluster.client([cluster.clientAddress(1)]).getClusterInfo()).leaderId, '');
  });
});

test('leadership transfer and removal of a member on a live cluster; the rest keeps serving', { timeout: 180_000 }, async () => {
  await withCluster(3, async (cluster) => {
    await cluster.bootstrapAll();
    const client = cluster.client(cluster.allClientAddresses(), 30_000);
    await openPipeline(client);
    const leader = await cluster.leaderIndex();
    const target = [1, 2, 3].find((k) => k !== leader)!;
    const targetId = `scm${target}`;

    assert.deepEqual(await client.transferLeadership(targetId), { leaderId: targetId });
    assert.equal((await client.getClusterInfo()).leaderId, targetId);
    await assert.rejects(() => client.transferLeadership('scm9'), (err: unknown) => err instanceof ScmClientError && err.codeName === 'NOT_FOUND');

    // Remove the old leader (now a follower) from the group.
    const removedId = `scm${leader}`;
    const members = await client.removeScm(removedId);
    assert.deepEqual(members.map((m) => m.nodeId).sort(), [1, 2, 3].filter((k) => k !== leader).map((k) => `scm${k}`).sort());
    const roles = await client.getScmRoles();
    assert.equal(roles.length, 2);
    assert.ok(!roles.some((r) => r.nodeId === removedId));

    // The two remaining members still commit (a 2-node group needs both).
    const created = await client.allocateContainer({ replicationType: 'RATIS', replicationFactor: 'THREE', owner: 'after-removal' });
    assert.ok(created.container.containerId > 0);
  });
});
