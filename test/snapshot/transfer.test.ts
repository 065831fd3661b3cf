import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { createWriteStream } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { crc32, gunzipSync } from 'node:zlib';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import * as tar from 'tar-stream';
import { downloadCheckpoint, DownloadError } from '../../src/snapshot/download-client.js';
import { interScmClientConstructor, interScmServiceDefinition, type CopyDBCheckpointRequest, type CopyDBCheckpointResponse } from '../../src/snapshot/inter-scm-proto.js';
import { createCheckpoint } from '../../src/snapshot/checkpoint.js';
import { CheckpointProvider } from '../../src/snapshot/checkpoint-provider.js';
import { registerInterScmService } from '../../src/snapshot/download-service.js';
import { extractCheckpointTarball } from '../../src/snapshot/safe-extract.js';
import { SnapshotDownloader } from '../../src/snapshot/snapshot-downloader.js';
import { packCheckpoint } from '../../src/snapshot/tarball.js';
import { CLUSTER_ID, createScmDb, dumpDb, dumpDbAt, startServer, withTempDir, startCuttingRelay } from './helpers.js';

test('leader to follower round trip gives an identical DB', async () => {
  await withTempDir('snap-rt-', async (dir) => {
    const leaderDb = await createScmDb(join(dir, 'leader', 'scm.db'), 3000, { term: 2, index: 1500 });
    const provider = new CheckpointProvider({ db: () => leaderDb, checkpointsDir: join(dir, 'leader', 'db.checkpoints') });
    const { address, stop } = await startServer((s) => registerInterScmService(s, { clusterId: CLUSTER_ID, provider, chunkSize: 64 * 1024 }));
    try {
      const logs: string[] = [];
      const downloader = new SnapshotDownloader({
        leaderAddress: () => address,
        expectedClusterId: CLUSTER_ID,
        snapshotDir: join(dir, 'follower', 'snapshot'),
        deadlineMs: 30_000,
        progressIntervalMs: 0,
        log: (_level, message) => logs.push(message),
      });
      const ready = await downloader.fetch(1000);
      assert.deepEqual(ready.termIndex, { term: 2, index: 1500 });
      assert.deepEqual(await dumpDbAt(ready.dir), await dumpDb(leaderDb));
      assert.ok(logs.includes('snapshot download progress'), 'progress is logged');
      // Only the extracted checkpoint is left under snapshot/ (tarball removed).
      assert.deepEqual(await readdir(join(dir, 'follower', 'snapshot')), [ready.dir.split('/').at(-1)]);
    } finally {
      await stop();
      await leaderDb.close();
    }
  });
});

test('two followers downloading at once share one checkpoint', async () => {
  await withTempDir('snap-two-', async (dir) => {
    const leaderDb = await createScmDb(join(dir, 'leader', 'scm.db'), 2000, { term: 3, index: 700 });
    const provider = new CheckpointProvider({ db: () => leaderDb, checkpointsDir: join(dir, 'leader', 'db.checkpoints') });
    const { address, stop } = await startServer((s) => registerInterScmService(s, { clusterId: CLUSTER_ID, provider, chunkSize: 32 * 1024 }));
    try {
      const follower = (name: string) =>
        new SnapshotDownloader({ leaderAddress: () => address, expectedClusterId: CLUSTER_ID, snapshotDir: join(dir, name, 'snapshot'), deadlineMs: 30_000 }).fetch(700);
      const [one, two] = await Promise.all([follower('f1'), follower('f2')]);
      assert.equal(provider.created, 1);
      assert.equal(one.manifest.checkpointId, two.manifest.checkpointId);
      const expected = await dumpDb(leaderDb);
      assert.deepEqual(await dumpDbAt(one.dir), expected);
      assert.deepEqual(await dumpDbAt(two.dir), expected);
      assert.equal(provider.activeTransfers, 0, 'leases released after the transfers');
    } finally {
      await stop();
      await leaderDb.close();
    }
  });
});

