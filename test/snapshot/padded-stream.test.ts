// The free-space check reserves streamBytesAtMost(declared) for the resume file written
// beside the extraction, but nothing holds the download to that bound. A gzip stream can carry any
// number of empty stored blocks (5 bytes each, no output): the expansion meter counts output only,
// so a stream of a few KB of files can fill the follower's disk with its "kept for resuming" copy,
// and is accepted in the end (the gzip CRC and the manifest hashes are all right).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readdir } from 'node:fs/promises';
import { buffer as streamToBuffer } from 'node:stream/consumers';
import { deflateRawSync, gunzipSync, gzipSync, constants } from 'node:zlib';
import * as grpc from '@grpc/grpc-js';
import { chunkChecksum } from '../../src/snapshot/chunk-checksum.js';
import { createCheckpoint } from '../../src/snapshot/checkpoint.js';
import { interScmServiceDefinition, type CopyDBCheckpointResponse } from '../../src/snapshot/inter-scm-proto.js';
import { SnapshotDownloader } from '../../src/snapshot/snapshot-downloader.js';
import { UnsafeTarballError } from '../../src/snapshot/safe-extract.js';
import { packCheckpoint } from '../../src/snapshot/tarball.js';
import { CLUSTER_ID, createScmDb, startServer, withTempDir } from './helpers.js';

const CHUNK = 1024 * 1024;

/** snapshot-downloader.ts's streamBytesAtMost. */
function streamBytesAtMost(totalBytes: number, files: number): number {
  return totalBytes + Math.ceil(totalBytes / 1024) + (files + 1) * 2048 + 64 * 1024;
}

/** A valid gzip member of `tar`, padded with `padding` bytes of empty stored blocks before its end. */
function paddedGzip(tarBytes: Buffer, padding: number): Buffer {
  const header = Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
  const body = deflateRawSync(tarBytes, { level: 0, finishFlush: constants.Z_SYNC_FLUSH }); // byte-aligned, not final
  const empty = Buffer.from([0x00, 0x00, 0x00, 0xff, 0xff]); // BFINAL=0 stored block, LEN=0
  const pad = Buffer.alloc(Math.floor(padding / 5) * 5);
  for (let i = 0; i < pad.length; i += 5) empty.copy(pad, i);
  const last = Buffer.from([0x03, 0x00]); // BFINAL=1 fixed-Huffman block holding only end-of-block
  const trailer = gzipSync(tarBytes).subarray(-8); // CRC-32 and ISIZE of the tar
  return Buffer.concat([header, body, pad, last, trailer]);
}

test('a checkpoint stream far longer than its declared files is refused (the resume file is bounded)', async () => {
  await withTempDir('review-pad-', async (dir) => {
    const leaderDb = await createScmDb(join(dir, 'leader', 'scm.db'), 400, { term: 1, index: 500 });
    const checkpoint = await createCheckpoint(leaderDb, join(dir, 'leader', 'db.checkpoints'));
    await leaderDb.close();
    const tarBytes = gunzipSync(await streamToBuffer(packCheckpoint(checkpoint, CLUSTER_ID)));
    const bound = streamBytesAtMost(checkpoint.totalFileBytes, 10);
    const stream = paddedGzip(tarBytes, 64 * 1024 * 1024); // 64 MiB of nothing
    assert.deepEqual(gunzipSync(stream), tarBytes, 'the padded stream is a valid gzip of the same tar');
    const { address, stop } = await startServer((s) =>
      s.addService(interScmServiceDefinition(), {
        download: (call: grpc.ServerWritableStream<unknown, CopyDBCheckpointResponse>) => {
          void (async () => {
            for (let off = 0; off < stream.length; off += CHUNK) {
              const data = stream.subarray(off, Math.min(off + CHUNK, stream.length));
              const ok = call.write({ clusterId: CLUSTER_ID, len: data.length, eof: off + CHUNK >= stream.length, data, readOffset: off, checksum: chunkChecksum(data), checkpointId: 'scm.db_checkpoint_1' });
              if (!ok) await new Promise((r) => call.once('drain', r));
            }
            call.end();
          })();
        },
      }),
    );
    const snapshotDir = join(dir, 'follower', 'snapshot');
    try {
      const outcome = await new SnapshotDownloader({ leaderAddress: () => address, expectedClusterId: CLUSTER_ID, snapshotDir, deadlineMs: 30_000, maxAttempts: 1 }).fetch(500).then(
        (ready) => `accepted: ${ready.downloadedBytes} bytes downloaded (and kept on disk) for ${checkpoint.totalFileBytes} bytes of files; the free-space check reserved ${bound}`,
        (err: unknown) => err,
      );
      assert.ok(outcome instanceof Error, String(outcome));
      // The error names the bound: the declared files' streamBytesAtMost (at most the one for 10 files).
      const named = /checkpoint stream is over (\d+) bytes/.exec(outcome.message);
      assert.ok(named !== null, outcome.message);
      assert.ok(Number(named[1]) > checkpoint.totalFileBytes && Number(named[1]) <= bound, outcome.message);
      assert.equal(outcome.cause instanceof UnsafeTarballError, true);
      assert.deepEqual(await readdir(snapshotDir), [], 'nothing is left under snapshot/');
    } finally {
      await stop();
    }
  });
});
