// A hostile or broken leader: every malformed stream or tarball is rejected with an error naming
// the problem, and the follower's scm.db and snapshot/ directory are left exactly as they were.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { readdir, writeFile } from 'node:fs/promises';
import { buffer as streamToBuffer } from 'node:stream/consumers';
import { once } from 'node:events';
import { createGzip, gzipSync } from 'node:zlib';
import * as grpc from '@grpc/grpc-js';
import * as tar from 'tar-stream';
import { chunkChecksum } from '../../src/snapshot/chunk-checksum.js';
import { createCheckpoint } from '../../src/snapshot/checkpoint.js';
import { interScmServiceDefinition, type CopyDBCheckpointResponse } from '../../src/snapshot/inter-scm-proto.js';
import { SnapshotDownloader } from '../../src/snapshot/snapshot-downloader.js';
import { packCheckpoint } from '../../src/snapshot/tarball.js';
import { extractCheckpointTarball, type ExtractLimits } from '../../src/snapshot/safe-extract.js';
import { CLUSTER_ID, createScmDb, dumpDb, startServer, withTempDir } from './helpers.js';

const CHUNK = 4096;

function toMessages(tarGz: Buffer, clusterId = CLUSTER_ID): CopyDBCheckpointResponse[] {
  const out: CopyDBCheckpointResponse[] = [];
  for (let off = 0; off < tarGz.length; off += CHUNK) {
    const data = tarGz.subarray(off, Math.min(off + CHUNK, tarGz.length));
    out.push({ clusterId, len: data.length, eof: off + CHUNK >= tarGz.length, data, readOffset: off, checksum: chunkChecksum(data), checkpointId: 'scm.db_checkpoint_1' });
  }
  return out;
}

async function craftTar(entries: Array<{ header: tar.Header | Partial<tar.Header> & { name: string }; content?: Buffer }>): Promise<Buffer> {
  const pack = tar.pack();
  const done = streamToBuffer(pack as unknown as NodeJS.ReadableStream);
  for (const e of entries) {
    await new Promise<void>((resolve, reject) => {
      pack.entry(e.header, e.content ?? Buffer.alloc(0), (err) => (err ? reject(err) : resolve()));
    });
  }
  pack.finalize();
  return done;
}

async function craftTarball(entries: Array<{ header: tar.Header | Partial<tar.Header> & { name: string }; content?: Buffer }>): Promise<Buffer> {
  return gzipSync(await craftTar(entries));
}

/** Rewrites the type flag of the entry named `name` in a plain tar (tar-stream only writes the types it knows), fixing the header checksum. */
function setTypeFlag(tarBytes: Buffer, name: string, flag: string): Buffer {
  const out = Buffer.from(tarBytes);
  for (let off = 0; off + 512 <= out.length; off += 512) {
    const header = out.subarray(off, off + 512);
    if (header.subarray(0, 100).toString('latin1').replace(/\0.*$/s, '') !== name) continue;
    header[156] = flag.charCodeAt(0);
    header.fill(0x20, 148, 156);
    let sum = 0;
    for (const b of header) sum += b;
    header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
    return out;
  }
  throw new Error(`no tar header named ${name}`);
}

interface Case {
  readonly name: string;
  readonly messages: (valid: Buffer) => Promise<CopyDBCheckpointResponse[]> | CopyDBCheckpointResponse[];
  readonly expected: RegExp;
  readonly limits?: ExtractLimits;
  readonly minIndex?: number;
}

const manifestFor = (files: Array<{ path: string; content: Buffer }>) =>
  Buffer.from(JSON.stringify({
    format: 1,
    checkpointId: 'scm.db_checkpoint_1',
    clusterId: CLUSTER_ID,
    termIndex: { term: 1, index: 500 },
    files: files.map((f) => ({ path: f.path, size: f.content.length, sha256: createHashHex(f.content) })),
  }));

