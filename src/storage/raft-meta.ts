// raft-meta (term and votedFor as Java properties, like Ratis' MetaFile) and raft-meta.conf (the
// raw LogEntryProto of the latest configuration entry, no length prefix or checksum).
//
// raft-meta holds the promises this server made: the highest term it has seen and whom it voted
// for in it. Read as "term 0, no vote" when it is missing or damaged, the server could vote a
// second time in a term it already voted in, so it is parsed strictly: exactly the Java properties
// text we (or Ratis) write, with term= and votedFor= once each, or a RaftMetaError naming the file.
// It may be absent only on a server that never stored anything: before the first log segment is
// created raft-meta is written (with the term and vote of the moment, term 0 on a fresh server),
// so a log with entries and no raft-meta is never the result of a crash; the storage refuses it.
// What it cannot see (an empty log beside an scm.db that has applied entries, as after a snapshot
// install) is for the node to check: RaftStorage.hasMetaFile().

import { existsSync, readFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../durable-fs.js';
import { decodeLogEntry, encodeLogEntry } from './log-entry-codec.js';
import type { LogEntry } from '../log-entry.js';
import { assertIndexLike } from './assert-index.js';
import { formatProperties, parseProperties } from '../java-properties.js';

export const META_FILE_NAME = 'raft-meta';
export const CONF_FILE_NAME = 'raft-meta.conf';

/** The operator's way out of a RaftMetaError; README, "Repairing raft-meta", says more. */
export const RAFT_META_REPAIR_HINT =
  'With the node stopped, `scm repair raft-meta --config FILE --node-id ID` writes a new raft-meta with a term above every term ' +
  'this node and its running peers know and no vote (README: Operations, "Repairing raft-meta")';

export interface RaftMeta {
  readonly term: number;
  /** '' when this server has not voted in `term`. */
  readonly votedFor: string;
}

/** raft-meta is missing where it must exist, or is not what we write. */
export class RaftMetaError extends Error {
  constructor(
    /** The raft-meta path. */
    readonly file: string,
    readonly problem: 'missing' | 'malformed',
    /** What is wrong, without the file name and the repair hint. */
    readonly detail: string,
  ) {
    super(`${file}: ${detail}. ${RAFT_META_REPAIR_HINT}`);
    this.name = 'RaftMetaError';
  }
}

export interface RaftMetaStoreOptions {
  /**
   * For `scm repair raft-meta`: a damaged raft-meta does not stop the open; metaProblem() says what
   * is wrong and readMeta() throws it until saveMeta() writes a new file.
   */
  readonly openWithBadRaftMeta?: boolean;
}

export class RaftMetaStore {
  private meta: RaftMeta;
  private conf: LogEntry | undefined;
  /** raft-meta exists on disk (found on open, or written since). */
  private metaOnDisk: boolean;
  private problem: RaftMetaError | undefined;
  /** Writes of one file go one after another: they share its temporary file. */
  private metaWrites: Promise<void> = Promise.resolve();
  private confWrites: Promise<void> = Promise.resolve();

  /** Reads both files from `currentDir` (removing leftover temp files from an interrupted save). */
  constructor(
    private readonly currentDir: string,
    onWarning: (message: string) => void,
    private readonly options: RaftMetaStoreOptions = {},
  ) {
    for (const name of [META_FILE_NAME, CONF_FILE_NAME]) {
      const tmp = join(currentDir, `${name}.tmp`);
      if (existsSync(tmp)) {
        unlinkSync(tmp);
        onWarning(`removed leftover ${tmp} from an interrupted save`);
      }
    }
    const metaPath = join(currentDir, META_FILE_NAME);
    this.metaOnDisk = existsSync(metaPath);
    this.meta = { term: 0, votedFor: '' };
    if (this.metaOnDisk) {
      try {
        this.meta = parseRaftMeta(readFileSync(metaPath), metaPath);
      } catch (err) {
        if (!(err instanceof RaftMetaError) || options.openWithBadRaftMeta !== true) throw err;
        this.problem = err;
      }
    }
    this.conf = readConfFile(join(currentDir, CONF_FILE_NAME));
  }

  /**
   * Called once the log is recovered: a missing raft-meta beside a log that holds entries means the
   * term and vote this server promised are lost (see the top of this file).
   */
  checkAgainstLog(firstIndex: number, lastIndex: number): void {
    if (this.metaOnDisk || lastIndex < firstIndex) return;
    const error = new RaftMetaError(
      join(this.currentDir, META_FILE_NAME),
      'missing',
      `missing, but the Raft log in ${this.currentDir} holds entries ${firstIndex}..${lastIndex}: the term and vote this node ` +
        'promised are lost, and starting from term 0 could make it vote twice in one term',
    );
    if (this.options.openWithBadRaftMeta !== true) throw error;
    this.problem = error;
  }

  /** Whether raft-meta exists on disk: false on a server that has stored nothing yet (or lost it). */
  hasMetaFile(): boolean {
    return this.metaOnDisk;
  }

  /** What is wrong with raft-meta, when opened with openWithBadRaftMeta; undefined once saved. */
  metaProblem(): RaftMetaError | undefined {
    return this.problem;
  }

  readMeta(): RaftMeta {
    if (this.problem !== undefined) throw this.problem;
    return this.meta;
  }

  /**
   * Resolves once raft-meta is on disk, writing the current term and vote if it is not. The log
   * awaits this before creating a segment, so a log never exists without raft-meta.
   */
  ensureMetaFile(): Promise<void> {
    if (this.problem !== undefined) return Promise.reject(this.problem);
    if (this.metaOnDisk) return Promise.resolve();
    const write = this.metaWrites.then(() => (this.metaOnDisk ? undefined : this.writeMeta(this.meta.term, this.meta.votedFor)));
    this.metaWrites = write.catch(() => undefined);
    return write;
  }

  saveMeta(term: number, votedFor: string): Promise<void> {
    const write = this.metaWrites.then(() => this.writeMeta(term, votedFor));
    this.metaWrites = write.catch(() => undefined);
    return write;
  }

  private async writeMeta(term: number, votedFor: string): Promise<void> {
    assertIndexLike(term, 'raft-meta term');
    if (typeof votedFor !== 'string') throw new TypeError(`raft-meta votedFor must be a string, got ${typeof votedFor}`);
    // What is written must read back: parseRaftMeta refuses control characters.
    if (CONTROL.test(votedFor)) throw new TypeError(`raft-meta votedFor ${JSON.stringify(votedFor)} holds a control character`);
    const text = formatProperties(
      new Map([
        ['term', String(term)],
        ['votedFor', votedFor],
      ]),
      new Date().toString(),
    );
    await writeFileAtomic(join(this.currentDir, META_FILE_NAME), Buffer.from(text, 'utf8'));
    this.meta = { term, votedFor };
    this.metaOnDisk = true;
    this.problem = undefined;
  }

  readConf(): LogEntry | undefined {
    return this.conf;
  }

  saveConf(entry: LogEntry): Promise<void> {
    const write = this.confWrites.then(() => this.writeConf(entry));
    this.confWrites = write.catch(() => undefined);
    return write;
  }

  private async writeConf(entry: LogEntry): Promise<void> {
    if (entry.payload.kind !== 'config') {
      throw new TypeError(`raft-meta.conf holds a configuration entry, got a ${entry.payload.kind} entry at index ${entry.index}`);
    }
    await writeFileAtomic(join(this.currentDir, CONF_FILE_NAME), encodeLogEntry(entry));
    this.conf = entry;
  }
}

const KEY_LINE = /^(term|votedFor)=(.*)$/s;
// eslint-disable-next-line no-control-regex -- finding control characters is the point
const CONTROL = /[\u0000-\u001f\u007f]/;

/**
 * Parses raft-meta strictly: UTF-8 text of `\n`-terminated lines, each a `#`/`!` comment or exactly
 * `term=<decimal>` or `votedFor=<escaped id>`, both once (in either order: Properties.store, which
 * Ratis uses, writes them in hash order). Anything else is a RaftMetaError naming `path`.
 */
export function parseRaftMeta(bytes: Uint8Array, path: string): RaftMeta {
  const bad = (detail: string): RaftMetaError => new RaftMetaError(path, 'malformed', detail);
  if (bytes.length === 0) throw bad('the file is empty');
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw bad('not UTF-8 text (it is not the Java properties file with term= and votedFor= that a node writes)');
  }
  if (!text.endsWith('\n')) throw bad('the last line does not end with a newline (the file is cut short or not ours)');
  const lines = text.slice(0, -1).split('\n');
  const found = new Map<string, string>();
  lines.forEach((raw, i) => {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    const where = `line ${i + 1}`;
    const shown = JSON.stringify(line.length > 60 ? `${line.slice(0, 60)}…` : line);
    if (CONTROL.test(line)) throw bad(`${where}: ${shown} holds a control character`);
    if (line === '') throw bad(`${where}: a blank line, which a node never writes`);
    if (line.startsWith('#') || line.startsWith('!')) return;
    const m = KEY_LINE.exec(line);
    if (m === null) throw bad(`${where}: ${shown} is not term=… or votedFor=…`);
    const key = m[1]!;
    const rawValue = m[2]!;
    if ((/\\*$/.exec(rawValue)?.[0].length ?? 0) % 2 === 1) throw bad(`${where}: ${shown} ends in a lone backslash (a continuation a node never writes)`);
    if (found.has(key)) throw bad(`${where}: ${key}= appears twice`);
    found.set(key, rawValue);
  });
  const termText = found.get('term');
  if (termText === undefined) throw bad('no term= line');
  const votedText = found.get('votedFor');
  if (votedText === undefined) throw bad('no votedFor= line');
  const term = Number(termText);
  if (!/^(0|[1-9][0-9]*)$/.test(termText) || !Number.isSafeInteger(term)) {
    throw bad(`term ${JSON.stringify(termText)} is not a non-negative integer`);
  }
  let votedFor: string;
  try {
    votedFor = parseProperties(`votedFor=${votedText}\n`, path).get('votedFor') ?? '';
  } catch (err) {
    throw bad(`votedFor: ${(err as Error).message}`);
  }
  if (CONTROL.test(votedFor)) throw bad(`votedFor ${JSON.stringify(votedFor)} holds a control character`);
  return { term, votedFor };
}

function readConfFile(path: string): LogEntry | undefined {
  if (!existsSync(path)) return undefined;
  const bytes = readFileSync(path);
  let entry: LogEntry;
  try {
    entry = decodeLogEntry(bytes);
  } catch (err) {
    throw new Error(`${path}: cannot decode the configuration entry: ${(err as Error).message}`, { cause: err });
  }
  if (entry.payload.kind !== 'config') throw new Error(`${path}: holds a ${entry.payload.kind} entry, not a configuration`);
  return entry;
}
