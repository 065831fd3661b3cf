import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { Level } from 'level';
import { createCheckpoint } from '../../src/snapshot/checkpoint.js';
import { FAILPOINTS_ENV } from '../../src/failpoints.js';
import { DB_INCONSISTENT_MARKER, INSTALL_FAILPOINTS, installCheckpoint, OlderCheckpointError, recoverInterruptedInstall } from '../../src/snapshot/installer.js';
import { readTransactionInfoAt } from '../../src/statemachine/transaction-info.js';
import { createScmDb, dumpDb, dumpDbAt, withTempDir } from './helpers.js';

const OLD = { term: 1, index: 100 };
const NEW = { term: 3, index: 5000 };

/** A follower scm.db at OLD (closed) and a checkpoint at NEW under snapshot/, plus their dumps. */
async function setUp(dir: string): Promise<{ dbParent: string; checkpointDir: string; oldDump: string[]; newDump: string[] }> {
  const dbParent = join(dir, 'follower');
  const follower = await createScmDb(join(dbParent, 'scm.db'), 100, OLD);
  const oldDump = await dumpDb(follower);
  await follower.close();
  const leader = await createScmDb(join(dir, 'leader', 'scm.db'), 700, NEW);
  const newDump = await dumpDb(leader);
  // Made directly in the follower's snapshot/ dir, as the downloader leaves it.
  const checkpoint = await createCheckpoint(leader, join(dbParent, 'snapshot'));
  await leader.close();
  return { dbParent, checkpointDir: checkpoint.dir, oldDump, newDump };
}

test('install swaps in the checkpoint, reopens, and leaves no marker or backup', async () => {
  await withTempDir('snap-inst-', async (dir) => {
    const { dbParent, checkpointDir, newDump } = await setUp(dir);
    let db = new Level<string, string>(join(dbParent, 'scm.db'));
    await db.open();
    const calls: string[] = [];
    await installCheckpoint({
      dbParentDir: dbParent,
      checkpointDir,
      termIndex: NEW,
      closeDb: async () => {
        calls.push('close');
        await db.close();
      },
      openDb: async () => {
        calls.push('open');
        db = new Level<string, string>(join(dbParent, 'scm.db'));
        await db.open();
      },
    });
    assert.deepEqual(calls, ['close', 'open']);
    assert.deepEqual(await dumpDb(db), newDump);
    await db.close();
    assert.deepEqual((await readdir(dbParent)).sort(), ['scm.db', 'snapshot']);
  });
});

test('a checkpoint whose #TRANSACTIONINFO is not the expected one is refused before anything is touched', async () => {
  await withTempDir('snap-inst-', async (dir) => {
    const { dbParent, checkpointDir, oldDump } = await setUp(dir);
    let closed = false;
    await assert.rejects(
      installCheckpoint({ dbParentDir: dbParent, checkpointDir, termIndex: { term: 3, index: 4999 }, closeDb: async () => { closed = true; }, openDb: async () => undefined }),
      /holds 3#5000, not the expected 3#4999/,
    );
    assert.equal(closed, false);
    assert.deepEqual(await dumpDbAt(join(dbParent, 'scm.db')), oldDump);
  });
});

test('a checkpoint older than the scm.db it would replace is refused, and nothing is changed', async () => {
  await withTempDir('snap-inst-', async (dir) => {
    // The live scm.db is at NEW; the checkpoint (at OLD) would move it backwards.
    const dbParent = join(dir, 'follower');
    const live = await createScmDb(join(dbParent, 'scm.db'), 700, NEW);
    const liveDump = await dumpDb(live);
    await live.close();
    const older = await createScmDb(join(dir, 'leader', 'scm.db'), 100, OLD);
    const checkpoint = await createCheckpoint(older, join(dbParent, 'snapshot'));
    await older.close();
    const checkpointDump = await dumpDbAt(checkpoint.dir);
    const before = (await readdir(dbParent)).sort();
    const calls: string[] = [];
    await assert.rejects(
      installCheckpoint({
        dbParentDir: dbParent,
        checkpointDir: checkpoint.dir,
        termIndex: OLD,
        closeDb: async () => { calls.push('close'); },
        openDb: async () => { calls.push('open'); },
      }),
      (err: Error) => err instanceof OlderCheckpointError && /checkpoint at 1#100 is older than scm\.db at 3#5000, which it would replace; not installed/.test(err.message),
    );
    assert.deepEqual(calls, ['close', 'open'], 'the live DB is reopened as it was');
    assert.deepEqual(await dumpDbAt(join(dbParent, 'scm.db')), liveDump);
    assert.deepEqual((await readdir(dbParent)).sort(), before, 'no marker, no backup');
    assert.deepEqual(await dumpDbAt(checkpoint.dir), checkpointDump, 'the checkpoint is left for the caller to discard');
  });
});

