// Reading a busy leader's retry hint: the `scm-retry-after-ms` trailer (src/retry-after.ts) of a
// RESOURCE_EXHAUSTED refusal. It comes from the wire, so it is believed only when it looks like what
// our leader sends (serve-limiter.ts: whole milliseconds, at most the 60 s of its per-minute
// window); anything else (negative, fractional, exponent notation, not a number, absurdly long) is
// the word of a broken or hostile peer, and the follower keeps to its own backoff instead.

/**
 * The longest hint believed: five times the longest our leader sends. A longer one would park the
 * follower for longer than any cap of ours explains; it is not clamped but disbelieved, because a
 * peer that sends it is not telling us anything about when to come back.
 */
export const MAX_BELIEVED_RETRY_HINT_MS = 5 * 60_000;

/** How much of a disbelieved hint a log line shows: the value is the peer's, and may be long. */
const SHOWN_CHARACTERS = 32;

export type RetryHint =
  | { readonly kind: 'none' }
  | { readonly kind: 'believed'; readonly ms: number }
  | { readonly kind: 'not-believed'; readonly shown: string; readonly why: string };

/** The hint as the refusal carried it (undefined without one). */
export function readRetryHint(raw: string | undefined): RetryHint {
  if (raw === undefined) return { kind: 'none' };
  if (!/^[0-9]+$/.test(raw)) return notBelieved(raw, 'not a whole number of milliseconds');
  // Read for its value: leading zeros add nothing (one is kept for a hint of 0). Past 16
  // significant digits Number() rounds; any such value is far beyond the bound anyway.
  const digits = raw.replace(/^0+(?=[0-9])/, '');
  const ms = digits.length > 16 ? Infinity : Number(digits);
  if (ms > MAX_BELIEVED_RETRY_HINT_MS) return notBelieved(raw, `more than ${MAX_BELIEVED_RETRY_HINT_MS} ms`);
  return { kind: 'believed', ms };
}

function notBelieved(raw: string, why: string): RetryHint {
  const shown = raw.length > SHOWN_CHARACTERS ? `${JSON.stringify(raw.slice(0, SHOWN_CHARACTERS))}… (${raw.length} characters)` : JSON.stringify(raw);
  return { kind: 'not-believed', shown, why };
}