test('a client built only from Ozone\'s InterSCM definition downloads a valid tar.gz', async () => {
  await withTempDir('snap-ozone-', async (dir) => {
    const leaderDb = await createScmDb(join(dir, 'scm.db'), 500, { term: 1, index: 42 });
    const provider = new CheckpointProvider({ db: () => leaderDb, checkpointsDir: join(dir, 'db.checkpoints') });
    const { address, stop } = await startServer((s) => registerInterScmService(s, { clusterId: CLUSTER_ID, provider, chunkSize: 16 * 1024 }));
    try {
      const fixture = fileURLToPath(new URL('./fixtures/OzoneInterSCMProtocol.proto', import.meta.url));
      const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(fixture, { keepCase: true, longs: String }));
      const Client = pkg['InterSCMProtocolService'] as grpc.ServiceClientConstructor;
      const client = new Client(address, grpc.credentials.createInsecure());
      const chunks: Buffer[] = [];
      let expectedOffset = 0;
      let sawEof = false;
      try {
        const call = (client as unknown as { download(r: unknown): grpc.ClientReadableStream<Record<string, unknown>> }).download({ flush: true });
        for await (const m of call as AsyncIterable<Record<string, unknown>>) {
          const data = m['data'] as Buffer;
          assert.equal(m['clusterId'], CLUSTER_ID);
          assert.equal(m['readOffset'], String(expectedOffset));
          assert.equal(m['len'], String(data.length));
          assert.equal(m['checksum'], String(crc32(data) >>> 0));
          assert.equal(m['checkpointId'], undefined, 'our extension fields are unknown to an Ozone client');
          assert.equal(sawEof, false);
          sawEof = m['eof'] === true;
          expectedOffset += data.length;
          chunks.push(data);
        }
      } finally {
        client.close();
      }
      assert.ok(sawEof, 'last message has eof');
      assert.ok(chunks.length > 1);
      assert.ok(chunks.at(-1)!.length > 0, 'the eof message carries the final bytes');
      const names: string[] = [];
      const extract = tar.extract();
      const listing = (async () => {
        for await (const entry of extract) {
          names.push(entry.header.name);
          entry.resume();
        }
      })();
      await pipeline(Readable.from([gunzipSync(Buffer.concat(chunks))]), extract);
      await listing;
      assert.ok(names.includes('CURRENT'), `LevelDB files in the tarball: ${names.join(', ')}`);
      assert.equal(names[0], 'MANIFEST.json', 'the manifest comes first: it bounds what the follower extracts');
    } finally {
      await stop();
      await leaderDb.close();
    }
  });
});

test('a failed download is retried against whichever node is leader by then', async () => {
  await withTempDir('snap-retry-', async (dir) => {
    const leaderDb = await createScmDb(join(dir, 'leader', 'scm.db'), 300, { term: 4, index: 90 });
    const provider = new CheckpointProvider({ db: () => leaderDb, checkpointsDir: join(dir, 'leader', 'db.checkpoints') });
    const good = await startServer((s) => registerInterScmService(s, { clusterId: CLUSTER_ID, provider }));
    // The "old leader" is gone: nothing listens on its port any more.
    const dead = await startServer(() => undefined);
    await dead.stop();
    const leaders = [dead.address, undefined, good.address];
    let asked = 0;
    const warnings: string[] = [];
    try {
      const downloader = new SnapshotDownloader({
        leaderAddress: () => leaders[Math.min(asked++, leaders.length - 1)],
        expectedClusterId: CLUSTER_ID,
        snapshotDir: join(dir, 'follower', 'snapshot'),
        deadlineMs: 10_000,
        initialBackoffMs: 10,
        log: (level, message) => level === 'warn' && warnings.push(message),
      });
      const ready = await downloader.fetch(90);
      assert.equal(ready.attempts, 3);
      assert.deepEqual(warnings, ['snapshot download attempt failed', 'snapshot download waiting for a leader']);
      assert.deepEqual(await dumpDbAt(ready.dir), await dumpDb(leaderDb));
    } finally {
      await good.stop();
      await leaderDb.close();
    }
  });
});

test('too many concurrent transfers get RESOURCE_EXHAUSTED with a message', async () => {
  await withTempDir('snap-busy-', async (dir) => {
    const leaderDb = await createScmDb(join(dir, 'scm.db'), 10, { term: 1, index: 5 });
    const provider = new CheckpointProvider({ db: () => leaderDb, checkpointsDir: join(dir, 'db.checkpoints'), maxConcurrentTransfers: 1 });
    const refused: string[] = [];
    const { address, stop } = await startServer((s) => registerInterScmService(s, { clusterId: CLUSTER_ID, provider, onRefused: (r) => refused.push(r) }));
    const busy = await provider.acquire();
    try {
      await assert.rejects(
        downloadCheckpoint({ address, expectedClusterId: CLUSTER_ID, destDir: join(dir, 'snapshot'), deadlineMs: 10_000 }),
        (err: DownloadError) => err.grpcCode === grpc.status.RESOURCE_EXHAUSTED && /too many checkpoint transfers/.test(err.message),
      );
      assert.deepEqual(await readdir(join(dir, 'snapshot')), [], 'no partial file left');
      assert.deepEqual(refused, ['busy']);
    } finally {
      await busy.release();
      await stop();
      await leaderDb.close();
    }
  });
});

