// The log's per-entry index (offsets in a Uint32Array, terms as runs) and a scan's index runs:
// every lookup against a plain per-frame model, across truncation, trimming and offsets past 4 GiB;
// which frames hold a configuration entry.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FrameIndex } from '../../src/storage/frame-index.js';
import { decodeFrame, encodeFrame, IndexRuns, scanFrames, scanSegment, SEGMENT_HEADER } from '../../src/storage/segment-format.js';
import { encodeLogEntry } from '../../src/storage/log-entry-codec.js';
import { crc32c } from '../../src/crc32c.js';
import type { LogEntry } from '../../src/log-entry.js';

interface Model {
  offset: number;
  size: number;
  term: number;
}

function check(index: FrameIndex, model: readonly Model[], end: number): void {
  assert.equal(index.length, model.length);
  assert.equal(index.end, end);
  model.forEach((m, i) => {
    assert.equal(index.offsetAt(i), m.offset, `offset of ${i}`);
    assert.equal(index.sizeAt(i), m.size, `size of ${i}`);
    assert.equal(index.termAt(i), m.term, `term of ${i}`);
  });
  assert.throws(() => index.offsetAt(model.length), RangeError);
  assert.throws(() => index.termAt(-1), RangeError);
}

test('frame index: offsets, sizes and terms as pushed, through growth, truncation and trim', () => {
  const index = new FrameIndex(8, 2);
  const model: Model[] = [];
  let end = 8;
  // Terms change now and then, and come back to an earlier value after a truncation.
  const terms = [1, 1, 1, 2, 2, 3, 3, 3, 3, 5, 5, 5, 5, 5, 8];
  for (let i = 0; i < 1000; i++) {
    const size = 7 + ((i * 31) % 50);
    const term = terms[Math.min(terms.length - 1, Math.floor(i / 70))]!;
    index.push(size, term);
    model.push({ offset: end, size, term });
    end += size;
  }
  check(index, model, end);
  assert.ok(index.byteCapacity >= 1000 * 4 && index.byteCapacity <= 2048 * 4, 'four bytes an entry, doubling');

  index.truncate(400); // inside a term run
  model.length = 400;
  end = model[399]!.offset + model[399]!.size;
  check(index, model, end);
  index.truncate(140); // exactly at a run boundary: the run that started there goes
  model.length = 140;
  end = model[139]!.offset + model[139]!.size;
  check(index, model, end);
  index.push(20, 2); // a new term after the cut continues the last run's term
  model.push({ offset: end, size: 20, term: 2 });
  end += 20;
  index.push(9, 9);
  model.push({ offset: end, size: 9, term: 9 });
  end += 9;
  check(index, model, end);

  index.trim();
  assert.equal(index.byteCapacity, model.length * 4);
  check(index, model, end);
  index.push(11, 9); // grows again after a trim
  model.push({ offset: end, size: 11, term: 9 });
  end += 11;
  check(index, model, end);

  index.truncate(0);
  check(index, [], 8);
  index.trim();
  assert.equal(index.byteCapacity, 4);
  assert.throws(() => index.truncate(1), RangeError);
});

test('frame index: an offset beyond 4 GiB switches to Float64 and keeps every earlier offset', () => {
  const big = 2 ** 32 - 10;
  const index = new FrameIndex(big - 100);
  index.push(100, 1); // offset below 2^32
  index.push(50, 1); // offset big: still fits
  index.push(30, 1); // offset 2^32 + 40: does not fit a Uint32
  index.push(2 ** 31, 2);
  check(
    index,
    [
      { offset: big - 100, size: 100, term: 1 },
      { offset: big, size: 50, term: 1 },
      { offset: big + 50, size: 30, term: 1 },
      { offset: big + 80, size: 2 ** 31, term: 2 },
    ],
    big + 80 + 2 ** 31,
  );
  assert.equal(index.byteCapacity % 8, 0);
});

