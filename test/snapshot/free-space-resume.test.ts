// The free-space check used to count the whole stream "kept for resuming" on top of the files,
// even on a resumed attempt whose kept prefix is already on disk (and so already out of the free
// space statfs reports). A follower with room for a fresh download is refused on the resume, which
// drops the prefix and starts over.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readdir, stat } from 'node:fs/promises';
import { CheckpointProvider } from '../../src/snapshot/checkpoint-provider.js';
import { registerInterScmService } from '../../src/snapshot/download-service.js';
import { SnapshotDownloader } from '../../src/snapshot/snapshot-downloader.js';
import { downloadCheckpoint, DownloadError } from '../../src/snapshot/download-client.js';
import { UnsafeTarballError } from '../../src/snapshot/safe-extract.js';
import { CLUSTER_ID, createScmDb, startServer, withTempDir, startCuttingRelay } from './helpers.js';

const CHUNK = 16 * 1024;

async function du(path: string): Promise<number> {
  const s = await stat(path).catch(() => undefined);
  if (s === undefined) return 0;
  if (!s.isDirectory()) return s.size;
  let sum = 0;
  for (const name of await readdir(path).catch(() => [] as string[])) sum += await du(join(path, name));
  return sum;
}

/** snapshot-downloader.ts's streamBytesAtMost. */
function streamBytesAtMost(totalBytes: number, files: number): number {
  return totalBytes + Math.ceil(totalBytes / 1024) + (files + 1) * 2048 + 64 * 1024;
}

test('a resumed attempt is not refused for want of space a fresh one had', async () => {
  await withTempDir('review-free-', async (dir) => {
    const leaderDb = await createScmDb(join(dir, 'leader', 'scm.db'), 120000, { term: 2, index: 400 });
    const provider = new CheckpointProvider({ db: () => leaderDb, checkpointsDir: join(dir, 'leader', 'db.checkpoints') });
    const leader = await startServer((s) => registerInterScmService(s, { clusterId: CLUSTER_ID, provider, chunkSize: CHUNK }));
    let calls = 0;
    let cutting = false;
    const relay = await startCuttingRelay(leader.address, () => (cutting && ++calls === 1 ? 500 : Infinity));
    const snapshotDir = join(dir, 'follower', 'snapshot');
    const logs: string[] = [];
    try {
      // How much room a fresh download needs, by the downloader's own rule.
      const probe = await new SnapshotDownloader({ leaderAddress: () => relay.address, expectedClusterId: CLUSTER_ID, snapshotDir, deadlineMs: 60_000 }).fetch(400);
      const total = probe.manifest.files.reduce((s, f) => s + f.size, 0);
      const needed = total + streamBytesAtMost(total, probe.manifest.files.length);
      // A disk of that much plus 3 MiB: statfs's free space shrinks with what is under snapshot/.
      // The resume keeps more than that (the relay cuts after 500 chunks, ~8 MB: how much of it the
      // follower took before the cut depends on the machine's load; 5.8 MB once beside a busy run,
      // against a margin of 6 MiB then), so counting the kept prefix twice refuses the resume.
      const margin = 3 * 1024 * 1024;
      const capacity = needed + margin;
      cutting = true;
      const ready = await new SnapshotDownloader({
        leaderAddress: () => relay.address,
        expectedClusterId: CLUSTER_ID,
        snapshotDir,
        deadlineMs: 60_000,
        initialBackoffMs: 10,
        maxBackoffMs: 20,
        freeBytes: async () => capacity - (await du(snapshotDir)),
        log: (level, msg, fields) => logs.push(`${level} ${msg} ${JSON.stringify(fields)}`),
      }).fetch(400);
      assert.ok(ready.resumedFrom > margin, `resumed from ${ready.resumedFrom}; attempts ${ready.attempts}; log:\n${logs.join('\n')}`);
      assert.equal(ready.attempts, 2, logs.join('\n'));
    } finally {
      await relay.stop();
      await leader.stop();
      await leaderDb.close();
    }
  });
});

test('a consumer failing on its own disk keeps the verified prefix for a resume; a content refusal drops it', async () => {
  await withTempDir('snap-consumer-io-', async (dir) => {
    const leaderDb = await createScmDb(join(dir, 'leader', 'scm.db'), 3000, { term: 2, index: 400 });
    const provider = new CheckpointProvider({ db: () => leaderDb, checkpointsDir: join(dir, 'leader', 'db.checkpoints') });
    const leader = await startServer((s) => registerInterScmService(s, { clusterId: CLUSTER_ID, provider, chunkSize: CHUNK }));
    const destDir = join(dir, 'follower', 'snapshot');
    /** A consumer that takes 3 messages, then fails with `error`. */
    const failingAfter3 = (error: Error) => {
      let n = 0;
      return {
        write: async () => {
          if (++n > 3) throw error;
        },
      };
    };
    const download = (consumer: { write: (data: Buffer) => Promise<void> }) =>
      downloadCheckpoint({ address: leader.address, expectedClusterId: CLUSTER_ID, destDir, deadlineMs: 30_000, keepPartialOnFailure: true, consumer }).then(
        () => assert.fail('the download should fail'),
        (err: unknown) => err,
      );
    try {
      const enospc = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', syscall: 'write', errno: -28 });
      const local = await download(failingAfter3(new Error('extracting the stream failed: ENOSPC', { cause: enospc })));
      assert.ok(local instanceof DownloadError, String(local));
      assert.ok(local.resumePoint !== undefined && local.resumePoint.offset >= 3 * CHUNK, 'the verified prefix is kept');
      assert.equal((await stat(local.resumePoint.partialFile)).size, local.resumePoint.offset);
      assert.match(local.message, /ENOSPC/);

      const refused = await download(failingAfter3(new UnsafeTarballError('tarball entry "x" is a symlink')));
      assert.ok(refused instanceof UnsafeTarballError, 'a content refusal ends the download with its own error');
      assert.deepEqual((await readdir(destDir)).filter((n) => n !== local.resumePoint?.partialFile.split('/').pop()), [], 'and keeps nothing of it');
    } finally {
      await leader.stop();
      await leaderDb.close();
    }
  });
});
