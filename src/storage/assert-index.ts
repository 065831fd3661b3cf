// Argument checks of src/storage: terms and indexes are JS numbers and must be safe integers.

/** Throws unless `value` is a non-negative safe integer; `what` names the value in the message. */
export function assertIndexLike(value: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${what} must be a non-negative safe integer, got ${String(value)}`);
  }
}
