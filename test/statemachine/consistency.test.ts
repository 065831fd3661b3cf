// Consistency markers: the state machine applies a marker as the last entry of a batch of its own and
// hashes the state right after it, so replicas fed the same log in different batches get the same
// hash, and a replica whose state differs gets another one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ScmStateMachine } from '../../src/statemachine/state-machine.js';
import type { LogEntry } from '../../src/log-entry.js';
import { EntryFactory, basicSetup, withTempDir } from './helpers.js';

function log(): { entries: LogEntry[]; marker: number } {
  const f = new EntryFactory();
  const entries = [...basicSetup(f), f.allocate('p1'), f.allocate('p1')];
  const markerEntry = f.data(f.command({ type: 'markConsistency' }));
  entries.push(markerEntry, f.allocate('p1'), ...f.datanodes(2, 10));
  return { entries, marker: markerEntry.index };
}

test('replicas fed the same log in different batches hash alike at a marker; entries after it do not count', async () => {
  await withTempDir(async (dir) => {
    const { entries, marker } = log();
    const a = await ScmStateMachine.open(join(dir, 'a'));
    const b = await ScmStateMachine.open(join(dir, 'b'));
    try {
      await a.applyBatch(entries); // one batch holding entries before and after the marker
      for (const e of entries) await b.applyBatch([e]); // one entry at a time
      assert.equal(a.lastApplied().index, entries.length);
      const ha = await a.consistencyHash(marker);
      const hb = await b.consistencyHash(marker);
      assert.ok(ha !== undefined && /^[0-9a-f]{64}$/.test(ha));
      assert.equal(ha, hb);
      assert.equal(a.consistencyHash(marker + 1), undefined, 'only markers are hashed');
      assert.notEqual(ha, await a.digest(), 'the marker hash is of the state right after it, not now');
    } finally {
      await a.close();
      await b.close();
    }
  });
});

test('a replica whose state differs before the marker hashes differently', async () => {
  await withTempDir(async (dir) => {
    const { entries, marker } = log();
    const forged = entries.map((e) =>
      e.index === 3 ? new EntryFactory().datanodes(1, 99).map((d) => ({ ...d, index: 3 }))[0] as LogEntry : e,
    );
    const a = await ScmStateMachine.open(join(dir, 'a'));
    const b = await ScmStateMachine.open(join(dir, 'b'));
    try {
      await a.applyBatch(entries);
      await b.applyBatch(forged);
      assert.notEqual(await a.consistencyHash(marker), await b.consistencyHash(marker));
    } finally {
      await a.close();
      await b.close();
    }
  });
});
