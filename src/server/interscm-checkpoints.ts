// The node's checkpoint source for snapshot catch-up: download from the leader's InterSCM service
// (SnapshotDownloader verifies cluster id, checksums, manifest, #TRANSACTIONINFO and the
// configuration the checkpoint holds), and swap it in with the crash-safe installer. Transfer
// metrics and log lines are emitted here, once per step.
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { SnapshotNotice } from '../raft/index.js';
import { BusyLeaderError, installCheckpoint, SnapshotDownloader, StaleCheckpointError, UnsafeTarballError, type DownloadChannel, type ReadyCheckpoint, type SnapshotLogger } from '../snapshot/index.js';
import type { ScmStateMachine } from '../statemachine/index.js';
import type { RaftEvents } from '../metrics/raft-events.js';
import type { SnapshotFailureReason } from '../metrics/node-metrics.js';
import type { CheckpointSource, FetchedCheckpoint } from './snapshot-catch-up.js';

export const SNAPSHOT_DIR = 'snapshot';

export interface InterScmCheckpointsOptions {
  /** `ozone.scm.db.dirs`: scm.db and snapshot/ live here. */
  readonly dbParentDir: string;
  readonly clusterId: string;
  readonly requesterId: string;
  /** Per-attempt deadline (ozone.scm.ha.grpc.deadline.interval). */
  readonly deadlineMs: number;
  /** How long a catch-up spends on a busy leader, its refused calls and the waits it asks for (ozone.scm.ha.grpc.checkpoint.busy.wait.timeout). */
  readonly busyWaitTimeoutMs?: number;
  /** The InterSCM address of the current leader, else of the node that sent the notice. */
  readonly leaderGrpcAddress: (noticeFrom: string) => string | undefined;
  readonly sm: ScmStateMachine;
  readonly events: RaftEvents;
  readonly log: SnapshotLogger;
  /** With TLS, this node's certificate towards the leader's InterSCM port. */
  readonly channel?: (address: string) => DownloadChannel;
}

export class InterScmCheckpoints implements CheckpointSource {
  constructor(private readonly options: InterScmCheckpointsOptions) {}

  async fetch(notice: SnapshotNotice, signal: AbortSignal): Promise<FetchedCheckpoint> {
    const o = this.options;
    const context = { peer: notice.leaderId, term: notice.term, index: notice.firstIndex };
    o.events.snapshotNotification('received', context);
    const downloader = new SnapshotDownloader({
      leaderAddress: () => o.leaderGrpcAddress(notice.leaderId),
      expectedClusterId: o.clusterId,
      snapshotDir: join(o.dbParentDir, SNAPSHOT_DIR),
      deadlineMs: o.deadlineMs,
      ...(o.busyWaitTimeoutMs !== undefined ? { busyWaitTimeoutMs: o.busyWaitTimeoutMs } : {}),
      requesterId: o.requesterId,
      log: o.log,
      ...(o.channel !== undefined ? { channel: o.channel } : {}),
    });
    const download = o.events.snapshotTransfer('download', context);
    let ready: ReadyCheckpoint;
    try {
      ready = await downloader.fetch(notice.firstIndex, signal);
    } catch (err) {
      download.failed(failureReason(err), err);
      throw err;
    }
    download.done(ready.downloadedBytes, { resumedFrom: ready.resumedFrom, attempts: ready.attempts });
    return {
      termIndex: ready.termIndex,
      configuration: ready.configuration,
      bytes: ready.downloadedBytes,
      swap: async () => {
        const install = o.events.snapshotTransfer('install', { term: ready.termIndex.term, index: ready.termIndex.index });
        try {
          // installCheckpoint restores the old scm.db itself when it fails.
          await installCheckpoint({
            dbParentDir: o.dbParentDir,
            checkpointDir: ready.dir,
            termIndex: ready.termIndex,
            closeDb: () => o.sm.close(),
            openDb: () => o.sm.reload(),
          });
        } catch (err) {
          install.failed('io', err);
          throw err;
        }
        install.done(ready.downloadedBytes);
      },
      discard: () => rm(ready.dir, { recursive: true, force: true }),
    };
  }
}

/**
 * The reason a failed download is counted under. A busy leader that outlasted the busy budget is
 * `busy`, not `transport`: the operator should see the leader's capacity, not a network fault.
 */
function failureReason(err: unknown): SnapshotFailureReason {
  if (err instanceof StaleCheckpointError) return 'stale_checkpoint';
  if (err instanceof BusyLeaderError) return 'busy';
  if (refusedAsUnsafe(err)) return 'extract';
  return 'transport';
}

/** Whether `err` or an error in its cause chain is an UnsafeTarballError (the downloader wraps the last attempt's error). */
function refusedAsUnsafe(err: unknown): boolean {
  let e: unknown = err;
  for (let depth = 0; depth < 8 && e instanceof Error; depth++) {
    if (e instanceof UnsafeTarballError) return true;
    e = e.cause;
  }
  return false;
}
