// LogEntryProto (Apache Ratis Raft.proto) encoding, by hand:
//   LogEntryProto { uint64 term = 1; uint64 index = 2;
//     oneof { StateMachineLogEntryProto stateMachineLogEntry = 3;   // { bytes logData = 1; ... }
//             RaftConfigurationProto configurationEntry = 4;       // { peers = 1; oldPeers = 2; listeners = 3; oldListeners = 4 }
//             MetadataProto metadataEntry = 5; } }                 // { uint64 commitIndex = 1 }
//   RaftPeerProto { bytes id = 1; string address = 2; uint32 priority = 3; ... }
// proto3 rules as protobuf-java applies them: scalar fields equal to their default (0, empty) are
// omitted, while the chosen oneof member is always written, even when empty. This keeps our bytes
// identical to what Ratis would write for the same entry.

import type { EntryPayload, LogEntry, RaftPeer } from '../log-entry.js';
import { assertIndexLike } from './assert-index.js';
import { ProtoReader, ProtoWriter, varintSize, WIRE_LENGTH_DELIMITED, WIRE_VARINT } from './protobuf-wire.js';

const F_TERM = 1;
const F_INDEX = 2;
const F_STATE_MACHINE = 3;
const F_CONFIGURATION = 4;
const F_METADATA = 5;
const F_SM_LOG_DATA = 1;
const F_CONF_PEERS = 1;
const F_CONF_OLD_PEERS = 2;
const F_CONF_LISTENERS = 3;
const F_CONF_OLD_LISTENERS = 4;
const F_PEER_ID = 1;
const F_PEER_ADDRESS = 2;
const F_PEER_PRIORITY = 3;
const F_META_COMMIT_INDEX = 1;

const MAX_UINT32 = 0xffffffff;

/** A single-byte tag (field < 16) plus a varint value, omitted when the value is 0. */
function uintFieldSize(value: number): number {
  return value === 0 ? 0 : 1 + varintSize(value);
}

function delimitedSize(bodySize: number): number {
  return 1 + varintSize(bodySize) + bodySize;
}

interface PeerSizes {
  readonly idBytes: number;
  readonly addressBytes: number;
  readonly body: number;
}

function peerSizes(peer: RaftPeer): PeerSizes {
  if (typeof peer.id !== 'string' || peer.id.length === 0) {
    throw new TypeError(`RaftPeer id must be a non-empty string, got ${JSON.stringify(peer.id)}`);
  }
  if (typeof peer.address !== 'string') throw new TypeError(`RaftPeer ${peer.id} address must be a string`);
  if (!Number.isInteger(peer.priority) || peer.priority < 0 || peer.priority > MAX_UINT32) {
    throw new RangeError(`RaftPeer ${peer.id} priority must be a uint32, got ${String(peer.priority)}`);
  }
  const idBytes = Buffer.byteLength(peer.id, 'utf8');
  const addressBytes = Buffer.byteLength(peer.address, 'utf8');
  const body =
    delimitedSize(idBytes) + (addressBytes === 0 ? 0 : delimitedSize(addressBytes)) + uintFieldSize(peer.priority);
  return { idBytes, addressBytes, body };
}

/** The precomputed sizes needed to write one entry without a second pass over it. */
interface EntryLayout {
  readonly total: number;
  readonly body: number;
  readonly peers: readonly PeerSizes[];
  readonly listeners: readonly PeerSizes[];
}

function layoutOf(entry: LogEntry): EntryLayout {
  assertIndexLike(entry.term, 'LogEntry term');
  assertIndexLike(entry.index, 'LogEntry index');
  const payload = entry.payload;
  let body: number;
  let peers: PeerSizes[] = [];
  let listeners: PeerSizes[] = [];
  switch (payload.kind) {
    case 'data':
      if (!(payload.data instanceof Uint8Array)) throw new TypeError(`data entry ${entry.index} must carry a Uint8Array`);
      body = payload.data.length === 0 ? 0 : delimitedSize(payload.data.length);
      break;
    case 'config':
      peers = payload.peers.map(peerSizes);
      listeners = payload.listeners.map(peerSizes);
      body = 0;
      for (const p of peers) body += delimitedSize(p.body);
      for (const p of listeners) body += delimitedSize(p.body);
      break;
    case 'metadata':
      assertIndexLike(payload.commitIndex, `metadata entry ${entry.index} commitIndex`);
      body = uintFieldSize(payload.commitIndex);
      break;
    default:
      throw new TypeError(`unknown payload kind ${JSON.stringify((payload as { kind?: unknown }).kind)}`);
  }
  const total = uintFieldSize(entry.term) + uintFieldSize(entry.index) + delimitedSize(body);
  return { total, body, peers, listeners };
}

