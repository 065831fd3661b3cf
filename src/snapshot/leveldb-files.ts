// Captures a live LevelDB directory as a consistent set of files, without stopping it: the way
// RocksDB's Checkpoint (which Ozone's own SCM uses) works, rebuilt on LevelDB's file contract.
//
// What this relies on, all part of LevelDB's on-disk format since 1.x (classic-level bundles 1.20):
// - Table files (`<n>.ldb`, legacy `<n>.sst`) are written once, fsynced and never modified. A table
//   is deleted only after a version edit that drops it has been appended to the MANIFEST.
// - CURRENT names the MANIFEST. A running DB appends edits to that one MANIFEST; it only starts a
//   new one when it is opened.
// - The write-ahead log (`<n>.log`) is append-only, and a log is deleted only after an edit raised
//   the log number past it. Each write is one log record holding one or more whole batches, and a
//   log that ends inside a record recovers to the state after the last whole record (a truncated
//   tail reads as the end). A new log is started only once the previous one is frozen.
// - Opening a DB replays the MANIFEST, fails with "missing files" if a live table is absent,
//   replays the logs from the log number on into new tables, writes a fresh MANIFEST and deletes
//   every file nobody references. Every file it creates is opened with truncation and numbered from
//   the MANIFEST's next file number on: tables from the replay may take the number of a replayed log
//   (a different name, `<n>.ldb` beside `<n>.log`), its new log is above every replayed log, and
//   none can be the number of a table the MANIFEST lists. It never appends to an old log or
//   MANIFEST (classic-level leaves `reuse_logs` off).
//
// So: copy the MANIFEST, list the directory and hard-link every log at once, then check that the
// MANIFEST has not moved meanwhile: then every log the copy still needs was in the listing and is
// linked. Then hard-link exactly the tables the copy's version holds (leveldb-manifest.ts). Never
// link anything else: an in-progress table of the live DB, linked under a number the copy's LevelDB
// later hands out, would be truncated and overwritten through the link, corrupting the live DB.
// A linked live log keeps growing until the copy is opened; whatever prefix recovery then reads is
// still the DB at one moment. Its records are checked first, because recovery (without paranoid
// checks) would skip a damaged one and go on. A needed table that vanishes before it is linked was
// compacted away after our copy of the MANIFEST: the capture is abandoned and the caller tries again.
import { closeSync, fstatSync, linkSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { copyFile, link, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { countLogRecords, LevelDbFormatError, readManifest } from './leveldb-manifest.js';

const TABLE_FILE = /^\d+\.(ldb|sst)$/;
const LOG_FILE = /^\d+\.log$/;
const CURRENT_CONTENT = /^(MANIFEST-\d+)\n$/;
const LINKS_IN_PARALLEL = 16;

export interface CapturedFiles {
  readonly manifest: string;
  readonly tables: number;
  /** Tables that had to be copied because the file system refused a hard link. */
  readonly tablesCopied: number;
  readonly logs: number;
}

export type CaptureOutcome = { readonly ok: true; readonly files: CapturedFiles } | { readonly ok: false; readonly reason: string };

export interface CaptureHooks {
  /** Called between listing the directory and checking the MANIFEST (tests flush the DB here). */
  readonly beforeListingChecked?: () => Promise<void>;
  /** Called after the MANIFEST check, before the tables are linked (tests compact the DB here). */
  readonly beforeLinkingTables?: () => Promise<void>;
}

/**
 * Fills the empty directory `targetDir` with the files of the LevelDB at `liveDir` as of one moment.
 * The result is a DB that LevelDB can open (it still has to replay its logs). `ok: false` means this
 * capture cannot be used (the DB changed shape meanwhile, or a log is damaged); the target then holds
 * junk and must be emptied before a retry.
 */
export async function captureLevelDbFiles(liveDir: string, targetDir: string, hooks: CaptureHooks = {}): Promise<CaptureOutcome> {
  // The window in which the MANIFEST must hold still is these synchronous calls: a read of a small
  // file, a directory listing and a link per log, well under a millisecond of the event loop.
  const current = readFileSync(join(liveDir, 'CURRENT'), 'utf8');
  const match = CURRENT_CONTENT.exec(current);
  if (match === null) throw new Error(`${join(liveDir, 'CURRENT')} does not name a MANIFEST (it holds ${JSON.stringify(current.slice(0, 64))}); is this a LevelDB directory?`);
  const manifest = match[1] as string;
  const manifestBytes = readPrefix(join(liveDir, manifest));
  const names = readdirSync(liveDir);
  const logsToCopy: string[] = [];
  let logs = 0;
  for (const name of names.filter((n) => LOG_FILE.test(n))) {
    const outcome = linkSyncOrDefer(join(liveDir, name), join(targetDir, name));
    if (outcome === 'copy') logsToCopy.push(name);
    if (outcome !== 'vanished') logs++;
  }
  await hooks.beforeListingChecked?.();
  const moved = manifestMoved(liveDir, current, manifest, manifestBytes.length);
  if (moved !== undefined) return { ok: false, reason: `${moved} between copying it and listing the directory` };

  const state = await readManifest(manifestBytes, join(liveDir, manifest));
  await writeFile(join(targetDir, manifest), manifestBytes, { flag: 'wx' });
  await hooks.beforeLinkingTables?.();
  // Only where the file system refuses links (the target on another device): copies, which race
  // the flushes that delete logs. Oldest first, so only the newest can end mid-batch.
  for (const name of logsToCopy.sort((x, y) => Number.parseInt(x, 10) - Number.parseInt(y, 10))) {
    const number = Number.parseInt(name, 10);
    const needed = number >= state.logNumber || number === state.prevLogNumber;
    try {
      await copyFile(join(liveDir, name), join(targetDir, name));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      if (needed) return { ok: false, reason: `log ${name} was flushed and deleted before it could be copied` };
      logs--;
    }
  }

  const tableNames = new Map<number, string>();
  for (const name of names.filter((n) => TABLE_FILE.test(n))) tableNames.set(Number.parseInt(name, 10), name);
  const live = [...state.liveTables].sort((x, y) => x - y);
  let tablesCopied = 0;
  for (let i = 0; i < live.length; i += LINKS_IN_PARALLEL) {
    const batch = live.slice(i, i + LINKS_IN_PARALLEL);
    const outcomes = await Promise.all(
      batch.map(async (number) => {
        const name = tableNames.get(number);
        return name === undefined ? 'vanished' : linkOrCopy(join(liveDir, name), join(targetDir, name));
      }),
    );
    const gone = batch.filter((_, k) => outcomes[k] === 'vanished');
    if (gone.length > 0) return { ok: false, reason: `table${gone.length > 1 ? 's' : ''} ${gone.join(', ')} of ${manifest} compacted away before being linked` };
    tablesCopied += outcomes.filter((o) => o === 'copied').length;
  }
  for (const name of (await readdir(targetDir)).filter((n) => LOG_FILE.test(n))) {
    const number = Number.parseInt(name, 10);
    if (number < state.logNumber && number !== state.prevLogNumber) continue; // not replayed
    try {
      await countLogRecords(await readFile(join(targetDir, name)), join(liveDir, name));
    } catch (err) {
      if (err instanceof LevelDbFormatError) return { ok: false, reason: err.message };
      throw err;
    }
  }
  await writeFile(join(targetDir, 'CURRENT'), current);
  return { ok: true, files: { manifest, tables: live.length, tablesCopied, logs } };
}

/** Why the MANIFEST is no longer the one copied at `size` bytes, or undefined if it still is. */
function manifestMoved(liveDir: string, current: string, manifest: string, size: number): string | undefined {
  const currentNow = readFileSync(join(liveDir, 'CURRENT'), 'utf8');
  if (currentNow !== current) return `CURRENT changed from ${manifest} to ${currentNow.trim()}`;
  const sizeNow = statSync(join(liveDir, manifest)).size;
  if (sizeNow !== size) return `${manifest} grew from ${size} to ${sizeNow} bytes (a flush or compaction finished)`;
  return undefined;
}

/** The bytes a (possibly growing) file holds now. */
function readPrefix(path: string): Buffer {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const bytes = Buffer.alloc(size);
    let done = 0;
    while (done < size) {
      const n = readSync(fd, bytes, done, size - done, done);
      if (n === 0) throw new Error(`${path} shrank below ${size} bytes while being read`);
      done += n;
    }
    return bytes;
  } finally {
    closeSync(fd);
  }
}

const LINK_REFUSED = new Set(['EXDEV', 'EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'EMLINK']);

/** Hard-links `from` now; 'copy' where the file system refuses links. */
function linkSyncOrDefer(from: string, to: string): 'linked' | 'copy' | 'vanished' {
  try {
    linkSync(from, to);
    return 'linked';
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    if (code === 'ENOENT') return 'vanished';
    if (LINK_REFUSED.has(code)) return 'copy';
    throw err;
  }
}

/** Hard-links an immutable table file, copying it where the file system cannot link. */
async function linkOrCopy(from: string, to: string): Promise<'linked' | 'copied' | 'vanished'> {
  try {
    await link(from, to);
    return 'linked';
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    if (code === 'ENOENT') return 'vanished';
    if (!LINK_REFUSED.has(code)) throw err;
  }
  try {
    await copyFile(from, to);
    return 'copied';
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'vanished';
    throw err;
  }
}
