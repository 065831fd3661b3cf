// Small helpers for making file-system changes durable.

import { open } from 'node:fs/promises';
import { closeSync, fsyncSync, openSync } from 'node:fs';

/** fsyncs a directory so that creations, renames and deletions inside it survive a crash. */
export async function fsyncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export function fsyncDirectorySync(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
