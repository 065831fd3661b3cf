import { test } from 'node:test';
import assert from 'node:assert/strict';
import { choosePipeline } from '../../src/statemachine/placement.js';
import { NoPipelineError } from '../../src/errors.js';
import type { PipelineInfo } from '../../src/statemachine/model.js';
import { ScmStateMachine, type ApplyResult } from '../../src/statemachine/state-machine.js';
import { basicSetup, EntryFactory, withTempDir } from './helpers.js';

function pipeline(id: string, extra: Partial<PipelineInfo> = {}): PipelineInfo {
  return { id, members: ['a', 'b', 'c'], state: 'OPEN', type: 'RATIS', factor: 'THREE', leaderId: 'a', creationTimestamp: 1, ...extra };
}

test('choosePipeline: the OPEN matching pipeline with the fewest open containers, ties by id', () => {
  const pipelines = [
    pipeline('p3'),
    pipeline('p2'),
    pipeline('p1'),
    pipeline('p0', { state: 'DORMANT' }),
    pipeline('pa', { state: 'ALLOCATED' }),
    pipeline('pe', { type: 'EC' }),
    pipeline('pone', { factor: 'ONE', members: ['a'] }),
  ];
  const counts: Record<string, number> = { p1: 2, p2: 1, p3: 1, p0: 0, pa: 0, pe: 0, pone: 0 };
  const view = { listPipelines: () => pipelines, openContainerCount: (id: string) => counts[id] ?? 0 };
  assert.equal(choosePipeline(view, 'RATIS', 'THREE').id, 'p2');
  counts['p2'] = 5;
  assert.equal(choosePipeline(view, 'RATIS', 'THREE').id, 'p3');
  assert.equal(choosePipeline(view, 'EC', 'THREE').id, 'pe');
  assert.equal(choosePipeline(view, 'RATIS', 'ONE').id, 'pone');
  assert.throws(
    () => choosePipeline(view, 'STAND_ALONE', 'ONE'),
    (err: unknown) => err instanceof NoPipelineError && err.code === 'NO_PIPELINE' && /no OPEN pipeline matches replication type STAND_ALONE and factor ONE/.test(err.message),
  );
});

function failure(result: ApplyResult | undefined): { code: string; message: string } {
  assert.ok(result !== undefined && !result.outcome.ok, `expected a failure, got ${JSON.stringify(result)}`);
  return result.outcome.error;
}

test('allocation creates an OPEN container with Ozone fields, from the command, on the chosen pipeline', async () => {
  await withTempDir(async (dir) => {
    const sm = await ScmStateMachine.open(dir);
    try {
      const f = new EntryFactory();
      await sm.applyBatch(basicSetup(f));
      const entry = f.allocate(choosePipeline(sm, 'RATIS', 'THREE').id, 'RATIS', 'THREE', 'om-7');
      const [result] = await sm.applyBatch([entry]);
      assert.ok(result?.outcome.ok && result.outcome.value.kind === 'container');
      const expected = {
        containerID: 1,
        state: 'OPEN',
        pipelineID: 'p1',
        usedBytes: 0,
        numberOfKeys: 0,
        stateEnterTime: f.clock,
        owner: 'om-7',
        deleteTransactionId: 0,
        sequenceId: 0,
        replicationType: 'RATIS',
        replicationFactor: 'THREE',
      };
      assert.deepEqual(result.outcome.value.container, expected);
      assert.deepEqual(sm.getContainer(1), expected);
      assert.ok(Object.isFrozen(sm.getContainer(1)));
      assert.equal(sm.openContainerCount('p1'), 1);
      assert.deepEqual(result.command, { type: 'allocateContainer', clientId: 'client-1', callId: f.callId });
    } finally {
      await sm.close();
    }
  });
});

test('allocation fails clearly on a missing, non-OPEN or mismatched pipeline, and consumes no id', async () => {
  await withTempDir(async (dir) => {
    const sm = await ScmStateMachine.open(dir);
    try {
      const f = new EntryFactory();
      await sm.applyBatch([...basicSetup(f), f.pipeline('p-alloc', ['dn-1', 'dn-2', 'dn-3'], 'RATIS', 'THREE', { initialState: 'ALLOCATED' })]);
      const results = await sm.applyBatch([
        f.allocate('nope'),
        f.allocate('p-alloc'),
        f.allocate('p1', 'RATIS', 'ONE'),
        f.allocate('p1', 'EC', 'THREE'),
      ]);
      assert.deepEqual(results.map((r) => failure(r).code), ['NO_PIPELINE', 'NO_PIPELINE', 'NO_PIPELINE', 'NO_PIPELINE']);
      assert.match(failure(results[0]).message, /pipeline nope: no such pipeline/);
      assert.match(failure(results[1]).message, /p-alloc: it is ALLOCATED, not OPEN/);
      assert.match(failure(results[2]).message, /RATIS\/ONE container on pipeline p1: it is RATIS\/THREE/);
      assert.match(failure(results[3]).message, /EC\/THREE container on pipeline p1/);
      assert.equal(sm.lastContainerId(), 0);

      const [ok] = await sm.applyBatch([f.allocate('p1')]);
      assert.ok(ok?.outcome.ok && ok.outcome.value.kind === 'container' && ok.outcome.value.container.containerID === 1);
      assert.throws(() => choosePipeline(sm, 'EC', 'ONE'), NoPipelineError);
    } finally {
      await sm.close();
    }
  });
});

