// The test failpoints: `hang-once` holds the first caller that reaches a point and lets later ones
// pass; the synchronous failpoint() ignores it; an unknown action is an error naming it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { FAILPOINTS_ENV, failpoint, failpointAsync } from '../../src/failpoints.js';

test('hang-once holds the first arrival at its point only; other points and failpoint() pass', async () => {
  const before = process.env[FAILPOINTS_ENV];
  process.env[FAILPOINTS_ENV] = 'test.point:hang-once';
  try {
    let firstDone = false;
    void failpointAsync('test.point').then(() => (firstDone = true));
    await sleep(20);
    assert.equal(firstDone, false, 'the first arrival hangs');
    await failpointAsync('test.point');
    await failpointAsync('test.other');
    failpoint('test.point');
    assert.equal(firstDone, false);
  } finally {
    if (before === undefined) delete process.env[FAILPOINTS_ENV];
    else process.env[FAILPOINTS_ENV] = before;
  }
});

test('an unknown action is refused with the entry named', async () => {
  const before = process.env[FAILPOINTS_ENV];
  process.env[FAILPOINTS_ENV] = 'test.point:explode';
  try {
    assert.throws(() => failpoint('test.point'), /entry "test\.point:explode": unknown action "explode", expected kill, stop or hang-once/);
    await assert.rejects(failpointAsync('test.point'), /unknown action "explode"/);
  } finally {
    if (before === undefined) delete process.env[FAILPOINTS_ENV];
    else process.env[FAILPOINTS_ENV] = before;
  }
});