test('an interrupted download resumes from the last verified offset of the same checkpoint', async () => {
  await withTempDir('snap-resume-', async (dir) => {
    const leaderDb = await createScmDb(join(dir, 'leader', 'scm.db'), 3000, { term: 2, index: 400 });
    const provider = new CheckpointProvider({ db: () => leaderDb, checkpointsDir: join(dir, 'leader', 'db.checkpoints') });
    const CHUNK = 16 * 1024;
    const leader = await startServer((s) => registerInterScmService(s, { clusterId: CLUSTER_ID, provider, chunkSize: CHUNK }));
    // A relay that drops the connection after 3 messages on its first call: a leader that died mid-transfer.
    const relay = await startCuttingRelay(leader.address, (call) => (call === 1 ? 3 : Infinity));
    const requests = relay.requests;
    try {
      const ready = await new SnapshotDownloader({
        leaderAddress: () => relay.address,
        expectedClusterId: CLUSTER_ID,
        snapshotDir: join(dir, 'follower', 'snapshot'),
        deadlineMs: 30_000,
        initialBackoffMs: 10,
      }).fetch(400);
      assert.equal(ready.attempts, 2);
      assert.equal(requests.length, 2);
      assert.equal(requests[1]!.checkpointId, ready.manifest.checkpointId);
      assert.equal(requests[1]!.resumeOffset, String(3 * CHUNK));
      assert.equal(provider.created, 1);
      assert.deepEqual(await dumpDbAt(ready.dir), await dumpDb(leaderDb));
    } finally {
      await relay.stop();
      await leader.stop();
      await leaderDb.close();
    }
  });
});

/**
 * A relay in front of a real leader whose first call forwards `forward` messages and then goes
 * silent without ending: a leader that paused (SIGSTOP, a long GC) or was cut off mid-transfer.
 */
async function stallingRelay(leaderAddress: string, forward: number): Promise<{ address: string; requests: CopyDBCheckpointRequest[]; cancelled: () => number; stop: () => Promise<void> }> {
  const Client = interScmClientConstructor();
  const upstream = new Client(leaderAddress, grpc.credentials.createInsecure()) as unknown as grpc.Client & { download(r: unknown): grpc.ClientReadableStream<CopyDBCheckpointResponse> };
  const requests: CopyDBCheckpointRequest[] = [];
  let cancelled = 0;
  const relay = await startServer((s) =>
    s.addService(interScmServiceDefinition(), {
      download: (call: grpc.ServerWritableStream<CopyDBCheckpointRequest, CopyDBCheckpointResponse>) => {
        requests.push(call.request);
        const up = upstream.download(call.request);
        call.on('cancelled', () => {
          cancelled++;
          up.cancel();
        });
        let n = 0;
        up.on('data', (m: CopyDBCheckpointResponse) => {
          if (n++ < forward) call.write(m);
        });
        up.on('error', () => undefined);
      },
    }),
  );
  return {
    address: relay.address,
    requests,
    cancelled: () => cancelled,
    stop: async () => {
      upstream.close();
      await relay.stop();
    },
  };
}

test('a leader that goes silent mid-transfer is abandoned after noProgressTimeoutMs and the download resumes by offset from the current leader', async () => {
  await withTempDir('snap-stall-', async (dir) => {
    const leaderDb = await createScmDb(join(dir, 'leader', 'scm.db'), 3000, { term: 2, index: 400 });
    const provider = new CheckpointProvider({ db: () => leaderDb, checkpointsDir: join(dir, 'leader', 'db.checkpoints') });
    const CHUNK = 16 * 1024;
    const leader = await startServer((s) => registerInterScmService(s, { clusterId: CLUSTER_ID, provider, chunkSize: CHUNK }));
    const stalled = await stallingRelay(leader.address, 3);
    // The stalled leader first; by the next attempt another node leads, serving the same checkpoint.
    const leaders = [stalled.address, leader.address];
    let asked = 0;
    const warnings: Array<Record<string, unknown>> = [];
    try {
      const ready = await new SnapshotDownloader({
        leaderAddress: () => leaders[Math.min(asked++, leaders.length - 1)],
        expectedClusterId: CLUSTER_ID,
        snapshotDir: join(dir, 'follower', 'snapshot'),
        // Only the no-progress timeout can end the first attempt.
        deadlineMs: 60_000,
        noProgressTimeoutMs: 300,
        initialBackoffMs: 10,
        log: (level, _message, fields) => level === 'warn' && warnings.push(fields ?? {}),
      }).fetch(400);
      assert.equal(ready.attempts, 2);
      assert.equal(warnings.length, 1);
      assert.match(String(warnings[0]!['error']), /no progress for 300 ms after 49152 bytes: the leader hung, paused or is unreachable/);
      assert.equal(warnings[0]!['resumeOffset'], 3 * CHUNK);
      assert.equal(stalled.cancelled(), 1, 'the silent call was cancelled, not left open');
      assert.equal(provider.created, 1, 'the current leader resumed the same checkpoint');
      assert.deepEqual(await dumpDbAt(ready.dir), await dumpDb(leaderDb));
    } finally {
      await stalled.stop();
      await leader.stop();
      await leaderDb.close();
    }
  });
});

