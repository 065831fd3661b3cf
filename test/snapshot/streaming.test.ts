// The follower extracts a checkpoint while it downloads it, rather than after: these tests hold the
// leader's last message back and look at what is on disk meanwhile, and check that a resumed
// download still gives the consumer the whole stream from its first byte.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readdir, stat } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import * as grpc from '@grpc/grpc-js';
import * as tar from 'tar-stream';
import { Readable } from 'node:stream';
import { downloadCheckpoint, DownloadError } from '../../src/snapshot/download-client.js';
import { interScmClientConstructor, interScmServiceDefinition, type CopyDBCheckpointRequest, type CopyDBCheckpointResponse } from '../../src/snapshot/inter-scm-proto.js';
import { CheckpointProvider } from '../../src/snapshot/checkpoint-provider.js';
import { registerInterScmService } from '../../src/snapshot/download-service.js';
import { SnapshotDownloader } from '../../src/snapshot/snapshot-downloader.js';
import { CLUSTER_ID, createScmDb, dumpDb, dumpDbAt, startServer, withTempDir, startCuttingRelay } from './helpers.js';

const CHUNK = 16 * 1024;

/** A relay in front of a real leader that holds each call's eof message back until `release()`. */
async function eofHoldingRelay(leaderAddress: string): Promise<{ address: string; release: () => void; stop: () => Promise<void> }> {
  const Client = interScmClientConstructor();
  const upstream = new Client(leaderAddress, grpc.credentials.createInsecure()) as unknown as grpc.Client & { download(r: unknown): grpc.ClientReadableStream<CopyDBCheckpointResponse> };
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  const relay = await startServer((s) =>
    s.addService(interScmServiceDefinition(), {
      download: (call: grpc.ServerWritableStream<CopyDBCheckpointRequest, CopyDBCheckpointResponse>) => {
        void (async () => {
          for await (const m of upstream.download(call.request) as AsyncIterable<CopyDBCheckpointResponse>) {
            if (m.eof) await released;
            call.write(m);
          }
          call.end();
        })();
      },
    }),
  );
  return {
    address: relay.address,
    release,
    stop: async () => {
      release();
      upstream.close();
      await relay.stop();
    },
  };
}

/** Names of the files extracted so far, with their sizes, under snapshot/'s extraction directory. */
async function extractedSoFar(snapshotDir: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const entry of await readdir(snapshotDir).catch(() => [] as string[])) {
    if (!entry.endsWith('.extracted')) continue;
    for (const name of await readdir(join(snapshotDir, entry)).catch(() => [] as string[])) {
      out.set(name, (await stat(join(snapshotDir, entry, name)).catch(() => ({ size: -1 }))).size);
    }
  }
  return out;
}

test('the follower extracts the checkpoint while it downloads: files are written before the last message arrives', async () => {
  await withTempDir('snap-stream-', async (dir) => {
    const leaderDb = await createScmDb(join(dir, 'leader', 'scm.db'), 3000, { term: 2, index: 400 });
    const provider = new CheckpointProvider({ db: () => leaderDb, checkpointsDir: join(dir, 'leader', 'db.checkpoints') });
    const leader = await startServer((s) => registerInterScmService(s, { clusterId: CLUSTER_ID, provider, chunkSize: CHUNK }));
    const relay = await eofHoldingRelay(leader.address);
    const snapshotDir = join(dir, 'follower', 'snapshot');
    try {
      const fetching = new SnapshotDownloader({ leaderAddress: () => relay.address, expectedClusterId: CLUSTER_ID, snapshotDir, deadlineMs: 60_000, noProgressTimeoutMs: 60_000, maxAttempts: 1 }).fetch(400);
      let failed: unknown;
      fetching.catch((err: unknown) => (failed = err));
      // Every message but the last has arrived at some point; the biggest table file is complete
      // long before the stream's end (its tail is the tar trailer and the gzip footer).
      let soFar = new Map<string, number>();
      for (let i = 0; i < 1000 && failed === undefined; i++) {
        soFar = await extractedSoFar(snapshotDir);
        if ([...soFar].some(([name, size]) => name.endsWith('.ldb') && size > CHUNK)) break;
        await new Promise((r) => setTimeout(r, 10));
      }
      assert.equal(failed, undefined);
      assert.ok([...soFar].some(([name, size]) => name.endsWith('.ldb') && size > CHUNK), `a table file is extracted before the eof message is sent (found ${JSON.stringify([...soFar])})`);
      relay.release();
      const ready = await fetching;
      assert.deepEqual(await dumpDbAt(ready.dir), await dumpDb(leaderDb));
      assert.deepEqual(await readdir(snapshotDir), [ready.dir.split('/').at(-1)], 'only the extracted checkpoint is left');
    } finally {
      await relay.stop();
      await leader.stop();
      await leaderDb.close();
    }
  });
});

