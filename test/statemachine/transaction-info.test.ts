import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Level } from 'level';
import {
  compareTermIndex,
  formatTransactionInfo,
  parseTransactionInfo,
  readTransactionInfoAt,
  transactionInfoTable,
  TRANSACTION_INFO_KEY,
} from '../../src/statemachine/transaction-info.js';

test('transaction info round-trips through its text form', () => {
  assert.equal(formatTransactionInfo({ term: 3, index: 1042 }), '3#1042');
  assert.deepEqual(parseTransactionInfo('3#1042'), { term: 3, index: 1042 });
});

test('malformed transaction info is rejected with the value in the message', () => {
  for (const bad of ['', '3', '3#', '#4', '-1#4', '3#4#5', 'a#b', '99999999999999999999#1']) {
    assert.throws(() => parseTransactionInfo(bad), (err: Error) => err.message.includes(JSON.stringify(bad)), bad);
  }
});

test('ordering is by index, then term', () => {
  assert.ok(compareTermIndex({ term: 9, index: 1 }, { term: 1, index: 2 }) < 0);
  assert.ok(compareTermIndex({ term: 2, index: 5 }, { term: 1, index: 5 }) > 0);
  assert.equal(compareTermIndex({ term: 2, index: 5 }, { term: 2, index: 5 }), 0);
});

test('reads the record from a closed DB directory, and 0#0 from a DB without one', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'txinfo-'));
  try {
    const withInfo = join(dir, 'a');
    const db = new Level<string, string>(withInfo);
    await transactionInfoTable(db).put(TRANSACTION_INFO_KEY, '7#77');
    await db.close();
    assert.deepEqual(await readTransactionInfoAt(withInfo), { term: 7, index: 77 });

    const empty = join(dir, 'b');
    const db2 = new Level<string, string>(empty);
    await db2.put('unrelated', 'x');
    await db2.close();
    assert.deepEqual(await readTransactionInfoAt(empty), { term: 0, index: 0 });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
