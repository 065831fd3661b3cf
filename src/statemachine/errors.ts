// Typed, deterministic failures of SCM commands. Apply turns them into results (and retry-cache
// entries) instead of throwing, so every replica records the same failure for the same entry.

export const SCM_ERROR_CODES = [
  'INVALID_STATE_TRANSITION',
  'NO_PIPELINE',
  'NOT_FOUND',
  'INVALID_ARGUMENT',
  'ALREADY_EXISTS',
  'MALFORMED_COMMAND',
] as const;
export type ScmErrorCode = (typeof SCM_ERROR_CODES)[number];

export class ScmError extends Error {
  readonly code: ScmErrorCode;
  constructor(code: ScmErrorCode, message: string) {
    super(message);
    this.code = code;
    this.name = 'ScmError';
  }
}

/** A lifecycle event that the container's current state does not accept. */
export class InvalidStateTransitionError extends ScmError {
  constructor(message: string) {
    super('INVALID_STATE_TRANSITION', message);
    this.name = 'InvalidStateTransitionError';
  }
}

/** No OPEN pipeline matches the requested replication (or the chosen one no longer does). */
export class NoPipelineError extends ScmError {
  constructor(message: string) {
    super('NO_PIPELINE', message);
    this.name = 'NoPipelineError';
  }
}

export class NotFoundError extends ScmError {
  constructor(message: string) {
    super('NOT_FOUND', message);
    this.name = 'NotFoundError';
  }
}

/** A field of a command is missing or out of range; the message names the field. */
export class InvalidArgumentError extends ScmError {
  constructor(message: string) {
    super('INVALID_ARGUMENT', message);
    this.name = 'InvalidArgumentError';
  }
}

export class AlreadyExistsError extends ScmError {
  constructor(message: string) {
    super('ALREADY_EXISTS', message);
    this.name = 'AlreadyExistsError';
  }
}

/** The bytes of a data entry are not a valid SCM command. */
export class MalformedCommandError extends ScmError {
  constructor(message: string) {
    super('MALFORMED_COMMAND', message);
    this.name = 'MalformedCommandError';
  }
}

/** Rebuilds the typed error from a recorded {code, message} (e.g. one read from the retry cache). */
export function scmErrorFrom(code: ScmErrorCode, message: string): ScmError {
  switch (code) {
    case 'INVALID_STATE_TRANSITION':
      return new InvalidStateTransitionError(message);
    case 'NO_PIPELINE':
      return new NoPipelineError(message);
    case 'NOT_FOUND':
      return new NotFoundError(message);
    case 'INVALID_ARGUMENT':
      return new InvalidArgumentError(message);
    case 'ALREADY_EXISTS':
      return new AlreadyExistsError(message);
    case 'MALFORMED_COMMAND':
      return new MalformedCommandError(message);
  }
}
