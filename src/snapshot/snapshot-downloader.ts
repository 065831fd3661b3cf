// Follower-side orchestration of one snapshot catch-up: download the leader's checkpoint (asking
// whoever is leader at each attempt), abandon an attempt that makes no progress for a few seconds,
// retry with exponential backoff (a refusal by a busy leader that says when to come back: then, out
// of a time budget of its own), resume from the last verified byte when the same checkpoint is
// still served, log progress, extract safely while downloading and verify the
// result (manifest, cluster id, #TRANSACTIONINFO >= the leader's first available index). Returns a
// directory ready for `installCheckpoint`; the live scm.db is never touched here.
//
// Extraction runs beside the download, fed the verified bytes as they arrive (the download and the
// extraction used to run one after the other, each about as long as the other). The tar.gz is
// still written to a file, only so that a failed attempt can resume by offset: the next attempt
// replays the kept prefix into a fresh extraction before it calls the leader, then goes on with
// the network (and starts the extraction over if the leader restarts at 0 with a new checkpoint).
import { once } from 'node:events';
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { formatTransactionInfo, readTransactionInfoAt, compareTermIndex, type TermIndex } from '../statemachine/transaction-info.js';
import { readConfigurationAt } from '../statemachine/state-machine.js';
import type { AppliedConfiguration } from '../statemachine/raft-configuration.js';
import { abortedError, SnapshotAbortedError } from './aborted.js';
import { downloadCheckpoint, DownloadError, type DownloadChannel, type DownloadConsumer, type DownloadedCheckpoint, type DownloadProgress, type ResumePoint } from './download-client.js';
import type { SnapshotLogger } from './download-service.js';
import type { Manifest } from './manifest.js';
import { checkRequestId } from './request-checks.js';
import { readRetryHint } from './retry-hint.js';
import { extractCheckpointStream, type DeclaredSize, type ExtractedCheckpoint, type ExtractLimits } from './safe-extract.js';

export class StaleCheckpointError extends Error {
  override readonly name = 'StaleCheckpointError';
}

/**
 * A fetch given up because the leader kept refusing it as busy (RESOURCE_EXHAUSTED with a believed
 * retry hint) until busyWaitTimeoutMs was spent: the leader's capacity, not a failure of the
 * transfer (the node counts it as reason `busy`). `cause` is the last refusal.
 */
export class BusyLeaderError extends Error {
  override readonly name = 'BusyLeaderError';
}

export interface SnapshotDownloaderOptions {
  /** host:port of the current leader's InterSCM service, or undefined while there is none. */
  readonly leaderAddress: () => string | undefined | Promise<string | undefined>;
  readonly expectedClusterId: string;
  /** `<dbParent>/snapshot`. */
  readonly snapshotDir: string;
  /** Per-attempt deadline (ozone.scm.ha.grpc.deadline.interval). */
  readonly deadlineMs: number;
  /**
   * An attempt that receives nothing for this long is abandoned (default 5 s), and the next one asks
   * `leaderAddress()` again and resumes by offset when the same checkpoint is still served.
   */
  readonly noProgressTimeoutMs?: number;
  /**
   * Failed attempts before giving up (default 8). A refusal by a busy leader that says when to come
   * back (RESOURCE_EXHAUSTED with a believable `scm-retry-after-ms`) is not a failure: it is paid
   * for from busyWaitTimeoutMs instead.
   */
  readonly maxAttempts?: number;
  /**
   * How long in all one fetch spends on busy leaders (ozone.scm.ha.grpc.checkpoint.busy.wait.timeout,
   * default DEFAULT_BUSY_WAIT_TIMEOUT_MS): each refused attempt's own time, from its start to the
   * refusal (by `now`), and the wait it asked for. A refusal whose wait would take the total past
   * it ends the fetch at once: asking before the leader said would only be refused again.
   */
  readonly busyWaitTimeoutMs?: number;
  /**
   * Default 200 ms, doubling up to maxBackoffMs (default 10 s), with jitter. Also the shortest hinted
   * wait, so it must be positive: a leader hinting 0 is then asked again at most every 200 ms.
   */
  readonly initialBackoffMs?: number;
  readonly maxBackoffMs?: number;
  /** Waits between attempts, cut short by `signal` (default: Node's timers); tests pass a clock of their own. */
  readonly sleep?: (ms: number, signal: AbortSignal | undefined) => Promise<void>;
  readonly extractLimits?: ExtractLimits;
  /** Minimum time between progress log lines (default 5 s). */
  readonly progressIntervalMs?: number;
  readonly requesterId?: string;
  /** The channel to the leader (with TLS, this node's certificate); passed to downloadCheckpoint. */
  readonly channel?: (address: string) => DownloadChannel;
  readonly log?: SnapshotLogger;
  readonly now?: () => number;
  /** Bytes free under `snapshot/` (default: statfs); tests inject a small disk. */
  readonly freeBytes?: (dir: string) => Promise<number>;
}

