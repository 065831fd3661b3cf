// Wire encoding of Raft core messages for the peer transport. Protobuf wire format, one flat
// message (RaftMessageProto, documented below) with a type tag; entries travel as Ratis
// LogEntryProto bytes, exactly as they sit in the segment files, so a follower could write them
// to disk unchanged. Hand-encoded because appends are the hot path and protobufjs would hand back
// Long objects for every uint64.
//
// message RaftMessageProto {
//   Type type = 1; string from = 2; string to = 3; uint64 term = 4;
//   uint64 prevIndex = 5; uint64 prevTerm = 6; repeated bytes entries = 7; uint64 commit = 8;
//   bool reject = 9; uint64 index = 10; uint64 hintIndex = 11; uint64 hintTerm = 12;
//   uint64 readRound = 13; uint64 sentTick = 14;
//   uint64 lastIndex = 15; uint64 lastTerm = 16; bool transfer = 17;
//   uint64 firstIndex = 18; uint64 firstTerm = 19; uint64 configIndex = 20;
//   repeated RaftPeerProto voters = 21; repeated RaftPeerProto nonVoters = 22;
//   SnapshotStatus status = 23; uint64 snapshotTerm = 24;
// }
// RaftPeerProto is Ratis' { bytes id = 1; string address = 2; uint32 priority = 3; }.
import type { LogEntry, Message, MessageType, RaftPeer, SnapshotStatusKind } from '../raft/index.js';
import { decodeLogEntry, encodeLogEntry } from '../storage/index.js';
import { ProtoReader, WIRE_LENGTH_DELIMITED, WIRE_VARINT } from '../storage/protobuf-wire.js';

const MESSAGE_TYPES: readonly MessageType[] = [
  'append',
  'append-response',
  'heartbeat',
  'heartbeat-response',
  'vote',
  'pre-vote',
  'vote-response',
  'pre-vote-response',
  'timeout-now',
  'snapshot-notify',
  'snapshot-status',
];
const SNAPSHOT_STATUSES: readonly SnapshotStatusKind[] = ['in-progress', 'installed', 'already-installed', 'unavailable'];

const enum Field {
  Type = 1,
  From = 2,
  To = 3,
  Term = 4,
  PrevIndex = 5,
  PrevTerm = 6,
  Entries = 7,
  Commit = 8,
  Reject = 9,
  Index = 10,
  HintIndex = 11,
  HintTerm = 12,
  ReadRound = 13,
  SentTick = 14,
  LastIndex = 15,
  LastTerm = 16,
  Transfer = 17,
  FirstIndex = 18,
  FirstTerm = 19,
  ConfigIndex = 20,
  Voters = 21,
  NonVoters = 22,
  Status = 23,
  SnapshotTerm = 24,
}

/** Appends protobuf fields to a buffer that grows as needed. */
class GrowableWriter {
  private buf = Buffer.allocUnsafe(256);
  private pos = 0;

