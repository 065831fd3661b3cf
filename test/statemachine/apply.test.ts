import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ScmStateMachine } from '../../src/statemachine/state-machine.js';
import { readTransactionInfo, readTransactionInfoAt } from '../../src/statemachine/transaction-info.js';
import type { LogEntry } from '../../src/log-entry.js';
import { basicSetup, EntryFactory, withTempDir } from './helpers.js';

test('applied term/index is persisted with the batch and a reopened DB resumes from it', async () => {
  await withTempDir(async (dir) => {
    const f = new EntryFactory();
    const sm = await ScmStateMachine.open(dir);
    assert.deepEqual(sm.lastApplied(), { term: 0, index: 0 });
    const entries = [...basicSetup(f), f.allocate('p1'), f.allocate('p1')];
    const results = await sm.applyBatch(entries);
    assert.equal(results.length, entries.length - 1, 'one result per data entry (the config entry has none)');
    assert.deepEqual(sm.lastApplied(), { term: 1, index: entries.length });
    await sm.close();

    assert.deepEqual(await readTransactionInfoAt(dir), { term: 1, index: entries.length });
    const reopened = await ScmStateMachine.open(dir);
    try {
      assert.deepEqual(reopened.lastApplied(), { term: 1, index: entries.length });
      assert.deepEqual(reopened.listContainers(0, 10).map((c) => c.containerID), [1, 2]);
      assert.equal(reopened.listDatanodes().length, 3);
      assert.deepEqual(reopened.listPipelines().map((p) => p.id), ['p-one', 'p1']);
    } finally {
      await reopened.close();
    }
  });
});

test('a crash between batches: replaying already-applied entries after reopen skips them (no double apply)', async () => {
  await withTempDir(async (dir) => {
    const f = new EntryFactory();
    const first = [...basicSetup(f), f.allocate('p1')];
    const second = [f.allocate('p1'), f.allocate('p1')];
    let sm = await ScmStateMachine.open(dir);
    await sm.applyBatch(first);
    await sm.close(); // "crash" after the first batch was written

    sm = await ScmStateMachine.open(dir);
    try {
      // The log replays from an older point: everything already applied is skipped.
      const replayed = await sm.applyBatch(first);
      assert.deepEqual(replayed, []);
      assert.equal(sm.containerCount(), 1);
      // A batch overlapping the applied point applies only the new tail.
      const mixed = await sm.applyBatch([...first.slice(-2), ...second]);
      assert.deepEqual(mixed.map((r) => r.index), second.map((e) => e.index));
      assert.deepEqual(sm.listContainers(0, 10).map((c) => c.containerID), [1, 2, 3]);
      assert.equal(sm.lastContainerId(), 3);
    } finally {
      await sm.close();
    }
  });
});

