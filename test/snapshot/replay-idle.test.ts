// A resumed download used to replay its kept prefix into the consumer (the extraction) while the
// gRPC call was already open. The leader has sent its first messages, the 4 MiB window fills, and
// the leader then waits for a reader that reads nothing until the replay is done: the leader's
// idle rule (10 s by default; 'slow' rule 8 MB/60 s) takes the slot back. A fresh download with
// the very same consumer speed is never idle and succeeds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { downloadCheckpoint, DownloadError } from '../../src/snapshot/download-client.js';
import { interScmClientConstructor, interScmServiceDefinition, type CopyDBCheckpointRequest, type CopyDBCheckpointResponse } from '../../src/snapshot/inter-scm-proto.js';
import { CheckpointProvider } from '../../src/snapshot/checkpoint-provider.js';
import { registerInterScmService } from '../../src/snapshot/download-service.js';
import { SnapshotDownloader } from '../../src/snapshot/snapshot-downloader.js';
import { CLUSTER_ID, createScmDb, dumpDb, dumpDbAt, startServer, withTempDir, startCuttingRelay } from './helpers.js';

const CHUNK = 16 * 1024;
const IDLE_MS = 1000;
/** A consumer (extraction) that takes 1 ms per 8 KiB: ~8 MB/s, a slow disk. Never idle for IDLE_MS on a 16 KiB message. */
const slowConsumer = () => ({
  write: async (data: Buffer) => {
    await new Promise((r) => setTimeout(r, Math.ceil(data.length / 8192)));
  },
});

test('a resumed download with a slow-ish consumer replays its prefix before it calls the leader, which never waits on it', async () => {
  await withTempDir('review-replay-', async (dir) => {
    const leaderDb = await createScmDb(join(dir, 'leader', 'scm.db'), 260000, { term: 2, index: 400 });
    const provider = new CheckpointProvider({ db: () => leaderDb, checkpointsDir: join(dir, 'leader', 'db.checkpoints') });
    const leader = await startServer((s) => registerInterScmService(s, { clusterId: CLUSTER_ID, provider, chunkSize: CHUNK, idleTimeoutMs: IDLE_MS }));
    // First call goes through a relay that cuts it after 850 messages (~13 MB of stream): a leader change.
    const relay = await startCuttingRelay(leader.address, () => 850);
    const destDir = join(dir, 'follower', 'snapshot');
    try {
      // Control: a fresh download with this consumer keeps its slot all the way.
      const fresh = await downloadCheckpoint({ address: leader.address, expectedClusterId: CLUSTER_ID, destDir, deadlineMs: 60_000, noProgressTimeoutMs: 30_000, consumer: slowConsumer() });

      const cut = await downloadCheckpoint({ address: relay.address, expectedClusterId: CLUSTER_ID, destDir, deadlineMs: 60_000, noProgressTimeoutMs: 30_000, keepPartialOnFailure: true, consumer: { write: async () => undefined } }).then(
        () => undefined,
        (err: unknown) => err,
      );
      assert.ok(cut instanceof DownloadError && cut.resumePoint !== undefined);
      // A replay of ~1.4 s at the consumer's speed (longer than IDLE_MS), with more than one 4 MiB window to go after it.
      assert.ok(cut.resumePoint.offset >= 9 * 1024 * 1024, `prefix of ${cut.resumePoint.offset}`);
      assert.ok(fresh.bytes > cut.resumePoint.offset + 5 * 1024 * 1024, `stream of ${fresh.bytes} bytes, resumed at ${cut.resumePoint.offset}`);

      // The resume: same consumer speed, same leader, same checkpoint.
      const resumed = await downloadCheckpoint({ address: leader.address, expectedClusterId: CLUSTER_ID, destDir, deadlineMs: 60_000, noProgressTimeoutMs: 30_000, keepPartialOnFailure: true, resume: cut.resumePoint, consumer: slowConsumer() }).then(
        (d) => d,
        (err: unknown) => err as Error,
      );
      assert.ok(!(resumed instanceof Error), `the resumed download should succeed as the fresh one did, but: ${resumed instanceof Error ? resumed.message : ''} (resumed at ${cut.resumePoint.offset}, next resume point ${resumed instanceof DownloadError ? resumed.resumePoint?.offset : '-'}, stream ${fresh.bytes})`);
      assert.equal(resumed.resumedFrom, cut.resumePoint.offset);
      assert.equal(resumed.bytes, fresh.bytes);
    } finally {
      await relay.stop();
      await leader.stop();
      await leaderDb.close();
    }
  });
});

test('a resumed attempt whose leader restarts at 0 with another checkpoint starts its extraction over', async () => {
  await withTempDir('snap-restart-', async (dir) => {
    const leaderDb = await createScmDb(join(dir, 'leader', 'scm.db'), 3000, { term: 2, index: 400 });
    const provider = new CheckpointProvider({ db: () => leaderDb, checkpointsDir: join(dir, 'leader', 'db.checkpoints') });
    const leader = await startServer((s) => registerInterScmService(s, { clusterId: CLUSTER_ID, provider, chunkSize: CHUNK }));
    const Client = interScmClientConstructor();
    const upstream = new Client(leader.address, grpc.credentials.createInsecure()) as unknown as grpc.Client & { download(r: unknown): grpc.ClientReadableStream<CopyDBCheckpointResponse> };
    // Call 1 is cut after 5 messages; call 2 (the resume) is served from 0 under another checkpoint id.
    let calls = 0;
    const requests: CopyDBCheckpointRequest[] = [];
    const relay = await startServer((s) =>
      s.addService(interScmServiceDefinition(), {
        download: (call: grpc.ServerWritableStream<CopyDBCheckpointRequest, CopyDBCheckpointResponse>) => {
          const n = ++calls;
          requests.push(call.request);
          void (async () => {
            let sent = 0;
            const { checkpointId: _id, resumeOffset: _offset, ...fresh } = call.request;
            const up = upstream.download(n === 1 ? call.request : fresh);
            for await (const m of up as AsyncIterable<CopyDBCheckpointResponse>) {
              if (n === 1 && sent++ === 5) {
                up.cancel();
                call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'leader went away' });
                return;
              }
              call.write(n === 1 ? m : { ...m, checkpointId: 'scm.db_checkpoint_other' });
            }
            call.end();
          })();
        },
      }),
    );
    const snapshotDir = join(dir, 'follower', 'snapshot');
    try {
      const ready = await new SnapshotDownloader({ leaderAddress: () => relay.address, expectedClusterId: CLUSTER_ID, snapshotDir, deadlineMs: 30_000, maxAttempts: 2, initialBackoffMs: 10, maxBackoffMs: 20 }).fetch(400);
      assert.equal(ready.attempts, 2);
      assert.ok(Number(requests[1]?.resumeOffset ?? 0) > 0, 'the second attempt asked to resume');
      assert.equal(ready.resumedFrom, 0, 'the leader started over at 0: nothing was resumed');
      assert.deepEqual(await dumpDbAt(ready.dir), await dumpDb(leaderDb));
    } finally {
      upstream.close();
      await relay.stop();
      await leader.stop();
      await leaderDb.close();
    }
  });
});