function createHashHex(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

const hostileTar = async (header: Partial<tar.Header> & { name: string }, content?: Buffer) => {
  const x = Buffer.from('evil');
  return toMessages(await craftTarball([
    { header: { name: 'MANIFEST.json' }, content: manifestFor([{ path: 'CURRENT', content: x }]) },
    { header: { name: 'CURRENT', size: x.length }, content: x },
    { header, ...(content !== undefined ? { content } : {}) },
  ]));
};

/** A plain tar entry header for `name` claiming `size` bytes (the content is streamed after it). */
function tarHeader(name: string, size: number): Buffer {
  const header = Buffer.alloc(512);
  header.write(name, 0, 'latin1');
  header.write('0000644\0', 100, 'latin1');
  header.write('0000000\0', 108, 'latin1');
  header.write('0000000\0', 116, 'latin1');
  header.write(`${size.toString(8).padStart(11, '0')}\0`, 124, 'latin1');
  header.write('00000000000\0', 136, 'latin1');
  header[156] = '0'.charCodeAt(0);
  header.write('ustar\0' + '00', 257, 'latin1');
  header.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of header) sum += b;
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return header;
}

/** gzip of `prefix` followed by `zeros` zero bytes, compressed as a stream (never held expanded). */
async function gzipWithZeros(prefix: Buffer, zeros: number): Promise<Buffer> {
  const gzip = createGzip({ level: 9 });
  const out = streamToBuffer(gzip);
  gzip.write(prefix);
  const block = Buffer.alloc(1024 * 1024);
  for (let left = zeros; left > 0; left -= block.length) {
    if (!gzip.write(left >= block.length ? block : block.subarray(0, left))) await once(gzip, 'drain');
  }
  gzip.end();
  return out;
}

/** A tarball whose entries (after a manifest that lists only the 16-byte CURRENT) are followed by `zeros` bytes. */
async function bomb(options: { entrySize: number; zeros: number }): Promise<Buffer> {
  const current = Buffer.from('MANIFEST-000001\n');
  const head = await craftTar([{ header: { name: 'MANIFEST.json' }, content: manifestFor([{ path: 'CURRENT', content: current }]) }]);
  // Drop tar-stream's end-of-archive blocks, then a CURRENT entry that claims entrySize bytes.
  const withoutEnd = head.subarray(0, head.length - 1024);
  return gzipWithZeros(Buffer.concat([withoutEnd, tarHeader('CURRENT', options.entrySize)]), options.zeros);
}

