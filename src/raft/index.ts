// Public surface of the Raft core. See node.ts for the driving contract.
export * from './types.js';
export { RaftNode } from './node.js';
export type {
  RaftConfig,
  InitialState,
  Ready,
  ReadState,
  SoftState,
  SnapshotNotice,
  ProposeResult,
  ChangeResult,
  RaftStatus,
  ProgressStatus,
} from './node.js';
export { SeededRandom } from './random.js';
export { RaftInvariantError, MAX_RAFT_NUMBER } from './assert.js';
export { entrySize } from './raft-log.js';
export type { ProgressState } from './progress.js';
export { MemoryLog } from './memory-log.js';
export { isVoter, isMember, memberIds, sameMembership, validateMembership } from './membership.js';