export interface ReadyCheckpoint {
  /** Extracted, verified LevelDB directory under `snapshot/`, to pass to installCheckpoint. */
  readonly dir: string;
  readonly termIndex: TermIndex;
  /** The Raft configuration the checkpoint holds (in force at its index). */
  readonly configuration: AppliedConfiguration;
  readonly manifest: Manifest;
  readonly downloadedBytes: number;
  /** Where the last, successful attempt resumed (0 when it downloaded from the start). */
  readonly resumedFrom: number;
  readonly attempts: number;
}

/**
 * Five minutes of waiting as busy leaders ask: five of our leader's longest hints (its per-minute
 * window), or sixty of its 5 s polls while transfers are in progress (a stalled one is reclaimed
 * within 10 s, a slow one within a minute).
 */
export const DEFAULT_BUSY_WAIT_TIMEOUT_MS = 5 * 60_000;

/** A believed retry hint, and the wait it makes (no shorter than the first backoff). */
interface HintedWait {
  readonly hintMs: number;
  readonly waitMs: number;
}

/** What one fetch has spent so far of what it may spend on retries. */
interface RetrySpending {
  /** Attempts that failed (no leader known, or a download that did not end with a checkpoint). */
  failures: number;
  /**
   * Time spent on busy leaders: each refused attempt's own time (a leader may hold an attempt long
   * before it refuses, and keepalives keep the no-progress timer quiet) and the wait it asked for.
   */
  busySpentMs: number;
}

export class SnapshotDownloader {
  private readonly maxAttempts: number;
  private readonly busyWaitTimeoutMs: number;
  private readonly initialBackoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly log: SnapshotLogger;
  private readonly now: () => number;
  private readonly sleep: (ms: number, signal: AbortSignal | undefined) => Promise<void>;

  constructor(private readonly options: SnapshotDownloaderOptions) {
    this.maxAttempts = options.maxAttempts ?? 8;
    this.busyWaitTimeoutMs = options.busyWaitTimeoutMs ?? DEFAULT_BUSY_WAIT_TIMEOUT_MS;
    this.initialBackoffMs = options.initialBackoffMs ?? 200;
    this.maxBackoffMs = options.maxBackoffMs ?? 10_000;
    this.log = options.log ?? (() => undefined);
    this.now = options.now ?? Date.now;
    this.sleep = options.sleep ?? ((ms, signal) => sleep(ms, undefined, signal !== undefined ? { signal } : {}));
    if (!Number.isInteger(this.maxAttempts) || this.maxAttempts < 1) throw new Error(`maxAttempts must be a positive integer, got ${this.maxAttempts}`);
    if (!(Number.isFinite(this.initialBackoffMs) && this.initialBackoffMs > 0)) throw new Error(`initialBackoffMs must be a positive finite number of ms, got ${this.initialBackoffMs}`);
    if (!(Number.isFinite(this.maxBackoffMs) && this.maxBackoffMs >= this.initialBackoffMs)) {
      throw new Error(`maxBackoffMs must be a finite number of ms no less than initialBackoffMs (${this.initialBackoffMs}), got ${this.maxBackoffMs}`);
    }
    if (!(this.busyWaitTimeoutMs >= 0)) throw new Error(`busyWaitTimeoutMs must be >= 0, got ${this.busyWaitTimeoutMs}`);
    if (options.noProgressTimeoutMs !== undefined && !(options.noProgressTimeoutMs > 0)) throw new Error(`noProgressTimeoutMs must be positive, got ${options.noProgressTimeoutMs}`);
    if (options.expectedClusterId === '') throw new Error('SnapshotDownloader needs a non-empty expectedClusterId');
    checkRequestId(options.requesterId, 'requesterId');
  }

  /**
   * Downloads and verifies a checkpoint whose index is at least `minIndex` (the leader's first
   * available log index from the install notification). Aborting `signal` cancels the transfer or
   * extraction under way at once, removes everything under `snapshot/`, and rejects with a
   * SnapshotAbortedError (name `AbortError`).
   */
  async fetch(minIndex: number, signal?: AbortSignal): Promise<ReadyCheckpoint> {
    if (!Number.isSafeInteger(minIndex) || minIndex < 0) throw new Error(`minIndex must be a non-negative integer, got ${minIndex}`);
    try {
      return await this.fetchAttempts(minIndex, signal);
    } catch (err) {
      if (signal?.aborted !== true) throw err;
      // Whatever the attempt left (a partial download, a half extraction) is of no use now.
      await this.clearSnapshotDir();
      this.log('info', 'snapshot download aborted', { reason: signal.reason instanceof Error ? signal.reason.message : String(signal.reason) });
      throw err instanceof SnapshotAbortedError ? err : abortedError('snapshot download', signal);
    }
  }

