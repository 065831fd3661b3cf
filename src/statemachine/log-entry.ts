// The committed Raft log entry as the state machine receives it (defined once, in src/log-entry.ts),
// and the check the state machine makes of its position before applying it.
import type { LogEntry } from '../log-entry.js';

export type { EntryPayload, LogEntry, RaftPeer } from '../log-entry.js';

/** Throws unless term and index are non-negative safe integers (index ≥ 1 for a real entry). */
export function assertValidEntryPosition(entry: LogEntry): void {
  if (!Number.isSafeInteger(entry.term) || entry.term < 0) {
    throw new Error(`log entry term ${String(entry.term)} is not a non-negative safe integer`);
  }
  if (!Number.isSafeInteger(entry.index) || entry.index < 1) {
    throw new Error(`log entry index ${String(entry.index)} is not a positive safe integer`);
  }
}
