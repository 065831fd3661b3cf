// Extracts a downloaded checkpoint tar.gz into a fresh directory, trusting nothing in it.
//
// MANIFEST.json must be the first entry: it says, before anything is written, which files may be
// extracted and exactly how big each is. Those sizes are the caps while extracting, together with
// the fixed limits below and the free space under the destination: the manifest's total must fit
// before the first file is written, an entry whose header claims more than the manifest declares is
// refused at its header (a gzip bomb writes nothing), and the decompressed stream may not grow past
// what the manifest and the tar framing account for (a bomb after the last entry is stopped too).
// Only regular files and directories are accepted; names must be relative, normalised and free of
// `..`; links, devices, FIFOs and type flags tar-stream does not know (GNU sparse) are refused;
// duplicates are refused. Each file is hashed while written, checked against the manifest and
// fsynced. On any error the partially extracted directory is removed.
//
// The source is any byte stream (a file, or a download as it arrives: snapshot-downloader.ts
// extracts while it downloads); nothing here depends on having the whole tarball first.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rm, statfs, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import * as tar from 'tar-stream';
import { fsyncPath } from '../durable-fs.js';
import { abortedError } from './aborted.js';
import { MANIFEST_NAME, MAX_MANIFEST_BYTES, parseManifest, type Manifest, type ManifestFile } from './manifest.js';

export interface ExtractLimits {
  /** Sum of all file sizes the manifest may declare (default 256 GiB). */
  readonly maxTotalBytes?: number;
  /** Number of files the manifest may declare, plus directory entries (default 100,000). */
  readonly maxEntries?: number;
  /** Size the manifest may declare for any one file (default 64 GiB). */
  readonly maxEntryBytes?: number;
}

export const DEFAULT_EXTRACT_LIMITS: Required<ExtractLimits> = Object.freeze({
  maxTotalBytes: 256 * 1024 ** 3,
  maxEntries: 100_000,
  maxEntryBytes: 64 * 1024 ** 3,
});

export class UnsafeTarballError extends Error {
  override readonly name = 'UnsafeTarballError';
}

export interface ExtractedCheckpoint {
  readonly dir: string;
  readonly manifest: Manifest;
}

export interface ExtractOptions {
  /** Aborting stops the extraction at once; the partly extracted directory is removed. */
  readonly signal?: AbortSignal;
  /** Bytes that may still be written under `dir` (default: statfs, the space available to us). */
  readonly freeBytes?: (dir: string) => Promise<number>;
  /**
   * What the caller writes on the same file system beside the extraction while it runs (the
   * download kept for resuming): the free space must hold it too, or the disk fills half way.
   */
  readonly alsoWriting?: { readonly what: string; readonly bytes: (declared: DeclaredSize) => number | Promise<number> };
  /**
   * The most compressed bytes the source may hold for what its manifest declares. Past it the
   * stream is refused: gzip can carry any number of empty blocks, which the expansion limit (output
   * only) never sees, and the caller keeps the stream on disk (the free space was checked for this
   * bound). Before the manifest is read, the source may hold PRE_MANIFEST_SOURCE_BYTES.
   */
  readonly sourceBytesAtMost?: (declared: DeclaredSize) => number;
}

export interface DeclaredSize {
  readonly totalBytes: number;
  readonly files: number;
}

/**
 * What the tar framing may add to the files' bytes: per entry a header, padding to 512 bytes and
 * maybe a pax or GNU long-name header; at the end two zero blocks and padding to a 10 KiB record.
 * Generous, so any tar writer fits; a bomb is orders of magnitude more.
 */
const FRAMING_PER_ENTRY = 4 * 512;
const FRAMING_SLACK = 1024 * 1024;

/**
 * Compressed bytes the source may hold before the manifest is read (with sourceBytesAtMost): the
 * largest manifest and its framing, plus what the pipeline reads ahead while it is parsed.
 */
export const PRE_MANIFEST_SOURCE_BYTES = MAX_MANIFEST_BYTES + FRAMING_SLACK + 16 * 1024 * 1024;

/** Bytes per gunzip output piece (zlib's default, 16 KiB, costs a thread-pool round trip and a write per 16 KiB). */
const GUNZIP_CHUNK = 256 * 1024;
/** Files whose fsync may be under way at once while later files are written. */
const SYNCS_IN_FLIGHT = 4;

/** Extracts `tarGzPath` into `destDir` (which must not exist) and verifies it against its manifest. */
export async function extractCheckpointTarball(tarGzPath: string, destDir: string, limits: ExtractLimits = {}, options: ExtractOptions = {}): Promise<ExtractedCheckpoint> {
  if (options.signal?.aborted === true) throw abortedError(`extraction of ${tarGzPath}`, options.signal);
  return extractCheckpointStream(createReadStream(tarGzPath, { highWaterMark: GUNZIP_CHUNK }), tarGzPath, destDir, limits, options);
}

