// `scm admin snapshot save FILE`: a backup of scm.db, as `etcdctl snapshot save`. The checkpoint
// comes from an SCM's InterSCM service through the follower's own download client (cluster id,
// offsets and chunk checksums checked as it streams), is verified like a follower verifies it
// before an install, and only then appears under FILE. FILE is never overwritten, and a failed or
// interrupted save leaves nothing but its work directory beside FILE (removed on failure).
import { randomBytes } from 'node:crypto';
import { link, mkdir, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { fsyncPath } from '../durable-fs.js';
import { downloadCheckpoint, type DownloadChannel, type DownloadProgress } from '../snapshot/index.js';
import type { AppliedConfiguration, TermIndex } from '../statemachine/index.js';
import { extractVerifiedCheckpoint } from './checkpoint-file.js';

export interface SaveCheckpointRequest {
  /** host:port of the SCM's InterSCM service (ozone.scm.grpc.port). */
  readonly address: string;
  /** The cluster the checkpoint must belong to (from GetClusterInfo). */
  readonly clusterId: string;
  readonly file: string;
  /** Deadline of the whole transfer. */
  readonly deadlineMs: number;
  readonly onProgress?: (progress: DownloadProgress) => void;
  /** Names this client in the serving node's log. */
  readonly requesterId?: string;
  /** With TLS, the administrator's certificate (only members and administrators may download). */
  readonly channel?: (address: string) => DownloadChannel;
}

export interface SavedCheckpoint {
  readonly file: string;
  readonly bytes: number;
  readonly clusterId: string;
  readonly termIndex: TermIndex;
  readonly configuration: AppliedConfiguration;
  readonly files: number;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

export async function saveCheckpoint(request: SaveCheckpointRequest): Promise<SavedCheckpoint> {
  const file = resolve(request.file);
  if (await exists(file)) throw new Error(`${file} already exists: a snapshot save never overwrites a file; remove it or choose another name`);
  const parent = dirname(file);
  if (!(await exists(parent))) throw new Error(`cannot save to ${file}: directory ${parent} does not exist`);
  // Beside FILE, so that the finished file is linked into place on the same file system.
  const work = join(parent, `.${basename(file)}.${randomBytes(4).toString('hex')}.saving`);
  await mkdir(work);
  try {
    const downloaded = await downloadCheckpoint({
      address: request.address,
      expectedClusterId: request.clusterId,
      destDir: work,
      deadlineMs: request.deadlineMs,
      ...(request.onProgress !== undefined ? { onProgress: request.onProgress } : {}),
      ...(request.requesterId !== undefined ? { requesterId: request.requesterId } : {}),
      ...(request.channel !== undefined ? { channel: request.channel } : {}),
    });
    const verified = await extractVerifiedCheckpoint(downloaded.file, join(work, 'verify'), request.clusterId);
    await rm(verified.dir, { recursive: true, force: true });
    try {
      // link, unlike rename, fails if FILE appeared meanwhile: nothing is ever overwritten.
      await link(downloaded.file, file);
    } catch (err) {
      throw new Error(`cannot save to ${file}: ${(err as Error).message}`, { cause: err });
    }
    await fsyncPath(file);
    await fsyncPath(parent);
    return {
      file,
      bytes: downloaded.bytes,
      clusterId: verified.clusterId,
      termIndex: verified.termIndex,
      configuration: verified.configuration,
      files: verified.manifest.files.length,
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
