// The MANIFEST reader against real LevelDB output and against hand-built logs that exercise the
// framing LevelDB's writer produces: fragments across 32 KiB blocks, trailer padding, torn tails.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Level } from 'level';
import type { ClassicLevel } from 'classic-level';
import { crc32c } from '../../src/crc32c.js';
import { readManifest, LevelDbFormatError } from '../../src/snapshot/leveldb-manifest.js';
import { applyContainers, createScmDb, withTempDir } from './helpers.js';

const BLOCK = 32 * 1024;

function varint(n: number): number[] {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n % 128) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
}

function lengthPrefixed(bytes: Uint8Array): number[] {
  return [...varint(bytes.length), ...bytes];
}

type Field =
  | { comparator: string }
  | { logNumber: number }
  | { prevLogNumber: number }
  | { nextFileNumber: number }
  | { lastSequence: number }
  | { deleted: [level: number, file: number] }
  | { added: [level: number, file: number] };

function encodeEdit(fields: Field[]): Uint8Array {
  const out: number[] = [];
  for (const f of fields) {
    if ('comparator' in f) out.push(...varint(1), ...lengthPrefixed(Buffer.from(f.comparator)));
    else if ('logNumber' in f) out.push(...varint(2), ...varint(f.logNumber));
    else if ('nextFileNumber' in f) out.push(...varint(3), ...varint(f.nextFileNumber));
    else if ('lastSequence' in f) out.push(...varint(4), ...varint(f.lastSequence));
    else if ('deleted' in f) out.push(...varint(6), ...varint(f.deleted[0]), ...varint(f.deleted[1]));
    else if ('added' in f) out.push(...varint(7), ...varint(f.added[0]), ...varint(f.added[1]), ...varint(4096), ...lengthPrefixed(Buffer.from('a')), ...lengthPrefixed(Buffer.from('z')));
    else out.push(...varint(9), ...varint(f.prevLogNumber));
  }
  return Uint8Array.from(out);
}

