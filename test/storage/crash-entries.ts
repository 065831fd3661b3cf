import type { LogEntry } from '../../src/log-entry.js';
import { dataEntry } from './helpers.js';

/** The entry the crash child writes at `index`: contents and size are a function of the index. */
export function crashEntry(index: number): LogEntry {
  return dataEntry(index, 1 + Math.floor(index / 500), 16 + ((index * 7919) % 300));
}
