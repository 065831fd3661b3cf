// Public surface of src/storage.
export type { EntryPayload, LogEntry, RaftPeer } from '../log-entry.js';
export { crc32c } from '../crc32c.js';
export { encodeLogEntry, decodeLogEntry, encodedEntrySize } from './log-entry-codec.js';
export { encodeFrame, decodeFrame, scanSegment, SEGMENT_HEADER, type SegmentScan, type FrameInfo } from './segment-format.js';
export { closedSegmentName, openSegmentName, parseSegmentName } from './segment-names.js';
export { LogCorruptionError, type CorruptionPolicy, type DroppedEntries } from './log-recovery.js';
export { StorageLockedError, LOCK_FILE_NAME, type LockHolder } from './in-use-lock.js';
export { META_FILE_NAME, CONF_FILE_NAME, RaftMetaError, RAFT_META_REPAIR_HINT, parseRaftMeta, type RaftMeta } from './raft-meta.js';
export {
  RaftStorage,
  DEFAULT_CACHE_BYTES,
  DEFAULT_SEGMENT_SIZE_BYTES,
  type RaftStorageOptions,
} from './raft-storage.js';
export type { DiskTimings } from './segment-writer.js';
