// When and how long the client waits before trying again: exponential backoff with jitter, bounded
// by the logical call's overall deadline. Pure (the clock and randomness come in as arguments), so
// tests can check the schedule without sleeping.

export interface BackoffOptions {
  readonly initialBackoffMs: number;
  readonly maxBackoffMs: number;
}

/** Throws for options no Backoff can be made of. */
export function checkBackoff(options: BackoffOptions): void {
  if (!(options.initialBackoffMs > 0) || !(options.maxBackoffMs >= options.initialBackoffMs)) {
    throw new Error(`invalid backoff: initialBackoffMs ${options.initialBackoffMs} must be > 0 and <= maxBackoffMs ${options.maxBackoffMs}`);
  }
}

export class Backoff {
  private nextMs: number;

  constructor(private readonly options: BackoffOptions) {
    checkBackoff(options);
    this.nextMs = options.initialBackoffMs;
  }

  /**
   * The next wait: "equal jitter" (half fixed, half random) so retries from many clients spread out
   * but never collapse to zero; then the base doubles up to the maximum.
   */
  next(random: () => number): number {
    const base = this.nextMs;
    this.nextMs = Math.min(this.nextMs * 2, this.options.maxBackoffMs);
    return Math.round(base / 2 + (base / 2) * random());
  }
}

/** Codes worth another attempt: the call may not have reached a leader, or it did not answer in time. */
export type RetryDecision =
  | { readonly kind: 'follow'; readonly address: string }
  | { readonly kind: 'retry-elsewhere' }
  /** The SCM is busy (RESOURCE_EXHAUSTED with a hint): try it again, not before `afterMs`. */
  | { readonly kind: 'retry-later'; readonly afterMs: number }
  | { readonly kind: 'fail' };
