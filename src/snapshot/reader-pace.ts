// Whether a downloading reader still deserves its transfer slot. The leader waits for the reader
// whenever it has handed gRPC as many messages as it may keep unflushed; two rules judge those waits:
//
// - idle: one wait lasts idleTimeoutMs (the reader took nothing for that long);
// - slow: over each readWindowMs of waiting, the reader took fewer than minReadBytes. Without this
//   rule a reader that takes one message just before each idle timeout (a message every 9 s against
//   10 s) keeps its slot for ever.
//
// Only time spent waiting counts towards a window, not time the leader spends taking or packing the
// checkpoint, so a busy leader never makes its reader look slow. Bytes count when gRPC has handed a
// message to HTTP/2 (its write callback), which HTTP/2 flow control holds back until the reader has
// taken the bytes before it.
import type { ServeTimers } from './serve-timers.js';

export type ReclaimReason = 'idle' | 'slow';

export interface PaceLimits {
  readonly idleTimeoutMs: number;
  /** 0 turns the rate rule off. */
  readonly minReadBytes: number;
  readonly readWindowMs: number;
}

export type WaitOutcome = 'progress' | 'gone' | ReclaimReason;

export class ReaderPace {
  /** Time waited in the current window, up to the start of the wait in progress (or its last check). */
  private waitedMs = 0;
  /** Bytes the reader took in the current window. */
  private takenBytes = 0;
  /** What the last window that failed the rate rule saw (for the refusal's message). */
  lastWindowBytes = 0;

  constructor(private readonly timers: ServeTimers, readonly limits: PaceLimits) {
    checkPaceLimits(limits);
  }

  /** The reader took a message of `bytes` (gRPC handed it to HTTP/2). */
  took(bytes: number): void {
    this.takenBytes += bytes;
  }

  /**
   * Waits until `next` settles (the reader took something), `gone` resolves (the call ended), or a
   * rule says the reader is too slow. A rejection of `next` is passed on.
   */
  wait(next: Promise<unknown>, gone: Promise<void>): Promise<WaitOutcome> {
    const { idleTimeoutMs, minReadBytes, readWindowMs } = this.limits;
    const started = this.timers.now();
    let counted = started;
    return new Promise<WaitOutcome>((resolve, reject) => {
      let settled = false;
      let cancel: () => void = () => undefined;
      const count = (): void => {
        const now = this.timers.now();
        this.waitedMs += now - counted;
        counted = now;
      };
      const settle = (outcome: WaitOutcome | Error): void => {
        if (settled) return;
        settled = true;
        cancel();
        count();
        if (outcome instanceof Error) reject(outcome);
        else resolve(outcome);
      };
      const arm = (): void => {
        const now = this.timers.now();
        let delay = idleTimeoutMs - (now - started);
        if (minReadBytes > 0) delay = Math.min(delay, readWindowMs - this.waitedMs - (now - counted));
        cancel = this.timers.setTimeout(check, Math.max(0, delay));
      };
      const check = (): void => {
        if (settled) return;
        if (this.timers.now() - started >= idleTimeoutMs) {
          settle('idle');
          return;
        }
        count();
        if (!this.windowPassed()) {
          settle('slow');
          return;
        }
        arm();
      };
      next.then(
        () => settle('progress'),
        (err: unknown) => settle(err instanceof Error ? err : new Error(String(err))),
      );
      gone.then(() => settle('gone'), () => settle('gone'));
      arm();
    });
  }

  /** At the end of a window (if one has ended): whether the reader took enough; starts the next. */
  private windowPassed(): boolean {
    const { minReadBytes, readWindowMs } = this.limits;
    if (minReadBytes === 0 || this.waitedMs < readWindowMs) return true;
    if (this.takenBytes < minReadBytes) {
      this.lastWindowBytes = this.takenBytes;
      return false;
    }
    this.waitedMs = 0;
    this.takenBytes = 0;
    return true;
  }
}

export function checkPaceLimits(limits: PaceLimits): void {
  if (!(limits.idleTimeoutMs > 0)) throw new Error(`idleTimeoutMs must be positive, got ${limits.idleTimeoutMs}`);
  if (!Number.isSafeInteger(limits.minReadBytes) || limits.minReadBytes < 0) throw new Error(`minReadBytes must be a non-negative integer, got ${limits.minReadBytes}`);
  if (!(limits.readWindowMs > 0)) throw new Error(`readWindowMs must be positive, got ${limits.readWindowMs}`);
}
