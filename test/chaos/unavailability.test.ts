import { test } from 'node:test';
import assert from 'node:assert/strict';
import { longestAckGap, spread } from './unavailability.js';

test('the longest gap between acknowledged writes overlapping the window, including the one it starts in', () => {
  const acks = [0, 10, 20, 1_020, 1_030, 5_000];
  assert.equal(longestAckGap(acks, 25, 1_025), 1_000);
  assert.equal(longestAckGap(acks, 25, 1_100), 3_970, 'a gap that starts inside the window counts whole');
  assert.equal(longestAckGap(acks, 15, 1_025), 1_000);
  assert.equal(longestAckGap(acks, 1_025, 1_200), 3_970, 'recovery took until the next ack');
  assert.equal(longestAckGap(acks, 6_000, 7_000), 0, 'no ack after the window: nothing measured');
});

test('spread gives min, median and max', () => {
  assert.deepEqual(spread([3, 1, 2]), { count: 3, min: 1, median: 2, max: 3 });
  assert.deepEqual(spread([4, 1, 2, 3]), { count: 4, min: 1, median: 2.5, max: 4 });
  assert.equal(spread([]), undefined);
});
