// The log entry shape shared (structurally) with the Raft core. Storage defines its own copy so
// that src/storage does not import from src/raft; TypeScript's structural typing makes the two
// interchangeable.

export interface RaftPeer {
  readonly id: string;
  readonly address: string;
  readonly priority: number;
}

export type EntryPayload =
  // Ratis stateMachineLogEntry (field 3) { logData = 1 }
  | { readonly kind: 'data'; readonly data: Uint8Array }
  // Ratis configurationEntry (field 4): peers = 1 (voters), listeners = 3 (non-voters).
  | { readonly kind: 'config'; readonly peers: readonly RaftPeer[]; readonly listeners: readonly RaftPeer[] }
  // Ratis metadataEntry (field 5) { commitIndex = 1 }
  | { readonly kind: 'metadata'; readonly commitIndex: number };

export interface LogEntry {
  readonly term: number;
  readonly index: number;
  readonly payload: EntryPayload;
}

/** Throws unless `value` is a non-negative safe integer; `what` names the value in the message. */
export function assertIndexLike(value: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${what} must be a non-negative safe integer, got ${String(value)}`);
  }
}
