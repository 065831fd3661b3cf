import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { RaftStorage } from '../../src/storage/raft-storage.js';
import type { LogEntry } from '../../src/log-entry.js';
import { dataEntry, range, tempDir } from './helpers.js';

function segmentNames(groupDir: string): string[] {
  return readdirSync(join(groupDir, 'current')).filter((n) => n.startsWith('log_')).sort();
}

function assertEntries(s: RaftStorage, expected: readonly LogEntry[]): void {
  for (const e of expected) assert.deepEqual(s.entry(e.index), e, `entry ${e.index}`);
}

test('append, read back, roll across segments, reopen', async () => {
  const { dir, cleanup } = tempDir('roll');
  try {
    // 32-byte payloads make 45-byte frames: 9 entries per 420-byte segment.
    const opts = { segmentSizeBytes: 420, cacheBytes: 0 };
    const s = RaftStorage.open(dir, opts);
    assert.equal(s.firstIndex(), 1);
    assert.equal(s.lastIndex(), 0);
    assert.equal(s.term(0), 0);
    const all = range(1, 35, 1);
    await s.append(all.slice(0, 5));
    await s.append(all.slice(5, 35).map((e) => (e.index > 20 ? { ...e, term: 2, payload: dataEntry(e.index, 2).payload } : e)));
    const expected = all.map((e) => (e.index > 20 ? dataEntry(e.index, 2) : e));
    assert.equal(s.lastIndex(), 35);
    assert.equal(s.durableIndex(), 35);
    assert.equal(s.term(20), 1);
    assert.equal(s.term(21), 2);
    assert.equal(s.term(36), undefined);
    assertEntries(s, expected); // cacheBytes 0: every read is a pread + CRC check
    const names = segmentNames(dir);
    assert.ok(names.length >= 4, `expected several segments, got ${names.join(',')}`);
    assert.equal(names.filter((n) => n.startsWith('log_inprogress_')).length, 1);
    for (const n of names) {
      if (!n.startsWith('log_inprogress_')) assert.ok(statSync(join(dir, 'current', n)).size <= 420, n);
    }
    // entries() honours maxBytes but always returns one.
    assert.equal(s.entries(1, 36, 1).length, 1);
    assert.equal(s.entries(1, 36, 10_000).length, 35);
    // Frames for indexes 1..9 are 45 bytes each.
    assert.equal(s.entries(3, 9, 135).length, 3);
    assert.equal(s.entries(3, 9, 134).length, 2);
    await s.close();

    const r = RaftStorage.open(dir, opts);
    assert.equal(r.firstIndex(), 1);
    assert.equal(r.lastIndex(), 35);
    assert.equal(r.term(35), 2);
    assertEntries(r, expected);
    await r.append([dataEntry(36, 3)]);
    assert.equal(r.entry(36).term, 3);
    await r.close();
  } finally {
    cleanup();
  }
});