test('pipelines: creation needs registered members and a new id; state changes follow ALLOCATED/OPEN/DORMANT/CLOSED', async () => {
  await withTempDir(async (dir) => {
    const sm = await ScmStateMachine.open(dir);
    try {
      const f = new EntryFactory();
      await sm.applyBatch(basicSetup(f));
      const [unregistered, duplicate] = await sm.applyBatch([f.pipeline('p9', ['dn-1', 'dn-9', 'dn-3']), f.pipeline('p1', ['dn-1', 'dn-2', 'dn-3'])]);
      assert.equal(failure(unregistered).code, 'NOT_FOUND');
      assert.match(failure(unregistered).message, /members\[1\]: datanode dn-9 is not registered/);
      assert.equal(failure(duplicate).code, 'ALREADY_EXISTS');
      assert.equal(sm.getPipeline('p9'), undefined);

      const created = sm.getPipeline('p1');
      assert.deepEqual(created, { id: 'p1', members: ['dn-1', 'dn-2', 'dn-3'], state: 'OPEN', type: 'RATIS', factor: 'THREE', leaderId: 'dn-1', creationTimestamp: 1_700_000_000_040 }); // the 4th command's time

      const step = async (type: 'openPipeline' | 'closePipeline' | 'deactivatePipeline' | 'activatePipeline', pipelineId = 'p1') =>
        (await sm.applyBatch([f.data(f.command({ type, pipelineId }))]))[0];
      assert.equal((await step('deactivatePipeline')) && sm.getPipeline('p1')?.state, 'DORMANT');
      assert.match(failure(await step('openPipeline')).message, /p1: openPipeline is invalid in current state DORMANT/);
      assert.equal((await step('activatePipeline')) && sm.getPipeline('p1')?.state, 'OPEN');
      assert.equal(failure(await step('closePipeline', 'ghost')).code, 'NOT_FOUND');

      // Closing a pipeline finalizes its OPEN containers (and only those).
      await sm.applyBatch([f.allocate('p1'), f.allocate('p1'), f.allocate('p1'), f.allocate('p-one', 'STAND_ALONE', 'ONE')]);
      await sm.applyBatch([f.data(f.command({ type: 'updateContainerState', containerId: 2, event: 'FINALIZE' }))]);
      const closeEntry = f.data(f.command({ type: 'closePipeline', pipelineId: 'p1' }));
      await sm.applyBatch([closeEntry]);
      assert.equal(sm.getPipeline('p1')?.state, 'CLOSED');
      assert.deepEqual(sm.listContainers(0, 10).map((c) => `${c.containerID}:${c.state}`), ['1:CLOSING', '2:CLOSING', '3:CLOSING', '4:OPEN']);
      assert.equal(sm.getContainer(1)?.stateEnterTime, f.clock);
      assert.equal(sm.openContainerCount('p1'), 0);
      assert.match(failure(await step('activatePipeline')).message, /current state CLOSED/);
      assert.ok((await step('closePipeline'))?.outcome.ok, 'closing again is an idempotent no-op');
    } finally {
      await sm.close();
    }
  });
});

test('datanodes register, re-register with new details, and list by uuid', async () => {
  await withTempDir(async (dir) => {
    const sm = await ScmStateMachine.open(dir);
    try {
      const f = new EntryFactory();
      await sm.applyBatch(f.datanodes(2));
      await sm.applyBatch([f.data(f.command({ type: 'registerDatanode', uuid: 'dn-1', hostname: 'moved', ipAddress: '10.1.1.1', ports: [] }))]);
      assert.deepEqual(sm.listDatanodes().map((d) => `${d.uuid}@${d.hostname}/${d.ipAddress}`), ['dn-1@moved/10.1.1.1', 'dn-2@host2/10.0.0.2']);
      assert.deepEqual(sm.getDatanode('dn-2')?.ports, [{ name: 'RATIS', value: 9858 }]);
    } finally {
      await sm.close();
    }
  });
});

test('listContainers: ids ≥ start, ascending, bounded, optional state filter; counts by state', async () => {
  await withTempDir(async (dir) => {
    const sm = await ScmStateMachine.open(dir);
    try {
      const f = new EntryFactory();
      await sm.applyBatch([...basicSetup(f), ...Array.from({ length: 10 }, () => f.allocate('p1'))]);
      await sm.applyBatch([3, 6, 9].map((containerId) => f.data(f.command({ type: 'updateContainerState', containerId, event: 'FINALIZE' }))));
      const ids = (start: number, count: number, state?: 'OPEN' | 'CLOSING') => sm.listContainers(start, count, state).map((c) => c.containerID);
      assert.deepEqual(ids(0, 3), [1, 2, 3]);
      assert.deepEqual(ids(8, 100), [8, 9, 10]);
      assert.deepEqual(ids(11, 5), []);
      assert.deepEqual(ids(4, 2, 'CLOSING'), [6, 9]);
      assert.deepEqual(ids(1, 0), []);
      assert.deepEqual(ids(5, 3, 'OPEN'), [5, 7, 8]);
      assert.deepEqual(sm.containerCountsByState(), { OPEN: 7, CLOSING: 3, QUASI_CLOSED: 0, CLOSED: 0, DELETING: 0, DELETED: 0, RECOVERING: 0 });
      assert.throws(() => sm.listContainers(-1, 5), /startId must be a non-negative integer/);
      assert.throws(() => sm.listContainers(0, 1.5), /count must be a non-negative integer/);
      assert.throws(() => sm.listContainers(0, 5, 'OPENED' as never), /state must be one of/);
    } finally {
      await sm.close();
    }
  });
});