  private reserve(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  varint(value: number): void {
    if (!Number.isSafeInteger(value) || value < 0) throw new Error(`cannot encode ${value} as a uint64 varint`);
    this.reserve(10);
    let v = value;
    while (v >= 0x80000000) {
      this.buf[this.pos++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    while (v >= 0x80) {
      this.buf[this.pos++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    this.buf[this.pos++] = v;
  }

  uint(field: number, value: number): void {
    if (value === 0) return;
    this.varint(field * 8 + WIRE_VARINT);
    this.varint(value);
  }

  bool(field: number, value: boolean): void {
    if (value) this.uint(field, 1);
  }

  bytes(field: number, data: Uint8Array): void {
    this.varint(field * 8 + WIRE_LENGTH_DELIMITED);
    this.varint(data.length);
    this.reserve(data.length);
    this.buf.set(data, this.pos);
    this.pos += data.length;
  }

  string(field: number, text: string): void {
    if (text.length > 0) this.bytes(field, Buffer.from(text, 'utf8'));
  }

  finish(): Uint8Array {
    return this.buf.subarray(0, this.pos);
  }
}

function encodePeer(peer: RaftPeer): Uint8Array {
  const w = new GrowableWriter();
  w.string(1, peer.id);
  w.string(2, peer.address);
  w.uint(3, peer.priority);
  return w.finish();
}

function decodePeer(buf: Uint8Array, start: number, end: number): RaftPeer {
  const r = new ProtoReader(buf, start, end, 'RaftPeerProto');
  let id = '';
  let address = '';
  let priority = 0;
  while (!r.done) {
    const tag = r.varint();
    const field = Math.floor(tag / 8);
    if (field === 1 || field === 2) {
      const [s, e] = r.delimited();
      const text = Buffer.from(buf.buffer, buf.byteOffset + s, e - s).toString('utf8');
      if (field === 1) id = text;
      else address = text;
    } else if (field === 3) priority = r.varint();
    else r.skip(tag & 7);
  }
  if (id === '') r.fail('peer without an id');
  return { id, address, priority };
}

export function encodeRaftMessage(message: Message): Uint8Array {
  const w = new GrowableWriter();
  w.uint(Field.Type, MESSAGE_TYPES.indexOf(message.type) + 1);
  w.string(Field.From, message.from);
  w.string(Field.To, message.to);
  w.uint(Field.Term, message.term);
  switch (message.type) {
    case 'append':
      w.uint(Field.PrevIndex, message.prevIndex);
      w.uint(Field.PrevTerm, message.prevTerm);
      for (const entry of message.entries) w.bytes(Field.Entries, encodeLogEntry(entry));
      w.uint(Field.Commit, message.commit);
      break;
    case 'append-response':
      w.bool(Field.Reject, message.reject);
      w.uint(Field.Index, message.index);
      w.uint(Field.HintIndex, message.hintIndex);
      w.uint(Field.HintTerm, message.hintTerm);
      break;
    case 'heartbeat':
      w.uint(Field.Commit, message.commit);
      w.uint(Field.ReadRound, message.readRound);
      w.uint(Field.SentTick, message.sentTick);
      break;
    case 'heartbeat-response':
      w.uint(Field.ReadRound, message.readRound);
      w.uint(Field.SentTick, message.sentTick);
      break;
    case 'vote':
    case 'pre-vote':
      w.uint(Field.LastIndex, message.lastIndex);
      w.uint(Field.LastTerm, message.lastTerm);
      w.bool(Field.Transfer, message.transfer);
      break;
    case 'vote-response':
    case 'pre-vote-response':
      w.bool(Field.Reject, message.reject);
      break;
    case 'timeout-now':
      break;
    case 'snapshot-notify':
      w.uint(Field.FirstIndex, message.firstIndex);
      w.uint(Field.FirstTerm, message.firstTerm);
      w.uint(Field.ConfigIndex, message.config.index);
      for (const p of message.config.membership.voters) w.bytes(Field.Voters, encodePeer(p));
      for (const p of message.config.membership.nonVoters) w.bytes(Field.NonVoters, encodePeer(p));
      break;
    case 'snapshot-status':
      w.uint(Field.Status, SNAPSHOT_STATUSES.indexOf(message.status) + 1);
      w.uint(Field.Index, message.index);
      w.uint(Field.SnapshotTerm, message.snapshotTerm);
      break;
  }
  return w.finish();
}

/** Decodes one message; anything malformed throws an error naming the field and byte offset. */
export function decodeRaftMessage(buf: Uint8Array): Message {
  const r: ProtoReader = new ProtoReader(buf, 0, buf.length, 'RaftMessageProto');
  const num = new Map<number, number>();
  const strings = new Map<number, string>();
  const entries: LogEntry[] = [];
  const voters: RaftPeer[] = [];
  const nonVoters: RaftPeer[] = [];
  while (!r.done) {
    const tag = r.varint();
    const field = Math.floor(tag / 8);
    const wire = tag & 7;
    if (field === Field.From || field === Field.To) {
      const [s, e] = r.delimited();
      strings.set(field, Buffer.from(buf.buffer, buf.byteOffset + s, e - s).toString('utf8'));
    } else if (field === Field.Entries) {
      const [s, e] = r.delimited();
      entries.push(decodeLogEntry(buf, s, e));
    } else if (field === Field.Voters || field === Field.NonVoters) {
      const [s, e] = r.delimited();
      (field === Field.Voters ? voters : nonVoters).push(decodePeer(buf, s, e));
    } else if (wire === WIRE_VARINT && field >= Field.Type && field <= Field.SnapshotTerm) {
      num.set(field, r.varint());
    } else {
      r.skip(wire);
    }
  }
  const type = MESSAGE_TYPES[(num.get(Field.Type) ?? 0) - 1];
  if (type === undefined) r.fail(`unknown message type ${num.get(Field.Type) ?? 0}`);
  const n = (field: Field): number => num.get(field) ?? 0;
  const base = { from: strings.get(Field.From) ?? '', to: strings.get(Field.To) ?? '', term: n(Field.Term) };
  if (base.from === '' || base.to === '') r.fail(`${type} message without from/to`);
  switch (type) {
    case 'append':
      return { ...base, type, prevIndex: n(Field.PrevIndex), prevTerm: n(Field.PrevTerm), entries, commit: n(Field.Commit) };
    case 'append-response':
      return { ...base, type, reject: n(Field.Reject) === 1, index: n(Field.Index), hintIndex: n(Field.HintIndex), hintTerm: n(Field.HintTerm) };
    case 'heartbeat':
      return { ...base, type, commit: n(Field.Commit), readRound: n(Field.ReadRound), sentTick: n(Field.SentTick) };
    case 'heartbeat-response':
      return { ...base, type, readRound: n(Field.ReadRound), sentTick: n(Field.SentTick) };
    case 'vote':
    case 'pre-vote':
      return { ...base, type, lastIndex: n(Field.LastIndex), lastTerm: n(Field.LastTerm), transfer: n(Field.Transfer) === 1 };
    case 'vote-response':
    case 'pre-vote-response':
      return { ...base, type, reject: n(Field.Reject) === 1 };
    case 'timeout-now':
      return { ...base, type };
    case 'snapshot-notify':
      return {
        ...base,
        type,
        firstIndex: n(Field.FirstIndex),
        firstTerm: n(Field.FirstTerm),
        config: { index: n(Field.ConfigIndex), membership: { voters, nonVoters } },
      };
    case 'snapshot-status': {
      const status = SNAPSHOT_STATUSES[n(Field.Status) - 1];
      if (status === undefined) r.fail(`unknown snapshot status ${n(Field.Status)}`);
      return { ...base, type, status, index: n(Field.Index), snapshotTerm: n(Field.SnapshotTerm) };
    }
  }
}