/**
 * Extracts the tar.gz bytes of `source` into `destDir` (which must not exist) and verifies them
 * against their manifest; `what` names the source in errors. The source is consumed with
 * backpressure; a source that errors or ends early fails the extraction.
 */
export async function extractCheckpointStream(source: Readable, what: string, destDir: string, limits: ExtractLimits = {}, options: ExtractOptions = {}): Promise<ExtractedCheckpoint> {
  const caps = { ...DEFAULT_EXTRACT_LIMITS, ...limits };
  if (options.signal?.aborted === true) {
    source.destroy();
    throw abortedError(`extraction of ${what}`, options.signal);
  }
  try {
    await mkdir(dirname(destDir), { recursive: true });
    await mkdir(destDir);
  } catch (err) {
    source.destroy();
    throw new Error(`cannot extract into ${destDir}: ${(err as Error).message}`, { cause: err });
  }
  const syncs = new FileSyncs();
  try {
    const { manifest, directories } = await extractInto(source, what, destDir, caps, options, syncs);
    await syncs.all();
    // Every file is durable now; their names are once the directories holding them are, deepest first.
    for (const dir of [...directories].sort((a, b) => b.length - a.length)) await fsyncPath(join(destDir, dir));
    await fsyncPath(destDir);
    return { dir: destDir, manifest };
  } catch (err) {
    source.destroy();
    await syncs.settle();
    await rm(destDir, { recursive: true, force: true });
    throw err;
  }
}

/**
 * fsyncs and closes written files in the background, a few at a time, while later files are
 * written: one file's fsync need not wait for the next file's bytes, nor they for it. `all()`
 * rejects with the first failure; nothing counts as extracted before it resolved.
 */
class FileSyncs {
  private readonly pending: Array<Promise<void>> = [];
  private failure: unknown;

  async add(handle: FileHandle): Promise<void> {
    const done = handle.sync().finally(() => handle.close()).catch((err: unknown) => {
      this.failure ??= err;
    });
    this.pending.push(done);
    while (this.pending.length >= SYNCS_IN_FLIGHT) await this.pending.shift();
    if (this.failure !== undefined) throw this.failure;
  }

  async all(): Promise<void> {
    await this.settle();
    if (this.failure !== undefined) throw this.failure;
  }

  /** Waits for every file to be synced and closed (or to have failed). */
  async settle(): Promise<void> {
    while (this.pending.length > 0) await this.pending.shift();
  }
}

async function availableBytes(dir: string): Promise<number> {
  const s = await statfs(dir);
  return s.bavail * s.bsize;
}

