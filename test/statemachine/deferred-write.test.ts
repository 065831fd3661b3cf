// Deferred scm.db writes (ApplyOptions.deferWrite, Ozone's SCMHADBTransactionBuffer): applied
// batches whose write is left for later are answered and visible at once, scm.db catches up in one
// batch, and what a crash loses of them is applied again from the log to the same state.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryLevel } from 'memory-level';
import { MAX_UNWRITTEN_ENTRIES, ScmStateMachine } from '../../src/statemachine/state-machine.js';
import type { ScmDb } from '../../src/statemachine/tables.js';
import { readTransactionInfo } from '../../src/statemachine/transaction-info.js';
import type { LogEntry } from '../../src/log-entry.js';
import { basicSetup, EntryFactory } from './helpers.js';

const DEFER = { deferWrite: true } as const;

function memoryDb(): ScmDb {
  return new MemoryLevel<string, string>() as unknown as ScmDb;
}

/** A state machine on its own in-memory scm.db, which outlives the state machine (a "disk"). */
async function openOn(db: ScmDb): Promise<ScmStateMachine> {
  return ScmStateMachine.open('mem/scm.db', { openDb: () => db });
}

async function reference(entries: readonly LogEntry[]): Promise<string> {
  const sm = await openOn(memoryDb());
  try {
    await sm.applyBatch(entries);
    return await sm.digest();
  } finally {
    await sm.close();
  }
}

/** A state machine on its own in-memory scm.db with basicSetup applied (and written); closed after `fn`. */
async function withSetUp(fn: (t: { f: EntryFactory; db: ScmDb; sm: ScmStateMachine; setupIndex: number }) => Promise<void>): Promise<void> {
  const f = new EntryFactory();
  const setup = basicSetup(f);
  const db = memoryDb();
  const sm = await openOn(db);
  try {
    await sm.applyBatch(setup);
    await fn({ f, db, sm, setupIndex: setup.length });
  } finally {
    await sm.close();
  }
}

test('a deferred batch is applied and visible at once; scm.db holds it only after writeApplied', async () => {
  await withSetUp(async ({ f, db, sm, setupIndex }) => {
    const written = { term: 1, index: setupIndex };
    assert.deepEqual(await readTransactionInfo(db), written);
    const allocations = [f.allocate('p1'), f.allocate('p1'), f.allocate('p1')];
    for (const e of allocations) {
      const [result] = await sm.applyBatch([e], undefined, DEFER);
      assert.equal(result?.outcome.ok, true);
    }
    const last = { term: 1, index: allocations.at(-1)!.index };
    assert.deepEqual(sm.lastApplied(), last);
    assert.deepEqual(sm.writtenApplied(), written, 'scm.db still holds the batch before the deferred ones');
    assert.deepEqual(await readTransactionInfo(db), written);
    assert.deepEqual(sm.listContainers(0, 10).map((c) => c.containerID), [1, 2, 3], 'queries see the deferred effects');

    assert.equal(await sm.writeApplied(), true);
    assert.deepEqual(sm.writtenApplied(), last);
    assert.deepEqual(await readTransactionInfo(db), last);
    assert.equal(await sm.writeApplied(), false, 'nothing left: no write');
    assert.deepEqual(await readTransactionInfo(db), last);
  });
});

test('a crash with deferred batches unwritten: reopened at what scm.db holds, the log applied again gives the same state', async () => {
  const f = new EntryFactory();
  const entries = [...basicSetup(f)];
  for (let i = 0; i < 20; i++) entries.push(f.allocate(i % 2 === 0 ? 'p1' : 'p-one'));
  const expected = await reference(entries);
  const db = memoryDb();
  const first = await openOn(db);
  const setupLength = basicSetup(new EntryFactory()).length;
  await first.applyBatch(entries.slice(0, setupLength));
  const results: string[] = [];
  for (const e of entries.slice(setupLength)) {
    for (const r of await first.applyBatch([e], undefined, DEFER)) results.push(JSON.stringify(r.outcome));
  }
  // The process dies here: `first` is never closed, its unwritten effects are lost with it.
  const second = await openOn(db);
  try {
    assert.deepEqual(second.lastApplied(), { term: 1, index: setupLength });
    const again = await second.applyBatch(entries);
    assert.deepEqual(again.map((r) => JSON.stringify(r.outcome)), results, 'the entries applied again give the answers given before the crash');
    assert.equal(await second.digest(), expected);
  } finally {
    await second.close();
  }
});