test('aborting a download mid-stream cancels the call at once and leaves nothing under snapshot/', async () => {
  await withTempDir('snap-abort-', async (dir) => {
    const leaderDb = await createScmDb(join(dir, 'leader', 'scm.db'), 3000, { term: 2, index: 400 });
    const provider = new CheckpointProvider({ db: () => leaderDb, checkpointsDir: join(dir, 'leader', 'db.checkpoints') });
    const CHUNK = 16 * 1024;
    const leader = await startServer((s) => registerInterScmService(s, { clusterId: CLUSTER_ID, provider, chunkSize: CHUNK }));
    // Goes silent after 3 messages and would stay so for the whole (long) deadline.
    const relay = await stallingRelay(leader.address, 3);
    const snapshotDir = join(dir, 'follower', 'snapshot');
    const controller = new AbortController();
    try {
      const fetching = new SnapshotDownloader({
        leaderAddress: () => relay.address,
        expectedClusterId: CLUSTER_ID,
        snapshotDir,
        deadlineMs: 600_000,
        noProgressTimeoutMs: 600_000,
        progressIntervalMs: 0,
        log: (_level, message, fields) => {
          // Abort once three chunks are on disk: mid-stream.
          if (message === 'snapshot download progress' && fields?.['bytes'] === 3 * CHUNK) controller.abort(new Error('a newer term began'));
        },
      }).fetch(400, controller.signal);
      await assert.rejects(fetching, (err: Error) => err.name === 'AbortError' && /aborted: a newer term began/.test(err.message));
      assert.deepEqual(await readdir(snapshotDir), [], 'no partial file or extraction left');
      // The leader's side of the call ends as well.
      for (let i = 0; i < 200 && relay.cancelled() === 0; i++) await new Promise((r) => setTimeout(r, 5));
      assert.equal(relay.cancelled(), 1);
    } finally {
      await relay.stop();
      await leader.stop();
      await leaderDb.close();
    }
  });
});

test('a leader slow to take its checkpoint sends keepalives, so the download is not abandoned', async () => {
  await withTempDir('snap-keepalive-', async (dir) => {
    const leaderDb = await createScmDb(join(dir, 'leader', 'scm.db'), 500, { term: 2, index: 400 });
    const real = new CheckpointProvider({ db: () => leaderDb, checkpointsDir: join(dir, 'leader', 'db.checkpoints') });
    // Taking the checkpoint takes four of the follower's no-progress timeouts.
    let acquiring = 0;
    const slow = {
      acquire: async (id?: string) => {
        acquiring++;
        await new Promise((r) => setTimeout(r, 2000));
        return real.acquire(id);
      },
    } as unknown as CheckpointProvider;
    const leader = await startServer((s) => registerInterScmService(s, { clusterId: CLUSTER_ID, provider: slow, keepaliveIntervalMs: 20 }));
    try {
      const ready = await new SnapshotDownloader({
        leaderAddress: () => leader.address,
        expectedClusterId: CLUSTER_ID,
        snapshotDir: join(dir, 'follower', 'snapshot'),
        deadlineMs: 60_000,
        noProgressTimeoutMs: 500,
        maxAttempts: 1,
      }).fetch(400);
      assert.equal(acquiring, 1);
      assert.deepEqual(await dumpDbAt(ready.dir), await dumpDb(leaderDb));
    } finally {
      await leader.stop();
      await leaderDb.close();
    }
  });
});

test('aborting an extraction stops it and removes what was extracted', async () => {
  await withTempDir('snap-abort-x-', async (dir) => {
    const leaderDb = await createScmDb(join(dir, 'leader', 'scm.db'), 3000, { term: 2, index: 400 });
    const checkpoint = await createCheckpoint(leaderDb, join(dir, 'leader', 'db.checkpoints'));
    await leaderDb.close();
    const file = join(dir, 'checkpoint.tar.gz');
    await pipeline(packCheckpoint(checkpoint, CLUSTER_ID), createWriteStream(file));
    const controller = new AbortController();
    const dest = join(dir, 'extracted');
    const extracting = extractCheckpointTarball(file, dest, {}, { signal: controller.signal });
    setImmediate(() => controller.abort(new Error('stopping')));
    await assert.rejects(extracting, (err: Error) => err.name === 'AbortError' && /^extraction of .* aborted: stopping$/.test(err.message));
    assert.deepEqual(await readdir(dir), ['checkpoint.tar.gz', 'leader'], 'the partial extraction is removed');
    await assert.rejects(extractCheckpointTarball(file, dest, {}, { signal: controller.signal }), /stopping/);
    assert.deepEqual(await readdir(dir), ['checkpoint.tar.gz', 'leader'], 'an aborted signal creates nothing');
  });
});