async function extractInto(source: Readable, what: string, destDir: string, caps: Required<ExtractLimits>, options: ExtractOptions, syncs: FileSyncs): Promise<{ manifest: Manifest; directories: Set<string> }> {
  const { signal } = options;
  const extract = tar.extract();
  const gunzip = createGunzip({ chunkSize: GUNZIP_CHUNK });
  // Until the manifest is read, only the manifest (and its framing) may come out of gunzip.
  const meter = new ExpansionMeter(MAX_MANIFEST_BYTES + FRAMING_SLACK);
  const sourceMeter = options.sourceBytesAtMost !== undefined ? new SourceMeter(PRE_MANIFEST_SOURCE_BYTES) : undefined;
  const streamOptions = signal !== undefined ? { signal } : {};
  const feeding = sourceMeter !== undefined ? pipeline(source, sourceMeter, gunzip, meter, extract, streamOptions) : pipeline(source, gunzip, meter, extract, streamOptions);
  // Swallow here; the same failure surfaces (with context) from the entry loop or the await below.
  feeding.catch(() => undefined);

  let manifest: Manifest | undefined;
  let declared = new Map<string, ManifestFile>();
  const extracted = new Set<string>();
  const directories = new Set<string>();
  let entries = 0;
  try {
    for await (const entry of extract) {
      const header = entry.header;
      entries++;
      if (entries > caps.maxEntries) throw new UnsafeTarballError(`tarball has more than ${caps.maxEntries} entries`);
      const name = safeEntryName(header.name);
      // tar-stream reports a type flag it does not know (GNU sparse 'S', vendor extensions) as null:
      // never take that for a regular file.
      const type = header.type;
      if (type === null || type === undefined) {
        throw new UnsafeTarballError(`tarball entry ${JSON.stringify(header.name)} has a type flag other than regular file or directory; only regular files and directories are allowed`);
      }
      if (type !== 'file' && type !== 'directory') {
        throw new UnsafeTarballError(`tarball entry ${JSON.stringify(header.name)} is a ${type}; only regular files and directories are allowed`);
      }
      const size = header.size ?? 0;
      if (manifest === undefined) {
        if (name !== MANIFEST_NAME || type !== 'file') {
          throw new UnsafeTarballError(`the first tarball entry must be ${MANIFEST_NAME}, found ${JSON.stringify(name)}: nothing would bound what the tarball writes`);
        }
        if (size > MAX_MANIFEST_BYTES) throw new UnsafeTarballError(`${MANIFEST_NAME} is ${size} bytes, over ${MAX_MANIFEST_BYTES}`);
        manifest = parseManifest(await readAll(entry as unknown as AsyncIterable<Buffer>));
        declared = await checkDeclared(manifest, caps, destDir, options.freeBytes ?? availableBytes, options.alsoWriting);
        const total = manifest.files.reduce((sum, f) => sum + f.size + FRAMING_PER_ENTRY + 2 * f.path.length, 0);
        meter.limitTo(meter.bytes + total + FRAMING_SLACK);
        if (sourceMeter !== undefined && options.sourceBytesAtMost !== undefined) {
          const files = manifest.files.length;
          const totalBytes = manifest.files.reduce((sum, f) => sum + f.size, 0);
          sourceMeter.limitTo(options.sourceBytesAtMost({ totalBytes, files }), `the most a stream of the ${files} files (${totalBytes} bytes) its manifest declares may take`);
        }
        continue;
      }
      if (name === MANIFEST_NAME || extracted.has(name) || directories.has(name)) {
        throw new UnsafeTarballError(`tarball entry ${JSON.stringify(name)} appears twice`);
      }
      if (type === 'directory') {
        await mkdir(join(destDir, name), { recursive: true });
        directories.add(name);
        entry.resume();
        continue;
      }
      const file = declared.get(name);
      if (file === undefined) throw new UnsafeTarballError(`tarball contains ${JSON.stringify(name)}, which the manifest does not list`);
      if (size !== file.size) throw new UnsafeTarballError(`tarball entry ${JSON.stringify(name)} is ${size} bytes, but the manifest declares ${file.size}`);
      const written = await writeEntry(entry as unknown as AsyncIterable<Buffer>, join(destDir, name), file.size, syncs);
      if (written.sha256 !== file.sha256) throw new UnsafeTarballError(`${JSON.stringify(name)} has SHA-256 ${written.sha256}, manifest says ${file.sha256}`);
      extracted.add(name);
    }
    await feeding;
  } catch (err) {
    extract.destroy();
    if (signal?.aborted === true) throw abortedError(`extraction of ${what}`, signal);
    // The meter's refusal reaches the entry loop as a destroyed stream; report the refusal.
    if (meter.refusal !== undefined) throw meter.refusal;
    if (sourceMeter?.refusal !== undefined) throw sourceMeter.refusal;
    if (err instanceof UnsafeTarballError) throw err;
    // A local write or fsync that failed (ENOSPC, EIO) is no fault of the tarball's.
    if (typeof (err as { syscall?: unknown }).syscall === 'string') throw new Error(`extracting ${what} into ${destDir} failed: ${(err as Error).message}`, { cause: err });
    throw new Error(`checkpoint tarball ${what} is unreadable: ${(err as Error).message}`, { cause: err });
  }
  if (manifest === undefined) throw new UnsafeTarballError(`tarball has no ${MANIFEST_NAME}`);
  for (const file of manifest.files) {
    if (!extracted.has(file.path)) throw new UnsafeTarballError(`manifest lists ${JSON.stringify(file.path)} but the tarball does not contain it`);
  }
  // Parents of files (mkdir'd on the way) count as directories to make durable too.
  for (const file of manifest.files) {
    for (let cut = file.path.lastIndexOf('/'); cut > 0; cut = file.path.lastIndexOf('/', cut - 1)) directories.add(file.path.slice(0, cut));
  }
  return { manifest, directories };
}

