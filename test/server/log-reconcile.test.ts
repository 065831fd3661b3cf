import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RaftStorage, type LogEntry } from '../../src/storage/index.js';
import { reconcileLogWithStateMachine } from '../../src/server/log-reconcile.js';

const entries = (from: number, to: number, term: number): LogEntry[] =>
  Array.from({ length: to - from + 1 }, (_, i) => ({ term, index: from + i, payload: { kind: 'data', data: new Uint8Array([i]) } }));

async function withStorage(body: (storage: RaftStorage) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'reconcile-'));
  const storage = RaftStorage.open(dir);
  try {
    await body(storage);
  } finally {
    await storage.close();
    await rm(dir, { recursive: true, force: true });
  }
}

test('a log that matches scm.db is left alone', async () => {
  await withStorage(async (storage) => {
    await storage.append(entries(1, 10, 1));
    assert.equal(await reconcileLogWithStateMachine(storage, { term: 1, index: 7 }, 'g'), 'in-agreement');
    assert.equal(storage.lastIndex(), 10);
  });
});

test('a deposed leader’s entries at the installed index are discarded (another term there)', async () => {
  await withStorage(async (storage) => {
    await storage.append(entries(1, 10, 1)); // written by an old leader in term 1
    // The snapshot installed at index 8 was committed in term 2: entries 1..10 here diverge.
    assert.equal(await reconcileLogWithStateMachine(storage, { term: 2, index: 8 }, 'g'), 'log-reset');
    assert.equal(storage.firstIndex(), 9);
    assert.equal(storage.lastIndex(), 8);
    assert.equal(storage.term(8), 2);
  });
});

test('scm.db ahead of the log (crash before the log reset) restarts the log after it', async () => {
  await withStorage(async (storage) => {
    await storage.append(entries(1, 3, 1));
    assert.equal(await reconcileLogWithStateMachine(storage, { term: 4, index: 500 }, 'g'), 'log-reset');
    assert.equal(storage.firstIndex(), 501);
    assert.equal(storage.term(500), 4);
  });
});

test('a log starting after scm.db’s applied index is refused with both positions named', async () => {
  await withStorage(async (storage) => {
    await storage.reset(101, 3);
    await storage.append(entries(101, 105, 3));
    await assert.rejects(() => reconcileLogWithStateMachine(storage, { term: 2, index: 50 }, '/data/ratis/g'), /\/data\/ratis\/g starts at index 101 .* 2#50/);
  });
});
