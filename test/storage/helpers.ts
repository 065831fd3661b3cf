import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LogEntry } from '../../src/log-entry.js';

/** A fresh temp directory, removed by the returned cleanup. */
export function tempDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `scm-storage-${prefix}-`));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Deterministic payload bytes for (index, term), so any reordering or corruption shows. */
export function payloadFor(index: number, term: number, size: number): Uint8Array {
  const data = new Uint8Array(size);
  let x = (index * 2654435761 + term * 40503) >>> 0;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    data[i] = x >>> 24;
  }
  return data;
}

export function dataEntry(index: number, term: number, size = 32): LogEntry {
  return { index, term, payload: { kind: 'data', data: payloadFor(index, term, size) } };
}

export function range(from: number, to: number, term: number, size = 32): LogEntry[] {
  const out: LogEntry[] = [];
  for (let i = from; i <= to; i++) out.push(dataEntry(i, term, size));
  return out;
}
