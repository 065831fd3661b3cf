import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkRegister, type RegisterOp } from './linearizability.js';

const w = (value: number, invoke: number, complete: number): RegisterOp => ({ kind: 'write', value, invoke, complete, label: `w${value}` });
const r = (value: number | null, invoke: number, complete: number): RegisterOp => ({ kind: 'read', value, invoke, complete, label: `r${value}` });

test('sequential history that reads the latest write is linearizable', () => {
  assert.equal(checkRegister([w(1, 0, 1), r(1, 2, 3), w(2, 4, 5), r(2, 6, 7)]).ok, true);
});

test('a stale read after a completed write is not linearizable', () => {
  const res = checkRegister([w(1, 0, 1), w(2, 2, 3), r(1, 4, 5)]);
  assert.equal(res.ok, false);
  assert.match(res.explanation ?? '', /no linearization/);
});

test('concurrent operations may be ordered either way', () => {
  assert.equal(checkRegister([w(1, 0, 10), r(1, 1, 2), r(null, 0, 3)]).ok, true);
  // Once a read observed the new value, a later read may not see the old one.
  assert.equal(checkRegister([w(1, 0, 10), r(1, 1, 2), r(null, 3, 4)]).ok, false);
});

test('a write with unknown outcome may take effect late or never', () => {
  assert.equal(checkRegister([w(1, 0, Infinity), r(null, 1, 2), r(1, 3, 4)]).ok, true);
  assert.equal(checkRegister([w(1, 0, Infinity), r(null, 5, 6)]).ok, true);
  assert.equal(checkRegister([w(1, 0, Infinity), r(1, 1, 2), r(null, 3, 4)]).ok, false);
});

test('reading a value nobody wrote is not linearizable', () => {
  assert.equal(checkRegister([r(7, 0, 1)]).ok, false);
});
