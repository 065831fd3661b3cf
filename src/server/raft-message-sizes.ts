// How large a node's Raft traffic may be, all derived from one setting: the cap on a frame of a
// Raft stream (ozone.scm.ha.ratis.log.appender.queue.byte-limit; Ozone sizes Ratis' gRPC messages
// by it). A peer ends a stream that sends a frame over its cap (raft-stream-server.ts), and with
// it every message queued behind, heartbeats included; an append that can never fit would be
// sent again and refused again for ever, and the follower it is for would never catch up. So:
// - a frame carries a batch of messages of at most half the cap (the first message of a batch
//   always goes, alone if need be);
// - an append carries entries of at most a quarter of the cap (RaftNode's maxBytesPerMsg; the log
//   counts entries it holds in memory by entrySize and the rest by their frames on disk, both a
//   little more than their encoding in a message; at least one entry always goes);
// - one entry is at most that quarter too: a proposal over it is refused (raft-driver.ts), so
//   every append fits half the cap with room for its encoding, and every frame fits the cap. No
//   command a client can send comes near it (their fields are bounded: a few KiB at most); it
//   guards what a future command or a mistake could make. Configuration entries are not
//   proposals; they are a few hundred bytes per member.
// The batch and the append are also held to a fixed ceiling, so that the default cap (32 MiB)
// still sends appends of 1 MiB and frames of 4 MiB, not of megabytes more than catching up needs.
// Every member applies its own setting to what it receives: the guarantee holds between members
// with the same value (the key's description says to set it alike). A rolling change that lowers
// it can meet, until every member runs the new value, a member with the old one sending batches
// over the new cap; they are refused and sent again, and pass once the sender has restarted.

/** A frame's cap when nothing sets one (the key's default). */
export const DEFAULT_RAFT_FRAME_BYTES = 32 * 1024 * 1024;
/** The least cap a node accepts: one entry may then still hold 16 KiB, several times the largest command. */
export const MIN_RAFT_FRAME_BYTES = 64 * 1024;
const BATCH_CEILING_BYTES = 4 * 1024 * 1024;
const APPEND_CEILING_BYTES = 1024 * 1024;

export interface RaftMessageSizes {
  /** The most bytes one frame of a Raft stream may carry: what a peer refuses beyond. */
  readonly frameBytes: number;
  /** The most bytes of messages a link writes as one frame (peer-transport.ts). */
  readonly batchBytes: number;
  /** The most entry bytes (entrySize) one append carries (RaftNode's maxBytesPerMsg). */
  readonly appendEntryBytes: number;
  /** The largest entry (entrySize) a proposal may make. */
  readonly entryBytes: number;
}

export function raftMessageSizes(frameBytes: number = DEFAULT_RAFT_FRAME_BYTES): RaftMessageSizes {
  if (!Number.isSafeInteger(frameBytes) || frameBytes < MIN_RAFT_FRAME_BYTES) {
    throw new RangeError(`a Raft frame cap must be a whole number of bytes of at least ${MIN_RAFT_FRAME_BYTES}, not ${frameBytes}`);
  }
  const quarter = Math.floor(frameBytes / 4);
  return {
    frameBytes,
    batchBytes: Math.min(BATCH_CEILING_BYTES, Math.floor(frameBytes / 2)),
    appendEntryBytes: Math.min(APPEND_CEILING_BYTES, quarter),
    entryBytes: quarter,
  };
}
