// The follower side of InterSCMProtocolService.download: streams the leader's checkpoint tar.gz
// into a file under `snapshot/`, verifying every message before a byte of it touches the file:
// the cluster id, contiguous readOffsets, len == data length, the chunk checksum, a stable
// checkpoint id, and an explicit eof (a stream that ends without one is truncated). A leader that
// sends nothing for noProgressTimeoutMs is given up on (the verified prefix can be resumed); an
// AbortSignal cancels the call at once and leaves no file behind. A consumer (the follower's
// extraction) may take the verified bytes as they arrive instead of reading the file afterwards.
import * as grpc from '@grpc/grpc-js';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { TermIndex } from '../statemachine/transaction-info.js';
import { abortedError, SnapshotAbortedError } from './aborted.js';
import { chunkChecksum } from './chunk-checksum.js';
import { CLUSTER_ID_METADATA } from './download-service.js';
import { interScmClientConstructor, toSafeInteger } from './inter-scm-proto.js';
import { checkRequestId } from './request-checks.js';
import { grpcChannelOptions } from '../grpc-options.js';
import { RETRY_AFTER_METADATA } from '../retry-after.js';

export interface DownloadProgress {
  readonly bytes: number;
  /** Upper-bound estimate of the stream length from the leader, when it sends one. */
  readonly estimatedTotalBytes: number | undefined;
}

export interface ResumePoint {
  readonly checkpointId: string;
  /** Bytes of `partialFile` already verified. */
  readonly offset: number;
  readonly partialFile: string;
}

/** How to reach the serving SCM: credentials and channel options (plaintext when not given). */
export interface DownloadChannel {
  readonly credentials: grpc.ChannelCredentials;
  readonly options?: grpc.ChannelOptions;
}

export interface DownloadRequest {
  /** host:port of the leader's InterSCM gRPC service. */
  readonly address: string;
  readonly expectedClusterId: string;
  /** The `snapshot/` directory. */
  readonly destDir: string;
  /** Whole-call deadline (ozone.scm.ha.grpc.deadline.interval). */
  readonly deadlineMs: number;
  readonly resume?: ResumePoint;
  /** On failure keep the verified prefix for a later resume (default false: remove it). */
  readonly keepPartialOnFailure?: boolean;
  readonly requesterId?: string;
  readonly onProgress?: (p: DownloadProgress) => void;
  /** Largest message accepted (default 8 MiB; Ozone sends 1 MiB chunks). */
  readonly maxMessageBytes?: number;
  /**
   * Give up when no message arrives for this long (default 5 s), from the start of the call and
   * between messages: the leader hung, paused or was cut off. The verified prefix is kept for a
   * resume as on any failure. Our leader sends an empty keepalive message every second while it
   * prepares, so a slow start is not taken for a hang.
   */
  readonly noProgressTimeoutMs?: number;
  /** Aborting cancels the call at once and removes the partial file, whatever keepPartialOnFailure says. */
  readonly signal?: AbortSignal;
  /** The channel to `address` (with TLS: this node's or the admin's certificate); plaintext by default. */
  readonly channel?: (address: string) => DownloadChannel;
  /**
   * Takes the verified bytes as they arrive. With one, the file is only the prefix kept for a
   * resume and is not fsynced (what the consumer makes of the bytes is its own to make durable).
   */
  readonly consumer?: DownloadConsumer;
}

/**
 * Takes the verified stream while it downloads (snapshot-downloader.ts extracts it on the way).
 */
export interface DownloadConsumer {
  /**
   * The next verified bytes, in stream order from offset 0: a resumed download first replays the
   * prefix it kept, so the consumer always sees the whole stream. Each call is awaited before the
   * next message is taken, so a slow consumer slows the leader down (flow control), never piles up
   * memory. A rejection ends the download with that very error (not a DownloadError) and keeps no
   * partial file: the stream's content was refused, resuming it would only repeat that. A
   * rejection for a local I/O error (an error with a `syscall`, maybe as a cause: ENOSPC, EIO, a
   * failed fsync) refused nothing: it ends the download with a DownloadError that keeps the
   * verified prefix for a resume (with keepPartialOnFailure). The prefix is replayed before the
   * call to the leader is opened, so that the leader never waits on the replay.
   */
  write(data: Buffer): Promise<void>;
  /**
   * The leader no longer had the checkpoint being resumed and restarted at offset 0 with a new one:
   * forget the replayed prefix, the next write is offset 0 of another stream. Without it such a
   * restart fails the attempt (keeping nothing; the next attempt downloads afresh).
   */
  restart?(): Promise<void>;
}

