// Time as the InterSCM service sees it: the reader's no-progress and rate checks, keepalives, and
// the reset of a reclaimed call. Tests pass a manual clock to drive a slow reader without waiting.

/** A clock and one-shot timers; `setTimeout` returns the function that cancels it. */
export interface ServeTimers {
  now(): number;
  setTimeout(fn: () => void, ms: number): () => void;
}

export const REAL_SERVE_TIMERS: ServeTimers = Object.freeze({
  now: () => Date.now(),
  setTimeout: (fn: () => void, ms: number) => {
    const timer = setTimeout(fn, ms);
    return () => clearTimeout(timer);
  },
});
