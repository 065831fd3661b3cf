// The leader side of InterSCMProtocolService.download: checks the request (its ids, offset) and
// who sends it (per-requester and per-peer caps, serve-limiter.ts) before it spends anything,
// leases a checkpoint, streams it as tar.gz in fixed-size chunks with every Ozone field filled
// (clusterId, len, eof, data, readOffset, checksum) plus our optional extension fields, and honours
// gRPC flow control so memory stays flat. Every refusal is logged (warn) and reported (onRefused).
import * as grpc from '@grpc/grpc-js';
import { once } from 'node:events';
import * as http2 from 'node:http2';
import { ResourceExhaustedError, type CheckpointProvider, type CheckpointLease } from './checkpoint-provider.js';
import { failpointAsync } from '../failpoints.js';
import { RETRY_AFTER_METADATA } from '../retry-after.js';
import { chunkChecksum } from './chunk-checksum.js';
import { fixedSizeChunks } from './chunker.js';
import { interScmServiceDefinition, toSafeInteger, type CopyDBCheckpointRequest, type CopyDBCheckpointResponse } from './inter-scm-proto.js';
import { checkRequestId } from './request-checks.js';
import { ReaderPace, checkPaceLimits, type ReclaimReason } from './reader-pace.js';
import { ServeLimiter, type Admission, type RateLimit } from './serve-limiter.js';
import { REAL_SERVE_TIMERS, type ServeTimers } from './serve-timers.js';
import { packCheckpoint } from './tarball.js';

export const DEFAULT_CHUNK_SIZE = 1024 * 1024;

/**
 * Request metadata naming the caller's cluster. Our downloader always sends it; a caller that names
 * another cluster is refused before a checkpoint is taken. (A caller without it, such as Ozone's
 * own client, gets the check on its side: every message carries our clusterId.)
 */
export const CLUSTER_ID_METADATA = 'scm-cluster-id';

export type SnapshotLogger = (level: 'debug' | 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>) => void;

export interface InterScmServiceOptions {
  readonly clusterId: string;
  readonly provider: CheckpointProvider;
  /** Bytes per message (default 1 MiB, as Ozone). */
  readonly chunkSize?: number;
  /** gzip level of the stream (ozone.scm.ha.grpc.checkpoint.gzip.level; default tarball.ts's DEFAULT_GZIP_LEVEL, 0). */
  readonly gzipLevel?: number;
  /** Messages handed to gRPC but not yet flushed, per transfer (default 2): bounds memory. */
  readonly maxUnflushedMessages?: number;
  readonly log?: SnapshotLogger;
  /** A checkpoint stream reached its end (for metrics): the bytes sent in this call. */
  readonly onServed?: (bytes: number) => void;
  /** A download was refused or cut off without being served to its end (for metrics), and why. */
  readonly onRefused?: (reason: ServeRefusal) => void;
  /** Caps per requesterId (default 2 at once, 12 per minute). */
  readonly perRequester?: RateLimit;
  /** Caps per peer address, whatever requesterId it sends (default 3 at once, 30 per minute). */
  readonly perPeer?: RateLimit;
  /** Clock for the per-minute caps (tests inject one; defaults to `timers.now`). */
  readonly now?: () => number;
  /**
   * Time for the no-progress check and the keepalives (default: Node's timers and Date.now). Tests
   * pass a manual clock to drive a stalled reader without waiting.
   */
  readonly timers?: ServeTimers;
  /**
   * A reader that accepts no message for this long loses its transfer slot (default 10 s). Progress
   * is counted per message, so with 1 MiB chunks a reader slower than ~100 KiB/s counts as stalled.
   */
  readonly idleTimeoutMs?: number;
  /**
   * A reader that takes fewer bytes than this over each readWindowMs the leader spends waiting for
   * it loses its transfer slot (ozone.scm.ha.grpc.checkpoint.min.read.bytes, default 8 MiB; 0 turns
   * the rule off): one that takes a message just before each idle timeout would keep it for ever.
   */
  readonly minReadBytes?: number;
  /** The window of minReadBytes (ozone.scm.ha.grpc.checkpoint.min.read.window, default 60 s). */
  readonly readWindowMs?: number;
  /**
   * While the leader takes the checkpoint or packs it and has sent nothing for this long, it sends
   * an empty message (default 1 s): the follower's no-progress timeout then only fires on a leader
   * that hung, not on one that is busy. An Ozone client writes the empty data and goes on.
   */
  readonly keepaliveIntervalMs?: number;
  /**
   * Who may download (with TLS: members and administrators, by their certificate); a refusal ends
   * the call with its status before anything is read or taken. Everyone may without it.
   */
  readonly authorize?: (call: DownloadCall) => { readonly code: grpc.status; readonly details: string } | undefined;
}

