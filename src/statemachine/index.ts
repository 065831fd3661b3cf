// The public surface of the SCM state machine.
export * from './commands.js';
export * from './lifecycle.js';
export * from './log-entry.js';
export * from './model.js';
export * from './placement.js';
export type { CommandFailure, CommandOutcome, CommandValue } from './records.js';
export * from './raft-configuration.js';
export * from './retry-cache.js';
export * from './self-removal.js';
export * from './state-machine.js';
export * from './tables.js';
export * from './transaction-info.js';
