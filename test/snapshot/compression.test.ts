// The leader's gzip level: a node setting (ozone.scm.ha.grpc.checkpoint.gzip.level) that changes
// only how hard the stream is compressed. Any level is a valid tar.gz the follower (or tar xzf)
// reads without being told which.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { Readable } from 'node:stream';
import { createCheckpoint } from '../../src/snapshot/checkpoint.js';
import { CheckpointProvider } from '../../src/snapshot/checkpoint-provider.js';
import { registerInterScmService } from '../../src/snapshot/download-service.js';
import { SnapshotDownloader } from '../../src/snapshot/snapshot-downloader.js';
import { DEFAULT_GZIP_LEVEL, packCheckpoint } from '../../src/snapshot/tarball.js';
import { loadConfig } from '../../src/server/config.js';
import { CLUSTER_ID, createScmDb, dumpDb, dumpDbAt, startServer, withTempDir } from './helpers.js';

async function bytesOf(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

test('ozone.scm.ha.grpc.checkpoint.gzip.level sets the leader\'s gzip level (default: the packer\'s); anything but 0-9 is refused', () => {
  const base = { 'ozone.metadata.dirs': '/var/lib/scm' };
  assert.equal(loadConfig({ overrides: base }).checkpointGzipLevel, DEFAULT_GZIP_LEVEL);
  assert.equal(loadConfig({ overrides: { ...base, 'ozone.scm.ha.grpc.checkpoint.gzip.level': '6' } }).checkpointGzipLevel, 6);
  assert.equal(loadConfig({ overrides: { ...base, 'ozone.scm.ha.grpc.checkpoint.gzip.level': '0' } }).checkpointGzipLevel, 0);
  for (const bad of ['10', '-1', 'fast']) {
    assert.throws(() => loadConfig({ overrides: { ...base, 'ozone.scm.ha.grpc.checkpoint.gzip.level': bad } }), /ozone\.scm\.ha\.grpc\.checkpoint\.gzip\.level/);
  }
});

test('by default the checkpoint tarball is stored, not deflated: LevelDB tables are compressed already, and deflating them costs the leader more time than it saves on a LAN', async () => {
  await withTempDir('snap-level-', async (dir) => {
    const db = await createScmDb(join(dir, 'leader', 'scm.db'), 2000, { term: 1, index: 100 });
    const checkpoint = await createCheckpoint(db, join(dir, 'leader', 'db.checkpoints'));
    await db.close();
    assert.equal(DEFAULT_GZIP_LEVEL, 0);
    const stored = await bytesOf(packCheckpoint(checkpoint, CLUSTER_ID));
    const tarBytes = gunzipSync(stored);
    // Stored blocks: the tar plus a few bytes of framing per 64 KiB, never less than the tar.
    assert.ok(stored.length >= tarBytes.length, `default stream is ${stored.length} bytes for a ${tarBytes.length}-byte tar`);
    const deflated = await bytesOf(packCheckpoint(checkpoint, CLUSTER_ID, { gzipLevel: 1 }));
    assert.deepEqual(gunzipSync(deflated), tarBytes, 'the same tar at any level');
    assert.ok(deflated.length < stored.length, 'level 1 does compress (this data is half text)');
  });
});

test('a leader at any gzip level serves a checkpoint the follower installs without being told the level', async () => {
  await withTempDir('snap-levels-', async (dir) => {
    const leaderDb = await createScmDb(join(dir, 'leader', 'scm.db'), 2000, { term: 2, index: 300 });
    try {
      for (const gzipLevel of [0, 1, 9]) {
        const provider = new CheckpointProvider({ db: () => leaderDb, checkpointsDir: join(dir, `leader-${gzipLevel}`, 'db.checkpoints') });
        const leader = await startServer((s) => registerInterScmService(s, { clusterId: CLUSTER_ID, provider, gzipLevel, chunkSize: 32 * 1024 }));
        try {
          const ready = await new SnapshotDownloader({ leaderAddress: () => leader.address, expectedClusterId: CLUSTER_ID, snapshotDir: join(dir, `follower-${gzipLevel}`, 'snapshot'), deadlineMs: 30_000, maxAttempts: 1 }).fetch(300);
          assert.deepEqual(await dumpDbAt(ready.dir), await dumpDb(leaderDb), `level ${gzipLevel}`);
        } finally {
          await leader.stop();
          await provider.removeUnused();
        }
      }
    } finally {
      await leaderDb.close();
    }
  });
});
