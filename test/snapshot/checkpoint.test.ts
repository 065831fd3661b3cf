import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { existsSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, open, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { Level } from 'level';
import type { ClassicLevel } from 'classic-level';
import { createCheckpoint, type Checkpoint } from '../../src/snapshot/checkpoint.js';
import { captureLevelDbFiles } from '../../src/snapshot/leveldb-files.js';
import { CheckpointProvider, ResourceExhaustedError } from '../../src/snapshot/checkpoint-provider.js';
import { readTransactionInfo } from '../../src/statemachine/transaction-info.js';
import { applyContainers, createScmDb, dumpDb, dumpDbAt, withTempDir } from './helpers.js';

const PER_BATCH = 50;

/** Asserts that the checkpoint holds exactly the containers of the batches up to its own index. */
async function assertConsistent(checkpoint: Checkpoint, initial: number): Promise<void> {
  const cpIndex = checkpoint.termIndex.index;
  const cp = new Level<string, string>(checkpoint.dir, { createIfMissing: false });
  await cp.open();
  try {
    const containers = cp.sublevel<Buffer, Buffer>('containers', { keyEncoding: 'buffer', valueEncoding: 'buffer' });
    const keys = await containers.keys().all();
    assert.equal(keys.length, initial + (cpIndex - 1) * PER_BATCH, `checkpoint at index ${cpIndex} (${checkpoint.method})`);
    const last = keys.at(-1);
    assert.equal(last === undefined ? 0 : Number(last.readBigUInt64BE()), initial + (cpIndex - 1) * PER_BATCH);
    assert.deepEqual(await readTransactionInfo(cp), checkpoint.termIndex);
    assert.equal(await cp.sublevel('pipelines').get('pipeline-1'), 'RATIS/THREE');
  } finally {
    await cp.close();
  }
}

for (const method of ['files', 'copy'] as const) {
  test(`${method}: every checkpoint is exactly the DB at one moment while writes, flushes and compactions keep landing`, async () => {
    await withTempDir('snap-cp-', async (dir) => {
      const initial = 20_000;
      await (await createScmDb(join(dir, 'scm.db'), initial, { term: 1, index: 1 })).close();
      // A small write buffer makes the live DB flush and compact all the time, so the files change
      // under the capture.
      const db = new Level<string, string>(join(dir, 'scm.db'), { writeBufferSize: 64 * 1024 });
      await db.open();
      let index = 1;
      let stop = false;
      const writesAt: number[] = [];
      // The "apply loop": every batch adds PER_BATCH containers and bumps #TRANSACTIONINFO atomically.
      const writer = (async () => {
        while (!stop) {
          index++;
          await applyContainers(db, initial + (index - 2) * PER_BATCH + 1, PER_BATCH, { term: 1, index });
          writesAt.push(index);
        }
      })();
      const retries: string[] = [];
      const checkpoints: Checkpoint[] = [];
      let landedDuring = 0;
      try {
        for (let i = 0; i < 8; i++) {
          const before = writesAt.length;
          // Many attempts: this DB flushes every few batches, far more than a real scm.db does.
          const checkpoint = await createCheckpoint(db, join(dir, 'db.checkpoints'), { method, fileAttempts: 20, onRetry: (r) => retries.push(r) });
          assert.equal(checkpoint.method, method);
          checkpoints.push(checkpoint);
          landedDuring += writesAt.length - before;
        }
      } finally {
        stop = true;
        await writer;
      }
      // Not a barrier: the apply loop went on while checkpoints were taken.
      assert.ok(landedDuring > 0, 'applies kept landing during the checkpoints');
      for (const checkpoint of checkpoints) await assertConsistent(checkpoint, initial);
      // The checkpoints share table files with the live DB: removing them leaves it whole.
      await rm(join(dir, 'db.checkpoints'), { recursive: true });
      assert.equal((await db.sublevel('containers', { keyEncoding: 'buffer' }).keys().all()).length, initial + (index - 1) * PER_BATCH);
      assert.ok(checkpoints.at(-1)!.termIndex.index > checkpoints[0]!.termIndex.index, 'later checkpoints see later writes');
      for (const r of retries) assert.match(r, /abandoned: .*(grew|compacted away|flushed|changed|do not open)/);
      assert.match(checkpoints[0]!.id, /^scm\.db_checkpoint_\d+$/);
      await db.close();
    });
  });
}

test('files: a flush between copying the MANIFEST and listing abandons the capture; files deleted while linking are told apart; out of attempts, auto copies and files fails', async () => {
  await withTempDir('snap-cp-', async (dir) => {
    const db = await createScmDb(join(dir, 'scm.db'), 2_000, { term: 1, index: 1 });
    let next = 2;
    // Writes a batch and compacts everything: the memtable is flushed (its log deleted), tables are
    // rewritten (the old ones deleted), and the MANIFEST gets new version edits.
    const flushAndCompact = async (): Promise<void> => {
      await applyContainers(db, 2_000 + (next - 2) * PER_BATCH + 1, PER_BATCH, { term: 1, index: next });
      next++;
      await (db as unknown as ClassicLevel<string, string>).compactRange('\x00', '\xff');
    };
    const checkpointsDir = join(dir, 'db.checkpoints');
    const retries: string[] = [];
    const onRetry = (r: string): number => retries.push(r);
    const firstOnly = (): (() => Promise<void>) => {
      let calls = 0;
      return async () => (calls++ === 0 ? flushAndCompact() : undefined);
    };

    const early = await createCheckpoint(db, checkpointsDir, { method: 'files', onRetry, captureHooks: { beforeListingChecked: firstOnly() } });
    assert.equal(early.method, 'files');
    assert.equal(retries.length, 1);
    assert.match(retries[0]!, /capture 1 of 5 .* abandoned: MANIFEST-\d+ grew from \d+ to \d+ bytes .* between copying it and listing the directory/);
    await assertConsistent(early, 2_000);

    // Listed files deleted before they are linked: the MANIFEST moved, so the capture is redone.
    const late = await createCheckpoint(db, checkpointsDir, { method: 'files', onRetry, captureHooks: { beforeLinkingTables: firstOnly() } });
    assert.equal(late.method, 'files');
    assert.equal(retries.length, 2);
    assert.match(retries[1]!, /capture 1 of 5 .* abandoned: tables? [\d, ]+ of MANIFEST-\d+ compacted away before being linked/);
    await assertConsistent(late, 2_000);
    assert.ok(late.termIndex.index > early.termIndex.index);

    const fallback = await createCheckpoint(db, checkpointsDir, { method: 'auto', fileAttempts: 1, onRetry, captureHooks: { beforeListingChecked: flushAndCompact } });
    assert.equal(fallback.method, 'copy');
    assert.match(retries.at(-1)!, /falling back to copying/);
    await assertConsistent(fallback, 2_000);

    await assert.rejects(
      createCheckpoint(db, checkpointsDir, { method: 'files', fileAttempts: 2, captureHooks: { beforeListingChecked: flushAndCompact } }),
      /checkpoint of scm\.db into .* failed: the files of .*scm\.db could not be captured in 2 attempts \(the last: MANIFEST-\d+ grew/,
    );
    assert.equal((await readdir(checkpointsDir)).filter((n) => n.endsWith('.tmp')).length, 0, 'no half checkpoint left behind');
    await db.close();
  });
});

test('files: a damaged record in the middle of the live log is found, not skipped; auto then copies', async () => {
  await withTempDir('snap-cp-', async (dir) => {
    const db = await createScmDb(join(dir, 'scm.db'), 200, { term: 1, index: 1 });
    for (let i = 2; i <= 5; i++) await applyContainers(db, 200 + (i - 2) * PER_BATCH + 1, PER_BATCH, { term: 1, index: i });
    // The writes sit in the memtable and the log; damage the log's first record on disk. The live
    // DB still serves them from memory, but LevelDB's recovery would drop that record silently.
    const log = (await readdir(join(dir, 'scm.db'))).find((n) => /^\d+\.log$/.test(n));
    assert.ok(log !== undefined);
    const handle = await open(join(dir, 'scm.db', log), 'r+');
    const byte = Buffer.alloc(1);
    await handle.read(byte, 0, 1, 20);
    await handle.write(Buffer.of(byte[0]! ^ 0xff), 0, 1, 20);
    await handle.close();

    await assert.rejects(
      createCheckpoint(db, join(dir, 'db.checkpoints'), { method: 'files', fileAttempts: 1 }),
      new RegExp(`could not be captured in 1 attempts \\(the last: .*${log}: checksum mismatch in the record at byte 0\\)`),
    );
    const copied = await createCheckpoint(db, join(dir, 'db.checkpoints'), { fileAttempts: 1 });
    assert.equal(copied.method, 'copy');
    assert.deepEqual(copied.termIndex, { term: 1, index: 5 });
    await assertConsistent(copied, 200);
    await db.close();
  });
});

test('files: where the file system refuses hard links (another device), tables and logs are copied', async (t) => {
  const otherDevice = '/dev/shm';
  if (!existsSync(otherDevice) || statSync(otherDevice).dev === statSync(tmpdir()).dev) {
    t.skip(`needs ${otherDevice} on a different device from ${tmpdir()}`);
    return;
  }
  await withTempDir('snap-cp-', async (dir) => {
    const db = await createScmDb(join(dir, 'scm.db'), 3_000, { term: 1, index: 1 });
    await (db as unknown as ClassicLevel<string, string>).compactRange('\x00', '\xff');
    await applyContainers(db, 3_001, PER_BATCH, { term: 1, index: 2 }); // in the log only
    const target = await mkdtemp(join(otherDevice, 'snap-cp-'));
    try {
      const outcome = await captureLevelDbFiles(join(dir, 'scm.db'), target);
      assert.ok(outcome.ok, outcome.ok ? '' : outcome.reason);
      assert.ok(outcome.files.tables > 0);
      assert.equal(outcome.files.tablesCopied, outcome.files.tables, 'EXDEV: every table copied');
      assert.ok(outcome.files.logs > 0);
      const copy = new Level<string, string>(target, { createIfMissing: false });
      await copy.open();
      try {
        assert.deepEqual(await readTransactionInfo(copy), { term: 1, index: 2 });
        assert.equal((await copy.sublevel('containers', { keyEncoding: 'buffer' }).keys().all()).length, 3_000 + PER_BATCH);
      } finally {
        await copy.close();
      }
    } finally {
      await rm(target, { recursive: true, force: true });
    }
    await db.close();
  });
});

test('files: a directory that is not a LevelDB is refused by name', async () => {
  await withTempDir('snap-cp-', async (dir) => {
    await mkdir(join(dir, 'fake'));
    await writeFile(join(dir, 'fake', 'CURRENT'), 'garbage');
    await mkdir(join(dir, 'target'));
    await assert.rejects(captureLevelDbFiles(join(dir, 'fake'), join(dir, 'target')), /fake\/CURRENT does not name a MANIFEST \(it holds "garbage"\)/);
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
