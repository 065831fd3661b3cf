// The recent-entry cache holds encoded frames within its bound and decodes on read: reads equal
// what was added, a read is the caller's own copy, truncation, purge and eviction keep the window
// contiguous, and the buffer behind it follows the bound.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EntryCache } from '../../src/storage/entry-cache.js';
import { encodeFrame } from '../../src/storage/segment-format.js';
import type { LogEntry } from '../../src/log-entry.js';

function entry(index: number, term = 1): LogEntry {
  if (index % 50 === 0) return { term, index, payload: { kind: 'config', peers: [{ id: `n${index}`, address: `h:${index}`, priority: 1 }], listeners: [] } };
  if (index % 70 === 0) return { term, index, payload: { kind: 'metadata', commitIndex: index - 1 } };
  return { term, index, payload: { kind: 'data', data: new Uint8Array(Buffer.alloc(20 + (index % 90), index & 0xff)) } };
}

function same(actual: LogEntry | undefined, expected: LogEntry): void {
  assert.ok(actual !== undefined, `entry ${expected.index} is cached`);
  const plain = (e: LogEntry): unknown => (e.payload.kind === 'data' ? { ...e, payload: { kind: 'data', data: [...e.payload.data] } } : e);
  assert.deepEqual(plain(actual), plain(expected));
}

test('entry cache: reads decode what was added; each read is its own copy', () => {
  const cache = new EntryCache(1 << 20, 1);
  const added = Array.from({ length: 300 }, (_, k) => entry(k + 1, 1 + Math.floor(k / 100)));
  for (const e of added) cache.add(e.index, encodeFrame(e));
  assert.equal(cache.count, 300);
  assert.equal(cache.byteSize, added.reduce((n, e) => n + encodeFrame(e).length, 0));
  for (const e of added) same(cache.get(e.index), e);
  assert.equal(cache.get(0), undefined);
  assert.equal(cache.get(301), undefined);
  const read = cache.get(7)!;
  assert.equal(read.payload.kind, 'data');
  if (read.payload.kind === 'data') read.payload.data.fill(0xee);
  same(cache.get(7), added[6]!);
  assert.throws(() => cache.add(302, encodeFrame(entry(302))), /expects index 301, got 302/);
});

test('entry cache: eviction stops at the durable index, truncation and purge keep the window contiguous', () => {
  const cache = new EntryCache(2_000, 10);
  const frames = new Map<number, LogEntry>();
  const add = (i: number, term = 1): void => {
    const e = entry(i, term);
    frames.set(i, e);
    cache.add(i, encodeFrame(e));
  };
  for (let i = 10; i < 110; i++) add(i);
  cache.evict(40); // over the bound, but nothing above 40 is durable
  assert.equal(cache.startIndex, 41);
  assert.ok(cache.byteSize > 2_000);
  cache.evict(200);
  assert.ok(cache.byteSize <= 2_000, `${cache.byteSize} bytes after eviction`);
  const first = cache.startIndex;
  for (let i = first; i < 110; i++) same(cache.get(i), frames.get(i)!);

  cache.truncateFrom(105);
  assert.equal(cache.nextIndex, 105);
  assert.equal(cache.get(105), undefined);
  add(105, 2); // a new term's entry in its place
  same(cache.get(105), frames.get(105)!);
  same(cache.get(104), frames.get(104)!);

  cache.dropBelow(first + 3);
  assert.equal(cache.startIndex, first + 3);
  same(cache.get(first + 3), frames.get(first + 3)!);
  cache.truncateFrom(cache.startIndex - 5); // below the window: empties it
  assert.equal(cache.count, 0);
  assert.equal(cache.nextIndex, first - 2);
  cache.dropBelow(500);
  assert.equal(cache.nextIndex, 500);
  add(500);
  same(cache.get(500), frames.get(500)!);
});

test('entry cache: the buffer behind it stays near the bound however many entries pass through', () => {
  const bound = 64 * 1024;
  const cache = new EntryCache(bound, 1);
  let maxCapacity = 0;
  for (let i = 1; i <= 20_000; i++) {
    cache.add(i, encodeFrame(entry(i)));
    if (i % 10 === 0) cache.evict(i); // durable in batches, as the writer reports it
    maxCapacity = Math.max(maxCapacity, cache.byteCapacity);
  }
  assert.ok(cache.byteSize <= bound + 200);
  assert.ok(maxCapacity <= 2 * bound, `buffer grew to ${maxCapacity} bytes for a bound of ${bound}`);
  for (let i = cache.startIndex; i <= 20_000; i++) same(cache.get(i), entry(i));
  // A bound of 0: once durable nothing stays, not even the buffer.
  const none = new EntryCache(0, 1);
  for (let i = 1; i <= 100; i++) none.add(i, encodeFrame(entry(i)));
  none.evict(100);
  assert.equal(none.count, 0);
  assert.equal(none.byteCapacity, 0);
});