function mask(crc: number): number {
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

/** LevelDB's log writer: records fragmented over 32 KiB blocks, block tails under 7 bytes zeroed. */
function encodeLog(records: Uint8Array[]): { bytes: Buffer; starts: number[] } {
  const parts: Buffer[] = [];
  const starts: number[] = [];
  let offset = 0;
  for (const record of records) {
    let left = record;
    let first = true;
    do {
      const leftover = BLOCK - (offset % BLOCK);
      if (leftover < 7) {
        parts.push(Buffer.alloc(leftover));
        offset += leftover;
      }
      if (first) starts.push(offset);
      const room = BLOCK - (offset % BLOCK) - 7;
      const fragment = left.subarray(0, Math.min(room, left.length));
      const last = fragment.length === left.length;
      const type = first && last ? 1 : first ? 2 : last ? 4 : 3;
      const header = Buffer.alloc(7);
      header.writeUInt32LE(mask(crc32c(fragment, crc32c(Uint8Array.of(type)))), 0);
      header.writeUInt16LE(fragment.length, 4);
      header[6] = type;
      parts.push(header, Buffer.from(fragment));
      offset += 7 + fragment.length;
      left = left.subarray(fragment.length);
      first = false;
    } while (left.length > 0);
  }
  return { bytes: Buffer.concat(parts), starts };
}

test('manifest of a real LevelDB: the live tables are exactly the table files it keeps', async () => {
  await withTempDir('snap-mf-', async (dir) => {
    const path = join(dir, 'scm.db');
    const db = await createScmDb(path, 5_000, { term: 1, index: 1 });
    for (let i = 2; i < 6; i++) await applyContainers(db, 5_000 + i * 100, 100, { term: 1, index: i });
    await (db as unknown as ClassicLevel<string, string>).compactRange('\x00', '\xff');
    await applyContainers(db, 9_000, 100, { term: 1, index: 7 });
    await db.close();
    // Reopened: LevelDB has replayed its log into a table and deleted every obsolete file.
    const again = new Level(path);
    await again.open();
    await again.close();
    const names = await readdir(path);
    const current = (await readFile(join(path, 'CURRENT'), 'utf8')).trim();
    const state = await readManifest(await readFile(join(path, current)), current);
    const tables = names.filter((n) => /^\d+\.ldb$/.test(n)).map((n) => Number.parseInt(n, 10));
    assert.ok(tables.length > 0);
    assert.deepEqual([...state.liveTables].sort((a, b) => a - b), tables.sort((a, b) => a - b));
    const logs = names.filter((n) => /^\d+\.log$/.test(n)).map((n) => Number.parseInt(n, 10));
    assert.ok(logs.every((n) => n >= state.logNumber), `logs ${logs.join(',')} at or above the log number ${state.logNumber}`);
  });
});

/** An edit that encodes to exactly `size` bytes (a comparator name of the right length). */
function editOfSize(size: number, rest: Field[]): Uint8Array {
  for (let name = Math.max(0, size - 64); name <= size; name++) {
    const edit = encodeEdit([{ comparator: 'c'.repeat(name) }, ...rest]);
    if (edit.length === size) return edit;
  }
  throw new Error(`no edit of ${size} bytes`);
}

test('manifest framing: trailer padding, fragments across blocks, deletions before additions, torn tails', async () => {
  const edits = [
    // 7 + (BLOCK - 10) bytes: 3 bytes are left in the first block, which the writer zero-fills.
    editOfSize(BLOCK - 10, [{ logNumber: 3 }, { nextFileNumber: 5 }, { lastSequence: 0 }]),
    encodeEdit([{ added: [0, 5] }, { added: [0, 6] }, { logNumber: 7 }, { nextFileNumber: 8 }]),
    // Longer than a block: FIRST, MIDDLE and LAST fragments.
    encodeEdit([{ comparator: 'x'.repeat(70_000) }, { added: [0, 8] }, { nextFileNumber: 9 }]),
    // A trivial move: deleted at level 0 and added at level 1 in one edit.
    encodeEdit([{ deleted: [0, 5] }, { added: [1, 5] }, { deleted: [0, 6] }, { nextFileNumber: 10 }, { logNumber: 9 }, { prevLogNumber: 0 }]),
  ];
  const { bytes, starts } = encodeLog(edits);
  assert.equal(starts[1], BLOCK, 'the second record starts after the trailer padding');
  assert.ok(starts[3]! - starts[2]! > 2 * BLOCK, 'the third record spans three blocks');
  const state = await readManifest(bytes);
  assert.deepEqual([...state.liveTables].sort((a, b) => a - b), [5, 8]);
  assert.equal(state.logNumber, 9);
  assert.equal(state.nextFileNumber, 10);
  assert.equal(state.edits, 4);

  // Cut anywhere inside the last two records: a record that runs past the end is ignored, as
  // LevelDB's reader does, and the state is the one before it.
  const expectedAfter = [[5, 6], [5, 6, 8]];
  for (let cut = starts[2]! + 1; cut < bytes.length; cut += 97) {
    const torn = await readManifest(bytes.subarray(0, cut));
    assert.ok(torn.edits === 2 || torn.edits === 3, `cut at ${cut}`);
    assert.deepEqual([...torn.liveTables].sort((a, b) => a - b), expectedAfter[torn.edits - 2], `cut at ${cut}`);
  }
});

test('manifest errors name what is wrong', async () => {
  const good = encodeLog([encodeEdit([{ logNumber: 3 }, { nextFileNumber: 5 }, { added: [0, 4] }])]).bytes;
  assert.equal((await readManifest(good)).liveTables.size, 1);
  for (let i = 0; i < good.length; i++) {
    const bad = Buffer.from(good);
    bad[i] = bad[i]! ^ 0x10;
    await assert.rejects(readManifest(bad, 'MANIFEST-000002'), (err: Error) => err instanceof LevelDbFormatError && /MANIFEST-000002/.test(err.message), `flipped byte ${i}`);
  }
  await assert.rejects(readManifest(encodeLog([encodeEdit([{ logNumber: 3 }, { nextFileNumber: 5 }, { added: [0, 5] }])]).bytes, 'M'), /M lists table 5, not below its next file number 5/);
  await assert.rejects(readManifest(encodeLog([encodeEdit([{ logNumber: 3 }])]).bytes, 'M'), /M never sets the next file number/);
  await assert.rejects(readManifest(Buffer.alloc(0), 'M'), /M holds no complete version edit/);
  await assert.rejects(readManifest(encodeLog([encodeEdit([{ logNumber: 3 }, { nextFileNumber: 9 }, { added: [7, 4] }])]).bytes, 'M'), /M record at byte 0: level 7 is beyond LevelDB's 7 levels/);
  await assert.rejects(readManifest(encodeLog([Uint8Array.of(8, 1)]).bytes, 'M'), /M record at byte 0: unknown version edit tag 8/);
});