test('configuration entries, consistency markers and the unwritten bound are written at once, with what was deferred before them', async () => {
  await withSetUp(async ({ f, db, sm }) => {
    await sm.applyBatch([f.allocate('p1')], undefined, DEFER);
    const config = f.config();
    await sm.applyBatch([config], undefined, DEFER);
    assert.deepEqual(await readTransactionInfo(db), { term: 1, index: config.index }, 'a configuration is written as it is applied');
    assert.equal(sm.configuration()?.index, config.index);

    await sm.applyBatch([f.allocate('p1')], undefined, DEFER);
    const marker = f.data(f.command({ type: 'markConsistency' }));
    await sm.applyBatch([marker], undefined, DEFER);
    assert.deepEqual(await readTransactionInfo(db), { term: 1, index: marker.index }, 'a marker is written (and hashed) as it is applied');
    assert.ok((await sm.consistencyHash(marker.index)) !== undefined);

    const base = marker.index;
    for (let i = 0; i < MAX_UNWRITTEN_ENTRIES; i++) await sm.applyBatch([f.allocate('p-one')], undefined, DEFER);
    assert.deepEqual(await readTransactionInfo(db), { term: 1, index: base }, `up to ${MAX_UNWRITTEN_ENTRIES} entries stay unwritten`);
    const over = f.allocate('p-one');
    await sm.applyBatch([over], undefined, DEFER);
    assert.deepEqual(await readTransactionInfo(db), { term: 1, index: over.index }, 'one more is written, with every one before it');
  });
});

test('recordSnapshotPoint, digest and close write what was deferred first', async () => {
  const f = new EntryFactory();
  const setup = basicSetup(f);
  const db = memoryDb();
  let sm = await openOn(db);
  await sm.applyBatch(setup);
  const a = f.allocate('p1');
  await sm.applyBatch([a], undefined, DEFER);
  const point = await sm.recordSnapshotPoint();
  assert.deepEqual(point, { term: 1, index: a.index });
  assert.deepEqual(await readTransactionInfo(db), point, 'the log may be purged below the point next: scm.db holds it');

  const b = f.allocate('p1');
  await sm.applyBatch([b], undefined, DEFER);
  await sm.digest();
  assert.deepEqual(await readTransactionInfo(db), { term: 1, index: b.index }, 'digest hashes what is applied');

  const c = f.allocate('p1');
  await sm.applyBatch([c], undefined, DEFER);
  await sm.close();
  sm = await openOn(db);
  try {
    assert.deepEqual(sm.lastApplied(), { term: 1, index: c.index }, 'close wrote the deferred batch');
    assert.equal(sm.containerCount(), 3);
  } finally {
    await sm.close();
  }
});

test('a failed write of deferred batches rejects and leaves memory as scm.db holds it', async () => {
  await withSetUp(async ({ f, db, sm, setupIndex }) => {
    await sm.applyBatch([f.allocate('p1')], undefined, DEFER);
    await sm.applyBatch([f.allocate('p1')], undefined, DEFER);
    assert.equal(sm.containerCount(), 2);
    const batch = db.batch.bind(db);
    (db as { batch: unknown }).batch = () => Promise.reject(new Error('disk full'));
    await assert.rejects(sm.writeApplied(), /disk full/);
    (db as { batch: unknown }).batch = batch;
    assert.deepEqual(sm.lastApplied(), { term: 1, index: setupIndex }, 'back to what scm.db holds');
    assert.equal(sm.containerCount(), 0);
    assert.deepEqual(sm.writtenApplied(), sm.lastApplied());
  });
});

test('writeApplied while scm.db is closed (a snapshot install swapping it) writes nothing and does not fail: close wrote it all', async () => {
  const f = new EntryFactory();
  const db = memoryDb();
  const sm = await openOn(db);
  await sm.applyBatch(basicSetup(f));
  const a = f.allocate('p1');
  await sm.applyBatch([a], undefined, DEFER);
  await sm.close();
  assert.equal(await sm.writeApplied(), false);
  await sm.reload();
  try {
    assert.deepEqual(sm.lastApplied(), { term: 1, index: a.index });
    assert.deepEqual(sm.writtenApplied(), sm.lastApplied());
  } finally {
    await sm.close();
  }
});
