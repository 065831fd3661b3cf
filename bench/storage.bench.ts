// Benchmark of the durable log: appends/s and MB/s with fdatasync for 128-byte entries at batch
// sizes 1, 16 and 256 (each append awaited before the next), a pipelined run showing group
// commit, and a raw write+fdatasync loop on the same disk in the same run (the physical limit).
//
//   npm run bench:storage               (uses os.tmpdir(); STORAGE_BENCH_DIR=<dir> to choose the disk)
//   STORAGE_BENCH_SECONDS=3 npm run bench:storage

import { closeSync, fdatasyncSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { RaftStorage } from '../src/storage/raft-storage.js';
import { encodeFrame } from '../src/storage/segment-format.js';
import { crc32c } from '../src/crc32c.js';
import type { LogEntry } from '../src/log-entry.js';

const ENTRY_BYTES = 128;
const SECONDS = Number(process.env.STORAGE_BENCH_SECONDS ?? 2);
const baseDir = mkdtempSync(join(process.env.STORAGE_BENCH_DIR ?? tmpdir(), 'scm-storage-bench-'));
const payload = new Uint8Array(ENTRY_BYTES).fill(0xab);
const frameBytes = encodeFrame({ term: 1, index: 1_000_000, payload: { kind: 'data', data: payload } }).length;

interface Row {
  readonly name: string;
  readonly entriesPerSec: number;
  readonly mbPerSec: number;
  readonly syncsPerSec: number;
}

function entry(index: number): LogEntry {
  return { term: 1, index, payload: { kind: 'data', data: payload } };
}

function rawFdatasync(): Row {
  const path = join(baseDir, 'raw');
  const fd = openSync(path, 'w');
  const buf = Buffer.alloc(frameBytes, 0xab);
  let n = 0;
  let pos = 0;
  const start = performance.now();
  const deadline = start + SECONDS * 1000;
  while (performance.now() < deadline) {
    writeSync(fd, buf, 0, buf.length, pos);
    pos += buf.length;
    fdatasyncSync(fd);
    n++;
  }
  const secs = (performance.now() - start) / 1000;
  closeSync(fd);
  return { name: `raw write(${frameBytes} B)+fdatasync`, entriesPerSec: n / secs, mbPerSec: (n * frameBytes) / secs / 1e6, syncsPerSec: n / secs };
}

async function sequential(batch: number, preallocateBytes: number): Promise<Row> {
  const dir = join(baseDir, `seq-${batch}-${preallocateBytes}`);
  const s = RaftStorage.open(dir, { preallocateBytes });
  let next = 1;
  const start = performance.now();
  const deadline = start + SECONDS * 1000;
  while (performance.now() < deadline) {
    const entries: LogEntry[] = [];
    for (let i = 0; i < batch; i++) entries.push(entry(next++));
    await s.append(entries);
  }
  const secs = (performance.now() - start) / 1000;
  const n = next - 1;
  const syncs = s.syncCount();
  await s.close();
  const suffix = preallocateBytes > 0 ? `, prealloc ${preallocateBytes >> 20} MiB` : '';
  return { name: `log batch ${batch}${suffix}`, entriesPerSec: n / secs, mbPerSec: (n * frameBytes) / secs / 1e6, syncsPerSec: syncs / secs };
}

/** Many single-entry appends in flight at once: group commit folds them into few fdatasyncs. */
async function pipelined(inFlight: number): Promise<Row> {
  const dir = join(baseDir, `pipe-${inFlight}`);
  const s = RaftStorage.open(dir);
  let next = 1;
  let done = 0;
  const start = performance.now();
  const deadline = start + SECONDS * 1000;
  await new Promise<void>((resolve, reject) => {
    let outstanding = 0;
    const pump = (): void => {
      while (outstanding < inFlight && performance.now() < deadline) {
        outstanding++;
        s.append([entry(next++)]).then(() => {
          outstanding--;
          done++;
          if (outstanding === 0 && performance.now() >= deadline) resolve();
          else pump();
        }, reject);
      }
    };
    pump();
  });
  const secs = (performance.now() - start) / 1000;
  const syncs = s.syncCount();
  await s.close();
  return { name: `log batch 1 x ${inFlight} in flight`, entriesPerSec: done / secs, mbPerSec: (done * frameBytes) / secs / 1e6, syncsPerSec: syncs / secs };
}

function crcThroughput(): string {
  const buf = new Uint8Array(1 << 20).fill(7);
  let x = 0;
  const start = performance.now();
  let bytes = 0;
  while (performance.now() - start < 500) {
    x ^= crc32c(buf);
    bytes += buf.length;
  }
  const secs = (performance.now() - start) / 1000;
  return `CRC32C: ${(bytes / secs / 1e6).toFixed(0)} MB/s (checksum ${x})`;
}

function encodeThroughput(): string {
  const start = performance.now();
  let n = 0;
  while (performance.now() - start < 500) {
    encodeFrame(entry(n + 1));
    n++;
  }
  return `encode frame (${ENTRY_BYTES} B payload): ${Math.round(n / ((performance.now() - start) / 1000)).toLocaleString('en-US')} entries/s`;
}

async function main(): Promise<void> {
  console.log(`storage benchmark in ${baseDir}, ${SECONDS}s per row, entry payload ${ENTRY_BYTES} B (frame ${frameBytes} B), node ${process.version}`);
  const rows: Row[] = [rawFdatasync()];
  for (const batch of [1, 16, 256]) rows.push(await sequential(batch, 0));
  rows.push(await sequential(16, 4 << 20));
  rows.push(await pipelined(64));
  const pad = (s: string, n: number): string => s.padStart(n);
  console.log(`\n${'case'.padEnd(36)}${pad('entries/s', 12)}${pad('MB/s', 9)}${pad('fdatasync/s', 13)}`);
  for (const r of rows) {
    console.log(
      `${r.name.padEnd(36)}${pad(Math.round(r.entriesPerSec).toLocaleString('en-US'), 12)}${pad(r.mbPerSec.toFixed(2), 9)}${pad(Math.round(r.syncsPerSec).toLocaleString('en-US'), 13)}`,
    );
  }
  console.log(`\n${crcThroughput()}\n${encodeThroughput()}`);
}

try {
  await main();
} finally {
  rmSync(baseDir, { recursive: true, force: true });
}
