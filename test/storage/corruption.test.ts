import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RaftStorage } from '../../src/storage/raft-storage.js';
import { LogCorruptionError } from '../../src/storage/log-recovery.js';
import { scanSegment } from '../../src/storage/segment-format.js';
import { range, tempDir } from './helpers.js';
import { mulberry32 } from '../seeded-random.js';

const SEED = Number(process.env.STORAGE_TEST_SEED ?? Date.now() % 1_000_000);

function segmentPaths(groupDir: string): string[] {
  const cur = join(groupDir, 'current');
  return readdirSync(cur)
    .filter((n) => n.startsWith('log_') && !n.endsWith('.corrupt'))
    .sort((a, b) => Number(/\d+/.exec(a)![0]) - Number(/\d+/.exec(b)![0]))
    .map((n) => join(cur, n));
}

test('a flipped bit in any entry is detected on open and never returned as data', async () => {
  console.log(`corruption test seed ${SEED} (set STORAGE_TEST_SEED to replay)`);
  const rand = mulberry32(SEED);
  const { dir, cleanup } = tempDir('flip');
  try {
    const expected = range(1, 24, 1, 24);
    const s = RaftStorage.open(dir, { segmentSizeBytes: 300 });
    await s.append(expected);
    await s.close();
    // As a crash leaves it, the last segment open (a clean close seals it): the one place where a
    // damaged last frame may look like a torn write.
    const sealed = segmentPaths(dir).at(-1)!;
    renameSync(sealed, join(dir, 'current', `log_inprogress_${/log_(\d+)-/.exec(sealed)![1]}`));
    const files = segmentPaths(dir).map((path) => ({ path, bytes: readFileSync(path) }));
    assert.ok(files.length >= 3);
    // Every byte of every entry (headers too) in every segment, with a random bit of it flipped.
    for (const [fi, file] of files.entries()) {
      const frames = scanSegment(file.bytes).frames;
      const isOpenSegment = fi === files.length - 1;
      for (let pos = 0; pos < file.bytes.length; pos++) {
        const bit = Math.floor(rand() * 8);
        const flipped = Buffer.from(file.bytes);
        flipped[pos]! ^= 1 << bit;
        writeFileSync(file.path, flipped);
        const hitIndex = frames.find((f) => pos >= f.offset && pos < f.offset + f.size)?.index ?? frames[0]!.index;
        let r: RaftStorage | undefined;
        try {
          r = RaftStorage.open(dir, { cacheBytes: 0, onWarning: () => undefined });
        } catch (err) {
          assert.ok(err instanceof LogCorruptionError, `pos ${pos}: ${(err as Error).message}`);
          assert.ok(err.message.includes(file.path) && /byte offset \d+/.test(err.message));
        }
        if (r) {
          // Only a flip in the open segment's last frame can look like a torn write; it is then
          // cut off, never returned.
          assert.ok(isOpenSegment, `flip at ${file.path}:${pos} bit ${bit} went undetected`);
          assert.ok(r.lastIndex() < hitIndex, `flip at ${pos} returned entry ${hitIndex}`);
          assert.deepEqual(r.entries(1, r.lastIndex() + 1, Infinity), expected.slice(0, r.lastIndex()));
          await r.close();
        }
        // Restore every file (a torn-tail repair may have cut the open segment).
        for (const f of files) writeFileSync(f.path, f.bytes);
      }
    }
  } finally {
    cleanup();
  }
});

test('corruption that appears after open is caught by the CRC check on read', async () => {
  const { dir, cleanup } = tempDir('flip-read');
  try {
    const s = RaftStorage.open(dir, { cacheBytes: 0 });
    await s.append(range(1, 10, 1, 24));
    const [path] = segmentPaths(dir);
    const bytes = readFileSync(path!);
    const f = scanSegment(bytes).frames[4]!;
    bytes[f.offset + f.size - 10]! ^= 0x10;
    writeFileSync(path!, bytes);
    assert.throws(() => s.entry(5), /corrupt log entry at .*byte offset \d+: CRC32C mismatch/);
    assert.deepEqual(s.entry(4), range(4, 4, 1, 24)[0]);
    await s.close();
  } finally {
    cleanup();
  }
});

test('WARN_AND_RETURN ends the log before the corruption and keeps later segments aside', async () => {
  const { dir, cleanup } = tempDir('warn');
  try {
    const s = RaftStorage.open(dir, { segmentSizeBytes: 300 });
    await s.append(range(1, 30, 1, 24));
    await s.close();
    const paths = segmentPaths(dir);
    const second = paths[1]!;
    const bytes = readFileSync(second);
    const frames = scanSegment(bytes).frames;
    const bad = frames[2]!;
    bytes[bad.offset + 6]! ^= 0x01;
    writeFileSync(second, bytes);

    assert.throws(() => RaftStorage.open(dir), (err: Error) => err instanceof LogCorruptionError && err.message.includes(second));

    const warnings: string[] = [];
    const r = RaftStorage.open(dir, { corruptionPolicy: 'WARN_AND_RETURN', onWarning: (m) => warnings.push(m), cacheBytes: 0 });
    assert.equal(r.lastIndex(), bad.index - 1);
    assert.deepEqual(r.entries(1, bad.index, Infinity), range(1, bad.index - 1, 1, 24));
    assert.ok(warnings.some((w) => w.includes('WARN_AND_RETURN') && w.includes(`byte offset ${bad.offset}`)));
    const names = readdirSync(join(dir, 'current'));
    assert.ok(names.some((n) => n.endsWith('.corrupt')), 'later data kept aside');
    await r.append(range(bad.index, bad.index + 3, 2, 24));
    await r.close();
    const again = RaftStorage.open(dir, { cacheBytes: 0 });
    assert.equal(again.lastIndex(), bad.index + 3);
    await again.close();
  } finally {
    cleanup();
  }
});

test('an index gap between segments stops the open with an error naming the files', async () => {
  const { dir, cleanup } = tempDir('gap');
  try {
    const s = RaftStorage.open(dir, { segmentSizeBytes: 300 });
    await s.append(range(1, 30, 1, 24));
    await s.close();
    const paths = segmentPaths(dir);
    const { unlinkSync } = await import('node:fs');
    unlinkSync(paths[1]!);
    assert.throws(() => RaftStorage.open(dir), /index gap: previous segment log_1-\d+ ends at \d+, this one starts at \d+/);
  } finally {
    cleanup();
  }
});
