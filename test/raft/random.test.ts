import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SeededRandom } from '../../src/raft/index.js';

test('SeededRandom is deterministic per seed and stays in bounds', () => {
  const a = new SeededRandom(42);
  const b = new SeededRandom(42);
  const c = new SeededRandom(43);
  const xs = Array.from({ length: 100 }, () => a.nextInt(10));
  assert.deepEqual(xs, Array.from({ length: 100 }, () => b.nextInt(10)));
  assert.notDeepEqual(xs, Array.from({ length: 100 }, () => c.nextInt(10)));
  assert.ok(xs.every((x) => Number.isInteger(x) && x >= 0 && x < 10));
  assert.equal(new Set(xs).size, 10, 'covers the whole range');
});

test('SeededRandom rejects bad input', () => {
  assert.throws(() => new SeededRandom(1.5), /safe integer/);
  assert.throws(() => new SeededRandom(1).nextInt(0), /bound/);
});