  private async fetchAttempts(minIndex: number, signal: AbortSignal | undefined): Promise<ReadyCheckpoint> {
    await this.clearSnapshotDir();
    const spent: RetrySpending = { failures: 0, busySpentMs: 0 };
    let resume: ResumePoint | undefined;
    let lastError: Error | undefined;
    let pauseMs = 0;
    for (let attempt = 1; ; attempt++) {
      signal?.throwIfAborted();
      if (pauseMs > 0) await this.sleep(pauseMs, signal);
      const address = await this.options.leaderAddress();
      if (address === undefined) {
        lastError = new Error('no leader known');
        spent.failures++;
        this.log('warn', 'snapshot download waiting for a leader', { attempt });
      } else {
        const attemptStarted = this.now();
        try {
          const ready = await this.attempt(address, minIndex, resume, attempt, signal);
          // Aborted at the very end: the caller no longer wants it (fetch removes it).
          signal?.throwIfAborted();
          return ready;
        } catch (err) {
          if (signal?.aborted === true) throw err;
          lastError = err as Error;
          resume = err instanceof DownloadError ? err.resumePoint : undefined;
          const hinted = this.hintedWait(err, address, attempt);
          if (hinted !== undefined) {
            // The refused attempt is charged too: a leader that holds each call long before it
            // refuses would otherwise cost the follower far more than the waits it asks for.
            const attemptMs = Math.max(0, this.now() - attemptStarted);
            spent.busySpentMs += attemptMs;
            const overBudget = this.overBusyBudget(hinted, spent, address, lastError);
            if (overBudget !== undefined) {
              await dropKeptPrefix(resume);
              throw overBudget;
            }
            spent.busySpentMs += hinted.waitMs;
            pauseMs = hinted.waitMs;
            this.log('info', 'snapshot download refused by a busy leader', { attempt, address, attemptMs, hintMs: hinted.hintMs, retryInMs: hinted.waitMs, busySpentMs: spent.busySpentMs, error: lastError.message });
            continue;
          }
          spent.failures++;
          this.log('warn', 'snapshot download attempt failed', { attempt, failures: spent.failures, maxAttempts: this.maxAttempts, address, error: lastError.message, resumeOffset: resume?.offset ?? 0 });
        }
      }
      if (spent.failures >= this.maxAttempts) break;
      pauseMs = this.backoff(spent.failures);
    }
    await dropKeptPrefix(resume);
    throw new Error(`snapshot download failed after ${spent.failures} failed attempts: ${lastError?.message ?? 'unknown error'}`, { cause: lastError });
  }

  /**
   * How long to wait before asking again when `err` is a busy leader's refusal that says when
   * (RESOURCE_EXHAUSTED with a believable hint), else undefined: a failure like any other. A hint
   * of (nearly) 0 is stretched to the first backoff (`waitMs` > `hintMs`), so that a leader cannot
   * have us ask it over and over without pause.
   */
  private hintedWait(err: unknown, address: string, attempt: number): HintedWait | undefined {
    if (!(err instanceof DownloadError)) return undefined;
    const hint = readRetryHint(err.retryAfter);
    if (hint.kind === 'none') return undefined;
    if (hint.kind === 'not-believed') {
      this.log('warn', 'snapshot download ignored a retry hint it does not believe', { attempt, address, hint: hint.shown, why: hint.why });
      return undefined;
    }
    return { hintMs: hint.ms, waitMs: Math.max(hint.ms, this.initialBackoffMs) };
  }

  /**
   * The error that ends the fetch when waiting `waitMs` more would take what it spent on busy
   * leaders (the refused attempt included) past busyWaitTimeoutMs; undefined while it would not.
   */
  private overBusyBudget({ hintMs, waitMs }: HintedWait, spent: RetrySpending, address: string, refusal: Error): BusyLeaderError | undefined {
    const leftMs = this.busyWaitTimeoutMs - spent.busySpentMs;
    if (waitMs <= leftMs) return undefined;
    const asked = waitMs > hintMs ? `${hintMs} ms (the follower waits at least ${waitMs} ms)` : `${waitMs} ms`;
    return new BusyLeaderError(
      `snapshot download gave up: the leader at ${address} asks to retry in ${asked}, but ${Math.max(0, leftMs)} ms are left of the ${this.busyWaitTimeoutMs} ms the follower spends on busy leaders (${spent.busySpentMs} ms spent: refused attempts and the waits they asked for): ${refusal.message}`,
      { cause: refusal },
    );
  }

