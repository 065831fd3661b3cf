// Small durability helpers: a rename or a new file is only durable once its directory is fsynced.
import { open, readdir, rename } from 'node:fs/promises';
import { join } from 'node:path';

export async function fsyncPath(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Fsyncs every regular file directly under `dir`, then the directory itself. */
export async function fsyncDirTree(dir: string): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) await fsyncDirTree(path);
    else if (entry.isFile()) await fsyncPath(path);
  }
  await fsyncPath(dir);
}

/** Renames and makes the rename durable by fsyncing the parent directory (same parent on both sides). */
export async function durableRename(from: string, to: string, parentDir: string): Promise<void> {
  await rename(from, to);
  await fsyncPath(parentDir);
}