/** Checks what the manifest declares against the caps and the free space; returns it by path. */
async function checkDeclared(manifest: Manifest, caps: Required<ExtractLimits>, destDir: string, freeBytes: (dir: string) => Promise<number>, alsoWriting: ExtractOptions['alsoWriting']): Promise<Map<string, ManifestFile>> {
  if (manifest.files.length + 1 > caps.maxEntries) {
    throw new UnsafeTarballError(`manifest declares ${manifest.files.length} files, more than the ${caps.maxEntries} entries allowed`);
  }
  const byPath = new Map<string, ManifestFile>();
  let total = 0;
  for (const file of manifest.files) {
    let normal: string | undefined;
    try {
      normal = safeEntryName(file.path);
    } catch {
      normal = undefined;
    }
    if (normal !== file.path || file.path === MANIFEST_NAME) {
      throw new UnsafeTarballError(`manifest lists ${JSON.stringify(file.path)}, which is not a safe relative path of a checkpoint file`);
    }
    if (file.size > caps.maxEntryBytes) {
      throw new UnsafeTarballError(`manifest declares ${JSON.stringify(file.path)} at ${file.size} bytes, over the per-entry cap of ${caps.maxEntryBytes}`);
    }
    total += file.size;
    byPath.set(file.path, file);
  }
  if (total > caps.maxTotalBytes) throw new UnsafeTarballError(`manifest declares ${total} bytes in all, over the cap of ${caps.maxTotalBytes} bytes total`);
  const free = await freeBytes(destDir);
  const beside = (await alsoWriting?.bytes({ totalBytes: total, files: manifest.files.length })) ?? 0;
  if (!(Number.isFinite(free) && total + beside <= free)) {
    const besideText = alsoWriting !== undefined ? `, and ${alsoWriting.what} up to ${beside} more` : '';
    throw new UnsafeTarballError(`manifest declares ${total} bytes in all${besideText}, but only ${free} bytes are free under ${destDir}`);
  }
  return byPath;
}

/** Normalises a tar entry name and refuses anything that could land outside the target directory. */
export function safeEntryName(raw: string): string {
  if (raw.includes('\0')) throw new UnsafeTarballError(`tarball entry name ${JSON.stringify(raw)} contains a NUL byte`);
  if (raw.includes('\\')) throw new UnsafeTarballError(`tarball entry name ${JSON.stringify(raw)} contains a backslash`);
  if (raw.startsWith('/') || /^[A-Za-z]:/.test(raw)) throw new UnsafeTarballError(`tarball entry name ${JSON.stringify(raw)} is an absolute path`);
  const parts = raw.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.length === 0) throw new UnsafeTarballError(`tarball entry name ${JSON.stringify(raw)} is empty`);
  if (parts.includes('..')) throw new UnsafeTarballError(`tarball entry name ${JSON.stringify(raw)} contains ".."`);
  return parts.join('/');
}

/** Writes one entry, never more than `declared` bytes of it; its fsync and close go to `syncs`. */
async function writeEntry(entry: AsyncIterable<Buffer>, path: string, declared: number, syncs: FileSyncs): Promise<{ size: number; sha256: string }> {
  await mkdir(dirname(path), { recursive: true });
  // 'wx': never follow or overwrite something already there.
  const handle = await open(path, 'wx', 0o644);
  const hash = createHash('sha256');
  let size = 0;
  try {
    for await (const chunk of entry) {
      if (size + chunk.length > declared) throw new UnsafeTarballError(`tarball entry ${path} holds more than the ${declared} bytes its manifest declares`);
      hash.update(chunk);
      size += chunk.length;
      await writeAll(handle, chunk);
    }
  } catch (err) {
    await handle.close();
    throw err;
  }
  await syncs.add(handle);
  if (size !== declared) throw new Error(`tarball entry ${path} is truncated: ${size} of ${declared} bytes`);
  return { size, sha256: hash.digest('hex') };
}

async function writeAll(handle: FileHandle, data: Buffer): Promise<void> {
  for (let done = 0; done < data.length; ) done += (await handle.write(data, done, data.length - done)).bytesWritten;
}

async function readAll(entry: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of entry) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** Counts the decompressed bytes on their way to the tar parser and stops them past a limit. */
class ExpansionMeter extends Transform {
  bytes = 0;
  refusal: UnsafeTarballError | undefined;

  constructor(private limit: number) {
    super();
  }

  limitTo(limit: number): void {
    this.limit = limit;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.limit) {
      this.refusal = new UnsafeTarballError(`tarball expands to more than ${this.limit} bytes, beyond what its manifest declares (a gzip bomb?)`);
      callback(this.refusal);
      return;
    }
    callback(null, chunk);
  }
}

/** Counts the compressed bytes on their way to gunzip and stops them past a limit. */
class SourceMeter extends Transform {
  bytes = 0;
  refusal: UnsafeTarballError | undefined;
  private why = `the most a stream may take before its ${MANIFEST_NAME} is read`;

  constructor(private limit: number) {
    super();
  }

  limitTo(limit: number, why: string): void {
    this.limit = limit;
    this.why = why;
    // Read ahead of the parser already past it: refuse now.
    if (this.over()) this.destroy(this.refusal);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.over()) {
      callback(this.refusal);
      return;
    }
    callback(null, chunk);
  }

  private over(): boolean {
    if (this.refusal === undefined && this.bytes > this.limit) {
      this.refusal = new UnsafeTarballError(`checkpoint stream is over ${this.limit} bytes, ${this.why} (padding between gzip blocks?): refused`);
    }
    return this.refusal !== undefined;
  }
}
