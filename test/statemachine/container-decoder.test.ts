// The loader's fast container decoder against the general (protobufjs) one: the same container for
// every canonical record, and a fallback (undefined) for anything it does not handle, so that a
// record decodes, or is refused, exactly as before. Then whole scm.db reloads: containers written
// in odd but valid forms load the same, and every query answers the same before and after a reload.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import protobuf from 'protobufjs';
import { ContainerRecordDecoder, fastContainerIdFromKey } from '../../src/statemachine/container-decoder.js';
import { ContainerTable } from '../../src/statemachine/container-table.js';
import { decodeContainer, encodeContainer } from '../../src/statemachine/records.js';
import { containerIdFromKey, containerKey } from '../../src/statemachine/tables.js';
import { LIFE_CYCLE_STATES, REPLICATION_FACTORS, REPLICATION_TYPES, type ContainerInfo } from '../../src/statemachine/model.js';
import { ScmStateMachine } from '../../src/statemachine/state-machine.js';
import { Level } from 'level';
import { basicSetup, EntryFactory, withTempDir } from './helpers.js';

function fast(bytes: Uint8Array, table = new ContainerTable()): ContainerInfo | undefined {
  const row = new ContainerRecordDecoder(table.strings).decode(Buffer.from(bytes));
  if (row === undefined) return undefined;
  table.appendRow({ ...row });
  return table.materialize(table.length - 1);
}

const base: ContainerInfo = Object.freeze({
  containerID: 7,
  state: 'OPEN',
  pipelineID: 'pipeline-1',
  usedBytes: 0,
  numberOfKeys: 0,
  stateEnterTime: 1_700_000_000_123,
  owner: 'om1',
  deleteTransactionId: 0,
  sequenceId: 0,
  replicationType: 'RATIS',
  replicationFactor: 'THREE',
});

test('canonical records decode to what the general decoder gives, fields and key order alike', () => {
  const table = new ContainerTable();
  const numbers = [0, 1, 127, 128, 2 ** 31, 2 ** 32 + 5, 2 ** 49 - 1, Number.MAX_SAFE_INTEGER];
  let id = 0;
  for (const state of LIFE_CYCLE_STATES) {
    for (const type of REPLICATION_TYPES) {
      for (const factor of REPLICATION_FACTORS) {
        for (const n of numbers) {
          const c: ContainerInfo = { ...base, containerID: ++id, state, replicationType: type, replicationFactor: factor, usedBytes: n, numberOfKeys: n, stateEnterTime: n, deleteTransactionId: n, sequenceId: n, pipelineID: `p${n % 3}`, owner: n % 2 ? 'om1' : '' };
          const bytes = encodeContainer(c);
          const got = fast(bytes, table);
          const expected = decodeContainer(bytes, 'test');
          assert.deepEqual(got, expected);
          assert.equal(JSON.stringify(got), JSON.stringify(expected));
        }
      }
    }
  }
});

/** A ContainerRecord written field by field (to make the odd-but-valid and the invalid forms). */
function record(fields: ReadonlyArray<[number, 'varint' | 'string', number | string]>): Uint8Array {
  const w = protobuf.Writer.create();
  for (const [field, kind, value] of fields) {
    if (kind === 'varint') w.uint32((field << 3) | 0).int64(value as number);
    else w.uint32((field << 3) | 2).string(value as string);
  }
  return w.finish();
}

const REQUIRED: Array<[number, 'varint' | 'string', number | string]> = [
  [1, 'varint', 9],
  [2, 'varint', 4],
  [4, 'varint', 0],
  [5, 'varint', 0],
  [7, 'string', 'om'],
  [11, 'varint', 1],
];

test('absent optional fields take the defaults the general decoder gives them', () => {
  const bytes = record(REQUIRED);
  assert.deepEqual(fast(bytes), decodeContainer(bytes, 'test'));
  assert.equal(fast(bytes)?.replicationFactor, 'ONE');
  assert.equal(fast(bytes)?.pipelineID, '');
});

test('anything beyond the canonical form falls back to the general decoder', () => {
  const cases: Record<string, Uint8Array> = {
    'an unknown field': record([...REQUIRED, [12, 'varint', 1]]),
    'a large field number': record([...REQUIRED, [20, 'varint', 1]]),
    'a repeated field': record([...REQUIRED, [2, 'varint', 1]]),
    'non-ASCII text': record([...REQUIRED.filter(([f]) => f !== 7), [7, 'string', 'ömer']]),
    'a negative number': record([...REQUIRED.filter(([f]) => f !== 1), [1, 'varint', -3]]),
    'a number beyond 2^53': record([...REQUIRED.filter(([f]) => f !== 4), [4, 'varint', 2 ** 60]]),
    'an unknown enum value': record([...REQUIRED.filter(([f]) => f !== 2), [2, 'varint', 99]]),
    'a missing required field': record(REQUIRED.filter(([f]) => f !== 5)),
    'a wrong wire type': record([...REQUIRED.filter(([f]) => f !== 1), [1, 'string', 'x']]),
    'a truncated record': encodeContainer(base).subarray(0, 10),
    'a string running past the end': Uint8Array.from([...encodeContainer(base), 0x3a, 0x05, 0x61]),
    'garbage': Buffer.from('garbage'),
  };
  for (const [what, bytes] of Object.entries(cases)) {
    const table = new ContainerTable();
    assert.equal(fast(bytes, table), undefined, what);
    assert.equal(table.length, 0, what);
  }
});

