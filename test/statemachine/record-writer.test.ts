// The hand-written record writer must give protobufjs' bytes exactly (records.ts encodes through
// protobufjs), or undefined when it does not handle a value; never other bytes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeContainerRecord, writeRetryRecord } from '../../src/statemachine/record-writer.js';
import { encodeContainer, encodeRetryCacheRecord, type CommandOutcome } from '../../src/statemachine/records.js';
import { parseRetryRecordEnvelope } from '../../src/statemachine/retry-record-decoder.js';
import { LIFE_CYCLE_STATES, REPLICATION_FACTORS, REPLICATION_TYPES, type ContainerInfo } from '../../src/statemachine/model.js';
import { SCM_ERROR_CODES } from '../../src/errors.js';
import { containerIdFromKey, containerKey } from '../../src/statemachine/tables.js';
import { mulberry32 as random } from './helpers.js';

const rnd = random(2026);
const pick = <T>(values: readonly T[]): T => values[Math.floor(rnd() * values.length)] as T;

/** Integers of every varint width: 0, one byte, 2^31/2^32 boundaries, up to 2^53 - 1. */
function integer(): number {
  const r = rnd();
  if (r < 0.15) return 0;
  if (r < 0.3) return Math.floor(rnd() * 128);
  if (r < 0.4) return pick([127, 128, 16_383, 16_384, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER]);
  return Math.floor(rnd() * 2 ** Math.floor(rnd() * 53));
}

/** Strings the writer handles: empty, ASCII of 1..300 characters (lengths past 127 take two bytes), Latin-1, CJK. */
function text(): string {
  const r = rnd();
  const length = Math.floor(rnd() * (rnd() < 0.3 ? 300 : 40));
  const alphabet = r < 0.5 ? 'abcXYZ019-_#/.:' : r < 0.7 ? 'aöüßé' : r < 0.85 ? 'x日本語' : 'a\u0000\u007f\u0080\u07ff\u0800\uffff';
  let s = '';
  for (let i = 0; i < length; i++) s += pick([...alphabet]);
  return s;
}

function container(): ContainerInfo {
  return {
    containerID: integer(),
    state: pick(LIFE_CYCLE_STATES),
    pipelineID: text(),
    usedBytes: integer(),
    numberOfKeys: integer(),
    stateEnterTime: integer(),
    owner: text(),
    deleteTransactionId: integer(),
    sequenceId: integer(),
    replicationType: pick(REPLICATION_TYPES),
    replicationFactor: pick(REPLICATION_FACTORS),
  };
}

function outcome(): CommandOutcome {
  return rnd() < 0.7 ? { ok: true, value: { kind: 'container', container: container() } } : { ok: false, error: { code: pick(SCM_ERROR_CODES), message: text() } };
}

test('ContainerRecord: the same bytes as protobufjs, over generated containers', () => {
  for (let i = 0; i < 3_000; i++) {
    const c = container();
    const written = writeContainerRecord(c);
    assert.ok(written !== undefined, `handled: ${JSON.stringify(c)}`);
    assert.deepEqual(written, Buffer.from(encodeContainer(c)), JSON.stringify(c));
  }
});

test('RetryCacheRecord with a container or error outcome: the same bytes as protobufjs, and the offsets of its CommandResult', () => {
  for (let i = 0; i < 3_000; i++) {
    const record = { clientId: text(), callId: integer(), recordedAt: integer(), logIndex: integer(), outcome: outcome() };
    const expected = Buffer.from(encodeRetryCacheRecord(record));
    const o = record.outcome;
    const containerBytes = o.ok && o.value.kind === 'container' && rnd() < 0.5 ? writeContainerRecord(o.value.container) : undefined;
    const written = writeRetryRecord(record, containerBytes);
    assert.ok(written !== undefined, `handled: ${JSON.stringify(record)}`);
    assert.deepEqual(written.bytes, expected, JSON.stringify(record));
    const envelope = parseRetryRecordEnvelope(expected);
    if (envelope !== undefined) {
      assert.deepEqual([written.resultStart, written.resultEnd], [envelope.resultStart, envelope.resultEnd]);
    } else {
      // A non-ASCII client id: the envelope parser leaves it to the general decoder.
      assert.match(record.clientId, /[^\x20-\x7e]/u);
    }
  }
});

test('values the writer does not handle give undefined (the caller encodes through protobufjs), never other bytes', () => {
  const base: ContainerInfo = {
    containerID: 7,
    state: 'OPEN',
    pipelineID: 'p1',
    usedBytes: 0,
    numberOfKeys: 0,
    stateEnterTime: 1_700_000_000_000,
    owner: 'om1',
    deleteTransactionId: 0,
    sequenceId: 0,
    replicationType: 'RATIS',
    replicationFactor: 'THREE',
  };
  assert.ok(writeContainerRecord(base) !== undefined);
  for (const odd of [
    { stateEnterTime: -1 }, // int64 below zero: ten bytes in protobuf
    { usedBytes: 2 ** 53 },
    { numberOfKeys: 1.5 },
    { owner: 'lone \ud800 surrogate' }, // protobufjs' own UTF-8 writer and Node's differ here
    { pipelineID: 'pair \ud83d\ude00' },
    { state: 'UNKNOWN' as ContainerInfo['state'] },
  ]) {
    assert.equal(writeContainerRecord({ ...base, ...odd }), undefined, JSON.stringify(odd));
  }
  const record = { clientId: 'c', callId: 1, recordedAt: 2, logIndex: 3 };
  assert.equal(writeRetryRecord({ ...record, outcome: { ok: true, value: { kind: 'marker' } } }), undefined);
  assert.equal(writeRetryRecord({ ...record, outcome: { ok: true, value: { kind: 'datanode', datanode: { uuid: 'd', hostname: 'h', ipAddress: '10.0.0.1', ports: [] } } } }), undefined);
  assert.equal(writeRetryRecord({ ...record, callId: -1, outcome: { ok: true, value: { kind: 'container', container: base } } }), undefined);
  assert.equal(writeRetryRecord({ ...record, clientId: '\udfff', outcome: { ok: true, value: { kind: 'container', container: base } } }), undefined);
  // After a refusal the writer starts clean: the next record is whole.
  const ok = { ...record, outcome: { ok: true, value: { kind: 'container', container: base } } } as const;
  assert.deepEqual(writeRetryRecord(ok)?.bytes, Buffer.from(encodeRetryCacheRecord(ok)));
});

test('container keys: 8 bytes big-endian, as writeBigUInt64BE gives them, for ids of every width', () => {
  for (let i = 0; i < 3_000; i++) {
    const id = integer();
    const expected = Buffer.alloc(8);
    expected.writeBigUInt64BE(BigInt(id));
    assert.deepEqual(containerKey(id), expected, String(id));
    assert.equal(containerIdFromKey(containerKey(id)), id);
  }
  assert.throws(() => containerKey(-1), /not a non-negative safe integer/);
  assert.throws(() => containerKey(2 ** 53), /not a non-negative safe integer/);
});