test('gaps, disorder and bad positions are refused before anything is applied', async () => {
  await withTempDir(async (dir) => {
    const sm = await ScmStateMachine.open(dir);
    try {
      const f = new EntryFactory();
      const setup = basicSetup(f);
      await sm.applyBatch(setup);
      const digest = await sm.digest();
      const a = f.allocate('p1');
      const b = f.allocate('p1');
      await assert.rejects(sm.applyBatch([b]), /gap: applied up to index 6 but the next entry given is 8/);
      await assert.rejects(sm.applyBatch([a, { ...b, index: 9 }]), /out of order: 1#7 then 1#9/);
      await assert.rejects(sm.applyBatch([a, { ...b, term: 0 }]), /out of order/);
      await assert.rejects(sm.applyBatch([{ ...a, index: 1.5 }]), /index 1.5 is not a positive safe integer/);
      await assert.rejects(sm.applyBatch([{ ...a, term: -1 }]), /term -1/);
      await assert.rejects(sm.applyBatch([{ ...a, term: 0 }]), /lower term than applied/);
      const last = setup[setup.length - 1] as LogEntry;
      await assert.rejects(sm.applyBatch([{ ...last, term: 5 }]), /conflicts with applied 1#6/);
      assert.equal(await sm.digest(), digest);
      assert.deepEqual(sm.lastApplied(), { term: 1, index: 6 });
      assert.equal((await sm.applyBatch([a, b])).length, 2);
    } finally {
      await sm.close();
    }
  });
});

test('config, metadata and empty data entries advance the applied index without results or state changes', async () => {
  await withTempDir(async (dir) => {
    const sm = await ScmStateMachine.open(dir);
    try {
      const f = new EntryFactory();
      const before = await sm.digest();
      const results = await sm.applyBatch([f.config(), f.metadata(1), f.raw(new Uint8Array(0))]);
      assert.deepEqual(results, []);
      assert.deepEqual(sm.lastApplied(), { term: 1, index: 3 });
      assert.notEqual(await sm.digest(), before, 'transaction info was written');
      assert.equal(sm.containerCount(), 0);
    } finally {
      await sm.close();
    }
  });
});

test('atomicity: a failed batch write applies nothing, in memory or on disk, and the same entries apply cleanly afterwards', async () => {
  await withTempDir(async (dir) => {
    const sm = await ScmStateMachine.open(dir);
    try {
      const f = new EntryFactory();
      await sm.applyBatch(basicSetup(f));
      const digest = await sm.digest();
      const batch = [f.allocate('p1'), f.allocate('p1'), f.data(f.command({ type: 'closePipeline', pipelineId: 'p-one' }))];

      const db = sm.db;
      const realBatch = db.batch.bind(db);
      (db as unknown as { batch: unknown }).batch = () => Promise.reject(new Error('disk full'));
      await assert.rejects(sm.applyBatch(batch), /disk full/);
      (db as unknown as { batch: unknown }).batch = realBatch;

      assert.equal(await sm.digest(), digest);
      assert.deepEqual(sm.lastApplied(), { term: 1, index: 6 });
      assert.equal(sm.containerCount(), 0);
      assert.equal(sm.lastContainerId(), 0);
      assert.equal(sm.getPipeline('p-one')?.state, 'OPEN');
      assert.equal(sm.retryCacheSize(), 5);

      const results = await sm.applyBatch(batch);
      assert.deepEqual(results.map((r) => r.replayed), [false, false, false], 'the failed attempt left no retry-cache entries');
      assert.deepEqual(sm.listContainers(0, 10).map((c) => c.containerID), [1, 2]);
      assert.equal(sm.getPipeline('p-one')?.state, 'CLOSED');
    } finally {
      await sm.close();
    }
  });
});

test('container ids keep increasing across reopen and leader (term) changes', async () => {
  await withTempDir(async (dir) => {
    const f = new EntryFactory();
    const seen: number[] = [];
    let sm = await ScmStateMachine.open(dir);
    await sm.applyBatch(basicSetup(f));
    for (let round = 0; round < 3; round++) {
      f.term++; // a new leader: first a config entry, then its allocations
      const results = await sm.applyBatch([f.config(), f.allocate('p1'), f.allocate('p-one', 'STAND_ALONE', 'ONE')]);
      for (const r of results) {
        assert.ok(r.outcome.ok && r.outcome.value.kind === 'container');
        seen.push(r.outcome.value.container.containerID);
      }
      await sm.close();
      sm = await ScmStateMachine.open(dir);
    }
    try {
      assert.deepEqual(seen, [1, 2, 3, 4, 5, 6]);
      assert.equal(sm.lastContainerId(), 6);
    } finally {
      await sm.close();
    }
  });
});

test('deterministic apply: two DBs fed the same entries (in different batchings) have identical digests', async () => {
  await withTempDir(async (dir) => {
    const f = new EntryFactory();
    const entries: LogEntry[] = [...basicSetup(f)];
    for (let i = 0; i < 20; i++) entries.push(f.allocate(i % 3 === 0 ? 'p-one' : 'p1', i % 3 === 0 ? 'STAND_ALONE' : 'RATIS', i % 3 === 0 ? 'ONE' : 'THREE'));
    entries.push(f.data(f.command({ type: 'updateContainerState', containerId: 2, event: 'FINALIZE' })));
    entries.push(f.data(f.command({ type: 'updateContainerState', containerId: 2, event: 'DELETE' }))); // a failure
    entries.push(f.data(f.command({ type: 'closePipeline', pipelineId: 'p-one' })));
    entries.push(f.raw(new Uint8Array([1, 2, 3]))); // malformed

    const a = await ScmStateMachine.open(join(dir, 'a'));
    const b = await ScmStateMachine.open(join(dir, 'b'));
    try {
      await a.applyBatch(entries);
      for (let i = 0; i < entries.length; i += 4) await b.applyBatch(entries.slice(i, i + 4));
      assert.equal(await a.digest(), await b.digest());
      assert.deepEqual(a.listContainers(0, 100), b.listContainers(0, 100));
      assert.equal(a.containerCountsByState().CLOSING, 1 + 7, 'container 2 plus the 7 finalized on p-one');

      const c = await ScmStateMachine.open(join(dir, 'c'));
      try {
        await c.applyBatch(entries.slice(0, -1));
        assert.notEqual(await c.digest(), await a.digest(), 'the digest covers the transaction info');
      } finally {
        await c.close();
      }
    } finally {
      await a.close();
      await b.close();
    }
  });
});

test('snapshot point is recorded durably, and reload() re-reads a DB that was replaced underneath', async () => {
  await withTempDir(async (dir) => {
    const f = new EntryFactory();
    const sm = await ScmStateMachine.open(join(dir, 'scm.db'));
    const other = await ScmStateMachine.open(join(dir, 'other'));
    try {
      await sm.applyBatch(basicSetup(f));
      assert.deepEqual(sm.snapshotPoint(), { term: 0, index: 0 });
      assert.deepEqual(await sm.recordSnapshotPoint(), { term: 1, index: 6 });
      assert.deepEqual(sm.snapshotPoint(), { term: 1, index: 6 });

      // "Install a snapshot": the other DB gets further, then its files replace scm.db.
      await other.applyBatch([...basicSetup(new EntryFactory()), ...[7, 8].map((index) => ({ ...f.allocate('p1'), index }))]);
      await other.close();
      await sm.close();
      const { rm, cp } = await import('node:fs/promises');
      await rm(join(dir, 'scm.db'), { recursive: true });
      await cp(join(dir, 'other'), join(dir, 'scm.db'), { recursive: true });
      await sm.reload();
      assert.deepEqual(sm.lastApplied(), { term: 1, index: 8 });
      assert.deepEqual(sm.snapshotPoint(), { term: 0, index: 0 });
      assert.equal(sm.containerCount(), 2);
    } finally {
      await sm.close();
    }
    const reopened = await ScmStateMachine.open(join(dir, 'scm.db'));
    await reopened.close();
    await assert.rejects(async () => reopened.applyBatch([]), /is closed/);
  });
});

test('corrupt records are refused at open with the table and key named', async () => {
  await withTempDir(async (dir) => {
    const sm = await ScmStateMachine.open(dir);
    const f = new EntryFactory();
    await sm.applyBatch(basicSetup(f));
    await sm.db.sublevel('pipelines').put('p1', 'garbage');
    await sm.close();
    await assert.rejects(ScmStateMachine.open(dir), /corrupt pipeline record at pipelines\/p1/);
  });
});

test('onComputed hears every result of the batch, visible to queries, before the batch is written', async () => {
  await withTempDir(async (dir) => {
    const f = new EntryFactory();
    const sm = await ScmStateMachine.open(dir);
    try {
      await sm.applyBatch(basicSetup(f));
      const before = sm.lastApplied();
      const entries = [f.allocate('p1'), f.allocate('p1')];
      let heard: { results: number[]; applied: number; containers: number } | undefined;
      const results = await sm.applyBatch(entries, (computed) => {
        heard = { results: computed.map((r) => r.index), applied: sm.lastApplied().index, containers: sm.containerCount() };
      });
      assert.deepEqual(heard, { results: results.map((r) => r.index), applied: before.index, containers: 2 });
      assert.deepEqual(sm.lastApplied(), { term: 1, index: entries[1]!.index });
    } finally {
      await sm.close();
    }
  });
});

test('a promise onComputed returns holds the batch\'s write back until it settles; queries see the results meanwhile', async () => {
  await withTempDir(async (dir) => {
    const f = new EntryFactory();
    const sm = await ScmStateMachine.open(dir);
    try {
      await sm.applyBatch(basicSetup(f));
      const before = sm.lastApplied();
      const entries = [f.allocate('p1'), f.allocate('p1')];
      let release!: () => void;
      let heard = false;
      const applying = sm.applyBatch(entries, () => {
        heard = true;
        return new Promise<void>((resolve) => (release = resolve));
      });
      for (let i = 0; i < 20 && !heard; i++) await new Promise((resolve) => setImmediate(resolve));
      assert.equal(heard, true);
      for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual(sm.lastApplied(), before, 'written before the promise settled');
      assert.deepEqual(await readTransactionInfo(sm.db), before, 'scm.db holds the batch already');
      assert.equal(sm.containerCount(), 2, 'the results are visible to queries before the write');
      release();
      await applying;
      assert.deepEqual(sm.lastApplied(), { term: 1, index: entries[1]!.index });
      assert.deepEqual(await readTransactionInfo(sm.db), sm.lastApplied());
    } finally {
      await sm.close();
    }
  });
});

test('on disk, open and reload close and reopen scm.db after the load (to unmap its tables): it is open, and applies and reads as before', async () => {
  await withTempDir(async (dir) => {
    const f = new EntryFactory();
    let sm = await ScmStateMachine.open(join(dir, 'scm.db'));
    await sm.applyBatch(basicSetup(f));
    await sm.close();
    sm = await ScmStateMachine.open(join(dir, 'scm.db'));
    try {
      assert.equal(sm.db.status, 'open');
      await sm.applyBatch([{ ...f.allocate('p1'), index: 7 }]);
      assert.equal(sm.containerCount(), 1);
      await sm.reload();
      assert.equal(sm.db.status, 'open');
      assert.equal(sm.containerCount(), 1);
      await sm.applyBatch([{ ...f.allocate('p1'), index: 8 }]);
      assert.deepEqual(sm.lastApplied(), { term: 1, index: 8 });
    } finally {
      await sm.close();
    }
    const again = await ScmStateMachine.open(join(dir, 'scm.db'));
    assert.equal(again.containerCount(), 2);
    await again.close();
  });
});