export const DEFAULT_SERVE_IDLE_TIMEOUT_MS = 10_000;
/** 8 MiB a minute, ~140 KiB/s: a follower on a 10 Mbit/s link clears it nine times over. */
export const DEFAULT_MIN_READ_BYTES = 8 * 1024 * 1024;
export const DEFAULT_READ_WINDOW_MS = 60_000;
export const DEFAULT_KEEPALIVE_INTERVAL_MS = 1_000;

/**
 * Why a download was not served to its end, a closed set (a metric label):
 * - `invalid_request`: a malformed field (INVALID_ARGUMENT);
 * - `rate_limited`: its requester or peer is over a cap (RESOURCE_EXHAUSTED);
 * - `busy`: every transfer slot of the leader is taken (RESOURCE_EXHAUSTED);
 * - `idle`: the reader made no progress for idleTimeoutMs; its slot was taken back mid-stream;
 * - `slow`: the reader took fewer than minReadBytes in a readWindowMs of waiting; likewise.
 */
export const SERVE_REFUSALS = ['invalid_request', 'rate_limited', 'busy', 'idle', 'slow'] as const;
export type ServeRefusal = (typeof SERVE_REFUSALS)[number];

export type DownloadCall = grpc.ServerWritableStream<CopyDBCheckpointRequest, CopyDBCheckpointResponse>;

export function registerInterScmService(server: grpc.Server, options: InterScmServiceOptions): void {
  if (options.clusterId === '') throw new Error('InterSCM service needs a non-empty clusterId');
  const chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
  if (!Number.isInteger(chunkSize) || chunkSize <= 0) throw new Error(`chunkSize must be a positive integer, got ${chunkSize}`);
  const maxUnflushed = options.maxUnflushedMessages ?? 2;
  const limits = {
    idleTimeoutMs: options.idleTimeoutMs ?? DEFAULT_SERVE_IDLE_TIMEOUT_MS,
    minReadBytes: options.minReadBytes ?? DEFAULT_MIN_READ_BYTES,
    readWindowMs: options.readWindowMs ?? DEFAULT_READ_WINDOW_MS,
  };
  checkPaceLimits(limits);
  const keepaliveIntervalMs = options.keepaliveIntervalMs ?? DEFAULT_KEEPALIVE_INTERVAL_MS;
  if (!(keepaliveIntervalMs > 0)) throw new Error(`keepaliveIntervalMs must be positive, got ${keepaliveIntervalMs}`);
  const log = options.log ?? (() => undefined);
  const timers = options.timers ?? REAL_SERVE_TIMERS;
  const limiter = new ServeLimiter({
    ...(options.perRequester !== undefined ? { perRequester: options.perRequester } : {}),
    ...(options.perPeer !== undefined ? { perPeer: options.perPeer } : {}),
    now: options.now ?? (() => timers.now()),
  });
  server.addService(interScmServiceDefinition(), {
    download: (call: DownloadCall) => {
      const refusal = options.authorize?.(call);
      if (refusal !== undefined) {
        fail(call, refusal.code, refusal.details);
        return;
      }
      const claimed = call.metadata.get(CLUSTER_ID_METADATA)[0];
      if (claimed !== undefined && String(claimed) !== options.clusterId) {
        log('warn', 'refused a checkpoint download for another cluster', { requester: call.getPeer(), clusterId: String(claimed) });
        fail(call, grpc.status.FAILED_PRECONDITION, `cluster id mismatch: this SCM belongs to ${options.clusterId}, the caller to ${String(claimed)}`);
        return;
      }
      serveDownload(call, options, limiter, { chunkSize, maxUnflushed, limits, keepaliveIntervalMs, timers }, log).catch((err: unknown) => {
        log('error', 'checkpoint download failed', { error: String(err) });
      });
    },
  });
}

