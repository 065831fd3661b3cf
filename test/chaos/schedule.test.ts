// The fault schedule is a function of the seed, and a first round covers every kind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FAULT_KINDS, NETWORK_KINDS, planFaults } from './schedule.js';

test('the same seed gives the same schedule; another seed another', () => {
  assert.deepEqual(planFaults(42, FAULT_KINDS, 50), planFaults(42, FAULT_KINDS, 50));
  assert.notDeepEqual(planFaults(42, FAULT_KINDS, 50), planFaults(43, FAULT_KINDS, 50));
});

test('the first round holds every kind once, in a seeded order; later steps only the kinds given', () => {
  const kinds = FAULT_KINDS.filter((k) => !NETWORK_KINDS.has(k));
  const steps = planFaults(7, kinds, 40);
  assert.deepEqual(new Set(steps.slice(0, kinds.length).map((s) => s.kind)), new Set(kinds));
  assert.equal(steps.slice(0, kinds.length).length, new Set(steps.slice(0, kinds.length).map((s) => s.kind)).size);
  assert.ok(steps.every((s) => !NETWORK_KINDS.has(s.kind)));
  assert.ok(steps.filter((s) => s.kind.startsWith('pause')).every((s) => s.holdMs >= 2_500), 'pauses outlast the election timeout');
});
