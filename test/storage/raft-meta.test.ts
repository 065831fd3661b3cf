// raft-meta is read strictly: a file that is not what we (or Ratis) write, or a missing one beside a
// log that holds entries, is an error naming the file. Read as "term 0, no vote" it would let the
// node vote a second time in a term it already voted in.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RaftStorage } from '../../src/storage/raft-storage.js';
import { RaftMetaError } from '../../src/storage/raft-meta.js';
import { range, tempDir } from './helpers.js';
import { mulberry32 } from '../seeded-random.js';

function metaPath(groupDir: string): string {
  return join(groupDir, 'current', 'raft-meta');
}

function assertMetaError(fn: () => unknown, path: string, detail: RegExp): void {
  assert.throws(fn, (err: Error) => {
    assert.ok(err instanceof RaftMetaError, `expected a RaftMetaError, got ${err.name}: ${err.message}`);
    assert.equal(err.file, path);
    assert.ok(err.message.includes(path), `names the file: ${err.message}`);
    assert.match(err.message, detail);
    assert.match(err.message, /scm repair raft-meta/, 'points at the recovery command');
    return true;
  });
}

/** A node that has run: entries in its log and a vote in term 3. */
async function nodeThatVoted(dir: string): Promise<void> {
  const s = RaftStorage.open(dir);
  await s.saveMeta(3, 'scm2');
  await s.append(range(1, 5, 3));
  await s.close();
}

test('a deleted raft-meta beside a log that holds entries is an error naming the file, not term 0', async () => {
  const { dir, cleanup } = tempDir('meta-missing');
  try {
    await nodeThatVoted(dir);
    unlinkSync(metaPath(dir));
    assertMetaError(() => RaftStorage.open(dir), metaPath(dir), /missing.*log .*holds entries 1\.\.5/);
    // The failed open released the lock and changed nothing.
    assert.equal(existsSync(join(dir, 'in_use.lock')), false);
    assert.equal(existsSync(metaPath(dir)), false);
  } finally {
    cleanup();
  }
});

test('raft-meta full of random bytes is an error naming the file, with or without a log', async () => {
  const seed = Number(process.env.STORAGE_TEST_SEED ?? Date.now() % 1_000_000);
  const rand = mulberry32(seed);
  for (const withLog of [true, false]) {
    const { dir, cleanup } = tempDir('meta-random');
    try {
      if (withLog) await nodeThatVoted(dir);
      else {
        const s = RaftStorage.open(dir);
        await s.saveMeta(2, 'scm3');
        await s.close();
      }
      for (let round = 0; round < 50; round++) {
        const bytes = Buffer.alloc(1 + Math.floor(rand() * 200));
        for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(rand() * 256);
        writeFileSync(metaPath(dir), bytes);
        assertMetaError(() => RaftStorage.open(dir), metaPath(dir), /./);
      }
    } finally {
      cleanup();
    }
  }
  console.log(`raft-meta random bytes seed ${seed} (set STORAGE_TEST_SEED to replay)`);
});

test('raft-meta that is not exactly term= and votedFor= is refused, each naming the file and what is wrong', async () => {
  const { dir, cleanup } = tempDir('meta-strict');
  try {
    await nodeThatVoted(dir);
    const cases: [string | Buffer, RegExp][] = [
      ['', /empty/],
      ['#Mon Jan 01 00:00:00 UTC 2024\n', /no term=/],
      ['term=5\n', /no votedFor=/],
      ['votedFor=scm1\n', /no term=/],
      ['term=5\nvotedFor=scm1', /newline/],
      ['term=-1\nvotedFor=\n', /term "-1" is not a non-negative integer/],
      ['term=1e3\nvotedFor=\n', /term "1e3"/],
      ['term= 5\nvotedFor=\n', /term " 5"/],
      ['term=05\nvotedFor=\n', /term "05"/],
      ['term=99999999999999999999\nvotedFor=\n', /term "99999999999999999999"/],
      ['term=5\nterm=6\nvotedFor=\n', /term= appears twice/],
      ['term=5\nvotedFor=\nfoo=bar\n', /line 3: "foo=bar"/],
      ['term:5\nvotedFor=\n', /line 1: "term:5"/],
      ['term=5\n\nvotedFor=\n', /line 2: a blank line/],
      ['term=5\nvotedFor=scm1\\\n', /line 2: .*backslash/],
      ['term=5\nvotedFor=sc\u0000m\n', /control character/],
      [Buffer.from([0x74, 0x65, 0x72, 0x6d, 0x3d, 0x35, 0x0a, 0xff, 0xfe, 0x0a]), /not UTF-8/],
    ];
    for (const [content, detail] of cases) {
      writeFileSync(metaPath(dir), content);
      assertMetaError(() => RaftStorage.open(dir), metaPath(dir), detail);
    }
  } finally {
    cleanup();
  }
});

