// The one error a snapshot transfer, extraction or catch-up rejects with when its AbortSignal is
// aborted: named `AbortError` (as fetch and Node's streams name theirs), carrying the abort reason.
export class SnapshotAbortedError extends Error {
  override readonly name = 'AbortError';
}

/** `<what> aborted: <reason>`, with the signal's reason as the cause. */
export function abortedError(what: string, signal: AbortSignal): SnapshotAbortedError {
  const reason: unknown = signal.reason;
  const why = reason instanceof Error ? reason.message : reason === undefined ? 'no reason given' : String(reason);
  return new SnapshotAbortedError(`${what} aborted: ${why}`, { cause: reason });
}
