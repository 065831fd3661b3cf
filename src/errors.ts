// The SCM's typed errors, one class per concept, for every folder: the state machine's command
// failures and the errors an ScmApi implementation or the request decoder throws. Each carries the
// name of the gRPC status the client service answers with (src/server/client-service.ts is the one
// place that maps a name to a gRPC code), so neither the state machine nor the node touches gRPC.
// Imports nothing of ours, so every folder may use it.

/** gRPC statuses an ScmError is answered with. INTERNAL ones are reported like any unexpected error. */
export type ScmStatusName = 'FAILED_PRECONDITION' | 'NOT_FOUND' | 'INVALID_ARGUMENT' | 'UNAVAILABLE' | 'RESOURCE_EXHAUSTED' | 'ALREADY_EXISTS' | 'INTERNAL';

/** Base class: `statusName` is the gRPC status the client service answers with. */
export abstract class ScmError extends Error {
  abstract readonly statusName: ScmStatusName;
}

/** The codes of command failures; a command's outcome (and the retry cache) records them. */
export const SCM_ERROR_CODES = [
  'INVALID_STATE_TRANSITION',
  'NO_PIPELINE',
  'NOT_FOUND',
  'INVALID_ARGUMENT',
  'ALREADY_EXISTS',
  'MALFORMED_COMMAND',
] as const;
export type ScmErrorCode = (typeof SCM_ERROR_CODES)[number];

/**
 * A typed, deterministic failure of an SCM command. Apply turns it into the command's result (and
 * retry-cache entry), { code, message }, instead of throwing, so every replica records the same
 * failure for the same entry.
 */
export abstract class CommandError extends ScmError {
  abstract readonly code: ScmErrorCode;
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
export class NotFoundError extends CommandError {
  readonly statusName = 'NOT_FOUND';
  readonly code = 'NOT_FOUND';
  constructor(message: string) {
    super(message);
    this.name = 'NotFoundError';
  }
}

/**
 * A request or command field is missing, malformed or out of range. Thrown as (field, message) the
 * message reads `<field>: <message>` and `field` names it (e.g. `replicationFactor`); thrown with a
 * message alone, the message names the field itself.
 */
export class InvalidArgumentError extends CommandError {
  readonly statusName = 'INVALID_ARGUMENT';
  readonly code = 'INVALID_ARGUMENT';
  readonly field: string | undefined;
  constructor(message: string);
  constructor(field: string, message: string);
  constructor(fieldOrMessage: string, message?: string) {
    super(message === undefined ? fieldOrMessage : `${fieldOrMessage}: ${message}`);
    this.field = message === undefined ? undefined : fieldOrMessage;
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

/** A lifecycle event that the container's (or pipeline's) current state does not accept. */
export class InvalidStateTransitionError extends CommandError {
  readonly statusName = 'FAILED_PRECONDITION';
  readonly code = 'INVALID_STATE_TRANSITION';
  constructor(message: string) {
    super(message);
    this.name = 'InvalidStateTransitionError';
  }
}

/** No OPEN pipeline matches the requested replication (or the chosen one no longer does). */
export class NoPipelineError extends CommandError {
  readonly statusName = 'FAILED_PRECONDITION';
  readonly code = 'NO_PIPELINE';
  constructor(message: string) {
    super(message);
    this.name = 'NoPipelineError';
  }
}

/** The entity already exists (e.g. a datanode uuid registered with different details). */
export class AlreadyExistsError extends CommandError {
  readonly statusName = 'ALREADY_EXISTS';
  readonly code = 'ALREADY_EXISTS';
  constructor(message: string) {
    super(message);
    this.name = 'AlreadyExistsError';
  }
}

/** The bytes of a data entry are not a valid SCM command: a bug or corruption, not the client's doing. */
export class MalformedCommandError extends CommandError {
  readonly statusName = 'INTERNAL';
  readonly code = 'MALFORMED_COMMAND';
  constructor(message: string) {
    super(message);
    this.name = 'MalformedCommandError';
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
