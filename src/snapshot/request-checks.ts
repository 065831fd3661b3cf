// What a download request may carry in its free-text fields (`requesterId`, `checkpointId`):
// 1 to 128 printable ASCII characters. Checked by the leader before anything else happens (a
// 3 MB requesterId used to be written in full to its log on every request) and by our client before
// it sends one. Errors say what is wrong and never repeat the value.

/** The most characters a requesterId or checkpointId may have. */
export const MAX_REQUEST_ID_LENGTH = 128;

/** A request field the leader refuses (the service answers INVALID_ARGUMENT). */
export class InvalidRequestError extends Error {
  override readonly name = 'InvalidRequestError';
}

/** Returns the value when it is absent (undefined) or well formed; throws InvalidRequestError otherwise. */
export function checkRequestId(value: unknown, field: 'requesterId' | 'checkpointId'): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw new InvalidRequestError(`${field} must be a string, got ${typeof value}`);
  if (value === '') throw new InvalidRequestError(`${field} is empty; leave it out or give 1 to ${MAX_REQUEST_ID_LENGTH} characters`);
  if (value.length > MAX_REQUEST_ID_LENGTH) throw new InvalidRequestError(`${field} is ${value.length} characters long, more than ${MAX_REQUEST_ID_LENGTH}`);
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if (code < 0x20 || code > 0x7e) {
      throw new InvalidRequestError(`${field} has U+${code.toString(16).toUpperCase().padStart(4, '0')} at position ${i}; only printable ASCII (space to "~") is allowed`);
    }
  }
  return value;
}
