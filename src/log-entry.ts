// The Raft log entry and log position, defined once for every folder: the Raft core replicates it,
// src/storage writes it in Ratis' segment format, the state machine applies it and its
// `#TRANSACTIONINFO` is a TermIndex. Plain structural data (no classes, no functions) so the server
// can encode it to protobuf and the simulator can pass it between in-process nodes unchanged.
// Imports nothing of ours, so every folder may use it.

/** A member of the Raft group, as Ratis' RaftPeerProto { id, address, priority }. */
export interface RaftPeer {
  readonly id: string;
  readonly address: string;
  readonly priority: number;
}

/**
 * What a log entry carries. The shape mirrors Ratis' LogEntryProto oneof: stateMachineLogEntry (data),
 * configurationEntry (config: peers = voters, listeners = non-voters) and metadataEntry (metadata).
 */
export type EntryPayload =
  /** Ratis stateMachineLogEntry (field 3) { logData = 1 }: an encoded SCM command. */
  | { readonly kind: 'data'; readonly data: Uint8Array }
  /** Ratis configurationEntry (field 4): peers = 1 (voters), listeners = 3 (non-voters). */
  | { readonly kind: 'config'; readonly peers: readonly RaftPeer[]; readonly listeners: readonly RaftPeer[] }
  /** Ratis metadataEntry (field 5) { commitIndex = 1 }. */
  | { readonly kind: 'metadata'; readonly commitIndex: number };

export interface LogEntry {
  readonly term: number;
  readonly index: number;
  readonly payload: EntryPayload;
}

/** A log position: the term and index of one entry (also the applied point, `<term>#<index>`). */
export interface TermIndex {
  readonly term: number;
  readonly index: number;
}