export const DEFAULT_NO_PROGRESS_TIMEOUT_MS = 5_000;

/**
 * The HTTP/2 flow-control window the downloader offers the leader: 4 messages of 1 MiB. With
 * HTTP/2's default 64 KiB the leader may send only 64 KiB per round trip, which caps a transfer at
 * 64 KiB/RTT whatever the link: through a 1 Gbit/s link shaped with millisecond timers
 * (bench/link-proxy.ts), a 62 MB stream took 0.9-1.4 s against 0.5-0.9 s with this window. It
 * bounds what may arrive before we read it, so memory stays bounded as before.
 */
export const DOWNLOAD_FLOW_CONTROL_WINDOW = 4 * 1024 * 1024;

export interface DownloadedCheckpoint {
  /** The complete, verified tar.gz (fsynced unless a consumer took the stream). */
  readonly file: string;
  /** The leader's checkpoint id, when it sent one (an Ozone leader does not). */
  readonly checkpointId: string | undefined;
  readonly termIndex: TermIndex | undefined;
  readonly bytes: number;
  /** The offset this call's bytes started at: the one resumed from, 0 when fresh or when the leader started over. */
  readonly resumedFrom: number;
}

/** Why a download failed, plus what can be resumed. */
export class DownloadError extends Error {
  override readonly name = 'DownloadError';
  /**
   * With RESOURCE_EXHAUSTED: the leader's `scm-retry-after-ms` trailer as it arrived, unchecked
   * (retry-hint.ts decides whether to believe it); undefined when there was none.
   */
  readonly retryAfter: string | undefined;
  constructor(
    message: string,
    /** Verified prefix kept on disk for a resume, when asked to keep one. */
    readonly resumePoint: ResumePoint | undefined,
    /** gRPC status code when the failure came from the transport or the server. */
    readonly grpcCode: grpc.status | undefined,
    options?: { cause?: unknown; retryAfter?: string },
  ) {
    super(message, options !== undefined && 'cause' in options ? { cause: options.cause } : undefined);
    this.retryAfter = options?.retryAfter;
  }
}

const PARTIAL_SUFFIX = '.tar.gz.partial';

/** A consumer's refusal, carried through the download's own error handling unchanged. */
class ConsumerRefusal {
  constructor(readonly error: unknown) {}
}