  private async attempt(address: string, minIndex: number, resume: ResumePoint | undefined, attempt: number, signal: AbortSignal | undefined): Promise<ReadyCheckpoint> {
    const started = this.now();
    const progress = this.progressLogger(address, started);
    // Named per attempt: the checkpoint id is not known before the first message.
    const extractDir = join(this.options.snapshotDir, `attempt_${attempt}.extracted`);
    await rm(extractDir, { recursive: true, force: true });
    const startExtraction = (): { feed: ExtractionFeed; extracting: Promise<ExtractedCheckpoint> } => {
      const feed = new ExtractionFeed();
      const extracting = extractCheckpointStream(feed.stream, `checkpoint stream from ${address}`, extractDir, this.options.extractLimits ?? {}, {
        // The stream is written beside the files (for a resume) until the end: both must fit.
        // A resumed attempt's kept prefix is on disk already (and so already out of the free space).
        alsoWriting: { what: 'the download kept for resuming', bytes: async (declared) => Math.max(0, streamBytesAtMost(declared) - (await keptBytes(resume))) },
        // ... and it is held to that bound: a longer stream (gzip padding) is refused, not kept.
        sourceBytesAtMost: streamBytesAtMost,
        ...(signal !== undefined ? { signal } : {}),
        ...(this.options.freeBytes !== undefined ? { freeBytes: this.options.freeBytes } : {}),
      });
      feed.watch(extracting);
      return { feed, extracting };
    };
    let extraction = startExtraction();
    const consumer: DownloadConsumer = {
      write: (data) => extraction.feed.write(data),
      // The leader restarted at 0 with another checkpoint: the replayed prefix's extraction goes.
      restart: async () => {
        extraction.feed.stream.destroy(new Error('the leader restarted the stream'));
        await extraction.extracting.catch(() => undefined);
        extraction = startExtraction();
      },
    };
    let downloaded: DownloadedCheckpoint | undefined;
    try {
      try {
        downloaded = await downloadCheckpoint({
          address,
          expectedClusterId: this.options.expectedClusterId,
          destDir: this.options.snapshotDir,
          deadlineMs: this.options.deadlineMs,
          keepPartialOnFailure: true,
          onProgress: progress,
          consumer,
          ...(resume !== undefined ? { resume } : {}),
          ...(this.options.requesterId !== undefined ? { requesterId: this.options.requesterId } : {}),
          ...(this.options.noProgressTimeoutMs !== undefined ? { noProgressTimeoutMs: this.options.noProgressTimeoutMs } : {}),
          ...(signal !== undefined ? { signal } : {}),
          ...(this.options.channel !== undefined ? { channel: this.options.channel } : {}),
        });
      } catch (err) {
        // The extraction of a stream that will not be finished goes (it removes what it wrote).
        extraction.feed.stream.destroy(new Error('the download stopped'));
        await extraction.extracting.catch(() => undefined);
        throw err;
      }
      const seconds = Math.max(1e-3, (this.now() - started) / 1000);
      // Debug: the node's snapshot_download_done line reports the transfer (with resumedFrom).
      this.log('debug', 'snapshot downloaded', { address, bytes: downloaded.bytes, resumedFrom: downloaded.resumedFrom, seconds, mbPerSecond: round((downloaded.bytes - downloaded.resumedFrom) / 1048576 / seconds) });
      extraction.feed.stream.end();
      const { manifest } = await extraction.extracting;
      try {
        if (manifest.clusterId !== this.options.expectedClusterId) {
          throw new Error(`checkpoint manifest is for cluster ${JSON.stringify(manifest.clusterId)}, expected ${JSON.stringify(this.options.expectedClusterId)}`);
        }
        const termIndex = await readTransactionInfoAt(extractDir);
        if (compareTermIndex(termIndex, manifest.termIndex) !== 0) {
          throw new Error(`checkpoint #TRANSACTIONINFO is ${formatTransactionInfo(termIndex)} but its manifest says ${formatTransactionInfo(manifest.termIndex)}`);
        }
        if (termIndex.index < minIndex) {
          throw new StaleCheckpointError(`checkpoint at ${formatTransactionInfo(termIndex)} is older than needed: the leader's first available index is ${minIndex}`);
        }
        const configuration = await readConfigurationAt(extractDir);
        if (configuration === undefined) throw new Error(`checkpoint at ${formatTransactionInfo(termIndex)} holds no Raft configuration`);
        if (configuration.index > termIndex.index) {
          throw new Error(`checkpoint at ${formatTransactionInfo(termIndex)} holds a configuration from index ${configuration.index}, after it`);
        }
        return { dir: extractDir, termIndex, configuration, manifest, downloadedBytes: downloaded.bytes, resumedFrom: downloaded.resumedFrom, attempts: attempt };
      } catch (err) {
        await rm(extractDir, { recursive: true, force: true });
        throw err;
      }
    } finally {
      if (downloaded !== undefined) await rm(downloaded.file, { force: true });
    }
  }