/** Serialized size of the entry's LogEntryProto in bytes. */
export function encodedEntrySize(entry: LogEntry): number {
  return layoutOf(entry).total;
}

function writePeer(w: ProtoWriter, field: number, peer: RaftPeer, sizes: PeerSizes): void {
  w.tag(field, WIRE_LENGTH_DELIMITED);
  w.varint(sizes.body);
  w.tag(F_PEER_ID, WIRE_LENGTH_DELIMITED);
  w.utf8(peer.id, sizes.idBytes);
  if (sizes.addressBytes > 0) {
    w.tag(F_PEER_ADDRESS, WIRE_LENGTH_DELIMITED);
    w.utf8(peer.address, sizes.addressBytes);
  }
  if (peer.priority !== 0) {
    w.tag(F_PEER_PRIORITY, WIRE_VARINT);
    w.varint(peer.priority);
  }
}

function writeEntry(w: ProtoWriter, entry: LogEntry, layout: EntryLayout): void {
  if (entry.term !== 0) {
    w.tag(F_TERM, WIRE_VARINT);
    w.varint(entry.term);
  }
  if (entry.index !== 0) {
    w.tag(F_INDEX, WIRE_VARINT);
    w.varint(entry.index);
  }
  const payload = entry.payload;
  switch (payload.kind) {
    case 'data':
      w.tag(F_STATE_MACHINE, WIRE_LENGTH_DELIMITED);
      w.varint(layout.body);
      if (payload.data.length > 0) {
        w.tag(F_SM_LOG_DATA, WIRE_LENGTH_DELIMITED);
        w.bytes(payload.data);
      }
      break;
    case 'config':
      w.tag(F_CONFIGURATION, WIRE_LENGTH_DELIMITED);
      w.varint(layout.body);
      payload.peers.forEach((p, i) => writePeer(w, F_CONF_PEERS, p, layout.peers[i]!));
      payload.listeners.forEach((p, i) => writePeer(w, F_CONF_LISTENERS, p, layout.listeners[i]!));
      break;
    case 'metadata':
      w.tag(F_METADATA, WIRE_LENGTH_DELIMITED);
      w.varint(layout.body);
      if (payload.commitIndex !== 0) {
        w.tag(F_META_COMMIT_INDEX, WIRE_VARINT);
        w.varint(payload.commitIndex);
      }
      break;
  }
}

/** Serializes an entry as a LogEntryProto. */
export function encodeLogEntry(entry: LogEntry): Uint8Array {
  const layout = layoutOf(entry);
  const out = new Uint8Array(layout.total);
  const w = new ProtoWriter(out);
  writeEntry(w, entry, layout);
  if (w.pos !== layout.total) throw new Error(`LogEntryProto size mismatch: wrote ${w.pos}, expected ${layout.total}`);
  return out;
}

/**
 * Writes the LogEntryProto into `target` at `offset` (the caller sized the space with
 * encodedEntrySize) and returns the offset just past it.
 */
export function encodeLogEntryInto(entry: LogEntry, target: Uint8Array, offset: number, size: number): number {
  const layout = layoutOf(entry);
  if (layout.total !== size) throw new Error(`LogEntryProto size changed between sizing and writing (${size} vs ${layout.total})`);
  const w = new ProtoWriter(target, offset);
  writeEntry(w, entry, layout);
  return w.pos;
}

