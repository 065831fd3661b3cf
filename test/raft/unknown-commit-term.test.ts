// A follower that restarted after purging its log does not know the term of the entry just below
// its first one, which is its commit index. Any current leader holds that committed entry, so an
// append continuing from it must be taken whatever prevTerm says; rejecting it (the follower cannot
// check the term) made the leader probe below its own first index, notify, hear "already
// installed" and append again, for ever (simulation seed 596, 5 nodes).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryLog, RaftNode } from '../../src/raft/index.js';
import { makeConfig, membership } from './cluster.js';
import { dataEntry, drain, only } from './helpers.js';

/** A MemoryLog that, like a log reopened after a purge, does not know the term at its compaction point. */
class PurgedLog extends MemoryLog {
  override term(index: number): number | undefined {
    return index === this.firstIndex() - 1 && index > 0 ? undefined : super.term(index);
  }
}

test('a follower whose commit index is just below its first entry, with that term unknown, takes an append continuing from it', () => {
  for (const prevTerm of [2, 0]) {
    const log = new PurgedLog();
    log.resetToSnapshot(59, 2);
    // 60..65: a suffix of term 1 that was never committed; the leader of term 2 has other entries.
    log.append([60, 61, 62, 63, 64, 65].map((i) => dataEntry(i, 1)));
    assert.equal(log.term(59), undefined);
    const raft = new RaftNode(makeConfig('b', 7), log, {
      hardState: { term: 2, votedFor: '' },
      membership: membership(['a', 'b', 'c']),
      membershipIndex: 0,
      applied: 59,
      commit: 59,
    });
    raft.step({ type: 'append', from: 'a', to: 'b', term: 2, prevIndex: 59, prevTerm, entries: [60, 61, 62].map((i) => dataEntry(i, 2, `new${i}`)), commit: 62 });
    const rd = drain(raft, log);
    const answer = only([...(rd?.messages ?? []), ...(rd?.messagesAfterPersist ?? [])], 'append-response')[0];
    assert.deepEqual([answer?.reject, answer?.index], [false, 62], `prevTerm ${prevTerm}: taken`);
    assert.deepEqual([log.term(60), log.term(62), log.lastIndex()], [2, 2, 62], `prevTerm ${prevTerm}: the stale suffix is replaced`);
    assert.equal(raft.commitIndex, 62);
  }
});