const cases: Case[] = [
  {
    name: 'a corrupted chunk',
    messages: (valid) => {
      const ms = toMessages(valid);
      const data = Buffer.from(ms[1]!.data);
      data[100] = data[100]! ^ 0xff;
      ms[1] = { ...ms[1]!, data };
      return ms;
    },
    expected: /checksum mismatch in chunk at readOffset 4096/,
  },
  {
    name: 'a checkpoint id too long to be one',
    messages: (valid) => toMessages(valid).map((m) => ({ ...m, checkpointId: 'z'.repeat(10_000) })),
    expected: /checkpointId is 10000 characters long, more than 128/,
  },
  { name: 'a wrong cluster id', messages: (valid) => toMessages(valid, 'CID-someone-else'), expected: /cluster id mismatch: expected "CID-5f1f/ },
  { name: 'a truncated stream', messages: (valid) => toMessages(valid).slice(0, -1), expected: /stream truncated: it ended after \d+ bytes without an eof/ },
  { name: 'a gap in offsets', messages: (valid) => toMessages(valid).filter((_, i) => i !== 2), expected: /offset gap: expected readOffset 8192, got 12288/ },
  {
    name: 'len not matching the data',
    messages: (valid) => toMessages(valid).map((m, i) => (i === 0 ? { ...m, len: 10 } : m)),
    expected: /says len 10 but carries 4096 bytes/,
  },
  { name: 'a tarball entry with ../x', messages: () => hostileTar({ name: '../x', size: 1 }, Buffer.from('x')), expected: /"\.\.\/x" contains "\.\."/ },
  { name: 'an absolute path', messages: () => hostileTar({ name: '/etc/evil', size: 1 }, Buffer.from('x')), expected: /"\/etc\/evil" is an absolute path/ },
  { name: 'a symlink', messages: () => hostileTar({ name: 'LOCK', type: 'symlink', linkname: '/etc/passwd' }), expected: /"LOCK" is a symlink/ },
  { name: 'a hard link', messages: () => hostileTar({ name: 'LOG', type: 'link', linkname: 'CURRENT' }), expected: /"LOG" is a link/ },
  { name: 'a device', messages: () => hostileTar({ name: 'dev', type: 'character-device', devmajor: 1, devminor: 3 }), expected: /"dev" is a character-device/ },
  {
    // GNU sparse ('S'): tar-stream reports no type for it, and it must not pass for a regular file,
    // even with a manifest that lists it.
    name: 'an entry with an unknown type flag',
    messages: async () => {
      const x = Buffer.from('evil');
      const files = [{ path: 'CURRENT', content: x }, { path: 'sparse', content: x }];
      const plain = await craftTar([
        { header: { name: 'MANIFEST.json' }, content: manifestFor(files) },
        ...files.map((f) => ({ header: { name: f.path, size: f.content.length }, content: f.content })),
      ]);
      return toMessages(gzipSync(setTypeFlag(plain, 'sparse', 'S')));
    },
    expected: /tarball entry "sparse" has a type flag other than regular file or directory; only regular files and directories are allowed/,
  },
  { name: 'an oversized entry', messages: (valid) => toMessages(valid), limits: { maxEntryBytes: 64 }, expected: /manifest declares "[^"]+" at \d+ bytes, over the per-entry cap of 64/ },
  { name: 'too many entries', messages: (valid) => toMessages(valid), limits: { maxEntries: 2 }, expected: /manifest declares \d+ files, more than the 2 entries allowed/ },
  { name: 'too many bytes in total', messages: (valid) => toMessages(valid), limits: { maxTotalBytes: 1000 }, expected: /manifest declares \d+ bytes in all, over the cap of 1000 bytes total/ },
  {
    // The layout before the manifest moved first: nothing bounded what the files could expand to.
    name: 'a manifest that is not the first entry',
    messages: async () => {
      const x = Buffer.from('MANIFEST-000001\n');
      return toMessages(await craftTarball([
        { header: { name: 'CURRENT', size: x.length }, content: x },
        { header: { name: 'MANIFEST.json' }, content: manifestFor([{ path: 'CURRENT', content: x }]) },
      ]));
    },
    expected: /the first tarball entry must be MANIFEST\.json, found "CURRENT"/,
  },
  {
    // A 256 MiB entry in about 256 KB of gzip, where the manifest declares 16 bytes: refused at its
    // header, before a byte of it is written.
    name: 'a gzip bomb: an entry far bigger than the manifest declares',
    messages: async () => toMessages(await bomb({ entrySize: 256 * 1024 * 1024, zeros: 256 * 1024 * 1024 })),
    expected: /tarball entry "CURRENT" is 268435456 bytes, but the manifest declares 16/,
  },
  {
    name: 'a gzip bomb after the last entry',
    messages: async () => {
      // A well-formed CURRENT of 16 bytes, then 256 MiB of zeros: empty tar blocks, nothing to write.
      const current = Buffer.from('MANIFEST-000001\n');
      const tarBytes = await craftTar([
        { header: { name: 'MANIFEST.json' }, content: manifestFor([{ path: 'CURRENT', content: current }]) },
        { header: { name: 'CURRENT', size: current.length }, content: current },
      ]);
      return toMessages(await gzipWithZeros(tarBytes, 256 * 1024 * 1024));
    },
    expected: /tarball expands to more than \d+ bytes, beyond what its manifest declares/,
  },
  {
    name: 'a manifest listing a path outside the checkpoint',
    messages: async () => {
      const x = Buffer.from('x');
      return toMessages(await craftTarball([{ header: { name: 'MANIFEST.json' }, content: manifestFor([{ path: '../x', content: x }]) }]));
    },
    expected: /manifest lists "\.\.\/x", which is not a safe relative path/,
  },
  {
    name: 'a file that does not match the manifest',
    messages: async () => {
      const real = Buffer.from('MANIFEST-000001\n');
      return toMessages(await craftTarball([
        { header: { name: 'MANIFEST.json' }, content: manifestFor([{ path: 'CURRENT', content: real }]) },
        { header: { name: 'CURRENT', size: 16 }, content: Buffer.from('MANIFEST-000002\n') },
      ]));
    },
    expected: /"CURRENT" has SHA-256 [0-9a-f]+, manifest says/,
  },
  {
    name: 'a file the manifest does not list',
    messages: async () => {
      const x = Buffer.from('x');
      return toMessages(await craftTarball([
        { header: { name: 'MANIFEST.json' }, content: manifestFor([{ path: 'CURRENT', content: x }]) },
        { header: { name: 'CURRENT', size: 1 }, content: x },
        { header: { name: 'extra', size: 1 }, content: x },
      ]));
    },
    expected: /contains "extra", which the manifest does not list/,
  },
  { name: 'a checkpoint older than needed', messages: (valid) => toMessages(valid), minIndex: 501, expected: /older than needed: the leader's first available index is 501/ },
];

test('hostile or broken streams and tarballs are rejected without touching the follower', async () => {
  await withTempDir('snap-hostile-', async (dir) => {
    // A genuine tarball of a real checkpoint at 1#500, which the cases above corrupt.
    const leaderDb = await createScmDb(join(dir, 'leader', 'scm.db'), 400, { term: 1, index: 500 });
    const checkpoint = await createCheckpoint(leaderDb, join(dir, 'leader', 'db.checkpoints'));
    await leaderDb.close();
    const valid = await streamToBuffer(packCheckpoint(checkpoint, CLUSTER_ID));
    assert.ok(valid.length > 4 * CHUNK, 'the valid tarball spans several chunks');

    const followerDb = await createScmDb(join(dir, 'follower', 'scm.db'), 50, { term: 1, index: 60 });
    const before = await dumpDb(followerDb);
    let current: CopyDBCheckpointResponse[] = [];
    const { address, stop } = await startServer((s) =>
      s.addService(interScmServiceDefinition(), {
        download: (call: grpc.ServerWritableStream<unknown, CopyDBCheckpointResponse>) => {
          for (const m of current) call.write(m);
          call.end();
        },
      }),
    );
    try {
      // Sanity: the unmodified stream is accepted, so each rejection below is due to its defect.
      current = toMessages(valid);
      const snapshotDir = join(dir, 'follower', 'snapshot');
      const ok = await new SnapshotDownloader({ leaderAddress: () => address, expectedClusterId: CLUSTER_ID, snapshotDir, deadlineMs: 10_000, maxAttempts: 1 }).fetch(500);
      assert.deepEqual(ok.termIndex, { term: 1, index: 500 });

      for (const c of cases) {
        current = await c.messages(valid);
        const downloader = new SnapshotDownloader({
          leaderAddress: () => address,
          expectedClusterId: CLUSTER_ID,
          snapshotDir,
          deadlineMs: 10_000,
          maxAttempts: 1,
          ...(c.limits !== undefined ? { extractLimits: c.limits } : {}),
        });
        await assert.rejects(downloader.fetch(c.minIndex ?? 500), (err: Error) => {
          assert.match(err.message, c.expected, c.name);
          return true;
        });
        assert.deepEqual(await readdir(snapshotDir), [], `${c.name}: no garbage left in snapshot/`);
        assert.deepEqual(await dumpDb(followerDb), before, `${c.name}: follower DB untouched`);
      }
    } finally {
      await stop();
      await followerDb.close();
    }
  });
});

test('a checkpoint bigger than the free disk space is refused before a file is written', async () => {
  await withTempDir('snap-hostile-', async (dir) => {
    const db = await createScmDb(join(dir, 'leader', 'scm.db'), 400, { term: 1, index: 500 });
    const checkpoint = await createCheckpoint(db, join(dir, 'leader', 'db.checkpoints'));
    await db.close();
    const file = join(dir, 'checkpoint.tar.gz');
    await writeFile(file, await streamToBuffer(packCheckpoint(checkpoint, CLUSTER_ID)));
    const asked: string[] = [];
    await assert.rejects(
      extractCheckpointTarball(file, join(dir, 'out'), {}, { freeBytes: async (d) => (asked.push(d), 1000) }),
      /manifest declares \d+ bytes in all, but only 1000 bytes are free under .*out/,
    );
    assert.deepEqual(asked, [join(dir, 'out')]);
    assert.deepEqual((await readdir(dir)).sort(), ['checkpoint.tar.gz', 'leader']);
    // With the real free space (statfs) the same tarball extracts.
    const { manifest } = await extractCheckpointTarball(file, join(dir, 'out'));
    assert.equal(manifest.termIndex.index, 500);
  });
});

test('a stream the extraction refuses while it downloads is not resumed: the next attempt downloads afresh', async () => {
  await withTempDir('snap-hostile-', async (dir) => {
    const extra = Buffer.alloc(64 * 1024, 1);
    const messages = toMessages(await craftTarball([
      { header: { name: 'MANIFEST.json' }, content: manifestFor([{ path: 'CURRENT', content: Buffer.from('ok') }]) },
      { header: { name: 'CURRENT', size: 2 }, content: Buffer.from('ok') },
      { header: { name: 'extra', size: extra.length }, content: extra },
    ]));
    const requests: Array<Record<string, unknown>> = [];
    const { address, stop } = await startServer((s) =>
      s.addService(interScmServiceDefinition(), {
        download: (call: grpc.ServerWritableStream<Record<string, unknown>, CopyDBCheckpointResponse>) => {
          requests.push(call.request);
          for (const m of messages) call.write(m);
          call.end();
        },
      }),
    );
    const snapshotDir = join(dir, 'follower', 'snapshot');
    try {
      await assert.rejects(
        new SnapshotDownloader({ leaderAddress: () => address, expectedClusterId: CLUSTER_ID, snapshotDir, deadlineMs: 10_000, maxAttempts: 2, initialBackoffMs: 1 }).fetch(500),
        /contains "extra", which the manifest does not list/,
      );
      assert.equal(requests.length, 2);
      assert.ok(!requests[1]!['checkpointId'] && !Number(requests[1]!['resumeOffset'] ?? 0), `the second attempt starts over: ${JSON.stringify(requests[1])}`);
      assert.deepEqual(await readdir(snapshotDir), [], 'no partial download or extraction left');
    } finally {
      await stop();
    }
  });
});

test('a follower with room for the checkpoint\'s files but not also for the stream it keeps for resuming refuses before writing a file', async () => {
  await withTempDir('snap-hostile-', async (dir) => {
    const leaderDb = await createScmDb(join(dir, 'leader', 'scm.db'), 400, { term: 1, index: 500 });
    const checkpoint = await createCheckpoint(leaderDb, join(dir, 'leader', 'db.checkpoints'));
    await leaderDb.close();
    const messages = toMessages(await streamToBuffer(packCheckpoint(checkpoint, CLUSTER_ID)));
    const { address, stop } = await startServer((s) =>
      s.addService(interScmServiceDefinition(), {
        download: (call: grpc.ServerWritableStream<unknown, CopyDBCheckpointResponse>) => {
          for (const m of messages) call.write(m);
          call.end();
        },
      }),
    );
    const snapshotDir = join(dir, 'follower', 'snapshot');
    const fetch = (free: number) =>
      new SnapshotDownloader({ leaderAddress: () => address, expectedClusterId: CLUSTER_ID, snapshotDir, deadlineMs: 10_000, maxAttempts: 1, freeBytes: async () => free } as ConstructorParameters<typeof SnapshotDownloader>[0]).fetch(500);
    try {
      const total = checkpoint.totalFileBytes;
      // Room for the files once: the stream written beside them for a resume would not fit.
      await assert.rejects(fetch(Math.floor(total * 1.5)), /manifest declares \d+ bytes in all, and the download kept for resuming up to \d+ more, but only \d+ bytes are free/);
      assert.deepEqual(await readdir(snapshotDir), []);
      const ready = await fetch(2 * total + 1024 * 1024);
      assert.equal(ready.termIndex.index, 500);
    } finally {
      await stop();
    }
  });
});