export async function downloadCheckpoint(req: DownloadRequest): Promise<DownloadedCheckpoint> {
  if (req.expectedClusterId === '') throw new Error('downloadCheckpoint needs a non-empty expectedClusterId');
  if (!(req.deadlineMs > 0)) throw new Error(`downloadCheckpoint deadlineMs must be positive, got ${req.deadlineMs}`);
  checkRequestId(req.requesterId, 'requesterId');
  const noProgressMs = req.noProgressTimeoutMs ?? DEFAULT_NO_PROGRESS_TIMEOUT_MS;
  if (!(noProgressMs > 0)) throw new Error(`downloadCheckpoint noProgressTimeoutMs must be positive, got ${noProgressMs}`);
  const signal = req.signal;
  const aborted = (): boolean => signal?.aborted === true;
  if (aborted()) throw abortedError(`checkpoint download from ${req.address}`, signal as AbortSignal);
  await mkdir(req.destDir, { recursive: true });

  const state = await openTarget(req);
  /** Where this attempt's bytes start: the offset asked for, or 0 if the leader started over. */
  let resumedFrom = state.offset;
  const consumer = req.consumer;
  const Client = interScmClientConstructor();
  const maxMessageBytes = req.maxMessageBytes ?? 8 * 1024 * 1024;
  const channel = req.channel?.(req.address) ?? { credentials: grpc.credentials.createInsecure() };
  const client = new Client(
    req.address,
    channel.credentials,
    grpcChannelOptions({
      ...channel.options,
      'grpc.max_receive_message_length': maxMessageBytes,
      'grpc-node.flow_control_window': DOWNLOAD_FLOW_CONTROL_WINDOW,
    }),
  );
  let call: grpc.ClientReadableStream<Record<string, unknown>> | undefined;
  // Why we cancelled the call ourselves (no progress, or an abort): reported instead of CANCELLED.
  let stopped: Error | undefined;
  const stop = (reason: Error): void => {
    if (stopped !== undefined) return;
    stopped = reason;
    call?.cancel();
  };
  let silence: NodeJS.Timeout | undefined;
  const heard = (): void => {
    clearTimeout(silence);
    silence = setTimeout(() => stop(new Error(`no progress for ${noProgressMs} ms after ${state.offset} bytes: the leader hung, paused or is unreachable`)), noProgressMs);
  };
  const onAbort = (): void => stop(abortedError(`checkpoint download from ${req.address}`, signal as AbortSignal));
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    if (consumer !== undefined && state.offset > 0) {
      // The kept prefix goes to the consumer before the call is open: once it is, the leader fills
      // the flow-control window and waits for us, and a replay that outlasts its idle or slow-reader
      // rule would lose the slot (each attempt gaining about one window, the replay growing).
      await consume(consumer, replayPrefix(state.path, state.offset), signal);
    }
    const request: Record<string, unknown> = { flush: true };
    if (req.resume !== undefined) {
      request['checkpointId'] = req.resume.checkpointId;
      request['resumeOffset'] = req.resume.offset;
    }
    if (req.requesterId !== undefined) request['requesterId'] = req.requesterId;
    // Which cluster we are: a leader of another cluster refuses before it takes a checkpoint.
    const metadata = new grpc.Metadata();
    metadata.set(CLUSTER_ID_METADATA, req.expectedClusterId);
    call = (client as unknown as { download(r: unknown, m: grpc.Metadata, o: grpc.CallOptions): grpc.ClientReadableStream<Record<string, unknown>> }).download(request, metadata, {
      deadline: Date.now() + req.deadlineMs,
    });
    heard();
    let eof = false;
    let first = true;
    let termIndex: TermIndex | undefined;
    for await (const message of call as AsyncIterable<Record<string, unknown>>) {
      if (stopped !== undefined) throw stopped;
      // Only time spent waiting for the leader counts, not our own disk writes.
      clearTimeout(silence);
      if (eof) throw new Error('message received after eof');
      if (isKeepalive(message)) {
        checkKeepalive(message, req.expectedClusterId, state.offset);
        heard();
        continue;
      }
      const checked = verifyMessage(message, req.expectedClusterId, state.offset);
      if (first && state.offset > 0 && checked.checkpointId !== state.checkpointId && checked.readOffset === 0) {
        // The leader no longer has the checkpoint we were resuming and started a new one at 0.
        await state.handle.truncate(0);
        const replayed = state.offset;
        state.offset = 0;
        resumedFrom = 0;
        state.checkpointId = checked.checkpointId;
        // The consumer had the old checkpoint's prefix replayed: it starts over too.
        if (consumer !== undefined) {
          if (consumer.restart === undefined) throw new Error(`the leader restarted at offset 0 with checkpoint ${JSON.stringify(checked.checkpointId)}, and the consumer, given ${replayed} bytes of the previous one, cannot start over`);
          try {
            await consumer.restart();
          } catch (err) {
            throw new ConsumerRefusal(err);
          }
        }
      } else if (first && state.offset === 0) {
        state.checkpointId = checked.checkpointId;
      } else if (checked.checkpointId !== state.checkpointId) {
        throw new Error(`checkpoint id changed mid-stream from ${JSON.stringify(state.checkpointId)} to ${JSON.stringify(checked.checkpointId)}`);
      }
      first = false;
      if (checked.readOffset !== state.offset) {
        throw new Error(`offset gap: expected readOffset ${state.offset}, got ${checked.readOffset}`);
      }
      if (checked.termIndex !== undefined) termIndex = checked.termIndex;
      await writeAndConsume(state.handle, checked.data, state.offset, consumer);
      state.offset += checked.data.length;
      eof = checked.eof;
      req.onProgress?.({ bytes: state.offset, estimatedTotalBytes: checked.estimatedTotalBytes });
      heard();
    }
    clearTimeout(silence);
    if (stopped !== undefined) throw stopped;
    if (!eof) throw new Error(`stream truncated: it ended after ${state.offset} bytes without an eof message`);
    if (consumer === undefined) await state.handle.sync();
    if (aborted()) throw abortedError(`checkpoint download from ${req.address}`, signal as AbortSignal);
    await state.handle.close();
    const finalFile = join(req.destDir, `${safeFileStem(state.checkpointId ?? `checkpoint_${Date.now()}`)}.tar.gz`);
    await rm(finalFile, { force: true });
    await rename(state.path, finalFile);
    return { file: finalFile, checkpointId: state.checkpointId, termIndex, bytes: state.offset, resumedFrom };
  } catch (caught) {
    const err = stopped ?? caught;
    call?.cancel();
    await state.handle.close().catch(() => undefined);
    if (err instanceof SnapshotAbortedError || aborted()) {
      await rm(state.path, { force: true });
      throw err instanceof SnapshotAbortedError ? err : abortedError(`checkpoint download from ${req.address}`, signal as AbortSignal);
    }
    if (err instanceof ConsumerRefusal && !isLocalIoError(err.error)) {
      await rm(state.path, { force: true });
      throw err.error;
    }
    const grpcCode = typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code as grpc.status) : undefined;
    // A consumer that failed on its own disk (ENOSPC, EIO, a failed fsync) refused nothing: the
    // verified prefix stays for a resume like after any other local failure.
    const reason = err instanceof ConsumerRefusal ? err.error : err;
    let resumePoint: ResumePoint | undefined;
    if (req.keepPartialOnFailure === true && state.checkpointId !== undefined && state.offset > 0) {
      await truncateTo(state.path, state.offset);
      resumePoint = { checkpointId: state.checkpointId, offset: state.offset, partialFile: state.path };
    } else {
      await rm(state.path, { force: true });
    }
    const retryAfter = grpcCode === grpc.status.RESOURCE_EXHAUSTED ? retryAfterTrailer(err) : undefined;
    throw new DownloadError(`checkpoint download from ${req.address} failed: ${(reason as Error).message}`, resumePoint, grpcCode, { cause: reason, ...(retryAfter !== undefined ? { retryAfter } : {}) });
  } finally {
    clearTimeout(silence);
    signal?.removeEventListener('abort', onAbort);
    client.close();
  }
}

