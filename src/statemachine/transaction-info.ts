// The `#TRANSACTIONINFO` record: the term and index of the last log entry applied to scm.db.
// It lives in the `scmTransactionInfos` table (a LevelDB sublevel, as Ozone's column family) and is
// written in the same atomic batch as the entries it describes, so scm.db always knows exactly
// where to resume. Checkpoints carry it too, which is how an installer knows what it is installing.
import type { AbstractLevel } from 'abstract-level';
import { Level } from 'level';
import type { TermIndex } from '../log-entry.js';

export type { TermIndex } from '../log-entry.js';

export const TRANSACTION_INFO_TABLE = 'scmTransactionInfos';
export const TRANSACTION_INFO_KEY = '#TRANSACTIONINFO';

export const ZERO_TERM_INDEX: TermIndex = Object.freeze({ term: 0, index: 0 });

/** Ozone's text form: `<term>#<index>`. */
export function formatTransactionInfo(ti: TermIndex): string {
  return `${ti.term}#${ti.index}`;
}

export function parseTransactionInfo(text: string): TermIndex {
  const match = /^(\d+)#(\d+)$/.exec(text);
  if (match === null) {
    throw new Error(`malformed ${TRANSACTION_INFO_KEY} value ${JSON.stringify(text)}: expected "<term>#<index>"`);
  }
  const term = Number(match[1]);
  const index = Number(match[2]);
  if (!Number.isSafeInteger(term) || !Number.isSafeInteger(index)) {
    throw new Error(`${TRANSACTION_INFO_KEY} value ${JSON.stringify(text)} is out of range`);
  }
  return { term, index };
}

/** Orders by index first (the log position), then term. */
export function compareTermIndex(a: TermIndex, b: TermIndex): number {
  return a.index !== b.index ? a.index - b.index : a.term - b.term;
}

/** The sublevel that holds `#TRANSACTIONINFO` in an open scm.db (whatever the root's encodings). */
export function transactionInfoTable<K, V>(db: AbstractLevel<string | Buffer | Uint8Array, K, V>) {
  return db.sublevel<string, string>(TRANSACTION_INFO_TABLE, { keyEncoding: 'utf8', valueEncoding: 'utf8' });
}

/** Reads `#TRANSACTIONINFO` from an open scm.db; a DB that never applied anything reads as 0#0. */
export async function readTransactionInfo<K, V>(db: AbstractLevel<string | Buffer | Uint8Array, K, V>): Promise<TermIndex> {
  const value = await transactionInfoTable(db).get(TRANSACTION_INFO_KEY);
  return value === undefined ? ZERO_TERM_INDEX : parseTransactionInfo(value);
}

/** Opens a closed scm.db (or checkpoint) directory read-only-in-spirit just to read its transaction info. */
export async function readTransactionInfoAt(dbDir: string): Promise<TermIndex> {
  const db = new Level<string, string>(dbDir, { createIfMissing: false });
  await db.open();
  try {
    return await readTransactionInfo(db);
  } finally {
    await db.close();
  }
}