interface Pacing {
  readonly chunkSize: number;
  readonly maxUnflushed: number;
  readonly limits: { readonly idleTimeoutMs: number; readonly minReadBytes: number; readonly readWindowMs: number };
  readonly keepaliveIntervalMs: number;
  readonly timers: ServeTimers;
}

async function serveDownload(call: DownloadCall, options: InterScmServiceOptions, limiter: ServeLimiter, pacing: Pacing, log: SnapshotLogger): Promise<void> {
  const watch = new CallWatch(call);
  const request = call.request;
  const peer = call.getPeer();
  let resumeOffset: number;
  let resumeId: string | undefined;
  let requesterId: string | undefined;
  try {
    // Checked before anything is logged or spent: these are the peer's words.
    requesterId = checkRequestId(request.requesterId, 'requesterId');
    resumeId = checkRequestId(request.checkpointId, 'checkpointId');
    resumeOffset = toSafeInteger(request.resumeOffset, 'resumeOffset') ?? 0;
    if (resumeOffset < 0) throw new Error(`resumeOffset must be >= 0, got ${resumeOffset}`);
  } catch (err) {
    refuse(call, options, log, grpc.status.INVALID_ARGUMENT, 'invalid_request', `invalid checkpoint download request: ${(err as Error).message}`, { peer });
    return;
  }

  let admission: Admission;
  try {
    admission = limiter.admit(requesterId, peer);
  } catch (err) {
    refuse(call, options, log, grpc.status.RESOURCE_EXHAUSTED, 'rate_limited', `checkpoint download refused: ${(err as Error).message}`, { peer, requester: requesterId }, retryAfterOf(err));
    return;
  }
  const keepalive = new Keepalive(call, options.clusterId, pacing.timers, pacing.keepaliveIntervalMs, resumeOffset);
  try {
    await serveAdmitted(call, watch, keepalive, options, pacing, log, { peer, requesterId, resumeId, resumeOffset });
  } finally {
    keepalive.stop();
    admission.release();
  }
}

/**
 * Sends an empty message when nothing was sent for a whole interval, until stopped (always before
 * the last message and before the call ends): proof of life while the leader is busy.
 */
class Keepalive {
  private sentSinceTick = false;
  private cancel: (() => void) | undefined;
  /** Where the stream stands: the offset of the next data message. */
  offset: number;

  constructor(private readonly call: DownloadCall, private readonly clusterId: string, private readonly timers: ServeTimers, private readonly intervalMs: number, offset: number) {
    this.offset = offset;
    this.schedule();
  }

  /** A data message went out at `nextOffset - its length`. */
  sent(nextOffset: number): void {
    this.sentSinceTick = true;
    this.offset = nextOffset;
  }

  stop(): void {
    this.cancel?.();
    this.cancel = undefined;
  }

  private schedule(): void {
    this.cancel = this.timers.setTimeout(() => this.tick(), this.intervalMs);
  }

  private tick(): void {
    this.schedule();
    if (this.sentSinceTick || this.call.cancelled || this.call.writableEnded) {
      this.sentSinceTick = false;
      return;
    }
    const empty = Buffer.alloc(0);
    this.call.write({ clusterId: this.clusterId, len: 0, eof: false, data: empty, readOffset: this.offset, checksum: chunkChecksum(empty) } satisfies CopyDBCheckpointResponse);
  }
}

/** Whether the client has gone away (cancelled, or the call closed), and a promise of it. */
class CallWatch {
  cancelled: boolean;
  readonly cancellation: Promise<void>;

  constructor(call: DownloadCall) {
    this.cancelled = call.cancelled;
    this.cancellation = new Promise<void>((resolve) => {
      if (this.cancelled) resolve();
      call.once('cancelled', () => {
        this.cancelled = true;
        resolve();
      });
      call.once('close', () => resolve());
    });
  }
}

interface AdmittedRequest {
  readonly peer: string;
  readonly requesterId: string | undefined;
  readonly resumeId: string | undefined;
  readonly resumeOffset: number;
}