test('a failure while reopening restores the backup and reopens the old DB', async () => {
  await withTempDir('snap-inst-', async (dir) => {
    const { dbParent, checkpointDir, oldDump } = await setUp(dir);
    let opens = 0;
    await assert.rejects(
      installCheckpoint({
        dbParentDir: dbParent,
        checkpointDir,
        termIndex: NEW,
        closeDb: async () => undefined,
        openDb: async () => {
          opens++;
          if (opens === 1) throw new Error('reload of in-memory state failed');
        },
      }),
      /failed and scm.db was restored: reload of in-memory state failed/,
    );
    assert.equal(opens, 2, 'the old DB is reopened after the restore');
    assert.deepEqual(await dumpDbAt(join(dbParent, 'scm.db')), oldDump);
    assert.deepEqual((await readdir(dbParent)).sort(), ['scm.db', 'snapshot']);
    assert.deepEqual((await recoverInterruptedInstall(dbParent)).action, 'none');
  });
});

function runChild(args: string[], failpoint: string | undefined): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  const script = fileURLToPath(new URL('./fixtures/install-child.ts', import.meta.url));
  const env = { ...process.env };
  if (failpoint !== undefined) env[FAILPOINTS_ENV] = failpoint;
  else delete env[FAILPOINTS_ENV];
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code, signal) => resolve({ code, signal, stderr }));
  });
}

test('kill -9 at each install step, then recovery: the DB is wholly old or wholly new', async () => {
  // Steps before the checkpoint is moved in must come back old; from the move on, new.
  const expectNew = new Set(['install.afterMove', 'install.afterReopen', 'install.afterMarkerRemoved']);
  const steps = [...INSTALL_FAILPOINTS, undefined];
  await Promise.all(
    [steps.slice(0, 4), steps.slice(4)].map((group) =>
      (async () => {
        for (const step of group) {
          await withTempDir('snap-kill-', async (dir) => {
            const { dbParent, checkpointDir, oldDump, newDump } = await setUp(dir);
            const result = await runChild([dbParent, checkpointDir, String(NEW.term), String(NEW.index)], step);
            if (step === undefined) assert.equal(result.code, 0, result.stderr);
            else assert.equal(result.signal, 'SIGKILL', `${step}: child should die at the failpoint; stderr: ${result.stderr}`);

            const outcome = await recoverInterruptedInstall(dbParent);
            const wantNew = step === undefined || expectNew.has(step);
            assert.deepEqual(await dumpDbAt(join(dbParent, 'scm.db')), wantNew ? newDump : oldDump, `${String(step)}: DB content after recovery (${JSON.stringify(outcome)})`);
            assert.deepEqual(await readTransactionInfoAt(join(dbParent, 'scm.db')), wantNew ? NEW : OLD, `${String(step)}: #TRANSACTIONINFO`);
            const left = (await readdir(dbParent)).sort();
            assert.deepEqual(left, ['scm.db', 'snapshot'], `${String(step)}: no marker or backup left (${left.join(',')})`);
            assert.ok(!left.includes(DB_INCONSISTENT_MARKER));
            // A second recovery finds nothing to do.
            assert.equal((await recoverInterruptedInstall(dbParent)).action, 'none');
            if (step === 'install.afterBackup') assert.equal(outcome.action, 'restored');
            if (step === 'install.afterMove') assert.equal(outcome.action, 'completed');
          });
        }
      })(),
    ),
  );
});
