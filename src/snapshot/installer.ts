// Installs a verified checkpoint as scm.db, crash-safely (Ozone's sequence, see DESIGN.md):
//
//   close scm.db → rename it to scm.db.backup.<index>_<millis> → write dbInconsistentMarker →
//   rename the checkpoint to scm.db → fsync → reopen (the caller reloads in-memory state) →
//   remove the marker → remove the backup.
//
// A checkpoint older than the live scm.db is refused (the DB is reopened untouched): an install
// never moves scm.db backwards, whatever the caller checked. A failure restores the backup and
// reopens the old DB. A crash at any point is resolved on
// start-up by `recoverInterruptedInstall`, which never ignores a leftover marker: if scm.db is the
// complete new checkpoint it finishes the install, otherwise it puts the backup back.
// `failpoint()` calls let tests SIGKILL the process at each step.
import { mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { compareTermIndex, formatTransactionInfo, readTransactionInfoAt, type TermIndex } from '../statemachine/transaction-info.js';
import { failpoint } from '../failpoints.js';
import { fsyncPath, writeFileAtomic } from '../durable-fs.js';

/** The checkpoint would move scm.db backwards; nothing was changed. */
export class OlderCheckpointError extends Error {
  override readonly name = 'OlderCheckpointError';
}

export const SCM_DB_NAME = 'scm.db';
export const DB_BACKUP_PREFIX = 'scm.db.backup.';
export const DB_INCONSISTENT_MARKER = 'dbInconsistentMarker';

/** Failpoint names, in the order the install reaches them. */
export const INSTALL_FAILPOINTS = [
  'install.afterClose',
  'install.afterBackup',
  'install.afterMarker',
  'install.afterMove',
  'install.afterReopen',
  'install.afterMarkerRemoved',
] as const;

export interface InstallRequest {
  /** Directory holding scm.db (`ozone.scm.db.dirs`). */
  readonly dbParentDir: string;
  /** A verified, extracted checkpoint (normally under `<dbParentDir>/snapshot/`); same filesystem. */
  readonly checkpointDir: string;
  /** The checkpoint's #TRANSACTIONINFO; checked against the directory before anything is touched. */
  readonly termIndex: TermIndex;
  /** Close the live scm.db (the caller's handle). */
  readonly closeDb: () => Promise<void>;
  /** Reopen scm.db and reload all in-memory state from it. */
  readonly openDb: () => Promise<void>;
  readonly now?: () => number;
}

interface MarkerContent {
  readonly installing: string;
  readonly termIndex: TermIndex;
  readonly backup: string | null;
  readonly startedAtMs: number;
}

export async function installCheckpoint(req: InstallRequest): Promise<void> {
  const now = req.now ?? Date.now;
  const dbDir = join(req.dbParentDir, SCM_DB_NAME);
  const markerPath = join(req.dbParentDir, DB_INCONSISTENT_MARKER);
  if (await exists(markerPath)) {
    throw new Error(`${markerPath} exists: an earlier install was interrupted; run recoverInterruptedInstall first`);
  }
  const actual = await readTransactionInfoAt(req.checkpointDir).catch((err: unknown) => {
    throw new Error(`checkpoint ${req.checkpointDir} is not a readable LevelDB: ${(err as Error).message}`, { cause: err });
  });
  if (compareTermIndex(actual, req.termIndex) !== 0) {
    throw new Error(`checkpoint ${req.checkpointDir} holds ${formatTransactionInfo(actual)}, not the expected ${formatTransactionInfo(req.termIndex)}`);
  }

  await req.closeDb();
  failpoint('install.afterClose');
  // The live scm.db can be read only once closed (LevelDB's LOCK); nothing is moved before this
  // check, and a refusal reopens it as it was.
  let live: TermIndex | undefined;
  try {
    live = (await exists(dbDir)) ? await readTransactionInfoAt(dbDir) : undefined;
  } catch (err) {
    await req.openDb();
    throw new Error(`cannot read #TRANSACTIONINFO of ${dbDir} to compare it with checkpoint ${formatTransactionInfo(actual)}; not installed: ${(err as Error).message}`, { cause: err });
  }
  if (live !== undefined && compareTermIndex(actual, live) < 0) {
    await req.openDb();
    throw new OlderCheckpointError(`checkpoint at ${formatTransactionInfo(actual)} is older than scm.db at ${formatTransactionInfo(live)}, which it would replace; not installed`);
  }
  let backupName: string | null = null;
  let swapped = false;
  try {
    if (live !== undefined) {
      backupName = `${DB_BACKUP_PREFIX}${live.index}_${now()}`;
      await rename(dbDir, join(req.dbParentDir, backupName));
      await fsyncPath(req.dbParentDir);
    }
    failpoint('install.afterBackup');
    const marker: MarkerContent = { installing: basename(req.checkpointDir), termIndex: req.termIndex, backup: backupName, startedAtMs: now() };
    await writeFileAtomic(markerPath, JSON.stringify(marker) + '\n');
    failpoint('install.afterMarker');
    await rename(req.checkpointDir, dbDir);
    swapped = true;
    await fsyncPath(req.dbParentDir);
    await fsyncPath(dirname(req.checkpointDir));
    failpoint('install.afterMove');
    await req.openDb();
  } catch (err) {
    await rollBack(req, dbDir, markerPath, backupName, swapped);
    throw new Error(`installing checkpoint ${formatTransactionInfo(req.termIndex)} failed and scm.db was restored: ${(err as Error).message}`, { cause: err });
  }
  failpoint('install.afterReopen');
  await rm(markerPath, { force: true });
  await fsyncPath(req.dbParentDir);
  failpoint('install.afterMarkerRemoved');
  if (backupName !== null) await rm(join(req.dbParentDir, backupName), { recursive: true, force: true });
}

async function rollBack(req: InstallRequest, dbDir: string, markerPath: string, backupName: string | null, swapped: boolean): Promise<void> {
  // The new DB may be half-open; its files are expendable (the checkpoint can be downloaded again).
  if (swapped || backupName !== null) await rm(dbDir, { recursive: true, force: true });
  if (backupName !== null) await rename(join(req.dbParentDir, backupName), dbDir);
  await rm(markerPath, { force: true });
  await fsyncPath(req.dbParentDir);
  await req.openDb();
}

export type RecoveryOutcome =
  | { readonly action: 'none' }
  | { readonly action: 'completed'; readonly termIndex: TermIndex }
  | { readonly action: 'restored'; readonly backup: string | null; readonly reason: string }
  | { readonly action: 'removedStaleBackups'; readonly backups: readonly string[] };

/**
 * Resolves a crash during install. Call at start-up before opening scm.db. Outcomes:
 * - marker present and scm.db is the complete new checkpoint (its #TRANSACTIONINFO at least the
 *   marker's): finish (drop backup and marker);
 * - marker present otherwise: restore the backup (or leave no scm.db if there was none before);
 * - no marker, no scm.db, a backup present (crash between backup and marker): restore it;
 * - no marker, scm.db present, backups left over (crash after marker removal): delete them.
 */
export async function recoverInterruptedInstall(dbParentDir: string): Promise<RecoveryOutcome> {
  await mkdir(dbParentDir, { recursive: true });
  const dbDir = join(dbParentDir, SCM_DB_NAME);
  const markerPath = join(dbParentDir, DB_INCONSISTENT_MARKER);
  const backups = await listBackups(dbParentDir);
  const newestBackup = backups.at(-1);

  if (await exists(markerPath)) {
    const marker = await readMarker(markerPath);
    const backup = marker?.backup ?? newestBackup ?? null;
    const installed = marker !== undefined && (await exists(dbDir)) ? await transactionInfoOrUndefined(dbDir) : undefined;
    if (marker !== undefined && installed !== undefined && compareTermIndex(installed, marker.termIndex) >= 0) {
      await removeAll(dbParentDir, backups);
      await rm(markerPath, { force: true });
      await fsyncPath(dbParentDir);
      return { action: 'completed', termIndex: installed };
    }
    const reason = marker === undefined ? 'the marker is unreadable' : installed === undefined ? 'scm.db is missing or unreadable' : `scm.db holds ${formatTransactionInfo(installed)}, older than the checkpoint being installed`;
    await rm(dbDir, { recursive: true, force: true });
    if (backup !== null && (await exists(join(dbParentDir, backup)))) await rename(join(dbParentDir, backup), dbDir);
    await removeAll(dbParentDir, backups.filter((b) => b !== backup));
    await rm(markerPath, { force: true });
    await fsyncPath(dbParentDir);
    return { action: 'restored', backup, reason };
  }

  if (!(await exists(dbDir)) && newestBackup !== undefined) {
    await rename(join(dbParentDir, newestBackup), dbDir);
    await removeAll(dbParentDir, backups.slice(0, -1));
    await fsyncPath(dbParentDir);
    return { action: 'restored', backup: newestBackup, reason: 'scm.db was moved to a backup but no install marker was written' };
  }
  if (backups.length > 0) {
    await removeAll(dbParentDir, backups);
    await fsyncPath(dbParentDir);
    return { action: 'removedStaleBackups', backups };
  }
  return { action: 'none' };
}

async function listBackups(dbParentDir: string): Promise<string[]> {
  const millis = (name: string) => Number(name.slice(name.lastIndexOf('_') + 1));
  return (await readdir(dbParentDir)).filter((n) => n.startsWith(DB_BACKUP_PREFIX)).sort((a, b) => millis(a) - millis(b));
}

async function readMarker(path: string): Promise<MarkerContent | undefined> {
  try {
    const parsed = JSON.parse(await readFile(path, 'utf8')) as Partial<MarkerContent>;
    const ti = parsed.termIndex;
    if (typeof parsed.installing !== 'string' || ti === undefined || !Number.isSafeInteger(ti.term) || !Number.isSafeInteger(ti.index)) return undefined;
    if (parsed.backup !== null && typeof parsed.backup !== 'string') return undefined;
    return parsed as MarkerContent;
  } catch {
    // A torn marker (crash while writing it cannot happen: it is renamed into place) or garbage.
    return undefined;
  }
}

async function transactionInfoOrUndefined(dbDir: string): Promise<TermIndex | undefined> {
  try {
    return await readTransactionInfoAt(dbDir);
  } catch {
    return undefined;
  }
}

async function removeAll(dir: string, names: readonly string[]): Promise<void> {
  for (const n of names) await rm(join(dir, n), { recursive: true, force: true });
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
