// The committed Raft log entry as the state machine receives it. Storage and raft define the same
// structure in their own folders (the layers do not import each other); TypeScript's structural
// typing makes them interchangeable.

export interface RaftPeer {
  readonly id: string;
  readonly address: string;
  readonly priority: number;
}

export type EntryPayload =
  /** Ratis stateMachineLogEntry { logData }: an encoded SCM command. */
  | { readonly kind: 'data'; readonly data: Uint8Array }
  /** Ratis configurationEntry: voters and listeners. The state machine ignores it. */
  | { readonly kind: 'config'; readonly peers: readonly RaftPeer[]; readonly listeners: readonly RaftPeer[] }
  /** Ratis metadataEntry { commitIndex }. The state machine ignores it. */
  | { readonly kind: 'metadata'; readonly commitIndex: number };

export interface LogEntry {
  readonly term: number;
  readonly index: number;
  readonly payload: EntryPayload;
}

/** Throws unless term and index are non-negative safe integers (index ≥ 1 for a real entry). */
export function assertValidEntryPosition(entry: LogEntry): void {
  if (!Number.isSafeInteger(entry.term) || entry.term < 0) {
    throw new Error(`log entry term ${String(entry.term)} is not a non-negative safe integer`);
  }
  if (!Number.isSafeInteger(entry.index) || entry.index < 1) {
    throw new Error(`log entry index ${String(entry.index)} is not a positive safe integer`);
  }
}
