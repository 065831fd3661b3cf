// A consistent point-in-time checkpoint of a live scm.db, taken without stopping the Raft or apply
// loops.
//
// LevelDB has no checkpoint call. Two ways to make one, tried in this order:
// 1. Files (the default): capture the DB's own files as of one moment (leveldb-files.ts: copy the
//    MANIFEST, hard-link the logs and exactly the tables of the MANIFEST's version, check the logs'
//    records, start again if a flush or compaction overtook the capture), then open the copy once so
//    LevelDB replays its logs into a clean DB. This costs milliseconds whatever the DB size; it is
//    how RocksDB checkpoints, which is what Ozone's SCM uses.
// 2. Copy: take an explicit snapshot of the root DB, iterate every raw key/value of it (all sublevels,
//    whose keys carry their `!name!` prefix) with buffer encodings, and write them into a fresh
//    LevelDB in bounded batches. It needs nothing of LevelDB's file layout, but it costs about 3 s
//    per million records (measured with `npm run bench:snapshot -- --checkpoint-method copy`), so it
//    is the fallback when captures keep being overtaken or a live log is damaged, or when asked for.
// Both are exactly the DB at one moment, including its #TRANSACTIONINFO, which is written atomically
// with the entries it describes.
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { Level } from 'level';
import { readTransactionInfo, ZERO_TERM_INDEX, type TermIndex } from '../statemachine/transaction-info.js';
import { fsyncDirTree } from '../durable-fs.js';
import { captureLevelDbFiles, type CaptureHooks } from './leveldb-files.js';

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
  /** How it was made: from the DB's files, or by copying every entry of a snapshot. */
  readonly method: CheckpointMethod;
}

export type CheckpointMethod = 'files' | 'copy';

/** What the checkpoint reads from: the state machine's open root DB (any key/value types). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the root is read with explicit buffer encodings, whatever its defaults
export type RootDb = Level<any, any>;

export interface CheckpointOptions {
  /** 'auto' (default): 'files', falling back to 'copy'; or only the one named. */
  readonly method?: CheckpointMethod | 'auto';
  /** Captures of the files tried before falling back to a copy (default 5). */
  readonly fileAttempts?: number;
  /** Copy method: flush a write batch to the new DB once it holds this many bytes (default 1 MiB). */
  readonly batchBytes?: number;
  /** Why a capture of the files was abandoned (each retry and the fallback are reported). */
  readonly onRetry?: (reason: string) => void;
  readonly captureHooks?: CaptureHooks;
  /** Clock for the directory name; tests inject it. */
  readonly now?: () => number;
}

/** Creates `<checkpointsDir>/scm.db_checkpoint_<millis>` from a consistent snapshot of `db`. */
export async function createCheckpoint(db: RootDb, checkpointsDir: string, options: CheckpointOptions = {}): Promise<Checkpoint> {
  const batchBytes = options.batchBytes ?? 1024 * 1024;
  if (!(batchBytes > 0)) throw new Error(`checkpoint batchBytes must be positive, got ${batchBytes}`);
  const fileAttempts = options.fileAttempts ?? 5;
  if (!Number.isInteger(fileAttempts) || fileAttempts < 1) throw new Error(`checkpoint fileAttempts must be a positive integer, got ${fileAttempts}`);
  const wanted = options.method ?? 'auto';
  if (db.status !== 'open') throw new Error(`cannot checkpoint scm.db: the database is ${db.status}, not open`);
  await mkdir(checkpointsDir, { recursive: true });

  const createdAtMs = await uniqueMillis(checkpointsDir, options.now ?? Date.now);
  const id = `${CHECKPOINT_DIR_PREFIX}${createdAtMs}`;
  const finalDir = join(checkpointsDir, id);
  const workDir = finalDir + IN_PROGRESS_SUFFIX;

  let method: CheckpointMethod | undefined;
  let termIndex: TermIndex = ZERO_TERM_INDEX;
  let lastReason = '';
  try {
    if (wanted !== 'copy') {
      for (let attempt = 1; attempt <= fileAttempts && method === undefined; attempt++) {
        await rm(workDir, { recursive: true, force: true });
        await mkdir(workDir);
        const made = await checkpointFromFiles(db.location, workDir, options.captureHooks).catch((err: unknown) => ({ abandoned: (err as Error).message }));
        if ('termIndex' in made) {
          method = 'files';
          termIndex = made.termIndex;
        } else {
          lastReason = made.abandoned;
          options.onRetry?.(`capture ${attempt} of ${fileAttempts} of the files of ${db.location} abandoned: ${made.abandoned}`);
        }
      }
      if (method === undefined && wanted === 'files') throw new Error(`the files of ${db.location} could not be captured in ${fileAttempts} attempts (the last: ${lastReason})`);
      if (method === undefined) options.onRetry?.('falling back to copying every entry of a snapshot');
    }
    if (method === undefined) {
      await rm(workDir, { recursive: true, force: true });
      termIndex = await copyFromSnapshot(db, workDir, batchBytes);
      method = 'copy';
    }
  } catch (err) {
    await rm(workDir, { recursive: true, force: true });
    throw new Error(`checkpoint of scm.db into ${finalDir} failed: ${(err as Error).message}`, { cause: err });
  }
  await fsyncDirTree(workDir);
  // Only a complete, closed copy gets the final name, so a crash never leaves a half checkpoint
  // that looks servable.
  await rename(workDir, finalDir);
  const totalFileBytes = await directoryBytes(finalDir);
  return Object.freeze({ id, dir: finalDir, termIndex, createdAtMs, totalFileBytes, method });
}