async function serveAdmitted(call: DownloadCall, watch: CallWatch, keepalive: Keepalive, options: InterScmServiceOptions, pacing: Pacing, log: SnapshotLogger, req: AdmittedRequest): Promise<void> {
  const { peer, requesterId, resumeId, resumeOffset } = req;
  const { chunkSize, maxUnflushed } = pacing;
  let lease: CheckpointLease;
  try {
    lease = await options.provider.acquire(resumeId);
  } catch (err) {
    if (err instanceof ResourceExhaustedError) {
      refuse(call, options, log, grpc.status.RESOURCE_EXHAUSTED, 'busy', `cannot provide a checkpoint of scm.db: ${err.message}`, { peer, requester: requesterId }, retryAfterOf(err));
    } else {
      fail(call, grpc.status.INTERNAL, `cannot provide a checkpoint of scm.db: ${(err as Error).message}`);
    }
    return;
  }
  const checkpoint = lease.checkpoint;
  // A resume only makes sense on the very same bytes; otherwise start the new checkpoint at 0.
  const startOffset = resumeId === checkpoint.id ? resumeOffset : 0;
  const body = packCheckpoint(checkpoint, options.clusterId, options.gzipLevel !== undefined ? { gzipLevel: options.gzipLevel } : {});
  log('info', 'streaming checkpoint', { requester: requesterId, peer, checkpointId: checkpoint.id, method: checkpoint.method, termIndex: checkpoint.termIndex, startOffset });
  const unflushed: Array<Promise<void>> = [];
  let sent = 0;
  const pace = new ReaderPace(pacing.timers, pacing.limits);
  let reclaimed: ReclaimReason | undefined;
  // Waits for the reader to take the next message: false when it is too slow to keep its slot
  // (reader-pace.ts) or went away.
  const readerTakes = (next: Promise<unknown>): Promise<boolean> => pace.wait(next, watch.cancellation).then((outcome) => {
    if (outcome === 'idle' || outcome === 'slow') reclaimed = outcome;
    return outcome === 'progress';
  });
  try {
    for await (const chunk of fixedSizeChunks(body, chunkSize, startOffset)) {
      if (watch.cancelled || reclaimed !== undefined) break;
      const message: CopyDBCheckpointResponse = {
        clusterId: options.clusterId,
        len: chunk.data.length,
        eof: chunk.eof,
        data: chunk.data,
        readOffset: chunk.offset,
        checksum: chunkChecksum(chunk.data),
        checkpointId: checkpoint.id,
        checkpointTerm: checkpoint.termIndex.term,
        checkpointIndex: checkpoint.termIndex.index,
        estimatedTotalBytes: checkpoint.totalFileBytes,
      };
      // Nothing may follow the last message.
      if (chunk.eof) keepalive.stop();
      // Tests kill, stop or hang the leader here: the follower has a checkpoint stream under way,
      // never finished.
      if (chunk.eof) await failpointAsync('serve.beforeEof');
      // The write callback fires once gRPC has handed the message to HTTP/2 (itself flow
      // controlled); errors surface as cancellation, so the callback only paces us.
      let needDrain = false;
      const flushed = new Promise<void>((resolve) => {
        needDrain = !call.write(message, () => {
          pace.took(chunk.data.length);
          resolve();
        });
      });
      unflushed.push(flushed);
      keepalive.sent(chunk.offset + chunk.data.length);
      sent += chunk.data.length;
      if (needDrain && !(await readerTakes(once(call, 'drain')))) break;
      while (unflushed.length >= maxUnflushed && (await readerTakes(unflushed.shift() as Promise<void>)));
    }
    if (!watch.cancelled && reclaimed === undefined) await readerTakes(Promise.all(unflushed));
    if (reclaimed !== undefined && !watch.cancelled) {
      // The slot, the packer and the checkpoint lease are given back now (finally, below); the
      // call ends with the reason, and is reset if the reader does not take that either.
      const { idleTimeoutMs, minReadBytes, readWindowMs } = pacing.limits;
      const why = reclaimed === 'idle' ? `no progress for ${seconds(idleTimeoutMs)}` : `read slower than ${minReadBytes} bytes per ${seconds(readWindowMs)} (${pace.lastWindowBytes} bytes in the last window)`;
      log('warn', 'checkpoint download reclaimed', { reason: reclaimed, requester: requesterId, peer, checkpointId: checkpoint.id, sentBytes: sent, error: why });
      options.onRefused?.(reclaimed);
      fail(call, grpc.status.RESOURCE_EXHAUSTED, `checkpoint ${checkpoint.id} download reclaimed: ${why}; its transfer slot was given back: download again, resuming from the last verified offset`);
      resetUnlessEnded(call, pacing.timers, idleTimeoutMs, log);
      return;
    }
    if (watch.cancelled) {
      log('warn', 'checkpoint download cancelled by the client', { checkpointId: checkpoint.id, sentBytes: sent });
      return;
    }
    call.end();
    log('info', 'checkpoint streamed', { checkpointId: checkpoint.id, bytes: sent });
    options.onServed?.(sent);
  } catch (err) {
    const code = err instanceof RangeError ? grpc.status.OUT_OF_RANGE : grpc.status.INTERNAL;
    fail(call, code, `streaming checkpoint ${checkpoint.id} failed: ${(err as Error).message}`);
  } finally {
    keepalive.stop();
    body.destroy();
    await lease.release();
  }
}

