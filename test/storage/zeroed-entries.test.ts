// Zeros where acknowledged entries were: never dropped without a word. A cleanly closed log's last
// segment is complete on disk, so zeros at its tail are lost entries: dropped with a warning naming
// the file and the index range, and reported for a metric. Zeros followed by a complete, later
// entry are corruption, not padding: refused. A stray open segment that holds nothing is removed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RaftStorage, type DroppedEntries } from '../../src/storage/raft-storage.js';
import { LogCorruptionError } from '../../src/storage/log-recovery.js';
import { scanSegment, SEGMENT_HEADER } from '../../src/storage/segment-format.js';
import { range, tempDir } from './helpers.js';

function segmentFiles(groupDir: string): string[] {
  return readdirSync(join(groupDir, 'current'))
    .filter((n) => /^log_(inprogress_)?\d+(-\d+)?$/.test(n))
    .sort((a, b) => Number(/\d+/.exec(a)![0]) - Number(/\d+/.exec(b)![0]));
}

/** The last segment, renamed log_inprogress_<first> if it is closed: what a crash leaves. */
function asLeftByACrash(groupDir: string): string {
  const last = segmentFiles(groupDir).at(-1)!;
  const first = Number(/\d+/.exec(last)![0]);
  const path = join(groupDir, 'current', `log_inprogress_${first}`);
  renameSync(join(groupDir, 'current', last), path);
  return path;
}

/** Overwrites the frames of entries [from, to] in `path` with zeros, keeping the file's length. */
function zeroEntries(path: string, from: number, to: number): { offset: number; end: number } {
  const bytes = readFileSync(path);
  const frames = scanSegment(bytes).frames.filter((f) => f.index >= from && f.index <= to);
  assert.equal(frames.length, to - from + 1, `entries ${from}..${to} are in ${path}`);
  const offset = frames[0]!.offset;
  const end = frames.at(-1)!.offset + frames.at(-1)!.size;
  bytes.fill(0, offset, end);
  writeFileSync(path, bytes);
  return { offset, end };
}

function opened(dir: string, extra: Parameters<typeof RaftStorage.open>[1] = {}): { s: RaftStorage; warnings: string[]; dropped: DroppedEntries[] } {
  const warnings: string[] = [];
  const dropped: DroppedEntries[] = [];
  const s = RaftStorage.open(dir, { cacheBytes: 0, onWarning: (m) => warnings.push(m), onLogEntriesDropped: (d) => dropped.push(d), ...extra });
  return { s, warnings, dropped };
}

for (const preallocateBytes of [0, 16 * 1024]) {
  test(`zeroed acknowledged entries at the tail of the log are dropped with a warning and reported (preallocation ${preallocateBytes})`, async () => {
    const { dir, cleanup } = tempDir('zero-tail');
    try {
      const w = RaftStorage.open(dir, { preallocateBytes, segmentSizeBytes: 4096 });
      await w.append(range(1, 20, 1, 40));
      assert.equal(w.durableIndex(), 20, 'every entry is acknowledged');
      await w.close();
      const last = segmentFiles(dir).at(-1)!;
      const path = join(dir, 'current', last);
      zeroEntries(path, 18, 20);

      const { s, warnings, dropped } = opened(dir, { preallocateBytes, segmentSizeBytes: 4096 });
      assert.equal(s.lastIndex(), 17);
      assert.deepEqual(s.entries(1, 18, Infinity), range(1, 17, 1, 40));
      const warning = warnings.find((m) => m.includes(path) && m.includes('18..20'));
      assert.ok(warning, `a warning names ${path} and entries 18..20: ${JSON.stringify(warnings)}`);
      assert.match(warning, /zeros/);
      assert.deepEqual(dropped, [{ file: path, firstIndex: 18, lastIndex: 20, reason: 'zeroed' }]);
      // The log goes on from 18, and a reopen finds nothing more to drop.
      await s.append(range(18, 22, 2, 40));
      await s.close();
      const again = opened(dir);
      assert.equal(again.s.lastIndex(), 22);
      assert.deepEqual(again.dropped, []);
      await again.s.close();
    } finally {
      cleanup();
    }
  });
}

test('a whole last segment of zeros (header included) is dropped with a warning naming its range', async () => {
  const { dir, cleanup } = tempDir('zero-segment');
  try {
    const w = RaftStorage.open(dir, { segmentSizeBytes: 420 });
    await w.append(range(1, 20, 1));
    await w.close();
    const files = segmentFiles(dir);
    const last = join(dir, 'current', files.at(-1)!);
    const first = scanSegment(readFileSync(last)).frames[0]!.index;
    writeFileSync(last, Buffer.alloc(readFileSync(last).length));
    const { s, warnings, dropped } = opened(dir);
    assert.equal(s.lastIndex(), first - 1);
    assert.deepEqual(dropped, [{ file: last, firstIndex: first, lastIndex: 20, reason: 'zeroed' }]);
    assert.ok(warnings.some((m) => m.includes(last) && m.includes(`${first}..20`)));
    await s.close();
  } finally {
    cleanup();
  }
});