/** The first `scm-retry-after-ms` value in a gRPC error's trailing metadata, as sent. */
function retryAfterTrailer(err: unknown): string | undefined {
  const metadata = (err as { metadata?: unknown }).metadata;
  if (!(metadata instanceof grpc.Metadata)) return undefined;
  const value = metadata.get(RETRY_AFTER_METADATA)[0];
  return value === undefined ? undefined : String(value);
}

/**
 * Whether `err` (or an error in its cause chain) is a failed system call, i.e. a local I/O error
 * (ENOSPC, EIO, EDQUOT, a failed fsync), not a refusal of the stream's content.
 */
export function isLocalIoError(err: unknown): boolean {
  let e: unknown = err;
  for (let depth = 0; depth < 8 && e instanceof Error; depth++) {
    const { code, syscall } = e as { code?: unknown; syscall?: unknown };
    if (typeof code === 'string' && typeof syscall === 'string') return true;
    e = e.cause;
  }
  return false;
}

/**
 * An empty message that is not the last: our leader's keepalive while it prepares or packs (an
 * Ozone leader sends none). It proves the leader alive and carries nothing to write.
 */
function isKeepalive(m: Record<string, unknown>): boolean {
  return m['eof'] !== true && Buffer.isBuffer(m['data']) && m['data'].length === 0;
}

function checkKeepalive(m: Record<string, unknown>, expectedClusterId: string, offset: number): void {
  if (m['clusterId'] !== expectedClusterId) throw new Error(`cluster id mismatch: expected ${JSON.stringify(expectedClusterId)}, leader sent ${JSON.stringify(m['clusterId'])}`);
  const len = toSafeInteger(m['len'], 'len');
  if (len !== 0) throw new Error(`keepalive after ${offset} bytes says len ${String(len)} but carries no data`);
}

interface TargetState {
  path: string;
  handle: FileHandle;
  offset: number;
  checkpointId: string | undefined;
}