  private progressLogger(address: string, started: number): (p: DownloadProgress) => void {
    const interval = this.options.progressIntervalMs ?? 5000;
    let lastLog = started;
    return (p) => {
      const t = this.now();
      if (t - lastLog < interval) return;
      lastLog = t;
      const seconds = Math.max(1e-3, (t - started) / 1000);
      const rate = p.bytes / seconds;
      const remaining = p.estimatedTotalBytes !== undefined ? Math.max(0, p.estimatedTotalBytes - p.bytes) : undefined;
      this.log('info', 'snapshot download progress', {
        address,
        bytes: p.bytes,
        mbPerSecond: round(rate / 1048576),
        // The leader's estimate is the uncompressed size, so this ETA is an upper bound.
        etaSeconds: remaining !== undefined && rate > 0 ? round(remaining / rate) : undefined,
      });
    };
  }

  private backoff(failures: number): number {
    const base = Math.min(this.maxBackoffMs, this.initialBackoffMs * 2 ** (failures - 1));
    return base / 2 + Math.random() * (base / 2);
  }

  /** Leftovers of an earlier, interrupted catch-up (partial downloads, extractions) are useless now. */
  private async clearSnapshotDir(): Promise<void> {
    await mkdir(this.options.snapshotDir, { recursive: true });
    for (const name of await readdir(this.options.snapshotDir)) {
      await rm(join(this.options.snapshotDir, name), { recursive: true, force: true });
    }
  }
}

/** A fetch that gives up has no use for the prefix it kept to resume. */
async function dropKeptPrefix(resume: ResumePoint | undefined): Promise<void> {
  if (resume !== undefined) await rm(resume.partialFile, { force: true });
}

/**
 * Bytes of the stream on disk now in the file a resumed attempt continues (0 for a fresh one, and
 * after a leader that restarted at 0 truncated it), taken when the free space is measured.
 */
async function keptBytes(resume: ResumePoint | undefined): Promise<number> {
  if (resume === undefined) return 0;
  return stat(resume.partialFile).then(
    (s) => s.size,
    () => 0,
  );
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}

/**
 * An upper bound of a checkpoint stream's size for files of `totalBytes`: at gzip level 0 the tar
 * (a header and padding per file, two end blocks) plus gzip's 5 bytes per stored block of at most
 * 64 KiB; any other level writes less for these files, at worst as much.
 */
function streamBytesAtMost(declared: DeclaredSize): number {
  return declared.totalBytes + Math.ceil(declared.totalBytes / 1024) + (declared.files + 1) * 2048 + 64 * 1024;
}

/** Bytes of the stream buffered between the download and the extraction (a few messages). */
const FEED_BUFFER = 4 * 1024 * 1024;

/**
 * The verified download on its way into the extraction: a write waits while the extraction is
 * FEED_BUFFER behind (so the download waits, and with it the leader), and fails with the
 * extraction's own error once the extraction has failed (an unsafe entry, a bomb, a full disk).
 */
class ExtractionFeed implements DownloadConsumer {
  readonly stream = new PassThrough({ highWaterMark: FEED_BUFFER });
  private failure: { error: unknown } | undefined;
  private readonly stopped = new AbortController();

  watch(extracting: Promise<ExtractedCheckpoint>): void {
    extracting.then(
      () => this.stopped.abort(),
      (error: unknown) => {
        this.failure = { error };
        this.stopped.abort();
      },
    );
  }

  async write(data: Buffer): Promise<void> {
    this.check();
    if (this.stream.write(data)) return;
    try {
      await once(this.stream, 'drain', { signal: this.stopped.signal });
    } catch {
      // The extraction ended first: it failed (or took no more), and says why below.
    }
    this.check();
  }

  private check(): void {
    if (this.failure !== undefined) throw this.failure.error;
    if (this.stopped.signal.aborted) throw new Error('the extraction ended before the download');
  }
}
