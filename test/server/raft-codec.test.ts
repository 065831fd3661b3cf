import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Message } from '../../src/raft/index.js';
import { decodeRaftMessage, encodeRaftMessage } from '../../src/server/raft-codec.js';

const peer = (id: string) => ({ id, address: `127.0.0.1:${id.length}9894`, priority: 0 });
const base = { from: 'scm1', to: 'scm2', term: 2 ** 40 + 7 };

// One example of every message type, with every field away from its default so a dropped field
// shows up as a difference.
const examples: Message[] = [
  {
    ...base,
    type: 'append',
    prevIndex: 41,
    prevTerm: 3,
    commit: 40,
    entries: [
      { term: 4, index: 42, payload: { kind: 'data', data: new Uint8Array([1, 2, 3]) } },
      { term: 4, index: 43, payload: { kind: 'config', peers: [peer('scm1'), peer('scm2')], listeners: [peer('scm4')] } },
      { term: 4, index: 44, payload: { kind: 'metadata', commitIndex: 43 } },
    ],
  },
  { ...base, type: 'append', prevIndex: 0, prevTerm: 0, commit: 0, entries: [] },
  { ...base, type: 'append-response', reject: true, index: 9, hintIndex: 5, hintTerm: 2 },
  { ...base, type: 'heartbeat', commit: 77, commitTerm: 4, readRound: 3, sentTick: 1000 },
  { ...base, type: 'heartbeat-response', readRound: 3, sentTick: 1000 },
  { ...base, type: 'vote', lastIndex: 10, lastTerm: 2, transfer: true, transferTick: 977 },
  { ...base, type: 'pre-vote', lastIndex: 10, lastTerm: 2, transfer: false, transferTick: 0 },
  { ...base, type: 'vote-response', reject: false },
  { ...base, type: 'pre-vote-response', reject: true },
  { ...base, type: 'timeout-now', sentTick: 4321 },
  { ...base, type: 'snapshot-notify', firstIndex: 5001, prevTerm: 3, noticeId: 12 },
  { ...base, type: 'snapshot-status', status: 'installed', noticeId: 12, index: 5000, snapshotTerm: 3, configIndex: 17 },
  { ...base, type: 'snapshot-status', status: 'already-installed', noticeId: 13, index: 5000, snapshotTerm: 3, configIndex: 17 },
  { ...base, type: 'snapshot-status', status: 'in-progress', noticeId: 14, index: 0, snapshotTerm: 0, configIndex: 0 },
  { ...base, type: 'snapshot-status', status: 'unavailable', noticeId: 12, index: 0, snapshotTerm: 0, configIndex: 0 },
];

test('every Raft message type survives encode → decode unchanged', () => {
  for (const message of examples) {
    const decoded = decodeRaftMessage(encodeRaftMessage(message));
    assert.deepEqual(normalize(decoded), normalize(message), message.type);
  }
});

test('wire numbers are fixed: golden bytes of a heartbeat and a snapshot status', () => {
  // type=3 (HEARTBEAT), from "a", to "b", term 2, commit 5, commitTerm 2 (field 26), readRound 1, sentTick 9.
  const heartbeat = encodeRaftMessage({ type: 'heartbeat', from: 'a', to: 'b', term: 2, commit: 5, commitTerm: 2, readRound: 1, sentTick: 9 });
  assert.equal(Buffer.from(heartbeat).toString('hex'), '0803' + '120161' + '1a0162' + '2002' + '4005' + 'd00102' + '6801' + '7009');
  // type=11 (SNAPSHOT_STATUS), status=3 (ALREADY_INSTALLED) in field 23, noticeId in field 25,
  // configIndex in field 20.
  const status = encodeRaftMessage({ type: 'snapshot-status', from: 'a', to: 'b', term: 2, status: 'already-installed', noticeId: 4, index: 7, snapshotTerm: 2, configIndex: 1 });
  assert.equal(Buffer.from(status).toString('hex'), '080b' + '120161' + '1a0162' + '2002' + 'b80103' + 'c80104' + '5007' + 'c00102' + 'a00101');
});

test('malformed bytes are rejected with a message naming the problem', () => {
  assert.throws(() => decodeRaftMessage(new Uint8Array([0x08, 0x63])), /unknown message type 99/);
  assert.throws(() => decodeRaftMessage(new Uint8Array([0x08])), /RaftMessageProto.*varint runs past the end/);
  const valid = encodeRaftMessage(examples[0]!);
  // Cut inside the entries: a length-delimited field now runs past the end.
  assert.throws(() => decodeRaftMessage(valid.subarray(0, Math.floor(valid.length / 2))), /malformed/);
  // A message without sender or receiver cannot be routed.
  assert.throws(() => decodeRaftMessage(new Uint8Array([0x08, 0x0a])), /without from\/to/);
});

/** Uint8Array vs Buffer subarrays compare by content. */
function normalize(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value, (_k, v: unknown) => (v instanceof Uint8Array ? Array.from(v) : v))) as unknown;
}
