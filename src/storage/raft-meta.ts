// raft-meta (term and votedFor as Java properties, like Ratis' MetaFile) and raft-meta.conf (the
// raw LogEntryProto of the latest configuration entry, no length prefix or checksum).

import { existsSync, readFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../durable-fs.js';
import { decodeLogEntry, encodeLogEntry } from './log-entry-codec.js';
import type { LogEntry } from '../log-entry.js';
import { assertIndexLike } from './assert-index.js';
import { formatProperties, parseProperties } from '../java-properties.js';

export const META_FILE_NAME = 'raft-meta';
export const CONF_FILE_NAME = 'raft-meta.conf';

export interface RaftMeta {
  readonly term: number;
  /** '' when this server has not voted in `term`. */
  readonly votedFor: string;
}

export class RaftMetaStore {
  private meta: RaftMeta;
  private conf: LogEntry | undefined;
  /** Writes of one file go one after another: they share its temporary file. */
  private metaWrites: Promise<void> = Promise.resolve();
  private confWrites: Promise<void> = Promise.resolve();

  /** Reads both files from `currentDir` (removing leftover temp files from an interrupted save). */
  constructor(
    private readonly currentDir: string,
    onWarning: (message: string) => void,
  ) {
    for (const name of [META_FILE_NAME, CONF_FILE_NAME]) {
      const tmp = join(currentDir, `${name}.tmp`);
      if (existsSync(tmp)) {
        unlinkSync(tmp);
        onWarning(`removed leftover ${tmp} from an interrupted save`);
      }
    }
    this.meta = readMetaFile(join(currentDir, META_FILE_NAME));
    this.conf = readConfFile(join(currentDir, CONF_FILE_NAME));
  }

  readMeta(): RaftMeta {
    return this.meta;
  }

  saveMeta(term: number, votedFor: string): Promise<void> {
    const write = this.metaWrites.then(() => this.writeMeta(term, votedFor));
    this.metaWrites = write.catch(() => undefined);
    return write;
  }

  private async writeMeta(term: number, votedFor: string): Promise<void> {
    assertIndexLike(term, 'raft-meta term');
    if (typeof votedFor !== 'string') throw new TypeError(`raft-meta votedFor must be a string, got ${typeof votedFor}`);
    const text = formatProperties(
      new Map([
        ['term', String(term)],
        ['votedFor', votedFor],
      ]),
      new Date().toString(),
    );
    await writeFileAtomic(join(this.currentDir, META_FILE_NAME), Buffer.from(text, 'utf8'));
    this.meta = { term, votedFor };
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

function readMetaFile(path: string): RaftMeta {
  if (!existsSync(path)) return { term: 0, votedFor: '' };
  const props = parseProperties(readFileSync(path, 'utf8'), path);
  const termText = props.get('term');
  const term = termText === undefined ? 0 : Number(termText);
  if (termText !== undefined && (termText.trim() === '' || !Number.isSafeInteger(term) || term < 0)) {
    throw new Error(`${path}: term ${JSON.stringify(termText)} is not a non-negative integer`);
  }
  return { term, votedFor: props.get('votedFor') ?? '' };
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
