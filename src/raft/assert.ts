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

/** Terms and indexes are JS numbers: they must be non-negative safe integers. */
export function assertIndex(value: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RaftInvariantError(`${what} must be a non-negative safe integer, got ${value}`);
  }
}