/**
 * Captures the live DB's files into `workDir` and opens the result once, so LevelDB replays the
 * copied logs and leaves a clean DB, whose #TRANSACTIONINFO is read before it is closed: the
 * checkpoint is never opened again after it has been fsynced.
 */
async function checkpointFromFiles(liveDir: string, workDir: string, hooks: CaptureHooks | undefined): Promise<{ termIndex: TermIndex } | { abandoned: string }> {
  const outcome = await captureLevelDbFiles(liveDir, workDir, hooks);
  if (!outcome.ok) return { abandoned: outcome.reason };
  // A write buffer above the live DB's (classic-level's default, 4 MiB) lets the replay of its logs
  // end in one table rather than several that might set off a compaction the close waits for.
  const copy = new Level<string, string>(workDir, { createIfMissing: false, errorIfExists: false, writeBufferSize: 16 * 1024 * 1024, cacheSize: 1024 * 1024 });
  try {
    await copy.open();
  } catch (err) {
    // E.g. "missing files": the DB changed in a way the MANIFEST check could not see. Retry.
    return { abandoned: `the captured files do not open as a LevelDB: ${(err as Error).message}` };
  }
  try {
    return { termIndex: await readTransactionInfo(copy) };
  } finally {
    await copy.close();
  }
}

/**
 * Copies every entry of an explicit snapshot of `db` into a new LevelDB at `workDir`; returns the
 * copy's #TRANSACTIONINFO, read before it is closed.
 */
async function copyFromSnapshot(db: RootDb, workDir: string, batchBytes: number): Promise<TermIndex> {
  // Taken synchronously, before any await: this is the checkpoint's moment in time.
  const snapshot = db.supports.explicitSnapshots ? db.snapshot() : undefined;
  const iterator = db.iterator({
    keyEncoding: 'buffer',
    valueEncoding: 'buffer',
    // classic-level stops each nextv() at 16 KiB by default: about 75 records, so 13,000 round
    // trips to the thread pool per million. 1 MiB per read keeps memory bounded and fills nextv.
    highWaterMarkBytes: 1024 * 1024,
    fillCache: false,
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
  try {
    await target.open();
    let batch = target.batch();
    let pendingBytes = 0;
    // Strictly one read, then one write: reading ahead while a batch is written saves ~15% of the
    // time but doubles the leader's memory growth (measured on 1M records).
    for (;;) {
      const entries = (await iterator.nextv(1000)) as Array<[Buffer, Buffer]>;
      if (entries.length === 0) break;
      for (const [key, value] of entries) {
        batch.put(key, value);
        pendingBytes += key.length + value.length;
      }
      if (pendingBytes >= batchBytes) {
        await batch.write();
        batch = target.batch();
        pendingBytes = 0;
        await yieldToEventLoop();
      }
    }
    await batch.write();
    const termIndex = await readTransactionInfo(target);
    await target.close();
    return termIndex;
  } catch (err) {
    // Closing the DB also closes a batch still open on it.
    await closeQuietly(target);
    throw err;
  } finally {
    await iterator.close();
    if (snapshot !== undefined) await snapshot.close();
  }
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
