import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RaftStorage } from '../../src/storage/raft-storage.js';
import { scanSegment } from '../../src/storage/segment-format.js';
import { range, tempDir } from './helpers.js';

/**
 * The last segment as a crash leaves it: open (log_inprogress_<first>). A clean close seals it, so
 * a closed last segment is renamed back; a torn tail is only ever found in an open segment.
 */
function openSegmentPath(groupDir: string): string {
  const current = join(groupDir, 'current');
  const last = readdirSync(current)
    .filter((n) => /^log_(inprogress_)?\d+(-\d+)?$/.test(n))
    .sort((a, b) => Number(/\d+/.exec(a)![0]) - Number(/\d+/.exec(b)![0]))
    .at(-1);
  assert.ok(last, 'a segment exists');
  const path = join(current, `log_inprogress_${/\d+/.exec(last)![0]}`);
  renameSync(join(current, last), path);
  return path;
}

test('torn tail at every byte offset of the last entry: reopen keeps exactly the complete entries', async () => {
  const { dir, cleanup } = tempDir('torn');
  try {
    const s = RaftStorage.open(dir);
    await s.append(range(1, 6, 1, 40));
    await s.close();
    const path = openSegmentPath(dir);
    const original = readFileSync(path);
    const last = scanSegment(original).frames.at(-1)!;
    assert.equal(last.index, 6);
    assert.equal(last.offset + last.size, original.length);
    for (let cut = last.offset; cut < original.length; cut++) {
      for (const padded of [false, true]) {
        // Without preallocation the file simply ends early; with it, the unwritten rest is zeros.
        const torn = padded
          ? Buffer.concat([original.subarray(0, cut), Buffer.alloc(original.length - cut + 512)])
          : original.subarray(0, cut);
        writeFileSync(path, torn);
        const r = RaftStorage.open(dir, { cacheBytes: 0 });
        try {
          assert.equal(r.lastIndex(), 5, `cut at ${cut} (padded ${padded})`);
          assert.deepEqual(r.entries(1, 6, Infinity), range(1, 5, 1, 40));
          assert.equal(readFileSync(path).length, last.offset, 'the torn bytes are cut off');
        } finally {
          await r.close();
        }
        assert.equal(openSegmentPath(dir), path, 'the close sealed it; open again for the next cut');
      }
    }
    // After the repair the log continues normally.
    const r = RaftStorage.open(dir);
    await r.append(range(6, 8, 2, 40));
    await r.close();
    const again = RaftStorage.open(dir, { cacheBytes: 0 });
    assert.deepEqual(again.entries(1, 9, Infinity), [...range(1, 5, 1, 40), ...range(6, 8, 2, 40)]);
    await again.close();
  } finally {
    cleanup();
  }
});

test('an open segment holding only part of its header is removed as empty', async () => {
  const { dir, cleanup } = tempDir('torn-header');
  try {
    const s = RaftStorage.open(dir, { segmentSizeBytes: 200 });
    await s.append(range(1, 6, 1, 40));
    await s.close();
    const path = openSegmentPath(dir);
    writeFileSync(path, Buffer.from('Raft'));
    const warnings: string[] = [];
    const r = RaftStorage.open(dir, { onWarning: (m) => warnings.push(m) });
    assert.ok(warnings.some((w) => w.includes('removed empty open segment')));
    assert.ok(r.lastIndex() >= 1 && r.lastIndex() < 6);
    assert.deepEqual(r.entries(1, r.lastIndex() + 1, Infinity), range(1, r.lastIndex(), 1, 40));
    await r.close();
  } finally {
    cleanup();
  }
});
