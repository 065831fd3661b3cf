// Making file-system changes durable: data is durable once its file is fsynced, and a creation,
// rename or deletion once its directory is. One implementation for every folder (the Raft log and
// raft-meta, VERSION, checkpoints and their install). Imports nothing of ours, so every folder may
// use it.
import { closeSync, fsyncSync, openSync } from 'node:fs';
import { open, readdir, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';

/** fsyncs a file, or a directory so that creations, renames and deletions inside it survive a crash. */
export async function fsyncPath(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** fsyncPath for synchronous callers (start-up recovery, the lock file). */
export function fsyncPathSync(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Fsyncs every regular file below `dir` (recursively), then the directory itself. */
export async function fsyncDirTree(dir: string): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) await fsyncDirTree(path);
    else if (entry.isFile()) await fsyncPath(path);
  }
  await fsyncPath(dir);
}

/**
 * Replaces a small file atomically and durably: writes `<path>.tmp` (created with `mode`, before the
 * umask), fsyncs it, renames it over `path`, fsyncs the directory. A failed write removes the
 * temporary file; a crash can leave it behind, never a torn `path`.
 */
export async function writeFileAtomic(path: string, content: Uint8Array | string, options: { readonly mode?: number } = {}): Promise<void> {
  const bytes = typeof content === 'string' ? Buffer.from(content, 'utf8') : content;
  const tmp = `${path}.tmp`;
  const handle = await open(tmp, 'w', options.mode ?? 0o666);
  try {
    let done = 0;
    while (done < bytes.length) {
      const { bytesWritten } = await handle.write(bytes, done, bytes.length - done, done);
      done += bytesWritten;
    }
    await handle.sync();
  } catch (err) {
    await handle.close();
    await rm(tmp, { force: true });
    throw err;
  }
  await handle.close();
  await rename(tmp, path);
  await fsyncPath(dirname(path));
}
