// The chaos check (the frontier checker on the container table) against the Wing–Gong search it
// replaced, on seeded random histories: valid ones from a sequential run with overlapping clients
// and unknown outcomes, and mutated ones. They must agree on every one. CHECK_SEED replays a seed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SeededRandom } from '../../src/raft/random.js';
import { checkContainerHistory, describeCall } from './container-model.js';
import { checkContainerHistoryWgl } from './container-model-wgl.js';
import { mutateContainerHistory, randomContainerHistory, type RandomHistory } from './random-history.js';

const seed = process.env['CHECK_SEED'] !== undefined ? Number(process.env['CHECK_SEED']) : Math.floor(Math.random() * 2 ** 31);

function show(h: RandomHistory): string {
  const calls = h.history.map((e) => `  ${describeCall(e)} [${e.invoke}, ${e.complete ?? '∞'}]`).join('\n');
  return `${calls}\n  final table: ${h.finalTable.map((c) => `#${c.id}=${c.state} ${c.owner}`).join(', ')}`;
}

test('random container histories: the frontier check and the Wing–Gong search agree (valid and mutated)', (t) => {
  t.diagnostic(`CHECK_SEED=${seed}`);
  const random = new SeededRandom(seed);
  let valid = 0;
  let rejected = 0;
  for (let round = 0; round < 3_000; round++) {
    const original = randomContainerHistory(random, { clients: 1 + random.nextInt(4), calls: 2 + random.nextInt(24), unknownRate: random.nextInt(3) * 0.15 });
    const mutated = round % 2 === 1;
    const h = mutated ? mutateContainerHistory(random, original) : original;
    const reference = checkContainerHistoryWgl(h.history, h.finalTable);
    const result = checkContainerHistory(h.history, h.finalTable);
    const context = `CHECK_SEED=${seed} round ${round}${mutated ? ` (mutated: ${(h as RandomHistory & { mutation: string }).mutation})` : ''}\n${show(h)}\n` +
      `Wing–Gong: ${reference.ok ? 'ok' : reference.explanation}\nfrontier: ${result.ok ? 'ok' : result.explanation}`;
    if (!mutated) assert.equal(reference.ok, true, `a history from a sequential run must be linearizable\n${context}`);
    assert.ok(reference.ok || !reference.inconclusive, context);
    assert.equal(result.ok, reference.ok, context);
    if (!result.ok) assert.equal(result.inconclusive, false, context);
    if (reference.ok) valid++;
    else rejected++;
  }
  // Both verdicts must be common, or agreeing proves little.
  assert.ok(valid > 1_600 && rejected > 200, `CHECK_SEED=${seed}: ${valid} linearizable, ${rejected} not`);
});

test('a long valid history with many clients, overlaps and unknown outcomes passes, with a small frontier', () => {
  const random = new SeededRandom(seed);
  const h = randomContainerHistory(random, { clients: 8, calls: 20_000, unknownRate: 0.1 });
  const unknown = h.history.filter((e) => e.outcome.type === 'unknown').length;
  assert.ok(unknown > 500, `CHECK_SEED=${seed}: only ${unknown} unknown outcomes`);
  const result = checkContainerHistory(h.history, h.finalTable, 10_000);
  assert.equal(result.ok, true, `CHECK_SEED=${seed}: ${result.ok ? '' : result.explanation}`);
});
