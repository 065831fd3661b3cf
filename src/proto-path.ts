// Where the .proto files are: <project>/proto, found from this module whether it runs from the
// sources (src/) or the build output (dist/src/). Imports nothing of ours, so every folder may use it.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findProtoDir(): string {
  const start = dirname(fileURLToPath(import.meta.url));
  for (let dir = start, i = 0; i < 5; i++, dir = dirname(dir)) {
    const candidate = join(dir, 'proto');
    if (existsSync(join(candidate, 'InterSCMProtocol.proto'))) return candidate;
  }
  throw new Error(`cannot find the proto/ directory above ${start}`);
}

export const PROTO_DIR = findProtoDir();

/** Absolute path of proto/<name>. */
export function protoPath(name: string): string {
  return join(PROTO_DIR, name);
}
