// Invariant checks for the Raft core. A violated invariant means a bug (or a caller breaking the
// driving contract); the core throws rather than continue with a state that could lose data.

export class RaftInvariantError extends Error {
  constructor(message: string) {
    super(`raft invariant violated: ${message}`);
    this.name = 'RaftInvariantError';
  }
}

export function invariant(condition: boolean, message: string): asserts condition {
  if (!condition) throw new RaftInvariantError(message);
}

/**
 * The largest term, index or tick a node accepts. No real group gets near it (a term per
 * microsecond would take 140 years), and the headroom above it keeps `term + 1` and friends exact:
 * a value a peer sends that is higher is refused before it can be adopted or persisted (a term of
 * 2^53 - 1 once made every node fail to encode its next vote, and every restart fail again).
 */
export const MAX_RAFT_NUMBER = 2 ** 52;

/** Terms and indexes are JS numbers: non-negative integers up to MAX_RAFT_NUMBER. */
export function assertIndex(value: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < 0 || value > MAX_RAFT_NUMBER) {
    throw new RaftInvariantError(`${what} must be an integer in [0, 2^52], got ${value}`);
  }
}