test('zeros followed by a complete later entry in the open segment are corruption, not a torn tail: refused', async () => {
  const { dir, cleanup } = tempDir('zero-hole');
  try {
    const w = RaftStorage.open(dir, { preallocateBytes: 8192 });
    await w.append(range(1, 20, 1, 40));
    await w.close();
    const path = asLeftByACrash(dir);
    const hole = zeroEntries(path, 12, 14);
    assert.throws(
      () => RaftStorage.open(dir),
      (err: Error) =>
        err instanceof LogCorruptionError &&
        err.file === path &&
        err.offset === hole.offset &&
        err.message.includes(`byte offset ${hole.offset}`) &&
        /entry 15/.test(err.message) &&
        /zeros/.test(err.message),
    );
    // Nothing was cut by the refused open.
    assert.equal(scanSegment(readFileSync(path)).frames.length, 11);
    assert.equal(readFileSync(path).length > hole.end, true);

    // WARN_AND_RETURN (the operator's choice) ends the log before the zeros and reports what it cut.
    const { s, warnings, dropped } = opened(dir, { corruptionPolicy: 'WARN_AND_RETURN' });
    assert.equal(s.lastIndex(), 11);
    assert.deepEqual(dropped, [{ file: path, firstIndex: 12, lastIndex: 20, reason: 'corruption-policy' }]);
    assert.ok(warnings.some((m) => m.includes('WARN_AND_RETURN') && m.includes(path)));
    assert.ok(readdirSync(join(dir, 'current')).includes('log_inprogress_1.corrupt'), 'the damaged file is kept');
    await s.close();
  } finally {
    cleanup();
  }
});

test('zeros inside a closed segment that later segments follow are refused', async () => {
  const { dir, cleanup } = tempDir('zero-closed-middle');
  try {
    const w = RaftStorage.open(dir, { segmentSizeBytes: 420 });
    await w.append(range(1, 30, 1));
    await w.close();
    const first = join(dir, 'current', segmentFiles(dir)[0]!);
    zeroEntries(first, 7, 9);
    assert.throws(() => RaftStorage.open(dir), (err: Error) => err instanceof LogCorruptionError && err.file === first && /7\.\.9/.test(err.message));
  } finally {
    cleanup();
  }
});

test('after a crash, zeros then bytes that hold no complete entry are a torn write: cut with a warning', async () => {
  const { dir, cleanup } = tempDir('zero-torn');
  try {
    const w = RaftStorage.open(dir, { preallocateBytes: 8192 });
    await w.append(range(1, 10, 1, 40));
    await w.close();
    const path = asLeftByACrash(dir);
    const bytes = readFileSync(path);
    const f10 = scanSegment(bytes).frames[9]!;
    // Entry 10's first bytes never landed: zeros, then the rest of an unacknowledged write.
    bytes.fill(0, f10.offset, f10.offset + 10);
    const padded = Buffer.concat([bytes, Buffer.alloc(4096)]);
    writeFileSync(path, padded);
    const { s, warnings, dropped } = opened(dir);
    assert.equal(s.lastIndex(), 9);
    assert.ok(warnings.some((m) => m.includes(path) && m.includes('torn tail')));
    assert.deepEqual(dropped, []);
    await s.close();
  } finally {
    cleanup();
  }
});

test('a stray empty log_inprogress_N anywhere is removed with a warning instead of blocking start-up', async () => {
  const shapes: [string, Buffer][] = [
    ['no bytes', Buffer.alloc(0)],
    ['part of the header', SEGMENT_HEADER.subarray(0, 3)],
    ['the header alone', SEGMENT_HEADER],
    ['the header and zeros', Buffer.concat([SEGMENT_HEADER, Buffer.alloc(4096)])],
    ['zeros', Buffer.alloc(4096)],
  ];
  for (const [what, content] of shapes) {
    for (const stray of [5, 30, 100]) {
      const { dir, cleanup } = tempDir('stray');
      try {
        const w = RaftStorage.open(dir, { segmentSizeBytes: 420 });
        await w.append(range(1, 30, 1));
        await w.close();
        asLeftByACrash(dir); // a real open segment at the end too
        const strayPath = join(dir, 'current', `log_inprogress_${stray}`);
        writeFileSync(strayPath, content);
        const { s, warnings } = opened(dir);
        assert.equal(s.lastIndex(), 30, `${what} at ${stray}`);
        assert.deepEqual(s.entries(1, 31, Infinity), range(1, 30, 1));
        assert.ok(
          warnings.some((m) => m.includes(strayPath) && m.includes('holds no entries')),
          `${what} at ${stray}: ${JSON.stringify(warnings)}`,
        );
        assert.ok(!segmentFiles(dir).includes(`log_inprogress_${stray}`));
        await s.close();
      } finally {
        cleanup();
      }
    }
  }
});
