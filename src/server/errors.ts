// Typed errors an ScmApi implementation throws. The client service maps each to one gRPC status, so
// the node's code never touches gRPC and clients can act on the status (follow a leader hint, retry,
// or report the bad field).

/** Base class: `statusName` is the gRPC status the client service answers with. */
export abstract class ScmError extends Error {
  abstract readonly statusName: 'FAILED_PRECONDITION' | 'NOT_FOUND' | 'INVALID_ARGUMENT' | 'UNAVAILABLE' | 'RESOURCE_EXHAUSTED' | 'ALREADY_EXISTS';
}

/**
 * This node is not the leader (or not ready to lead). Leader id and client address are sent back in
 * the trailing metadata `scm-leader-id` / `scm-leader-address` when known, so a client can go there.
 */
export class NotLeaderError extends ScmError {
  readonly statusName = 'FAILED_PRECONDITION';
  constructor(
    readonly leaderId?: string,
    /** The leader's client address, `host:clientPort`. */
    readonly leaderAddress?: string,
    message?: string,
  ) {
    super(
      message ??
        (leaderId !== undefined
          ? `this SCM is not the leader; the leader is ${leaderId}${leaderAddress !== undefined ? ` at ${leaderAddress}` : ''}`
          : 'this SCM is not the leader and no leader is known yet'),
    );
    this.name = 'NotLeaderError';
  }
}

/** No container / pipeline / datanode / SCM node with that id. */
export class NotFoundError extends ScmError {
  readonly statusName = 'NOT_FOUND';
  constructor(message: string) {
    super(message);
    this.name = 'NotFoundError';
  }
}

/** A request field is missing or malformed; `field` names it (e.g. `replicationFactor`). */
export class InvalidArgumentError extends ScmError {
  readonly statusName = 'INVALID_ARGUMENT';
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
    this.name = 'InvalidArgumentError';
  }
}

/**
 * The request is well-formed but the state does not allow it: an invalid lifecycle transition (the
 * message names the current state), no OPEN pipeline for an allocation, a pipeline already closed.
 */
export class FailedPreconditionError extends ScmError {
  readonly statusName = 'FAILED_PRECONDITION';
  constructor(message: string) {
    super(message);
    this.name = 'FailedPreconditionError';
  }
}

/** The entity already exists (e.g. a datanode uuid registered with different details). */
export class AlreadyExistsError extends ScmError {
  readonly statusName = 'ALREADY_EXISTS';
  constructor(message: string) {
    super(message);
    this.name = 'AlreadyExistsError';
  }
}

/** Transient: shutting down, no quorum, commit timed out. Safe to retry with the same callId. */
export class UnavailableError extends ScmError {
  readonly statusName = 'UNAVAILABLE';
  constructor(message: string) {
    super(message);
    this.name = 'UnavailableError';
  }
}

/** Too much in flight (queue limits); retry later. */
export class ResourceExhaustedError extends ScmError {
  readonly statusName = 'RESOURCE_EXHAUSTED';
  constructor(message: string) {
    super(message);
    this.name = 'ResourceExhaustedError';
  }
}
