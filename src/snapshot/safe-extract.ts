// Extracts a downloaded checkpoint tar.gz into a fresh directory, trusting nothing in it.
//
// Only regular files and directories are accepted; names must be relative, normalised and free of
// `..`; links, devices, FIFOs and type flags tar-stream does not know (GNU sparse) are refused; total bytes, entry count and per-entry size are
// capped; duplicates are refused. Each file is hashed while written and fsynced. Afterwards the
// MANIFEST.json entry must describe exactly the files extracted (same set, sizes and SHA-256).
// On any error the partially extracted directory is removed.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import * as tar from 'tar-stream';
import { fsyncDirTree } from '../durable-fs.js';
import { abortedError } from './aborted.js';
import { MANIFEST_NAME, MAX_MANIFEST_BYTES, parseManifest, type Manifest } from './manifest.js';

export interface ExtractLimits {
  /** Sum of all entry sizes (default 256 GiB). */
  readonly maxTotalBytes?: number;
  /** Number of tar entries (default 100,000). */
  readonly maxEntries?: number;
  /** Size of any one entry (default 64 GiB). */
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
}

/** Extracts `tarGzPath` into `destDir` (which must not exist) and verifies it against its manifest. */
export async function extractCheckpointTarball(tarGzPath: string, destDir: string, limits: ExtractLimits = {}, options: ExtractOptions = {}): Promise<ExtractedCheckpoint> {
  const caps = { ...DEFAULT_EXTRACT_LIMITS, ...limits };
  if (options.signal?.aborted === true) throw abortedError(`extraction of ${tarGzPath}`, options.signal);
  await mkdir(dirname(destDir), { recursive: true });
  try {
    await mkdir(destDir);
  } catch (err) {
    throw new Error(`cannot extract into ${destDir}: ${(err as Error).message}`, { cause: err });
  }
  try {
    const manifest = await extractInto(tarGzPath, destDir, caps, options.signal);
    await fsyncDirTree(destDir);
    return { dir: destDir, manifest };
  } catch (err) {
    await rm(destDir, { recursive: true, force: true });
    throw err;
  }
}

async function extractInto(tarGzPath: string, destDir: string, caps: Required<ExtractLimits>, signal: AbortSignal | undefined): Promise<Manifest> {
  const extract = tar.extract();
  const gunzip = createGunzip();
  const feeding = pipeline(createReadStream(tarGzPath), gunzip, extract, signal !== undefined ? { signal } : {});
  // Swallow here; the same failure surfaces (with context) from the entry loop or the await below.
  feeding.catch(() => undefined);

  const extracted = new Map<string, { size: number; sha256: string }>();
  const directories = new Set<string>();
  let manifestBytes: Buffer | undefined;
  let entries = 0;
  let totalBytes = 0;
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
      if (extracted.has(name) || directories.has(name) || (name === MANIFEST_NAME && manifestBytes !== undefined)) {
        throw new UnsafeTarballError(`tarball entry ${JSON.stringify(name)} appears twice`);
      }
      if (type === 'directory') {
        await mkdir(join(destDir, name), { recursive: true });
        directories.add(name);
        entry.resume();
        continue;
      }
      const size = header.size ?? 0;
      if (size > caps.maxEntryBytes) throw new UnsafeTarballError(`tarball entry ${JSON.stringify(name)} is ${size} bytes, over the per-entry cap of ${caps.maxEntryBytes}`);
      totalBytes += size;
      if (totalBytes > caps.maxTotalBytes) throw new UnsafeTarballError(`tarball content exceeds the cap of ${caps.maxTotalBytes} bytes total`);
      if (name === MANIFEST_NAME) {
        if (size > MAX_MANIFEST_BYTES) throw new UnsafeTarballError(`${MANIFEST_NAME} is ${size} bytes, over ${MAX_MANIFEST_BYTES}`);
        manifestBytes = await readAll(entry as unknown as AsyncIterable<Buffer>);
        continue;
      }
      extracted.set(name, await writeEntry(entry as unknown as AsyncIterable<Buffer>, join(destDir, name), size));
    }
    await feeding;
  } catch (err) {
    extract.destroy();
    if (signal?.aborted === true) throw abortedError(`extraction of ${tarGzPath}`, signal);
    if (err instanceof UnsafeTarballError) throw err;
    throw new Error(`checkpoint tarball ${tarGzPath} is unreadable: ${(err as Error).message}`, { cause: err });
  }
  if (manifestBytes === undefined) throw new UnsafeTarballError(`tarball has no ${MANIFEST_NAME}`);
  const manifest = parseManifest(manifestBytes);
  verifyAgainstManifest(manifest, extracted);
  return manifest;
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

async function writeEntry(entry: AsyncIterable<Buffer>, path: string, expectedSize: number): Promise<{ size: number; sha256: string }> {
  await mkdir(dirname(path), { recursive: true });
  // 'wx': never follow or overwrite something already there.
  const handle = await open(path, 'wx', 0o644);
  const hash = createHash('sha256');
  let size = 0;
  try {
    for await (const chunk of entry) {
      hash.update(chunk);
      size += chunk.length;
      await handle.write(chunk);
    }
    await handle.sync();
  } finally {
    await handle.close();
  }
  if (size !== expectedSize) throw new Error(`tarball entry ${path} is truncated: ${size} of ${expectedSize} bytes`);
  return { size, sha256: hash.digest('hex') };
}

async function readAll(entry: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of entry) chunks.push(chunk);
  return Buffer.concat(chunks);
}

function verifyAgainstManifest(manifest: Manifest, extracted: Map<string, { size: number; sha256: string }>): void {
  for (const file of manifest.files) {
    const got = extracted.get(file.path);
    if (got === undefined) throw new UnsafeTarballError(`manifest lists ${JSON.stringify(file.path)} but the tarball does not contain it`);
    if (got.size !== file.size) throw new UnsafeTarballError(`${JSON.stringify(file.path)} is ${got.size} bytes, manifest says ${file.size}`);
    if (got.sha256 !== file.sha256) throw new UnsafeTarballError(`${JSON.stringify(file.path)} has SHA-256 ${got.sha256}, manifest says ${file.sha256}`);
  }
  const listed = new Set(manifest.files.map((f) => f.path));
  for (const path of extracted.keys()) {
    if (!listed.has(path)) throw new UnsafeTarballError(`tarball contains ${JSON.stringify(path)}, which the manifest does not list`);
  }
}
