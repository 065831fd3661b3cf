// At start-up the core adopts the configuration entries in the log after the one it was given. A
// log store that knows which entries hold a configuration (configurationIndexes) spares it reading
// every entry: only those are read, with the same outcome as reading them all; a store that names
// an entry holding none is a bug the core refuses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryLog, RaftNode, type LogEntry } from '../../src/raft/index.js';
import { makeConfig, membership } from './cluster.js';
import { dataEntry } from './helpers.js';

/** A MemoryLog that records which indexes were read, optionally naming its configuration entries. */
class CountingLog extends MemoryLog {
  readonly read: number[] = [];
  constructor(named?: (lo: number, hi: number) => number[]) {
    super();
    if (named !== undefined) this.configurationIndexes = (lo, hi) => named(lo, hi);
  }
  configurationIndexes?: (lo: number, hi: number) => number[];
  override entries(lo: number, hi: number, maxBytes: number): LogEntry[] {
    const out = super.entries(lo, hi, maxBytes);
    for (const e of out) this.read.push(e.index);
    return out;
  }
}

const configEntry = (index: number, voters: string[], nonVoters: string[] = []): LogEntry => {
  const m = membership(voters, nonVoters);
  return { index, term: 1, payload: { kind: 'config', peers: [...m.voters], listeners: [...m.nonVoters] } };
};

function fill(log: MemoryLog): void {
  const entries: LogEntry[] = [];
  for (let i = 1; i <= 500; i++) {
    if (i === 1) entries.push(configEntry(1, ['a', 'b', 'c']));
    else if (i === 300) entries.push(configEntry(300, ['a', 'b', 'c'], ['d']));
    else if (i === 450) entries.push(configEntry(450, ['a', 'b', 'c', 'd']));
    else entries.push(dataEntry(i, 1));
  }
  log.append(entries);
}

function start(log: MemoryLog, membershipIndex = 1): RaftNode {
  return new RaftNode(makeConfig('a', 7), log, {
    hardState: { term: 1, votedFor: '' },
    membership: membership(['a', 'b', 'c']),
    membershipIndex,
    applied: 200,
    commit: 320,
  });
}

test('restart: with configurationIndexes only the configuration entries are read, with the outcome of reading every entry', () => {
  const full = new CountingLog();
  fill(full);
  const scanned = start(full);
  assert.ok(full.read.length >= 499, 'without the method every entry after the given configuration is read');

  const listed = [1, 300, 450];
  const fast = new CountingLog((lo, hi) => listed.filter((i) => i >= lo && i < hi));
  fill(fast);
  const indexed = start(fast);
  assert.deepEqual(fast.read, [300, 450]);

  for (const node of [scanned, indexed]) {
    const s = node.status();
    assert.equal(s.membershipIndex, 450);
    assert.deepEqual(s.membership, membership(['a', 'b', 'c', 'd']));
  }
});

test('restart: a log store that names an entry holding no configuration is refused', () => {
  const wrong = new CountingLog((lo, hi) => [300, 301].filter((i) => i >= lo && i < hi));
  fill(wrong);
  assert.throws(() => start(wrong), /named entry 301 as a configuration, but it is not one/);
});
