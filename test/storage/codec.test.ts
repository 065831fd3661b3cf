import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeLogEntry, encodeLogEntry } from '../../src/storage/log-entry-codec.js';
import { decodeFrame, encodeFrame, scanSegment, SEGMENT_HEADER } from '../../src/storage/segment-format.js';
import type { LogEntry } from '../../src/log-entry.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

test('golden bytes: a data entry encodes to the exact Ratis frame and decodes back', () => {
  const entry: LogEntry = { term: 1, index: 2, payload: { kind: 'data', data: Buffer.from('hi') } };
  // LogEntryProto: term=1 (08 01), index=2 (10 02), stateMachineLogEntry (1a 04) { logData (0a 02) "hi" }
  assert.deepEqual(Buffer.from(encodeLogEntry(entry)), hex('08 01 10 02 1a 04 0a 02 68 69'));
  // Frame: varint length 10, the proto, CRC32C over both, big-endian.
  const frame = encodeFrame(entry);
  assert.deepEqual(frame, hex('0a 08 01 10 02 1a 04 0a 02 68 69 52 07 ad 0d'));
  const segment = Buffer.concat([SEGMENT_HEADER, frame]);
  assert.deepEqual(segment.subarray(0, 8), hex('52 61 66 74 4c 6f 67 31')); // "RaftLog1"
  const scan = scanSegment(segment);
  assert.deepEqual(scan.end, { kind: 'clean' });
  assert.deepEqual(scan.frames, [{ offset: 8, size: 15, term: 1, index: 2 }]);
  const back = decodeFrame(frame, 'test');
  assert.equal(back.term, 1);
  assert.equal(back.index, 2);
  assert.equal(back.payload.kind, 'data');
  assert.deepEqual(Buffer.from(back.payload.kind === 'data' ? back.payload.data : []), Buffer.from('hi'));
});

test('golden bytes: metadata entry, and proto3 omits zero term/index but keeps the oneof', () => {
  const meta: LogEntry = { term: 2, index: 5, payload: { kind: 'metadata', commitIndex: 4 } };
  assert.deepEqual(encodeFrame(meta), hex('08 08 02 10 05 2a 02 08 04 02 14 74 1a'));
  const empty: LogEntry = { term: 0, index: 0, payload: { kind: 'data', data: new Uint8Array(0) } };
  assert.deepEqual(Buffer.from(encodeLogEntry(empty)), hex('1a 00'));
  assert.deepEqual(decodeLogEntry(hex('1a 00')), { term: 0, index: 0, payload: { kind: 'data', data: new Uint8Array(0) } });
});

test('golden bytes: configuration entry with voters and listeners', () => {
  const conf: LogEntry = {
    term: 3,
    index: 0,
    payload: {
      kind: 'config',
      peers: [{ id: 's1', address: 'h:9894', priority: 0 }],
      listeners: [{ id: 's2', address: '', priority: 5 }],
    },
  };
  const expected = hex('08 03 22 16  0a 0c 0a 02 73 31 12 06 68 3a 39 38 39 34  1a 06 0a 02 73 32 18 05');
  assert.deepEqual(Buffer.from(encodeLogEntry(conf)), expected);
  assert.deepEqual(decodeLogEntry(expected), conf);
});

test('round trip of large indexes and terms beyond 32 bits, unicode ids and big data', () => {
  const entries: LogEntry[] = [
    { term: 2 ** 40 + 3, index: Number.MAX_SAFE_INTEGER, payload: { kind: 'metadata', commitIndex: 2 ** 35 } },
    { term: 7, index: 300, payload: { kind: 'config', peers: [{ id: 'ノード-1', address: 'x', priority: 2 ** 32 - 1 }], listeners: [] } },
    { term: 1, index: 1, payload: { kind: 'data', data: Uint8Array.from({ length: 70000 }, (_, i) => i & 0xff) } },
  ];
  for (const e of entries) {
    const frame = encodeFrame(e);
    assert.deepEqual(decodeFrame(frame, 'test'), e);
  }
});

test('decoding skips unknown fields (e.g. Ratis clientId/callId) and rejects malformed input', () => {
  // stateMachineLogEntry { logData "a", clientId (72 01 ff), callId (78 05) }
  const withUnknown = hex('08 01 10 01 1a 08 0a 01 61 72 01 ff 78 05');
  const e = decodeLogEntry(withUnknown);
  assert.equal(e.payload.kind, 'data');
  assert.deepEqual(Buffer.from(e.payload.kind === 'data' ? e.payload.data : []), Buffer.from('a'));
  assert.throws(() => decodeLogEntry(hex('08 01 10 01')), /no stateMachineLogEntry/);
  assert.throws(() => decodeLogEntry(hex('08 01 1a 05 0a')), /runs past the end/);
  assert.throws(() => decodeLogEntry(hex('22 04 12 02 0a 00')), /oldPeers/);
  assert.throws(
    () => encodeLogEntry({ term: -1, index: 1, payload: { kind: 'data', data: new Uint8Array(0) } }),
    /term must be a non-negative safe integer/,
  );
  assert.throws(
    () => encodeLogEntry({ term: 1, index: 1.5, payload: { kind: 'data', data: new Uint8Array(0) } }),
    /index must be a non-negative safe integer/,
  );
  const frame = encodeFrame({ term: 1, index: 1, payload: { kind: 'data', data: Buffer.from('xyz') } });
  frame[3]! ^= 0x01;
  assert.throws(() => decodeFrame(frame, 'f:8'), /corrupt log entry at f:8: CRC32C mismatch/);
});
