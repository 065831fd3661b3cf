// The leader side of InterSCMProtocolService.download: leases a checkpoint, streams it as tar.gz in
// fixed-size chunks with every Ozone field filled (clusterId, len, eof, data, readOffset, checksum)
// plus our optional extension fields, and honours gRPC flow control so memory stays flat.
import * as grpc from '@grpc/grpc-js';
import { once } from 'node:events';
import { ResourceExhaustedError, type CheckpointProvider, type CheckpointLease } from './checkpoint-provider.js';
import { failpoint } from './failpoints.js';
import { chunkChecksum } from './chunk-checksum.js';
import { fixedSizeChunks } from './chunker.js';
import { interScmServiceDefinition, toSafeInteger, type CopyDBCheckpointRequest, type CopyDBCheckpointResponse } from './inter-scm-proto.js';
import { packCheckpoint } from './tarball.js';

export const DEFAULT_CHUNK_SIZE = 1024 * 1024;

/**
 * Request metadata naming the caller's cluster. Our downloader always sends it; a caller that names
 * another cluster is refused before a checkpoint is taken. (A caller without it, such as Ozone's
 * own client, gets the check on its side: every message carries our clusterId.)
 */
export const CLUSTER_ID_METADATA = 'scm-cluster-id';

export type SnapshotLogger = (level: 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>) => void;

export interface InterScmServiceOptions {
  readonly clusterId: string;
  readonly provider: CheckpointProvider;
  /** Bytes per message (default 1 MiB, as Ozone). */
  readonly chunkSize?: number;
  readonly gzipLevel?: number;
  /** Messages handed to gRPC but not yet flushed, per transfer (default 2): bounds memory. */
  readonly maxUnflushedMessages?: number;
  readonly log?: SnapshotLogger;
  /** A checkpoint stream reached its end (for metrics): the bytes sent in this call. */
  readonly onServed?: (bytes: number) => void;
  /**
   * Who may download (with TLS: members and administrators, by their certificate); a refusal ends
   * the call with its status before anything is read or taken. Everyone may without it.
   */
  readonly authorize?: (call: DownloadCall) => { readonly code: grpc.status; readonly details: string } | undefined;
}

export type DownloadCall = grpc.ServerWritableStream<CopyDBCheckpointRequest, CopyDBCheckpointResponse>;

export function registerInterScmService(server: grpc.Server, options: InterScmServiceOptions): void {
  if (options.clusterId === '') throw new Error('InterSCM service needs a non-empty clusterId');
  const chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
  if (!Number.isInteger(chunkSize) || chunkSize <= 0) throw new Error(`chunkSize must be a positive integer, got ${chunkSize}`);
  const maxUnflushed = options.maxUnflushedMessages ?? 2;
  const log = options.log ?? (() => undefined);
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
      serveDownload(call, options, chunkSize, maxUnflushed, log).catch((err: unknown) => {
        log('error', 'checkpoint download failed', { error: String(err) });
      });
    },
  });
}

async function serveDownload(call: DownloadCall, options: InterScmServiceOptions, chunkSize: number, maxUnflushed: number, log: SnapshotLogger): Promise<void> {
  let cancelled = call.cancelled;
  const cancellation = new Promise<void>((resolve) => {
    if (cancelled) resolve();
    call.once('cancelled', () => {
      cancelled = true;
      resolve();
    });
    call.once('close', () => resolve());
  });
  const request = call.request;
  let resumeOffset: number;
  try {
    resumeOffset = toSafeInteger(request.resumeOffset, 'resumeOffset') ?? 0;
    if (resumeOffset < 0) throw new Error(`resumeOffset must be >= 0, got ${resumeOffset}`);
  } catch (err) {
    fail(call, grpc.status.INVALID_ARGUMENT, (err as Error).message);
    return;
  }
  const resumeId = request.checkpointId !== undefined && request.checkpointId !== '' ? request.checkpointId : undefined;

  let lease: CheckpointLease;
  try {
    lease = await options.provider.acquire(resumeId);
  } catch (err) {
    const code = err instanceof ResourceExhaustedError ? grpc.status.RESOURCE_EXHAUSTED : grpc.status.INTERNAL;
    fail(call, code, `cannot provide a checkpoint of scm.db: ${(err as Error).message}`);
    return;
  }
  const checkpoint = lease.checkpoint;
  // A resume only makes sense on the very same bytes; otherwise start the new checkpoint at 0.
  const startOffset = resumeId === checkpoint.id ? resumeOffset : 0;
  const body = packCheckpoint(checkpoint, options.clusterId, options.gzipLevel !== undefined ? { gzipLevel: options.gzipLevel } : {});
  log('info', 'streaming checkpoint', { requester: request.requesterId ?? call.getPeer(), checkpointId: checkpoint.id, method: checkpoint.method, termIndex: checkpoint.termIndex, startOffset });
  const unflushed: Array<Promise<void>> = [];
  let sent = 0;
  try {
    for await (const chunk of fixedSizeChunks(body, chunkSize, startOffset)) {
      if (cancelled) break;
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
      // Tests kill the leader here: the follower has a checkpoint stream under way, never finished.
      if (chunk.eof) failpoint('serve.beforeEof');
      // The write callback fires once gRPC has handed the message to HTTP/2 (itself flow
      // controlled); errors surface as cancellation, so the callback only paces us.
      let needDrain = false;
      const flushed = new Promise<void>((resolve) => {
        needDrain = !call.write(message, () => resolve());
      });
      unflushed.push(flushed);
      sent += chunk.data.length;
      if (needDrain) await Promise.race([once(call, 'drain'), cancellation]);
      while (unflushed.length >= maxUnflushed && !cancelled) await Promise.race([unflushed.shift(), cancellation]);
    }
    if (cancelled) {
      log('warn', 'checkpoint download cancelled by the client', { checkpointId: checkpoint.id, sentBytes: sent });
      return;
    }
    await Promise.race([Promise.all(unflushed), cancellation]);
    if (cancelled) return;
    call.end();
    log('info', 'checkpoint streamed', { checkpointId: checkpoint.id, bytes: sent });
    options.onServed?.(sent);
  } catch (err) {
    const code = err instanceof RangeError ? grpc.status.OUT_OF_RANGE : grpc.status.INTERNAL;
    fail(call, code, `streaming checkpoint ${checkpoint.id} failed: ${(err as Error).message}`);
  } finally {
    body.destroy();
    await lease.release();
  }
}

function fail(call: DownloadCall, code: grpc.status, details: string): void {
  if (call.cancelled) return;
  call.emit('error', { code, details, metadata: new grpc.Metadata() } satisfies Partial<grpc.StatusObject>);
}