/**
 * Answers `code` without serving, logs why (warn) and counts it (onRefused). A refusal that knows
 * when to come back says so in the `scm-retry-after-ms` trailer, so that the follower need not read
 * it out of the message.
 */
function refuse(call: DownloadCall, options: InterScmServiceOptions, log: SnapshotLogger, code: grpc.status, reason: ServeRefusal, details: string, fields: Record<string, unknown>, retryAfterMs?: number): void {
  log('warn', 'checkpoint download refused', { ...fields, reason, error: details, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) });
  options.onRefused?.(reason);
  const metadata = new grpc.Metadata();
  if (retryAfterMs !== undefined) metadata.set(RETRY_AFTER_METADATA, String(retryAfterMs));
  fail(call, code, details, metadata);
}

function retryAfterOf(err: unknown): number | undefined {
  return err instanceof ResourceExhaustedError ? err.retryAfterMs : undefined;
}

/**
 * Resets the call's HTTP/2 stream with ENHANCE_YOUR_CALM (RESOURCE_EXHAUSTED to a gRPC client, as
 * the gRPC HTTP/2 mapping says) unless it ended within `graceMs`. A status can only follow the
 * messages already handed to HTTP/2, so a reader that takes none of them would keep the stream,
 * and those messages, for ever. grpc-js has no public way to reset a server stream: the stream is
 * found under its call objects, and if it cannot be (grpc-js changed), that is logged.
 */
function resetUnlessEnded(call: DownloadCall, timers: ServeTimers, graceMs: number, log: SnapshotLogger): void {
  const stream = http2StreamOf(call);
  if (stream === undefined) {
    log('warn', 'cannot reset a reclaimed checkpoint download: no HTTP/2 stream found under the grpc-js call', {});
    return;
  }
  if (stream.closed || stream.destroyed) return;
  const cancel = timers.setTimeout(() => {
    if (!stream.closed && !stream.destroyed) stream.close(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
  }, graceMs);
  stream.once('close', cancel);
}

function http2StreamOf(call: DownloadCall): http2.Http2Stream | undefined {
  let layer: unknown = (call as unknown as { call?: unknown }).call;
  for (let depth = 0; depth < 16 && typeof layer === 'object' && layer !== null; depth++) {
    const stream = (layer as { stream?: unknown }).stream;
    if (typeof stream === 'object' && stream !== null && typeof (stream as http2.Http2Stream).close === 'function' && 'rstCode' in stream) return stream as http2.Http2Stream;
    layer = (layer as { nextCall?: unknown }).nextCall;
  }
  return undefined;
}

function seconds(ms: number): string {
  return `${ms / 1000} s`;
}

function fail(call: DownloadCall, code: grpc.status, details: string, metadata = new grpc.Metadata()): void {
  if (call.cancelled) return;
  call.emit('error', { code, details, metadata } satisfies Partial<grpc.StatusObject>);
}
