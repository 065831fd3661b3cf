// Packs a checkpoint directory as a tar + gzip stream with MANIFEST.json as the first entry.
//
// The manifest comes first so that the follower knows, before it writes a byte, every file it may
// extract and its exact size: that is what caps each entry and the total while extracting (a gzip
// bomb is refused at its header). It needs the files' SHA-256 before they are streamed, so they are
// read once to hash them (cached per checkpoint: followers sharing it, and resumes, hash once) and
// again to stream them; a file that changes in between fails the stream.
//
// Streaming end to end (file → tar entry → gzip → consumer) with backpressure at every step, so
// memory stays flat whatever the DB size. The output is deterministic for a given checkpoint
// (sorted names, fixed mtime/mode/owner, fixed gzip level), which is what makes resuming a download
// at a byte offset of a regenerated stream safe; the follower's gzip CRC and manifest checks would
// catch any divergence anyway.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { once } from 'node:events';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { createGzip } from 'node:zlib';
import * as tar from 'tar-stream';
import type { TermIndex } from '../statemachine/transaction-info.js';
import { MANIFEST_FORMAT, MANIFEST_NAME, serializeManifest, type ManifestFile } from './manifest.js';

export interface PackSource {
  readonly id: string;
  readonly dir: string;
  readonly termIndex: TermIndex;
  readonly createdAtMs: number;
}

/**
 * The default gzip level: 0, stored blocks (gzip framing, CRC-32 and all, without deflate), so the
 * stream is still a tar.gz that `tar xzf` reads. LevelDB's table blocks are Snappy-compressed
 * already: level 1 shrinks a 1M-record checkpoint only from 62 to 40 MiB, at ~60 MB/s of one core
 * on the leader, which is slower than a 1 Gbit/s link carries the difference. Whole catch-up of
 * that checkpoint (`npm run bench:snapshot -- --gzip-level N [--link-mbit M]`, alternating runs on
 * a busy 2-core machine): loopback 1.1-1.4 s stored against 2.3-3.1 s at level 1; a 1 Gbit/s
 * shaped link 1.4-2.4 s against 2.0-2.9 s; but 100 Mbit/s 5.3 s against 4.1 s. Below ~500 Mbit/s
 * level 1 wins, so it is a setting (ozone.scm.ha.grpc.checkpoint.gzip.level).
 */
export const DEFAULT_GZIP_LEVEL = 0;

export interface PackOptions {
  /** gzip level 0-9 (default DEFAULT_GZIP_LEVEL). Level 6 gains almost nothing over 1 (40.1 to 39.3 MiB) for ~0.7 s more. */
  readonly gzipLevel?: number;
}

/** Returns the tar.gz byte stream of `source.dir`; errors (e.g. a file vanishing) destroy the stream. */
export function packCheckpoint(source: PackSource, clusterId: string, options: PackOptions = {}): Readable {
  const level = options.gzipLevel ?? DEFAULT_GZIP_LEVEL;
  if (!Number.isInteger(level) || level < -1 || level > 9) throw new Error(`gzip level must be an integer in -1..9, got ${level}`);
  const pack = tar.pack();
  // Output in pieces of PIPE_CHUNK, not zlib's 16 KiB: each piece is a round trip to the thread
  // pool and an await further down, and at 16 KiB those, not deflate, bounded the stream's speed.
  const gzip = createGzip({ level, chunkSize: PIPE_CHUNK });
  const packed = Readable.from(pack);
  // Destroying the pack (below, once the stream is stopped or failed) rejects the iterator's pending
  // read with "Stream was destroyed", which Readable.from emits as 'error': pipe() does not listen
  // for it, and unheard it is an uncaught error that stops the node. It goes to gzip, which is
  // destroyed by then (a no-op) or is failed by it (a pack that broke mid-way).
  packed.on('error', (err) => gzip.destroy(err));
  packed.pipe(gzip);
  // tar-stream's pack is a streamx stream; Readable.from drives it through its async iterator,
  // which applies backpressure from gzip back to the entry writers below.
  // A consumer that destroys the stream early (a cancelled or reclaimed download) stops the
  // writers too; otherwise one would wait for a 'drain' that never comes, holding a checkpoint
  // file open for good (and its disk space, once the checkpoint is deleted).
  const stopped = new AbortController();
  gzip.once('close', () => stopped.abort(new Error('checkpoint stream closed before its end')));
  fillPack(pack, source, clusterId, stopped.signal).catch((err: unknown) => {
    gzip.destroy(err instanceof Error ? err : new Error(String(err)));
    pack.destroy();
  });
  return gzip;
}