test('container keys read as the general reader reads them', () => {
  for (const id of [0, 1, 255, 2 ** 32, 2 ** 40 + 3, Number.MAX_SAFE_INTEGER]) {
    assert.equal(fastContainerIdFromKey(containerKey(id)), containerIdFromKey(containerKey(id)));
  }
  const beyond = Buffer.alloc(8, 0xff);
  assert.equal(fastContainerIdFromKey(beyond), undefined);
  assert.throws(() => containerIdFromKey(beyond), /beyond the safe integer range/);
  assert.equal(fastContainerIdFromKey(Buffer.alloc(7)), undefined);
});

test('records in odd but valid forms load as before; broken ones are still refused, naming the key', async () => {
  await withTempDir(async (dir) => {
    let sm = await ScmStateMachine.open(dir);
    const f = new EntryFactory();
    await sm.applyBatch([...basicSetup(f), f.allocate('p1'), f.allocate('p1'), f.allocate('p-one', 'STAND_ALONE', 'ONE')]);
    const containers = sm.db.sublevel<Buffer, Buffer>('containers', { keyEncoding: 'buffer', valueEncoding: 'buffer' });
    const odd = record([[1, 'varint', 2], [2, 'varint', 1], [3, 'string', 'p1'], [4, 'varint', 0], [5, 'varint', 0], [7, 'string', 'ömer'], [11, 'varint', 1], [10, 'varint', 3], [15, 'varint', 1]]);
    await containers.put(containerKey(2), Buffer.from(odd));
    await sm.close();
    sm = await ScmStateMachine.open(dir);
    try {
      assert.deepEqual(sm.getContainer(2), decodeContainer(odd, 'test'));
      assert.equal(sm.getContainer(2)?.owner, 'ömer');
      assert.deepEqual(sm.listContainers(0, 10).map((c) => c.owner), ['om1', 'ömer', 'om1']);
      assert.equal(sm.openContainerCount('p1'), 2);
      await sm.db.sublevel<Buffer, Buffer>('containers', { keyEncoding: 'buffer', valueEncoding: 'buffer' }).put(containerKey(3), Buffer.from('garbage'));
    } finally {
      await sm.close();
    }
    await assert.rejects(ScmStateMachine.open(dir), /corrupt container record at containers\/3/);
  });
});

test('a corrupt record in the middle of a large table is refused while the next batch is being read', async () => {
  await withTempDir(async (dir) => {
    const sm = await ScmStateMachine.open(dir);
    const f = new EntryFactory();
    const entries = basicSetup(f);
    for (let i = 0; i < 2_500; i++) entries.push(f.allocate('p1'));
    await sm.applyBatch(entries);
    const table = (db: ScmStateMachine['db']) => db.sublevel<Buffer, Buffer>('containers', { keyEncoding: 'buffer', valueEncoding: 'buffer' });
    const good = (await table(sm.db).get(containerKey(1_200))) as Buffer;
    await table(sm.db).put(containerKey(1_200), Buffer.from('garbage'));
    await sm.close();
    await assert.rejects(ScmStateMachine.open(dir), /corrupt container record at containers\/1200/);
    // The refused open closed the database (its lock is free): repaired, it opens with everything.
    const raw = new Level<string, string>(dir);
    await raw.open();
    await table(raw).put(containerKey(1_200), good);
    await raw.close();
    const repaired = await ScmStateMachine.open(dir);
    assert.equal(repaired.containerCount(), 2_500);
    assert.equal(repaired.getContainer(1_200)?.containerID, 1_200);
    await repaired.close();
  });
});

test('every query answers the same, in the same order, across a reload', async () => {
  await withTempDir(async (dir) => {
    let sm = await ScmStateMachine.open(dir);
    const f = new EntryFactory();
    const entries = [...basicSetup(f), f.pipeline('p2', ['dn-2', 'dn-3', 'dn-1'])];
    for (let i = 0; i < 300; i++) entries.push(f.allocate(['p1', 'p2'][i % 2] as string, 'RATIS', 'THREE', `om${i % 3}`));
    for (let i = 0; i < 300; i++) entries.push(f.allocate('p-one', 'STAND_ALONE', 'ONE'));
    const events = ['FINALIZE', 'QUASI_CLOSE', 'CLOSE', 'DELETE', 'CLEANUP'] as const;
    for (let id = 1; id <= 600; id += 7) {
      for (const event of events.slice(0, id % 6)) entries.push(f.data(f.command({ type: 'updateContainerState', containerId: id, event })));
    }
    entries.push(f.data(f.command({ type: 'closePipeline', pipelineId: 'p2' })));
    await sm.applyBatch(entries);
    const snapshot = (m: ScmStateMachine) => ({
      all: JSON.stringify(m.listContainers(0, 10_000)),
      pages: [1, 100, 599, 601].map((start) => m.listContainers(start, 50)),
      byState: LIFE_CYCLE_STATES.map((s) => m.listContainers(0, 1_000, s)),
      some: [0, 1, 300, 600, 601].map((id) => m.getContainer(id)),
      counts: m.containerCountsByState(),
      open: ['p1', 'p2', 'p-one', 'none'].map((p) => m.openContainerCount(p)),
      count: m.containerCount(),
      last: m.lastContainerId(),
      retry: m.retryCacheSize(),
      cached: m.cachedResult(f.clientId, 20),
    });
    const before = snapshot(sm);
    assert.equal(before.count, 600);
    await sm.close();
    sm = await ScmStateMachine.open(dir);
    try {
      assert.deepEqual(snapshot(sm), before);
    } finally {
      await sm.close();
    }
  });
});
