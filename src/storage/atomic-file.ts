// Replace a small file atomically and durably: write <name>.tmp, fsync it, rename it over
// <name>, fsync the directory.

import { open, rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fsyncDirectory } from './fs-durable.js';

export async function writeFileAtomically(path: string, content: Uint8Array): Promise<void> {
  const tmp = `${path}.tmp`;
  const handle = await open(tmp, 'w');
  try {
    let done = 0;
    while (done < content.length) {
      const { bytesWritten } = await handle.write(content, done, content.length - done, done);
      done += bytesWritten;
    }
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(tmp, path);
  await fsyncDirectory(dirname(path));
}