test('append asserts contiguity and non-decreasing terms', async () => {
  const { dir, cleanup } = tempDir('assert');
  try {
    const s = RaftStorage.open(dir);
    await s.append(range(1, 3, 2));
    assert.throws(() => void s.append([dataEntry(5, 2)]), /does not continue the log \(expected 4\)/);
    assert.throws(() => void s.append([dataEntry(4, 1)]), /below the previous entry's term 2/);
    assert.throws(() => void s.append([dataEntry(4, 2), dataEntry(6, 2)]), /expected 5/);
    assert.equal(s.lastIndex(), 3);
    assert.throws(() => s.entry(4), /outside the log \[1, 3\]/);
    await s.close();
  } finally {
    cleanup();
  }
});

test('truncateFrom within the open segment, across closed segments, then continue', async () => {
  const { dir, cleanup } = tempDir('truncate');
  try {
    const opts = { segmentSizeBytes: 420, cacheBytes: 0 };
    const s = RaftStorage.open(dir, opts);
    await s.append(range(1, 40, 1));
    // In the open segment.
    await s.truncateFrom(38);
    assert.equal(s.lastIndex(), 37);
    // Across segments: cut in the middle of the first closed segment.
    await s.truncateFrom(6);
    assert.equal(s.lastIndex(), 5);
    assert.equal(s.durableIndex(), 5);
    assert.deepEqual(segmentNames(dir), ['log_1-5']);
    await s.append(range(6, 12, 2));
    assertEntries(s, [...range(1, 5, 1), ...range(6, 12, 2)]);
    await s.close();
    const r = RaftStorage.open(dir, opts);
    assert.equal(r.lastIndex(), 12);
    assertEntries(r, [...range(1, 5, 1), ...range(6, 12, 2)]);
    assert.throws(() => void r.truncateFrom(0), /below the first index 1/);
    await r.close();
  } finally {
    cleanup();
  }
});

test('truncate and re-append while earlier writes are still in flight keeps reads and durability right', async () => {
  const { dir, cleanup } = tempDir('inflight');
  try {
    const s = RaftStorage.open(dir, { segmentSizeBytes: 420, cacheBytes: 0 });
    const p1 = s.append(range(1, 20, 1));
    const p2 = s.truncateFrom(11);
    const p3 = s.append(range(11, 25, 2));
    assert.equal(s.entry(15).term, 2); // served from memory before anything is on disk
    await Promise.all([p1, p2, p3]);
    assert.equal(s.durableIndex(), 25);
    assertEntries(s, [...range(1, 10, 1), ...range(11, 25, 2)]);
    await s.close();
    const r = RaftStorage.open(dir, { segmentSizeBytes: 420 });
    assertEntries(r, [...range(1, 10, 1), ...range(11, 25, 2)]);
    assert.equal(r.lastIndex(), 25);
    await r.close();
  } finally {
    cleanup();
  }
});

test('purgeBelow deletes whole closed segments only and remembers the previous term', async () => {
  const { dir, cleanup } = tempDir('purge');
  try {
    const opts = { segmentSizeBytes: 420, cacheBytes: 0 };
    const s = RaftStorage.open(dir, opts);
    await s.append([...range(1, 10, 1), ...range(11, 30, 4)]);
    const before = segmentNames(dir);
    assert.equal(before[0], 'log_1-9');
    assert.equal(before[1], 'log_10-18');
    await s.purgeBelow(15); // log_1-9 goes; log_10-18 contains 15 and stays
    assert.deepEqual(segmentNames(dir), before.slice(1));
    assert.equal(s.firstIndex(), 10);
    assert.equal(s.term(9), 1);
    assert.equal(s.term(8), undefined);
    assert.throws(() => s.entry(9), /outside the log/);
    assertEntries(s, [dataEntry(10, 1), ...range(11, 30, 4)]);
    await s.purgeBelow(1_000); // never the open segment
    assert.ok(segmentNames(dir).some((n) => n.startsWith('log_inprogress_')));
    await s.close();
    const r = RaftStorage.open(dir, opts);
    assert.equal(r.firstIndex(), s.firstIndex());
    assert.equal(r.lastIndex(), 30);
    assert.equal(r.term(r.firstIndex() - 1), undefined); // not persisted across a reopen
    await r.close();
  } finally {
    cleanup();
  }
});

test('reset after a snapshot install empties the log at a new start', async () => {
  const { dir, cleanup } = tempDir('reset');
  try {
    const s = RaftStorage.open(dir, { segmentSizeBytes: 420 });
    await s.append(range(1, 30, 1));
    await s.reset(101, 7);
    assert.deepEqual(segmentNames(dir), []);
    assert.equal(s.firstIndex(), 101);
    assert.equal(s.lastIndex(), 100);
    assert.equal(s.durableIndex(), 100);
    assert.equal(s.term(100), 7);
    assert.throws(() => void s.append([dataEntry(50, 7)]), /expected 101/);
    await s.append(range(101, 103, 8));
    await s.close();
    const r = RaftStorage.open(dir);
    assert.equal(r.firstIndex(), 101);
    assertEntries(r, range(101, 103, 8));
    await r.close();
  } finally {
    cleanup();
  }
});

test('group commit: concurrent appends share fdatasyncs and resolve in order', async () => {
  const { dir, cleanup } = tempDir('group');
  try {
    const s = RaftStorage.open(dir);
    const order: number[] = [];
    const promises: Promise<void>[] = [];
    for (let i = 1; i <= 200; i++) {
      promises.push(s.append([dataEntry(i, 1)]).then(() => void order.push(i)));
    }
    await Promise.all(promises);
    assert.deepEqual(order, range(1, 200, 1).map((e) => e.index));
    // 200 appends issued at once: the first batch is flushed alone, the rest join the next.
    assert.ok(s.syncCount() <= 3, `expected grouped fdatasyncs, got ${s.syncCount()}`);
    await s.close();
  } finally {
    cleanup();
  }
});

test('preallocation pads the open segment with zeros; closing seals it without padding; recovery after a crash drops the padding', async () => {
  const { dir, cleanup } = tempDir('prealloc');
  try {
    const opts = { segmentSizeBytes: 4096, preallocateBytes: 8192, cacheBytes: 0 };
    const s = RaftStorage.open(dir, opts);
    await s.append(range(1, 150, 1));
    const open = segmentNames(dir).find((n) => n.startsWith('log_inprogress_'))!;
    const bytes = readFileSync(join(dir, 'current', open));
    assert.ok(bytes.length > 8192, 'open segment is preallocated');
    assert.equal(bytes[bytes.length - 1], 0);
    await s.close();
    // A clean close seals the open segment: every segment is closed, none keeps padding.
    assert.equal(segmentNames(dir).filter((n) => n.startsWith('log_inprogress_')).length, 0);
    for (const n of segmentNames(dir)) {
      const b = readFileSync(join(dir, 'current', n));
      assert.notEqual(b[b.length - 1], 0, `closed segment ${n} keeps no padding`); // ends with a CRC byte (non-zero here)
    }
    const sealed = segmentNames(dir).find((n) => n.startsWith(`log_${open.slice('log_inprogress_'.length)}-`))!;
    assert.ok(sealed, `${open} was sealed`);
    // A crash leaves the open segment as it was, padding and all.
    unlinkSync(join(dir, 'current', sealed));
    writeFileSync(join(dir, 'current', open), bytes);
    const warnings: string[] = [];
    const r = RaftStorage.open(dir, { ...opts, onWarning: (m) => warnings.push(m) });
    assert.equal(r.lastIndex(), 150);
    assertEntries(r, range(1, 150, 1));
    assert.ok(statSync(join(dir, 'current', open)).size < bytes.length, 'padding truncated on recovery');
    await r.append(range(151, 160, 1));
    await r.close();
    const again = RaftStorage.open(dir, opts);
    assertEntries(again, range(1, 160, 1));
    await again.close();
  } finally {
    cleanup();
  }
});

test('the recent-entry cache stays within its byte bound', async () => {
  const { dir, cleanup } = tempDir('cache');
  try {
    const s = RaftStorage.open(dir, { cacheBytes: 2000 });
    await s.append(range(1, 500, 1, 100));
    const cache = (s as unknown as { log: { cache: { byteSize: number; startIndex: number } } }).log.cache;
    assert.ok(cache.byteSize <= 2000, `cache holds ${cache.byteSize} bytes`);
    assert.ok(cache.startIndex > 400);
    assertEntries(s, range(1, 500, 1, 100));
    await s.close();
  } finally {
    cleanup();
  }
});

test('raft-meta and raft-meta.conf are written atomically and read back; leftover tmp is removed', async () => {
  const { dir, cleanup } = tempDir('meta');
  try {
    const s = RaftStorage.open(dir);
    assert.deepEqual(s.readMeta(), { term: 0, votedFor: '' });
    assert.equal(s.readConf(), undefined);
    await s.saveMeta(5, 'scm-2');
    const conf: LogEntry = {
      term: 5,
      index: 9,
      payload: { kind: 'config', peers: [{ id: 'scm-1', address: 'h1:9894', priority: 0 }], listeners: [] },
    };
    await s.saveConf(conf);
    await assert.rejects(s.saveConf(dataEntry(1, 1)), /holds a configuration entry/);
    const text = readFileSync(join(dir, 'current', 'raft-meta'), 'utf8');
    assert.match(text, /^term=5$/m);
    assert.match(text, /^votedFor=scm-2$/m);
    await s.close();
    writeFileSync(join(dir, 'current', 'raft-meta.tmp'), 'term=99\n');
    const warnings: string[] = [];
    const r = RaftStorage.open(dir, { onWarning: (m) => warnings.push(m) });
    assert.deepEqual(r.readMeta(), { term: 5, votedFor: 'scm-2' });
    assert.deepEqual(r.readConf(), conf);
    assert.equal(existsSync(join(dir, 'current', 'raft-meta.tmp')), false);
    assert.ok(warnings.some((w) => w.includes('raft-meta.tmp')));
    await r.saveMeta(6, '');
    assert.deepEqual(r.readMeta(), { term: 6, votedFor: '' });
    await r.close();
  } finally {
    cleanup();
  }
});

test('in_use.lock: a second open fails naming the directory and holder; a dead holder is taken over', async () => {
  const { dir, cleanup } = tempDir('lock');
  try {
    const s = RaftStorage.open(dir);
    assert.throws(() => RaftStorage.open(dir), (err: Error) => err.message.includes(dir) && err.message.includes('already open'));
    await s.close();
    assert.equal(existsSync(join(dir, 'in_use.lock')), false);

    // A live holder in another process (our parent, which outlives this test).
    const { hostname } = await import('node:os');
    const live = { pid: process.ppid, host: hostname(), startTime: '2024-01-01T00:00:00.000Z' };
    writeFileSync(join(dir, 'in_use.lock'), JSON.stringify(live));
    assert.throws(
      () => RaftStorage.open(dir),
      (err: Error) => err.message.includes(dir) && err.message.includes(`pid ${process.ppid}`) && err.message.includes('2024-01-01'),
    );

    // A holder that no longer exists: find a pid that is not alive.
    let dead = 999_999;
    for (;;) {
      try {
        process.kill(dead, 0);
        dead--;
      } catch {
        break;
      }
    }
    writeFileSync(join(dir, 'in_use.lock'), JSON.stringify({ ...live, pid: dead }));
    const warnings: string[] = [];
    const r = RaftStorage.open(dir, { onWarning: (m) => warnings.push(m) });
    assert.ok(warnings.some((w) => w.includes('stale lock') && w.includes(String(dead))));
    assert.equal(JSON.parse(readFileSync(join(dir, 'in_use.lock'), 'utf8')).pid, process.pid);
    await r.close();

    // Our own pid in the lock (a container restart) is stale too.
    writeFileSync(join(dir, 'in_use.lock'), JSON.stringify({ ...live, pid: process.pid }));
    const again = RaftStorage.open(dir);
    await again.close();
    assert.equal(basename(dir).length > 0, true);
  } finally {
    cleanup();
  }
});

test('bad options are rejected with a message naming the option', async () => {
  const { dir, cleanup } = tempDir('opts');
  try {
    assert.throws(
      () => RaftStorage.open(dir, { corruptionPolicy: 'IGNORE' as 'EXCEPTION' }),
      /ozone.scm.ha.ratis.log.corruption.policy must be one of EXCEPTION, WARN_AND_RETURN/,
    );
    assert.throws(() => RaftStorage.open(dir, { segmentSizeBytes: 4 }), /segment size/);
    // The failed opens released the lock.
    const s = RaftStorage.open(dir);
    await s.close();
  } finally {
    cleanup();
  }
});

/**
 * Counts calls of one FileHandle method (a thread-pool operation) in this process until restore():
 * how the tests below tell an asynchronous write or fdatasync from a synchronous one.
 */
async function countFileHandleCalls(dir: string, method: 'write' | 'datasync'): Promise<{ count(): number; restore(): void }> {
  const { open } = await import('node:fs/promises');
  const probe = await open(join(dir, 'probe'), 'w');
  const proto = Object.getPrototypeOf(probe) as Record<typeof method, (...args: unknown[]) => unknown>;
  await probe.close();
  const original = proto[method];
  let calls = 0;
  proto[method] = function (this: unknown, ...args: unknown[]) {
    calls++;
    return original.apply(this, args);
  };
  return { count: () => calls, restore: () => void (proto[method] = original) };
}

test('a small append costs one thread-pool trip (its fdatasync): the frames are written synchronously', async () => {
  const { dir, cleanup } = tempDir('syncwrite');
  const asyncWrites = await countFileHandleCalls(dir, 'write');
  try {
    const s = RaftStorage.open(dir, { preallocateBytes: 0 });
    await s.append(range(1, 3, 1));
    const before = asyncWrites.count(); // the new segment's header
    await s.append(range(4, 10, 1));
    await s.append([dataEntry(11, 1)]);
    assert.equal(asyncWrites.count() - before, 0, 'small appends went through asynchronous writes');
    await s.close();
    const reopened = RaftStorage.open(dir, { preallocateBytes: 0 });
    assertEntries(reopened, range(1, 11, 1));
    await reopened.close();
  } finally {
    asyncWrites.restore();
    cleanup();
  }
});

test("setFsyncOnLoop: a follower's fdatasync runs on the event loop (no thread-pool call); off, it goes back to the pool", async () => {
  const { dir, cleanup } = tempDir('fsync-on-loop');
  const poolSyncs = await countFileHandleCalls(dir, 'datasync');
  try {
    const s = RaftStorage.open(dir, { preallocateBytes: 0 });
    await s.append(range(1, 3, 1));
    let before = poolSyncs.count(); // the new segment's own
    await s.append([dataEntry(4, 1)]);
    assert.equal(poolSyncs.count() - before, 1, 'by default the fdatasync is a thread-pool call');
    before = poolSyncs.count();
    s.setFsyncOnLoop(true);
    const syncsBefore = s.syncCount();
    await s.append(range(5, 10, 1));
    await s.append([dataEntry(11, 1)]);
    assert.equal(poolSyncs.count() - before, 0, 'an fdatasync went to the thread pool while on the loop');
    assert.equal(s.syncCount() - syncsBefore, 2, 'each append was made durable');
    s.setFsyncOnLoop(false);
    await s.append([dataEntry(12, 1)]);
    assert.equal(poolSyncs.count() - before, 1, 'back on the thread pool');
    await s.close();
    const reopened = RaftStorage.open(dir, { preallocateBytes: 0 });
    assertEntries(reopened, range(1, 12, 1));
    await reopened.close();
  } finally {
    poolSyncs.restore();
    cleanup();
  }
});

test('configurationIndexes names the configuration entries without reading the log, across segments, truncation, purge and a reopen', async () => {
  const { dir, cleanup } = tempDir('config-indexes');
  const config = (index: number, term: number): LogEntry => ({ index, term, payload: { kind: 'config', peers: [{ id: `scm${index}`, address: `h:${index}`, priority: 0 }], listeners: [] } });
  try {
    const opts = { segmentSizeBytes: 420, cacheBytes: 0 };
    const s = RaftStorage.open(dir, opts);
    await s.append([config(1, 1), ...range(2, 12, 1), config(13, 1), ...range(14, 30, 2), config(31, 2), ...range(32, 40, 2)]);
    assert.ok(segmentNames(dir).length >= 3, 'spans several segments');
    assert.deepEqual(s.configurationIndexes(1, 41), [1, 13, 31]);
    assert.deepEqual(s.configurationIndexes(2, 31), [13]);
    assert.deepEqual(s.configurationIndexes(0, 1_000), [1, 13, 31], 'clamped to the log');
    await s.truncateFrom(31);
    assert.deepEqual(s.configurationIndexes(1, 41), [1, 13]);
    await s.append([...range(31, 35, 3), config(36, 3)]);
    assert.deepEqual(s.configurationIndexes(1, 41), [1, 13, 36]);
    await s.close();

    // Recovery finds them in the files.
    const r = RaftStorage.open(dir, opts);
    assert.deepEqual(r.configurationIndexes(1, 41), [1, 13, 36]);
    for (const i of r.configurationIndexes(1, 41)) assert.equal(r.entry(i).payload.kind, 'config');
    await r.purgeBelow(20);
    assert.ok(r.firstIndex() > 1);
    assert.deepEqual(r.configurationIndexes(1, 41), [13, 36].filter((i) => i >= r.firstIndex()));
    await r.close();
  } finally {
    cleanup();
  }
});