test('raft-meta as Ratis writes it (two comment lines, votedFor first) and escaped ids read back', async () => {
  const { dir, cleanup } = tempDir('meta-ratis');
  try {
    await nodeThatVoted(dir);
    writeFileSync(metaPath(dir), '#\n#Mon Jan 01 00:00:00 UTC 2024\nvotedFor=scm2\nterm=7\n');
    let s = RaftStorage.open(dir);
    assert.deepEqual(s.readMeta(), { term: 7, votedFor: 'scm2' });
    await s.saveMeta(8, 'node:a=b #1');
    await s.close();
    s = RaftStorage.open(dir);
    assert.deepEqual(s.readMeta(), { term: 8, votedFor: 'node:a=b #1' });
    await s.saveMeta(8, '');
    await s.close();
    s = RaftStorage.open(dir);
    assert.deepEqual(s.readMeta(), { term: 8, votedFor: '' });
    await s.close();
  } finally {
    cleanup();
  }
});

test('a fresh node (no log, no raft-meta) starts at term 0; raft-meta is on disk before its first segment', async () => {
  const { dir, cleanup } = tempDir('meta-fresh');
  try {
    const s = RaftStorage.open(dir);
    assert.deepEqual(s.readMeta(), { term: 0, votedFor: '' });
    assert.equal(s.hasMetaFile(), false);
    assert.equal(existsSync(metaPath(dir)), false, 'opening writes nothing');
    // No hard state was saved (as when entries and the term are persisted in parallel and the
    // node stops before the term's write lands): the first segment still never exists alone.
    await s.append(range(1, 3, 1));
    assert.equal(s.hasMetaFile(), true);
    assert.match(readFileSync(metaPath(dir), 'utf8'), /^term=0$/m);
    await s.close();
    const r = RaftStorage.open(dir);
    assert.deepEqual(r.readMeta(), { term: 0, votedFor: '' });
    assert.equal(r.lastIndex(), 3);
    await r.close();
    assert.ok(readdirSync(join(dir, 'current')).some((n) => n.startsWith('log_')));
  } finally {
    cleanup();
  }
});

test('opened for repair, a missing or damaged raft-meta is reported and readMeta refuses until a new one is saved', async () => {
  const { dir, cleanup } = tempDir('meta-repair-open');
  try {
    await nodeThatVoted(dir);
    writeFileSync(metaPath(dir), 'garbage\n');
    const s = RaftStorage.open(dir, { openWithBadRaftMeta: true });
    const problem = s.metaProblem();
    assert.ok(problem instanceof RaftMetaError);
    assert.equal(problem.file, metaPath(dir));
    assert.throws(() => s.readMeta(), RaftMetaError);
    assert.throws(() => void s.append(range(6, 6, 3)), RaftMetaError, 'nothing is written on a guessed term');
    assert.equal(s.lastIndex(), 5);
    await s.saveMeta(4, '');
    assert.equal(s.metaProblem(), undefined);
    assert.deepEqual(s.readMeta(), { term: 4, votedFor: '' });
    await s.close();
    const r = RaftStorage.open(dir);
    assert.deepEqual(r.readMeta(), { term: 4, votedFor: '' });
    await r.close();
  } finally {
    cleanup();
  }
});
