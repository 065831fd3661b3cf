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
//   (sentTick also carries a TimeoutNow's send tick, and a transfer vote's TimeoutNow tick)
//   uint64 firstIndex = 18; uint64 configIndex = 20;
//   SnapshotStatus status = 23; uint64 snapshotTerm = 24; uint64 noticeId = 25;
//   uint64 commitTerm = 26;  // a heartbeat's: the term of the leader's entry at `commit`
//   reserved 19, 21, 22;  // firstTerm and the configuration a notice used to carry
// }
// enum Type { APPEND = 1; APPEND_RESPONSE = 2; HEARTBEAT = 3; HEARTBEAT_RESPONSE = 4; VOTE = 5;
//   PRE_VOTE = 6; VOTE_RESPONSE = 7; PRE_VOTE_RESPONSE = 8; TIMEOUT_NOW = 9; SNAPSHOT_NOTIFY = 10;
//   SNAPSHOT_STATUS = 11; }
// enum SnapshotStatus { IN_PROGRESS = 1; INSTALLED = 2; ALREADY_INSTALLED = 3; UNAVAILABLE = 4; }
// A snapshot notice's prevTerm (the term at firstIndex - 1) travels in field 6, as an append's does.
import { MAX_RAFT_NUMBER, type LogEntry, type Message, type MessageType, type SnapshotStatusKind } from '../raft/index.js';
import { decodeLogEntry, encodeLogEntry } from '../storage/index.js';
import { ProtoReader, WIRE_LENGTH_DELIMITED, WIRE_VARINT } from '../storage/protobuf-wire.js';

// Wire numbers are written out, never derived from a position in a list: reordering the source
// must not change the wire format.
const MESSAGE_TYPE_NUMBERS: Readonly<Record<MessageType, number>> = {
  append: 1,
  'append-response': 2,
  heartbeat: 3,
  'heartbeat-response': 4,
  vote: 5,
  'pre-vote': 6,
  'vote-response': 7,
  'pre-vote-response': 8,
  'timeout-now': 9,
  'snapshot-notify': 10,
  'snapshot-status': 11,
};
const SNAPSHOT_STATUS_NUMBERS: Readonly<Record<SnapshotStatusKind, number>> = {
  'in-progress': 1,
  installed: 2,
  'already-installed': 3,
  unavailable: 4,
};
const MESSAGE_TYPE_BY_NUMBER = invert(MESSAGE_TYPE_NUMBERS);
const SNAPSHOT_STATUS_BY_NUMBER = invert(SNAPSHOT_STATUS_NUMBERS);

function invert<K extends string>(numbers: Readonly<Record<K, number>>): ReadonlyMap<number, K> {
  const out = new Map<number, K>();
  for (const [name, n] of Object.entries(numbers) as [K, number][]) {
    if (out.has(n)) throw new Error(`wire number ${n} is used twice (${out.get(n)} and ${name})`);
    out.set(n, name);
  }
  return out;
}

// Numeric fields run from Type to the highest number (CommitTerm): the decoder reads that range.
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
  ConfigIndex = 20,
  Status = 23,
  SnapshotTerm = 24,
  NoticeId = 25,
  CommitTerm = 26,
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

export function encodeRaftMessage(message: Message): Uint8Array {
  const w = new GrowableWriter();
  w.uint(Field.Type, MESSAGE_TYPE_NUMBERS[message.type]);
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
      w.uint(Field.CommitTerm, message.commitTerm);
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
      w.uint(Field.SentTick, message.transferTick);
      break;
    case 'vote-response':
    case 'pre-vote-response':
      w.bool(Field.Reject, message.reject);
      break;
    case 'timeout-now':
      w.uint(Field.SentTick, message.sentTick);
      break;
    case 'snapshot-notify':
      w.uint(Field.FirstIndex, message.firstIndex);
      w.uint(Field.PrevTerm, message.prevTerm);
      w.uint(Field.NoticeId, message.noticeId);
      break;
    case 'snapshot-status':
      w.uint(Field.Status, SNAPSHOT_STATUS_NUMBERS[message.status]);
      w.uint(Field.NoticeId, message.noticeId);
      w.uint(Field.Index, message.index);
      w.uint(Field.SnapshotTerm, message.snapshotTerm);
      w.uint(Field.ConfigIndex, message.configIndex);
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
    } else if (wire === WIRE_VARINT && field >= Field.Type && field <= Field.CommitTerm) {
      const value = r.varint();
      // Terms, indexes, ticks and rounds: refuse what no real peer sends, before anyone adopts it.
      if (value > MAX_RAFT_NUMBER) r.fail(`field ${field} is ${value}, above the largest term or index a node accepts (2^52)`);
      num.set(field, value);
    } else {
      r.skip(wire);
    }
  }
  const type = MESSAGE_TYPE_BY_NUMBER.get(num.get(Field.Type) ?? 0);
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
      return { ...base, type, commit: n(Field.Commit), commitTerm: n(Field.CommitTerm), readRound: n(Field.ReadRound), sentTick: n(Field.SentTick) };
    case 'heartbeat-response':
      return { ...base, type, readRound: n(Field.ReadRound), sentTick: n(Field.SentTick) };
    case 'vote':
    case 'pre-vote':
      return { ...base, type, lastIndex: n(Field.LastIndex), lastTerm: n(Field.LastTerm), transfer: n(Field.Transfer) === 1, transferTick: n(Field.SentTick) };
    case 'vote-response':
    case 'pre-vote-response':
      return { ...base, type, reject: n(Field.Reject) === 1 };
    case 'timeout-now':
      return { ...base, type, sentTick: n(Field.SentTick) };
    case 'snapshot-notify':
      return { ...base, type, firstIndex: n(Field.FirstIndex), prevTerm: n(Field.PrevTerm), noticeId: n(Field.NoticeId) };
    case 'snapshot-status': {
      const status = SNAPSHOT_STATUS_BY_NUMBER.get(n(Field.Status));
      if (status === undefined) r.fail(`unknown snapshot status ${n(Field.Status)}`);
      return {
        ...base,
        type,
        status,
        noticeId: n(Field.NoticeId),
        index: n(Field.Index),
        snapshotTerm: n(Field.SnapshotTerm),
        configIndex: n(Field.ConfigIndex),
      };
    }
  }
}
