// SnapshotCatchUp.install over the real state machine and installer: what happens to the applies
// left unwritten (ozone.scm.ha.dbtransactionbuffer.flush.interval) when a checkpoint is swapped in.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ScmStateMachine } from '../../src/statemachine/state-machine.js';
import { readTransactionInfoAt } from '../../src/statemachine/transaction-info.js';
import { installCheckpoint } from '../../src/snapshot/installer.js';
import { FatalInstallError, SnapshotCatchUp, type FetchedCheckpoint } from '../../src/server/snapshot-catch-up.js';
import type { SnapshotNotice } from '../../src/raft/index.js';
import { basicSetup, EntryFactory, withTempDir } from '../statemachine/helpers.js';

/** A follower's scm.db with two applies left unwritten, and a leader's checkpoint ahead of it. */
async function followerBehindACheckpoint(dir: string) {
  const f = new EntryFactory();
  const setup = basicSetup(f);
  const deferred = [f.allocate('p1'), f.allocate('p1')];
  const later = [f.allocate('p1'), f.allocate('p1'), f.allocate('p1')];
  const checkpointDir = join(dir, 'snapshot', 'cp');
  await mkdir(join(dir, 'snapshot'), { recursive: true });
  const leader = await ScmStateMachine.open(checkpointDir);
  await leader.applyBatch([...setup, ...deferred, ...later]);
  const point = leader.lastApplied();
  const configuration = leader.configuration()!;
  await leader.close();

  const sm = await ScmStateMachine.open(join(dir, 'scm.db'));
  await sm.applyBatch(setup);
  for (const e of deferred) await sm.applyBatch([e], undefined, { deferWrite: true });
  let discarded = false;
  const checkpoint: FetchedCheckpoint = {
    termIndex: point,
    configuration,
    bytes: 0,
    swap: () => installCheckpoint({ dbParentDir: dir, checkpointDir, termIndex: point, closeDb: () => sm.close(), openDb: () => sm.reload() }),
    discard: () => {
      discarded = true;
      return Promise.resolve();
    },
  };
  const core = { keepsLogOnInstall: () => false, snapshotInstalled: () => undefined } as never;
  const log = { saveConf: () => Promise.resolve(), reset: () => Promise.resolve() } as never;
  const catchUp = new SnapshotCatchUp({ core, log, sm, source: { fetch: () => Promise.resolve(checkpoint) } });
  const notice = { term: 1, leaderId: 'leader', firstIndex: point.index, firstTerm: 1 } as unknown as SnapshotNotice;
  return { sm, catchUp, checkpoint, notice, point, setupIndex: setup.length, discarded: () => discarded };
}

test('a checkpoint swapped in over applies left unwritten: installed, scm.db at the checkpoint', async () => {
  await withTempDir(async (dir) => {
    const { sm, catchUp, checkpoint, notice, point } = await followerBehindACheckpoint(dir);
    try {
      assert.deepEqual(await catchUp.install(checkpoint, notice), point);
      assert.deepEqual(sm.lastApplied(), point);
      assert.deepEqual(sm.writtenApplied(), point);
      assert.equal(sm.containerCount(), 5);
    } finally {
      await sm.close();
    }
  });
});

test('an install whose write of the unwritten applies fails stops the node (FatalInstallError) with scm.db open and as it was', async () => {
  await withTempDir(async (dir) => {
    const { sm, catchUp, checkpoint, notice, setupIndex, discarded } = await followerBehindACheckpoint(dir);
    const db = sm.db as unknown as { batch: unknown };
    const batch = (db.batch as (...args: unknown[]) => unknown).bind(sm.db);
    db.batch = () => Promise.reject(new Error('disk full'));
    try {
      await assert.rejects(catchUp.install(checkpoint, notice), (err: unknown) => err instanceof FatalInstallError && /disk full/.test((err as Error).message));
      assert.equal(sm.isClosed, false, 'scm.db was closed under a running node');
      assert.equal(sm.lastApplied().index, setupIndex, 'memory as scm.db holds it');
      assert.ok(discarded(), 'the downloaded checkpoint is discarded');
    } finally {
      db.batch = batch;
      await sm.close();
    }
    assert.equal((await readTransactionInfoAt(join(dir, 'scm.db'))).index, setupIndex, 'scm.db untouched');
  });
});