test('a consumer of the download sees the stream from its first byte, a resumed download replaying its verified prefix', async () => {
  await withTempDir('snap-consumer-', async (dir) => {
    const leaderDb = await createScmDb(join(dir, 'leader', 'scm.db'), 3000, { term: 2, index: 400 });
    const provider = new CheckpointProvider({ db: () => leaderDb, checkpointsDir: join(dir, 'leader', 'db.checkpoints') });
    const leader = await startServer((s) => registerInterScmService(s, { clusterId: CLUSTER_ID, provider, chunkSize: CHUNK }));
    // The first call is cut after 5 messages: a leader that went away mid-transfer.
    const relay = await startCuttingRelay(leader.address, (call) => (call === 1 ? 5 : Infinity));
    const destDir = join(dir, 'follower', 'snapshot');
    try {
      const first: Buffer[] = [];
      const failure = await downloadCheckpoint({
        address: relay.address,
        expectedClusterId: CLUSTER_ID,
        destDir,
        deadlineMs: 30_000,
        keepPartialOnFailure: true,
        consumer: { write: async (data: Buffer) => void first.push(Buffer.from(data)) },
      } as Parameters<typeof downloadCheckpoint>[0]).then(() => undefined, (err: unknown) => err);
      assert.ok(failure instanceof DownloadError && failure.resumePoint !== undefined, 'the cut download keeps its verified prefix');
      const prefix = Buffer.concat(first);
      assert.equal(prefix.length, failure.resumePoint.offset, 'the consumer saw exactly the verified bytes');

      const whole: Buffer[] = [];
      const done = await downloadCheckpoint({
        address: relay.address,
        expectedClusterId: CLUSTER_ID,
        destDir,
        deadlineMs: 30_000,
        resume: failure.resumePoint,
        consumer: { write: async (data: Buffer) => void whole.push(Buffer.from(data)) },
      } as Parameters<typeof downloadCheckpoint>[0]);
      assert.equal(done.resumedFrom, failure.resumePoint.offset);
      const stream = Buffer.concat(whole);
      assert.equal(stream.length, done.bytes, 'the consumer of the resumed download saw the whole stream');
      assert.deepEqual(stream.subarray(0, prefix.length), prefix, 'starting with the replayed prefix');
      // And it is a whole, valid checkpoint tarball.
      const names: string[] = [];
      const extract = tar.extract();
      extract.on('entry', (header, entryStream, next) => {
        names.push(header.name);
        entryStream.on('end', next).resume();
      });
      await new Promise<void>((resolve, reject) => Readable.from([gunzipSync(stream)]).pipe(extract).on('finish', resolve).on('error', reject));
      assert.equal(names[0], 'MANIFEST.json');
      assert.ok(names.some((n) => n.endsWith('.ldb')));
    } finally {
      await relay.stop();
      await leader.stop();
      await leaderDb.close();
    }
  });
});

test('the downloader asks for a flow-control window of several messages, not HTTP/2\'s 64 KiB, so a link with any latency is not held to one window per round trip', async () => {
  // A bare HTTP/2 server: it only looks at the SETTINGS the downloader's channel sends.
  const http2 = await import('node:http2');
  const server = http2.createServer();
  const settings = new Promise<{ initialWindowSize?: number }>((resolve) => server.on('session', (session) => session.once('remoteSettings', resolve)));
  server.on('stream', (stream) => {
    stream.on('error', () => undefined);
    stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  try {
    await withTempDir('snap-window-', async (dir) => {
      const downloading = downloadCheckpoint({ address: `127.0.0.1:${port}`, expectedClusterId: CLUSTER_ID, destDir: dir, deadlineMs: 10_000, noProgressTimeoutMs: 10_000 });
      const { initialWindowSize } = await settings;
      await downloading.catch(() => undefined);
      assert.ok((initialWindowSize ?? 65_535) >= 4 * 1024 * 1024, `initial window ${String(initialWindowSize)}`);
    });
  } finally {
    server.close();
  }
});
