// The test-only disk failpoints of the Raft log (src/failpoints.ts): a full disk makes the append
// fail with ENOSPC and the log refuse every later write, with what was durable before intact on
// reopen; a slow disk only makes appends slower. The chaos run starts nodes with these.
import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { RaftStorage } from '../../src/storage/raft-storage.js';
import { FAILPOINTS_ENV, diskFailpoint } from '../../src/failpoints.js';
import { dataEntry, range, tempDir } from './helpers.js';

afterEach(() => {
  delete process.env[FAILPOINTS_ENV];
});

test('ENOSPC from the N-th write on: the append fails, later writes are refused, the durable prefix survives', async () => {
  const { dir, cleanup } = tempDir('enospc');
  try {
    const s = RaftStorage.open(dir, { segmentSizeBytes: 64 * 1024, cacheBytes: 0 });
    await s.append(range(1, 5, 1));
    process.env[FAILPOINTS_ENV] = 'storage.write:enospc=1';
    await assert.rejects(async () => s.append([dataEntry(6, 1)]), /ENOSPC/);
    delete process.env[FAILPOINTS_ENV];
    await assert.rejects(async () => s.append([dataEntry(7, 1)]), /refuses writes/, 'a log whose write failed takes no more writes');
    await s.close().catch(() => undefined);

    const r = RaftStorage.open(dir, { segmentSizeBytes: 64 * 1024, cacheBytes: 0 });
    assert.equal(r.lastIndex(), 5, 'what was durable before the full disk is all there');
    for (const e of range(1, 5, 1)) assert.deepEqual(r.entry(e.index), e);
    await r.append([dataEntry(6, 2)]);
    assert.equal(r.entry(6).term, 2, 'with space again the log takes writes');
    await r.close();
  } finally {
    cleanup();
  }
});

test('enospc=N lets N-1 hits through; delay=MS waits; a bad action or argument is an error naming the entry', async () => {
  process.env[FAILPOINTS_ENV] = 'x.disk:enospc=3';
  await diskFailpoint('x.disk');
  await diskFailpoint('x.disk');
  await assert.rejects(() => diskFailpoint('x.disk'), (err: NodeJS.ErrnoException) => err.code === 'ENOSPC');
  await assert.rejects(() => diskFailpoint('x.disk'), (err: NodeJS.ErrnoException) => err.code === 'ENOSPC', 'and every hit after');
  await diskFailpoint('other.point');

  process.env[FAILPOINTS_ENV] = 'slow.disk:delay=120';
  const started = Date.now();
  await diskFailpoint('slow.disk');
  assert.ok(Date.now() - started >= 100, 'the hit waited');

  process.env[FAILPOINTS_ENV] = 'p:explode';
  await assert.rejects(() => diskFailpoint('p'), /"p:explode": unknown action "explode"/);
  process.env[FAILPOINTS_ENV] = 'p:delay=soon';
  await assert.rejects(() => diskFailpoint('p'), /"soon" is not a whole number/);
});

test('a slow fsync delays appends but loses nothing', async () => {
  const { dir, cleanup } = tempDir('slowsync');
  try {
    const s = RaftStorage.open(dir, { segmentSizeBytes: 64 * 1024, cacheBytes: 0 });
    process.env[FAILPOINTS_ENV] = 'storage.fsync:delay=50';
    const started = Date.now();
    await s.append(range(1, 3, 1));
    assert.ok(Date.now() - started >= 45, 'the append waited for the slow fsync');
    assert.equal(s.durableIndex(), 3);
    await s.close();
  } finally {
    cleanup();
  }
});
