// A consistent point-in-time checkpoint of a live scm.db.
//
// LevelDB has no checkpoint call, so we copy: take an explicit snapshot of the root DB (classic-level
// supports them; a single iterator's implicit snapshot is the fallback), iterate every raw key/value
// of the root (that covers all sublevels, whose keys carry their `!name!` prefix) with buffer
// encodings, and write them into a fresh LevelDB in bounded batches. Reads and writes are async on
// libuv's thread pool and we yield between batches, so the Raft and apply loops keep running while
// the copy proceeds; the snapshot guarantees the copy is exactly the DB at the moment it was taken,
// including its #TRANSACTIONINFO (written atomically with the entries it describes).
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { Level } from 'level';
import { readTransactionInfoAt, type TermIndex } from '../statemachine/transaction-info.js';
import { fsyncDirTree } from './fs-durable.js';

export const CHECKPOINT_DIR_PREFIX = 'scm.db_checkpoint_';
const IN_PROGRESS_SUFFIX = '.tmp';

/** A finished checkpoint: a closed LevelDB directory and what it contains. */
export interface Checkpoint {
  /** Directory name, unique per checkpoint (`scm.db_checkpoint_<millis>`); also the wire checkpointId. */
  readonly id: string;
  readonly dir: string;
  /** The checkpoint's own #TRANSACTIONINFO. */
  readonly termIndex: TermIndex;
  readonly createdAtMs: number;
  /** Sum of the sizes of the checkpoint's files. */
  readonly totalFileBytes: number;
  readonly entryCount: number;
}

/** What the checkpoint reads from: the state machine's open root DB (any key/value types). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the root is read with explicit buffer encodings, whatever its defaults
export type RootDb = Level<any, any>;

export interface CheckpointOptions {
  /** Flush a write batch to the new DB once it holds this many bytes (default 1 MiB). */
  readonly batchBytes?: number;
  /** Clock for the directory name; tests inject it. */
  readonly now?: () => number;
}

/** Creates `<checkpointsDir>/scm.db_checkpoint_<millis>` from a consistent snapshot of `db`. */
export async function createCheckpoint(db: RootDb, checkpointsDir: string, options: CheckpointOptions = {}): Promise<Checkpoint> {
  const batchBytes = options.batchBytes ?? 1024 * 1024;
  if (!(batchBytes > 0)) throw new Error(`checkpoint batchBytes must be positive, got ${batchBytes}`);
  if (db.status !== 'open') throw new Error(`cannot checkpoint scm.db: the database is ${db.status}, not open`);
  await mkdir(checkpointsDir, { recursive: true });

  const createdAtMs = await uniqueMillis(checkpointsDir, options.now ?? Date.now);
  const id = `${CHECKPOINT_DIR_PREFIX}${createdAtMs}`;
  const finalDir = join(checkpointsDir, id);
  const workDir = finalDir + IN_PROGRESS_SUFFIX;
  await rm(workDir, { recursive: true, force: true });

  // Taken synchronously, before any await: this is the checkpoint's moment in time.
  const snapshot = db.supports.explicitSnapshots ? db.snapshot() : undefined;
  const iterator = db.iterator({
    keyEncoding: 'buffer',
    valueEncoding: 'buffer',
    ...(snapshot !== undefined ? { snapshot } : {}),
  });
  // Small write buffer and cache: the copy is written once and never read here, and the leader's
  // memory must not grow with the DB size while it serves a checkpoint.
  const target = new Level<Buffer, Buffer>(workDir, {
    keyEncoding: 'buffer',
    valueEncoding: 'buffer',
    createIfMissing: true,
    errorIfExists: true,
    writeBufferSize: 1024 * 1024,
    cacheSize: 1024 * 1024,
  });
  let entryCount = 0;
  try {
    await target.open();
    let batch = target.batch();
    let pendingBytes = 0;
    for (;;) {
      const entries = (await iterator.nextv(1000)) as Array<[Buffer, Buffer]>;
      if (entries.length === 0) break;
      for (const [key, value] of entries) {
        batch.put(key, value);
        pendingBytes += key.length + value.length;
        entryCount++;
      }
      if (pendingBytes >= batchBytes) {
        await batch.write();
        batch = target.batch();
        pendingBytes = 0;
        await yieldToEventLoop();
      }
    }
    await batch.write();
  } catch (err) {
    await closeQuietly(target);
    await rm(workDir, { recursive: true, force: true });
    throw new Error(`checkpoint of scm.db into ${finalDir} failed: ${(err as Error).message}`, { cause: err });
  } finally {
    await iterator.close();
    if (snapshot !== undefined) await snapshot.close();
  }
  await target.close();
  await fsyncDirTree(workDir);
  // Only a complete, closed copy gets the final name, so a crash never leaves a half checkpoint
  // that looks servable.
  await rename(workDir, finalDir);

  const termIndex = await readTransactionInfoAt(finalDir);
  const totalFileBytes = await directoryBytes(finalDir);
  return Object.freeze({ id, dir: finalDir, termIndex, createdAtMs, totalFileBytes, entryCount });
}

/** Lists complete checkpoint directory names under `checkpointsDir` (oldest first). */
export async function listCheckpointDirs(checkpointsDir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(checkpointsDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return names
    .filter((n) => n.startsWith(CHECKPOINT_DIR_PREFIX))
    .sort((a, b) => checkpointMillis(a) - checkpointMillis(b));
}

/** Removes checkpoints left half-written by a crash (their `.tmp` directories). */
export async function removeIncompleteCheckpoints(checkpointsDir: string): Promise<void> {
  for (const name of await listCheckpointDirs(checkpointsDir)) {
    if (name.endsWith(IN_PROGRESS_SUFFIX)) await rm(join(checkpointsDir, name), { recursive: true, force: true });
  }
}

function checkpointMillis(name: string): number {
  return Number.parseInt(basename(name).slice(CHECKPOINT_DIR_PREFIX.length), 10);
}

async function uniqueMillis(dir: string, now: () => number): Promise<number> {
  const taken = new Set((await listCheckpointDirs(dir)).map(checkpointMillis));
  let millis = now();
  while (taken.has(millis)) millis++;
  return millis;
}

async function directoryBytes(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    total += entry.isDirectory() ? await directoryBytes(path) : (await stat(path)).size;
  }
  return total;
}

async function closeQuietly(db: { close(): Promise<void> }): Promise<void> {
  try {
    await db.close();
  } catch {
    // Already failing; the original error is the one worth reporting.
  }
}
