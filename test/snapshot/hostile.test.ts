// A hostile or broken leader: every malformed stream or tarball is rejected with an error naming
// the problem, and the follower's scm.db and snapshot/ directory are left exactly as they were.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { readdir } from 'node:fs/promises';
import { buffer as streamToBuffer } from 'node:stream/consumers';
import { gzipSync } from 'node:zlib';
import * as grpc from '@grpc/grpc-js';
import * as tar from 'tar-stream';
import { chunkChecksum } from '../../src/snapshot/chunk-checksum.js';
import { createCheckpoint } from '../../src/snapshot/checkpoint.js';
import { interScmServiceDefinition, type CopyDBCheckpointResponse } from '../../src/snapshot/inter-scm-proto.js';
import { SnapshotDownloader } from '../../src/snapshot/snapshot-downloader.js';
import { packCheckpoint } from '../../src/snapshot/tarball.js';
import type { ExtractLimits } from '../../src/snapshot/safe-extract.js';
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
    { header: { name: 'CURRENT', size: x.length }, content: x },
    { header, ...(content !== undefined ? { content } : {}) },
    { header: { name: 'MANIFEST.json' }, content: manifestFor([{ path: 'CURRENT', content: x }]) },
  ]));
};

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
        ...files.map((f) => ({ header: { name: f.path, size: f.content.length }, content: f.content })),
        { header: { name: 'MANIFEST.json' }, content: manifestFor(files) },
      ]);
      return toMessages(gzipSync(setTypeFlag(plain, 'sparse', 'S')));
    },
    expected: /tarball entry "sparse" has a type flag other than regular file or directory; only regular files and directories are allowed/,
  },
  { name: 'an oversized entry', messages: (valid) => toMessages(valid), limits: { maxEntryBytes: 64 }, expected: /over the per-entry cap of 64/ },
  { name: 'too many entries', messages: (valid) => toMessages(valid), limits: { maxEntries: 2 }, expected: /more than 2 entries/ },
  { name: 'too many bytes in total', messages: (valid) => toMessages(valid), limits: { maxTotalBytes: 1000 }, expected: /exceeds the cap of 1000 bytes total/ },
  {
    name: 'a file that does not match the manifest',
    messages: async () => {
      const real = Buffer.from('MANIFEST-000001\n');
      return toMessages(await craftTarball([
        { header: { name: 'CURRENT', size: 16 }, content: Buffer.from('MANIFEST-000002\n') },
        { header: { name: 'MANIFEST.json' }, content: manifestFor([{ path: 'CURRENT', content: real }]) },
      ]));
    },
    expected: /"CURRENT" has SHA-256 [0-9a-f]+, manifest says/,
  },
  {
    name: 'a file the manifest does not list',
    messages: async () => {
      const x = Buffer.from('x');
      return toMessages(await craftTarball([
        { header: { name: 'CURRENT', size: 1 }, content: x },
        { header: { name: 'extra', size: 1 }, content: x },
        { header: { name: 'MANIFEST.json' }, content: manifestFor([{ path: 'CURRENT', content: x }]) },
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