async function openTarget(req: DownloadRequest): Promise<TargetState> {
  if (req.resume !== undefined) {
    const { partialFile, offset, checkpointId } = req.resume;
    if (!Number.isSafeInteger(offset) || offset < 0) throw new Error(`resume offset must be a non-negative integer, got ${offset}`);
    const size = (await stat(partialFile)).size;
    if (size < offset) throw new Error(`resume file ${partialFile} has ${size} bytes, fewer than the resume offset ${offset}`);
    const handle = await open(partialFile, 'r+');
    await handle.truncate(offset);
    return { path: partialFile, handle, offset, checkpointId };
  }
  const path = join(req.destDir, `download_${process.pid}_${Date.now()}_${Math.random().toString(36).slice(2, 8)}${PARTIAL_SUFFIX}`);
  return { path, handle: await open(path, 'wx'), offset: 0, checkpointId: undefined };
}

interface CheckedMessage {
  readonly data: Buffer;
  readonly readOffset: number;
  readonly eof: boolean;
  readonly checkpointId: string | undefined;
  readonly termIndex: TermIndex | undefined;
  readonly estimatedTotalBytes: number | undefined;
}

function verifyMessage(m: Record<string, unknown>, expectedClusterId: string, expectedOffset: number): CheckedMessage {
  const clusterId = m['clusterId'];
  if (clusterId !== expectedClusterId) throw new Error(`cluster id mismatch: expected ${JSON.stringify(expectedClusterId)}, leader sent ${JSON.stringify(clusterId)}`);
  const data = m['data'];
  if (!Buffer.isBuffer(data)) throw new Error(`message at offset ${expectedOffset} has no data field`);
  const len = toSafeInteger(m['len'], 'len');
  if (len !== data.length) throw new Error(`message at offset ${expectedOffset} says len ${String(len)} but carries ${data.length} bytes`);
  const readOffset = toSafeInteger(m['readOffset'], 'readOffset');
  if (readOffset === undefined) throw new Error(`message at offset ${expectedOffset} has no readOffset`);
  const checksum = toSafeInteger(m['checksum'], 'checksum');
  if (checksum === undefined) throw new Error(`message at readOffset ${readOffset} has no checksum`);
  const actual = chunkChecksum(data);
  if (checksum !== actual) throw new Error(`checksum mismatch in chunk at readOffset ${readOffset}: leader sent ${checksum}, data has ${actual}`);
  // Ours only (an Ozone leader sends none); it names the partial file and comes back in a resume.
  const checkpointId = m['checkpointId'] === '' ? undefined : checkRequestId(m['checkpointId'], 'checkpointId');
  const term = toSafeInteger(m['checkpointTerm'], 'checkpointTerm');
  const index = toSafeInteger(m['checkpointIndex'], 'checkpointIndex');
  return {
    data,
    readOffset,
    eof: m['eof'] === true,
    checkpointId,
    termIndex: term !== undefined && index !== undefined ? { term, index } : undefined,
    estimatedTotalBytes: toSafeInteger(m['estimatedTotalBytes'], 'estimatedTotalBytes'),
  };
}

/** The first `length` bytes of the kept partial file, for the consumer of a resumed download. */
async function* replayPrefix(path: string, length: number): AsyncGenerator<Buffer> {
  if (length === 0) return;
  yield* createReadStream(path, { start: 0, end: length - 1, highWaterMark: 1024 * 1024 }) as AsyncIterable<Buffer>;
}

async function consume(consumer: DownloadConsumer, pieces: AsyncIterable<Buffer>, signal: AbortSignal | undefined): Promise<void> {
  for await (const piece of pieces) {
    signal?.throwIfAborted();
    try {
      await consumer.write(piece);
    } catch (err) {
      throw new ConsumerRefusal(err);
    }
  }
}

/** Writes a verified message to the file and hands it to the consumer, side by side. */
async function writeAndConsume(handle: FileHandle, data: Buffer, position: number, consumer: DownloadConsumer | undefined): Promise<void> {
  if (consumer === undefined) return writeFully(handle, data, position);
  // Both settle before we go on: the file handle may be closed right after a failure.
  const [written, consumed] = await Promise.allSettled([writeFully(handle, data, position), consumer.write(data)]);
  if (consumed.status === 'rejected') throw new ConsumerRefusal(consumed.reason);
  if (written.status === 'rejected') throw written.reason;
}

async function writeFully(handle: FileHandle, data: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await handle.write(data, done, data.length - done, position + done);
    done += bytesWritten;
  }
}

async function truncateTo(path: string, size: number): Promise<void> {
  const handle = await open(path, 'r+');
  try {
    await handle.truncate(size);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function safeFileStem(id: string): string {
  return id.replace(/[^A-Za-z0-9_.-]/g, '_');
}
