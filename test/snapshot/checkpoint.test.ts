import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readdir } from 'node:fs/promises';
import { Level } from 'level';
import { createCheckpoint } from '../../src/snapshot/checkpoint.js';
import { CheckpointProvider, ResourceExhaustedError } from '../../src/snapshot/checkpoint-provider.js';
import { readTransactionInfo } from '../../src/statemachine/transaction-info.js';
import { applyContainers, createScmDb, dumpDb, dumpDbAt, withTempDir } from './helpers.js';

const PER_BATCH = 50;

test('a checkpoint is exactly the DB at one moment while writes keep landing', async () => {
  await withTempDir('snap-cp-', async (dir) => {
    const db = await createScmDb(join(dir, 'scm.db'), 20_000, { term: 1, index: 1 });
    let index = 1;
    let batchesDuringCheckpoint = 0;
    let checkpointDone = false;
    // The "apply loop": every batch adds PER_BATCH containers and bumps #TRANSACTIONINFO atomically.
    const writer = (async () => {
      while (!checkpointDone) {
        index++;
        await applyContainers(db, 20_000 + (index - 2) * PER_BATCH + 1, PER_BATCH, { term: 1, index });
        batchesDuringCheckpoint++;
      }
    })();
    const checkpoint = await createCheckpoint(db, join(dir, 'db.checkpoints'), { batchBytes: 64 * 1024 });
    const batchesAtEnd = batchesDuringCheckpoint;
    checkpointDone = true;
    await writer;

    assert.ok(batchesAtEnd > 0, 'applies were not blocked while the checkpoint was copied');
    const cpIndex = checkpoint.termIndex.index;
    assert.ok(cpIndex < index, 'writes continued after the snapshot moment');
    // Consistency: the copy holds exactly the containers of the batches up to its own index.
    const cp = new Level<string, string>(checkpoint.dir, { createIfMissing: false });
    await cp.open();
    try {
      const containers = cp.sublevel<Buffer, Buffer>('containers', { keyEncoding: 'buffer', valueEncoding: 'buffer' });
      const keys = await containers.keys().all();
      assert.equal(keys.length, 20_000 + (cpIndex - 1) * PER_BATCH);
      assert.deepEqual(await readTransactionInfo(cp), checkpoint.termIndex);
      assert.equal(await cp.sublevel('pipelines').get('pipeline-1'), 'RATIS/THREE');
    } finally {
      await cp.close();
    }
    assert.equal(checkpoint.entryCount, 20_000 + (cpIndex - 1) * PER_BATCH + 3);
    assert.match(checkpoint.id, /^scm\.db_checkpoint_\d+$/);
    await db.close();
  });
});

test('checkpoint of a closed DB is refused with a clear error', async () => {
  await withTempDir('snap-cp-', async (dir) => {
    const db = await createScmDb(join(dir, 'scm.db'), 10, { term: 1, index: 1 });
    await db.close();
    await assert.rejects(createCheckpoint(db, join(dir, 'db.checkpoints')), /database is closed, not open/);
  });
});

test('provider: concurrent requesters share one checkpoint, resume by id, bounded transfers, old ones removed', async () => {
  await withTempDir('snap-prov-', async (dir) => {
    const db = await createScmDb(join(dir, 'scm.db'), 500, { term: 1, index: 10 });
    const checkpointsDir = join(dir, 'db.checkpoints');
    let clock = 1_000_000;
    let minIndex = 0;
    const provider = new CheckpointProvider({ db: () => db, checkpointsDir, maxConcurrentTransfers: 2, reuseWindowMs: 10_000, now: () => clock, minUsefulIndex: () => minIndex });

    const [a, b] = await Promise.all([provider.acquire(), provider.acquire()]);
    assert.equal(provider.created, 1);
    assert.equal(a.checkpoint.id, b.checkpoint.id);
    assert.deepEqual(await dumpDbAt(a.checkpoint.dir), await dumpDb(db));

    await assert.rejects(provider.acquire(), (err: Error) => err instanceof ResourceExhaustedError && /at most 2/.test(err.message));
    await b.release();
    await b.release(); // idempotent: must not free a second slot

    // Within the reuse window and new enough: reused.
    clock += 1000;
    const c = await provider.acquire();
    assert.equal(c.checkpoint.id, a.checkpoint.id);
    await c.release();

    // The leader purged past it: a new checkpoint is taken, the old one stays while still in use.
    await applyContainers(db, 501, 10, { term: 1, index: 20 });
    minIndex = 15;
    clock += 1000;
    const d = await provider.acquire();
    assert.notEqual(d.checkpoint.id, a.checkpoint.id);
    assert.equal(d.checkpoint.termIndex.index, 20);
    assert.equal((await readdir(checkpointsDir)).length, 2, 'old checkpoint kept while a transfer uses it');
    // A resuming follower still gets the old one back by id.
    await a.release();
    assert.deepEqual(await readdir(checkpointsDir), [d.checkpoint.id], 'superseded and unused: removed');

    const e = await provider.acquire(d.checkpoint.id);
    assert.equal(e.checkpoint.id, d.checkpoint.id);
    await e.release();
    await d.release();
    // Past the reuse window and unused: removed.
    clock += 60_000;
    await provider.removeUnused();
    assert.deepEqual(await readdir(checkpointsDir), []);
    await db.close();
  });
});

test('provider removes checkpoints left by an earlier run', async () => {
  await withTempDir('snap-prov-', async (dir) => {
    const db = await createScmDb(join(dir, 'scm.db'), 10, { term: 1, index: 3 });
    const checkpointsDir = join(dir, 'db.checkpoints');
    const stale = await createCheckpoint(db, checkpointsDir, { now: () => 5 });
    const provider = new CheckpointProvider({ db: () => db, checkpointsDir });
    const lease = await provider.acquire(stale.id);
    assert.notEqual(lease.checkpoint.id, stale.id);
    assert.deepEqual(await readdir(checkpointsDir), [lease.checkpoint.id]);
    await lease.release();
    await db.close();
  });
});