function decodePeer(r: ProtoReader, start: number, end: number): RaftPeer {
  const pr = new ProtoReader(r.buf, start, end, 'RaftPeerProto');
  let id = '';
  let address = '';
  let priority = 0;
  while (!pr.done) {
    const tag = pr.varint();
    const field = Math.floor(tag / 8);
    const wire = tag & 7;
    if (field === F_PEER_ID && wire === WIRE_LENGTH_DELIMITED) {
      const [s, e] = pr.delimited();
      id = Buffer.from(pr.buf.buffer, pr.buf.byteOffset + s, e - s).toString('utf8');
    } else if (field === F_PEER_ADDRESS && wire === WIRE_LENGTH_DELIMITED) {
      const [s, e] = pr.delimited();
      address = Buffer.from(pr.buf.buffer, pr.buf.byteOffset + s, e - s).toString('utf8');
    } else if (field === F_PEER_PRIORITY && wire === WIRE_VARINT) {
      priority = pr.varint();
      if (priority > MAX_UINT32) pr.fail(`priority ${priority} exceeds uint32`);
    } else {
      pr.skip(wire);
    }
  }
  if (id === '') pr.fail('peer without an id');
  return { id, address, priority };
}

function decodeConfiguration(r: ProtoReader, start: number, end: number): EntryPayload {
  const cr = new ProtoReader(r.buf, start, end, 'RaftConfigurationProto');
  const peers: RaftPeer[] = [];
  const listeners: RaftPeer[] = [];
  while (!cr.done) {
    const tag = cr.varint();
    const field = Math.floor(tag / 8);
    const wire = tag & 7;
    if ((field === F_CONF_PEERS || field === F_CONF_LISTENERS) && wire === WIRE_LENGTH_DELIMITED) {
      const [s, e] = cr.delimited();
      (field === F_CONF_PEERS ? peers : listeners).push(decodePeer(cr, s, e));
    } else if ((field === F_CONF_OLD_PEERS || field === F_CONF_OLD_LISTENERS) && wire === WIRE_LENGTH_DELIMITED) {
      // Joint consensus (oldPeers) is never written by us; silently dropping it would change the
      // meaning of the configuration, so refuse.
      cr.fail('joint-consensus configuration (oldPeers/oldListeners) is not supported');
    } else {
      cr.skip(wire);
    }
  }
  return { kind: 'config', peers, listeners };
}

/** Decodes a LogEntryProto from `bytes[start, end)`. Throws on malformed input. */
export function decodeLogEntry(bytes: Uint8Array, start = 0, end = bytes.length): LogEntry {
  const r = new ProtoReader(bytes, start, end, 'LogEntryProto');
  let term = 0;
  let index = 0;
  let payload: EntryPayload | undefined;
  while (!r.done) {
    const tag = r.varint();
    const field = Math.floor(tag / 8);
    const wire = tag & 7;
    if (field === F_TERM && wire === WIRE_VARINT) term = r.varint();
    else if (field === F_INDEX && wire === WIRE_VARINT) index = r.varint();
    else if (field === F_STATE_MACHINE && wire === WIRE_LENGTH_DELIMITED) {
      const [s, e] = r.delimited();
      const sr = new ProtoReader(bytes, s, e, 'StateMachineLogEntryProto');
      let data: Uint8Array = new Uint8Array(0);
      while (!sr.done) {
        const t = sr.varint();
        if (Math.floor(t / 8) === F_SM_LOG_DATA && (t & 7) === WIRE_LENGTH_DELIMITED) {
          const [ds, de] = sr.delimited();
          // A plain Uint8Array copy: entries must not pin large segment buffers.
          data = new Uint8Array(bytes.subarray(ds, de));
        } else {
          sr.skip(t & 7);
        }
      }
      payload = { kind: 'data', data };
    } else if (field === F_CONFIGURATION && wire === WIRE_LENGTH_DELIMITED) {
      const [s, e] = r.delimited();
      payload = decodeConfiguration(r, s, e);
    } else if (field === F_METADATA && wire === WIRE_LENGTH_DELIMITED) {
      const [s, e] = r.delimited();
      const mr = new ProtoReader(bytes, s, e, 'MetadataProto');
      let commitIndex = 0;
      while (!mr.done) {
        const t = mr.varint();
        if (Math.floor(t / 8) === F_META_COMMIT_INDEX && (t & 7) === WIRE_VARINT) commitIndex = mr.varint();
        else mr.skip(t & 7);
      }
      payload = { kind: 'metadata', commitIndex };
    } else {
      r.skip(wire);
    }
  }
  if (payload === undefined) return r.fail(`entry ${index} has no stateMachineLogEntry, configurationEntry or metadataEntry`);
  return { term, index, payload };
}
