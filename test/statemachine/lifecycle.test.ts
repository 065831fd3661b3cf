import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nextLifeCycleState } from '../../src/statemachine/lifecycle.js';
import { InvalidStateTransitionError } from '../../src/errors.js';
import { LIFE_CYCLE_EVENTS, LIFE_CYCLE_STATES, type LifeCycleEvent, type LifeCycleState } from '../../src/statemachine/model.js';
import { ScmStateMachine } from '../../src/statemachine/state-machine.js';
import { basicSetup, EntryFactory, withTempDir } from './helpers.js';

// The expected table, written out independently of the implementation: [state, event] -> next.
// Forward moves are Ozone's lifecycle; same-state entries are Ozone's idempotent repeats.
const EXPECTED: Record<string, LifeCycleState> = {
  'OPEN FINALIZE': 'CLOSING',
  'CLOSING FINALIZE': 'CLOSING',
  'CLOSING QUASI_CLOSE': 'QUASI_CLOSED',
  'CLOSING CLOSE': 'CLOSED',
  'QUASI_CLOSED FINALIZE': 'QUASI_CLOSED',
  'QUASI_CLOSED QUASI_CLOSE': 'QUASI_CLOSED',
  'QUASI_CLOSED CLOSE': 'CLOSED',
  'QUASI_CLOSED FORCE_CLOSE': 'CLOSED',
  'CLOSED FINALIZE': 'CLOSED',
  'CLOSED QUASI_CLOSE': 'CLOSED',
  'CLOSED CLOSE': 'CLOSED',
  'CLOSED FORCE_CLOSE': 'CLOSED',
  'CLOSED DELETE': 'DELETING',
  'DELETING FINALIZE': 'DELETING',
  'DELETING QUASI_CLOSE': 'DELETING',
  'DELETING CLOSE': 'DELETING',
  'DELETING FORCE_CLOSE': 'DELETING',
  'DELETING DELETE': 'DELETING',
  'DELETING CLEANUP': 'DELETED',
  'DELETED FINALIZE': 'DELETED',
  'DELETED QUASI_CLOSE': 'DELETED',
  'DELETED CLOSE': 'DELETED',
  'DELETED FORCE_CLOSE': 'DELETED',
  'DELETED DELETE': 'DELETED',
  'DELETED CLEANUP': 'DELETED',
};

for (const state of LIFE_CYCLE_STATES) {
  for (const event of LIFE_CYCLE_EVENTS) {
    const expected = EXPECTED[`${state} ${event}`];
    test(`lifecycle: ${event} in ${state} ${expected === undefined ? 'is rejected' : `→ ${expected}`}`, () => {
      if (expected !== undefined) {
        assert.equal(nextLifeCycleState(7, state, event), expected);
      } else {
        assert.throws(
          () => nextLifeCycleState(7, state, event),
          (err: unknown) =>
            err instanceof InvalidStateTransitionError &&
            err.code === 'INVALID_STATE_TRANSITION' &&
            err.message.includes(`current state ${state}`) &&
            err.message.includes(event) &&
            err.message.includes('container 7'),
        );
      }
    });
  }
}

test('lifecycle through apply: a container walks OPEN→CLOSING→QUASI_CLOSED→CLOSED→DELETING→DELETED, stamped with command times', async () => {
  await withTempDir(async (dir) => {
    const sm = await ScmStateMachine.open(dir);
    try {
      const f = new EntryFactory();
      await sm.applyBatch([...basicSetup(f), f.allocate('p1')]);
      const path: [LifeCycleEvent, LifeCycleState][] = [
        ['FINALIZE', 'CLOSING'],
        ['QUASI_CLOSE', 'QUASI_CLOSED'],
        ['FORCE_CLOSE', 'CLOSED'],
        ['DELETE', 'DELETING'],
        ['CLEANUP', 'DELETED'],
      ];
      for (const [event, state] of path) {
        const cmd = f.command({ type: 'updateContainerState', containerId: 1, event });
        const [result] = await sm.applyBatch([f.data(cmd)]);
        assert.ok(result?.outcome.ok, JSON.stringify(result));
        assert.equal(sm.getContainer(1)?.state, state);
        assert.equal(sm.getContainer(1)?.stateEnterTime, cmd.timestamp);
      }
      const counts = sm.containerCountsByState();
      assert.equal(counts.DELETED, 1);
      assert.equal(counts.OPEN, 0);
    } finally {
      await sm.close();
    }
  });
});

test('lifecycle through apply: an invalid event is a recorded failure naming the current state, and changes nothing', async () => {
  await withTempDir(async (dir) => {
    const sm = await ScmStateMachine.open(dir);
    try {
      const f = new EntryFactory();
      await sm.applyBatch([...basicSetup(f), f.allocate('p1')]);
      const before = sm.getContainer(1);
      const [result] = await sm.applyBatch([f.data(f.command({ type: 'updateContainerState', containerId: 1, event: 'DELETE' }))]);
      assert.ok(result !== undefined && !result.outcome.ok);
      assert.equal(result.outcome.error.code, 'INVALID_STATE_TRANSITION');
      assert.match(result.outcome.error.message, /DELETE.*current state OPEN/);
      assert.deepEqual(sm.getContainer(1), before);

      const [missing] = await sm.applyBatch([f.data(f.command({ type: 'updateContainerState', containerId: 99, event: 'FINALIZE' }))]);
      assert.ok(missing !== undefined && !missing.outcome.ok);
      assert.equal(missing.outcome.error.code, 'NOT_FOUND');
      assert.match(missing.outcome.error.message, /container 99/);
    } finally {
      await sm.close();
    }
  });
});