test('index runs: positions map to indexes, and the first mismatch is found', () => {
  const runs = new IndexRuns();
  assert.equal(runs.firstMismatch(5), -1);
  for (const i of [5, 6, 7, 9, 10, 3]) runs.push(i);
  assert.deepEqual([0, 1, 2, 3, 4, 5].map((p) => runs.at(p)), [5, 6, 7, 9, 10, 3]);
  assert.equal(runs.firstMismatch(5), 3);
  assert.equal(runs.firstMismatch(4), 0);
  assert.throws(() => runs.at(6), RangeError);
  const good = new IndexRuns();
  for (let i = 1; i <= 100; i++) good.push(i);
  assert.equal(good.firstMismatch(1), -1);
  assert.equal(good.at(99), 100);
});

test('a segment scan indexes every frame as the per-frame scan sees it', () => {
  const entries = Array.from({ length: 50 }, (_, k) => ({ term: 1 + Math.floor(k / 20), index: 10 + k, payload: { kind: 'data' as const, data: Buffer.alloc(k % 7, k) } }));
  const bytes = Buffer.concat([SEGMENT_HEADER, ...entries.map(encodeFrame), Buffer.alloc(64)]);
  const compact = scanFrames(bytes, SEGMENT_HEADER.length);
  const frames = scanSegment(bytes).frames;
  assert.equal(compact.frames.length, 50);
  assert.equal(compact.frames.end, compact.validEnd);
  assert.equal(compact.indexes.firstMismatch(10), -1);
  frames.forEach((f, i) => {
    assert.deepEqual(
      { offset: compact.frames.offsetAt(i), size: compact.frames.sizeAt(i), term: compact.frames.termAt(i), index: compact.indexes.at(i) },
      { offset: f.offset, size: f.size, term: entries[i]!.term, index: entries[i]!.index },
    );
  });
});

test('frame index: configuration frames are remembered by position, and a truncation forgets those it cuts', () => {
  const index = new FrameIndex(8, 2);
  for (let i = 0; i < 100; i++) index.push(10, 1, i === 0 || i === 40 || i === 41 || i === 90);
  assert.deepEqual(index.configurationsIn(0, 100), [0, 40, 41, 90]);
  assert.deepEqual(index.configurationsIn(1, 41), [40]);
  assert.deepEqual(index.configurationsIn(91, 100), []);
  index.truncate(41); // 41 and 90 go, 40 stays
  assert.deepEqual(index.configurationsIn(0, 100), [0, 40]);
  index.push(10, 2, true);
  index.trim();
  assert.deepEqual(index.configurationsIn(0, 100), [0, 40, 41]);
  index.truncate(0);
  assert.deepEqual(index.configurationsIn(0, 100), []);
});

test('a segment scan marks the frames holding a configuration as decodeLogEntry reads them: the last payload field decides', () => {
  const config: LogEntry = { term: 2, index: 11, payload: { kind: 'config', peers: [{ id: 'scm1', address: 'a:1', priority: 0 }], listeners: [] } };
  const data: LogEntry = { term: 2, index: 11, payload: { kind: 'data', data: Buffer.from('x') } };
  const meta: LogEntry = { term: 2, index: 11, payload: { kind: 'metadata', commitIndex: 7 } };
  // A protobuf message concatenated with another is the two merged: fields seen later win.
  const frameOf = (...parts: LogEntry[]): Buffer => {
    const body = Buffer.concat(parts.map((e) => encodeLogEntry(e)));
    const prefix = Buffer.from([body.length]); // < 128 bytes: a one-byte varint
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32c(Buffer.concat([prefix, body])));
    return Buffer.concat([prefix, body, crc]);
  };
  const cases: Array<[LogEntry[], 'config' | 'data' | 'metadata']> = [
    [[config], 'config'],
    [[data], 'data'],
    [[meta], 'metadata'],
    [[config, data], 'data'],
    [[data, config], 'config'],
    [[config, meta], 'metadata'],
  ];
  const frames = cases.map(([parts], k) => frameOf(...parts.map((e) => ({ ...e, index: 10 + k }))));
  const scan = scanFrames(Buffer.concat([SEGMENT_HEADER, ...frames]), SEGMENT_HEADER.length);
  assert.equal(scan.frames.length, cases.length);
  const expected = cases.flatMap(([, kind], k) => (kind === 'config' ? [k] : []));
  assert.deepEqual(scan.frames.configurationsIn(0, cases.length), expected);
  cases.forEach(([, kind], k) => assert.equal(decodeFrame(frames[k]!, `case ${k}`).payload.kind, kind, `case ${k} decodes as ${kind}`));
});
