// The columnar container table (and ScmState's container queries on it) against a plain Map of
// ContainerInfo objects, over seeded random operations: every query gives the same objects in the
// same order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ContainerTable } from '../../src/statemachine/container-table.js';
import { LIFE_CYCLE_STATES, REPLICATION_FACTORS, REPLICATION_TYPES, type ContainerInfo, type LifeCycleState } from '../../src/statemachine/model.js';
import { RetryCache } from '../../src/statemachine/retry-cache.js';
import { ScmState } from '../../src/statemachine/scm-state.js';
import { mulberry32 as rng } from './helpers.js';

function pick<T>(r: () => number, values: readonly T[]): T {
  return values[Math.floor(r() * values.length)] as T;
}

const PIPELINES = ['p1', 'p2', 'p-ü', ''];
const OWNERS = ['om1', 'om2', 'ozone-manager-with-a-longer-name'];
const NUMBERS = [0, 0, 0, 1, 42, 2 ** 32 + 7, Number.MAX_SAFE_INTEGER];

function randomContainer(r: () => number, id: number): ContainerInfo {
  return Object.freeze({
    containerID: id,
    state: pick(r, LIFE_CYCLE_STATES),
    pipelineID: pick(r, PIPELINES),
    usedBytes: pick(r, NUMBERS),
    numberOfKeys: pick(r, NUMBERS),
    stateEnterTime: pick(r, [0, 1_700_000_000_000 + Math.floor(r() * 1e6), -5]),
    owner: pick(r, OWNERS),
    deleteTransactionId: pick(r, NUMBERS),
    sequenceId: pick(r, NUMBERS),
    replicationType: pick(r, REPLICATION_TYPES),
    replicationFactor: pick(r, REPLICATION_FACTORS),
  });
}

function modelList(model: Map<number, ContainerInfo>, startId: number, count: number, state?: LifeCycleState): ContainerInfo[] {
  const out: ContainerInfo[] = [];
  for (const id of [...model.keys()].sort((a, b) => a - b)) {
    if (out.length >= count) break;
    const c = model.get(id) as ContainerInfo;
    if (id >= startId && (state === undefined || c.state === state)) out.push(c);
  }
  return out;
}

for (const seed of [1, 2, 3, 4, 5]) {
  test(`ContainerTable matches a Map model over random appends (with gaps), updates and lookups (seed ${seed})`, () => {
    const r = rng(seed);
    const table = new ContainerTable(seed === 1 ? 0 : 3); // small capacities: growth is exercised
    const model = new Map<number, ContainerInfo>();
    let nextId = seed === 2 ? 0 : 1;
    for (let step = 0; step < 4_000; step++) {
      const op = r();
      if (op < 0.45 || model.size === 0) {
        const c = randomContainer(r, nextId);
        nextId += r() < 0.2 ? 1 + Math.floor(r() * 5) : 1; // mostly dense, sometimes gaps
        table.append(c);
        model.set(c.containerID, c);
      } else if (op < 0.7) {
        const ids = [...model.keys()];
        const id = pick(r, ids);
        const c = randomContainer(r, id);
        table.update(c);
        model.set(id, c);
      } else {
        const id = Math.floor(r() * (nextId + 3)) - 1;
        const got = table.get(id);
        assert.deepEqual(got, model.get(id));
        if (got !== undefined) assert.ok(Object.isFrozen(got));
        assert.equal(table.rowOf(id) >= 0, model.has(id));
      }
    }
    assert.equal(table.length, model.size);
    for (const state of LIFE_CYCLE_STATES) {
      assert.equal(table.countInState(state), [...model.values()].filter((c) => c.state === state).length, state);
    }
    assert.throws(() => table.append(randomContainer(r, table.lastId as number)), /ascending id order/);
    assert.throws(() => table.update(randomContainer(r, nextId + 100)), /not in the table/);
    // Every row, in order, field by field (key order too: JSON output stays the same).
    const all = [...model.keys()].sort((a, b) => a - b);
    all.forEach((id, row) => {
      assert.equal(table.idAt(row), id);
      assert.equal(JSON.stringify(table.materialize(row)), JSON.stringify(model.get(id)));
    });
  });

  test(`ScmState's container queries match a Map model over random allocations and state changes (seed ${seed})`, () => {
    const r = rng(100 + seed);
    const state = new ScmState(new RetryCache(60_000, 100), seed * 7);
    const model = new Map<number, ContainerInfo>();
    for (let step = 0; step < 3_000; step++) {
      const op = r();
      if (op < 0.4 || model.size === 0) {
        const c = randomContainer(r, state.lastContainerId + 1);
        state.putContainer(c);
        model.set(c.containerID, c);
      } else if (op < 0.65) {
        const id = pick(r, [...model.keys()]);
        const c = randomContainer(r, id);
        state.putContainer(c);
        model.set(id, c);
      } else {
        const startId = Math.floor(r() * (model.size + 5));
        const count = Math.floor(r() * 40);
        const filter = r() < 0.5 ? undefined : pick(r, LIFE_CYCLE_STATES);
        assert.deepEqual(state.listContainers(startId, count, filter), modelList(model, startId, count, filter));
        const id = Math.floor(r() * (model.size + 3));
        assert.deepEqual(state.getContainer(id), model.get(id));
      }
      if (step % 250 === 0 || step === 2_999) {
        assert.equal(state.containerCount, model.size);
        const counts = state.containerCountsByState();
        for (const s of LIFE_CYCLE_STATES) assert.equal(counts[s], [...model.values()].filter((c) => c.state === s).length);
        for (const p of [...PIPELINES, 'p-none']) {
          const open = [...model.values()].filter((c) => c.state === 'OPEN' && c.pipelineID === p).map((c) => c.containerID).sort((a, b) => a - b);
          assert.equal(state.openContainerCount(p), open.length, p);
          assert.deepEqual(state.openContainerIds(p), open, p);
        }
      }
    }
    state.takeWrites();
  });
}
