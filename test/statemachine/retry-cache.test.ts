import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ScmStateMachine } from '../../src/statemachine/state-machine.js';
import { basicSetup, EntryFactory, withTempDir } from './helpers.js';

test('a retried (clientId, callId) returns the original result and allocates nothing, even after a restart and new term', async () => {
  await withTempDir(async (dir) => {
    const f = new EntryFactory();
    let sm = await ScmStateMachine.open(dir);
    await sm.applyBatch(basicSetup(f));
    const allocate = f.command({ type: 'allocateContainer', replicationType: 'RATIS', replicationFactor: 'THREE', owner: 'om', pipelineId: 'p1' });
    const [original] = await sm.applyBatch([f.data(allocate)]);
    assert.ok(original?.outcome.ok && !original.replayed);
    assert.deepEqual(sm.cachedResult(allocate.clientId, allocate.callId), original.outcome);
    // The container changes later; the retry still gets the original answer.
    await sm.applyBatch([f.data(f.command({ type: 'updateContainerState', containerId: 1, event: 'FINALIZE' }))]);
    await sm.close();

    sm = await ScmStateMachine.open(dir);
    try {
      f.term = 2; // a new leader proposes the client's retry again
      const [retry] = await sm.applyBatch([f.config(), f.data({ ...allocate, timestamp: f.clock + 5 })]);
      assert.ok(retry?.replayed);
      assert.deepEqual(retry.outcome, original.outcome);
      assert.equal(sm.containerCount(), 1);
      assert.equal(sm.lastContainerId(), 1);

      // A different call id from the same client is a new request.
      const [fresh] = await sm.applyBatch([f.data({ ...allocate, callId: allocate.callId + 1000 })]);
      assert.ok(fresh?.outcome.ok && !fresh.replayed && fresh.outcome.value.kind === 'container');
      assert.equal(fresh.outcome.value.container.containerID, 2);
    } finally {
      await sm.close();
    }
  });
});

test('failures are cached too: a retried failing command returns the same failure', async () => {
  await withTempDir(async (dir) => {
    const sm = await ScmStateMachine.open(dir);
    try {
      const f = new EntryFactory();
      await sm.applyBatch(basicSetup(f));
      const bad = f.command({ type: 'allocateContainer', replicationType: 'EC', replicationFactor: 'THREE', owner: 'om', pipelineId: 'p1' });
      const [first] = await sm.applyBatch([f.data(bad)]);
      const [second] = await sm.applyBatch([f.data(bad)]);
      assert.ok(first !== undefined && !first.outcome.ok && second?.replayed);
      assert.deepEqual(second.outcome, first.outcome);
    } finally {
      await sm.close();
    }
  });
});

test('entries expire after the timeout, measured on command timestamps, then a retry is applied afresh', async () => {
  await withTempDir(async (dir) => {
    const sm = await ScmStateMachine.open(dir, { retryCacheTimeoutMs: 1_000 });
    try {
      const f = new EntryFactory();
      await sm.applyBatch(basicSetup(f));
      const allocate = f.command({ type: 'allocateContainer', replicationType: 'RATIS', replicationFactor: 'THREE', owner: 'om', pipelineId: 'p1' });
      await sm.applyBatch([f.data(allocate)]);

      // 999 ms later (by the leader's clock in the commands) it is still cached.
      const [within] = await sm.applyBatch([f.data({ ...allocate, timestamp: allocate.timestamp + 999 })]);
      assert.ok(within?.replayed);
      assert.equal(sm.containerCount(), 1);

      // A command whose timestamp is older than the apply clock does not move it backwards.
      await sm.applyBatch([f.data(f.command({ type: 'openPipeline', pipelineId: 'p1' }, { timestamp: 5 }))]);
      assert.notEqual(sm.cachedResult(allocate.clientId, allocate.callId), undefined);

      // Any command at ≥ 1000 ms prunes it; the retry now allocates again.
      await sm.applyBatch([f.data(f.command({ type: 'openPipeline', pipelineId: 'p1' }, { timestamp: allocate.timestamp + 1_000 }))]);
      assert.equal(sm.cachedResult(allocate.clientId, allocate.callId), undefined);
      const [again] = await sm.applyBatch([f.data({ ...allocate, timestamp: allocate.timestamp + 1_001 })]);
      assert.ok(again?.outcome.ok && !again.replayed);
      assert.equal(sm.containerCount(), 2);
    } finally {
      await sm.close();
    }
  });
});

test('the cache is bounded: the oldest entries are evicted, in the same way after a reopen', async () => {
  await withTempDir(async (dir) => {
    const f = new EntryFactory();
    let sm = await ScmStateMachine.open(dir, { retryCacheMaxEntries: 3 });
    await sm.applyBatch(basicSetup(f)); // 5 commands: call ids 1..5, only 3..5 remain
    assert.equal(sm.retryCacheSize(), 3);
    assert.equal(sm.cachedResult('client-1', 2), undefined);
    assert.notEqual(sm.cachedResult('client-1', 3), undefined);
    const digest = await sm.digest();
    await sm.close();

    sm = await ScmStateMachine.open(dir, { retryCacheMaxEntries: 3 });
    try {
      assert.equal(await sm.digest(), digest);
      await sm.applyBatch([f.allocate('p1')]); // call id 6 evicts 3, the oldest
      assert.deepEqual([3, 4, 5, 6].map((id) => sm.cachedResult('client-1', id) !== undefined), [false, true, true, true]);
    } finally {
      await sm.close();
    }
  });
});

test('invalid retry cache settings are refused at open', async () => {
  await withTempDir(async (dir) => {
    await assert.rejects(ScmStateMachine.open(dir, { retryCacheTimeoutMs: -1 }), /retry cache timeout -1 ms/);
    await assert.rejects(ScmStateMachine.open(dir, { retryCacheMaxEntries: 0 }), /retry cache bound 0/);
  });
});
