// Strict reading of the small JSON records the node keeps in scm.db's `meta` table (the applied
// Raft configuration, this node's removal record): a record we wrote earlier is believed only in
// the exact shape we write, and anything else is an error naming the record and what was wrong.

/** The record's JSON object; `where` names the record in the error (e.g. `meta/raftConfiguration`). */
export function parseMetaRecord(text: string, where: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Error(`${where} is not JSON: ${(err as Error).message}`, { cause: err });
  }
  if (typeof value !== 'object' || value === null) throw new Error(`${where} is not an object`);
  return value as Record<string, unknown>;
}

/** A term or index field of a record: a non-negative safe integer. */
export function positionField(record: Record<string, unknown>, name: 'term' | 'index', where: string): number {
  const n = record[name];
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw new Error(`${where}: ${name} must be a non-negative integer, got ${JSON.stringify(n)}`);
  return n;
}