/** Bytes per file read and per gzip output piece. */
const PIPE_CHUNK = 256 * 1024;

/** The files of a checkpoint (a closed, immutable directory) with sizes and hashes, per source object. */
const hashed = new WeakMap<PackSource, Promise<ManifestFile[]>>();

function manifestFiles(source: PackSource): Promise<ManifestFile[]> {
  let files = hashed.get(source);
  if (files === undefined) {
    files = hashFiles(source.dir);
    hashed.set(source, files);
    // A failure (a file vanished) is not remembered: the next transfer tries again.
    files.catch(() => hashed.delete(source));
  }
  return files;
}

async function hashFiles(dir: string): Promise<ManifestFile[]> {
  const files: ManifestFile[] = [];
  for (const rel of await listFilesSorted(dir)) {
    const hash = createHash('sha256');
    let size = 0;
    for await (const chunk of createReadStream(join(dir, rel), { highWaterMark: PIPE_CHUNK }) as AsyncIterable<Buffer>) {
      hash.update(chunk);
      size += chunk.length;
    }
    files.push({ path: rel, size, sha256: hash.digest('hex') });
  }
  return files;
}

async function fillPack(pack: tar.Pack, source: PackSource, clusterId: string, signal: AbortSignal): Promise<void> {
  const mtime = new Date(Math.floor(source.createdAtMs / 1000) * 1000);
  const files = await manifestFiles(source);
  const manifest = serializeManifest({ format: MANIFEST_FORMAT, checkpointId: source.id, clusterId, termIndex: source.termIndex, files });
  await new Promise<void>((resolve, reject) => {
    pack.entry({ name: MANIFEST_NAME, size: manifest.length, mode: 0o644, mtime, uid: 0, gid: 0, uname: '', gname: '', type: 'file' }, manifest, (err) => (err ? reject(err) : resolve()));
  });
  for (const file of files) {
    signal.throwIfAborted();
    const path = join(source.dir, file.path);
    const { size } = await stat(path);
    // A checkpoint is closed and immutable; a change means someone is writing into it.
    if (size !== file.size) throw new Error(`checkpoint file ${path} is ${size} bytes, not the ${file.size} of its manifest: it changed while being served`);
    const hash = createHash('sha256');
    let written = 0;
    let entryDone!: Promise<void>;
    const entry = await new Promise<ReturnType<tar.Pack['entry']>>((resolveEntry) => {
      entryDone = new Promise<void>((resolve, reject) => {
        resolveEntry(pack.entry({ name: file.path, size, mode: 0o644, mtime, uid: 0, gid: 0, uname: '', gname: '', type: 'file' }, (err) => (err ? reject(err) : resolve())));
      });
    });
    // Awaited below; when the stream is stopped first, this rejects unawaited ("tar entry destroyed").
    entryDone.catch(() => undefined);
    for await (const chunk of createReadStream(path, { highWaterMark: PIPE_CHUNK }) as AsyncIterable<Buffer>) {
      if (written + chunk.length > size) throw new Error(`checkpoint file ${path} grew while being packed`);
      hash.update(chunk);
      written += chunk.length;
      if (!entry.write(chunk)) await once(entry, 'drain', { signal });
    }
    if (written !== size) throw new Error(`checkpoint file ${path} shrank while being packed (${written} of ${size} bytes)`);
    entry.end(undefined);
    await entryDone;
    if (hash.digest('hex') !== file.sha256) throw new Error(`checkpoint file ${path} changed while being served: its SHA-256 is not the manifest's`);
  }
  pack.finalize();
}

/** Relative paths of all regular files under `dir`, sorted, for a deterministic tarball. */
export async function listFilesSorted(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  const entries = (await readdir(join(dir, prefix), { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    const rel = prefix === '' ? e.name : `${prefix}/${e.name}`;
    if (e.isDirectory()) out.push(...(await listFilesSorted(dir, rel)));
    else if (e.isFile()) out.push(rel);
    else throw new Error(`checkpoint ${dir} contains ${rel}, which is neither a file nor a directory`);
  }
  return out;
}
