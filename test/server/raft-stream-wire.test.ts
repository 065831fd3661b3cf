// The bytes of a Raft stream on the Ratis port: the frame reader cuts any chunking of a stream into
// the same frames, and checks each length before it holds the body; the magic is checked byte by
// byte (an HTTP/2 preface named as such); HELLO, MESSAGES and REFUSAL bodies survive a round trip
// and every malformed body is refused with a RaftStreamProtocolError.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  decodeHello,
  decodeMessages,
  decodeRefusal,
  emptyFrame,
  encodeMessages,
  encodeOpening,
  encodeRefusal,
  FrameBudget,
  FrameBudgetExceeded,
  WHOLE_FRAME_BUFFER_BYTES,
  FrameReader,
  FrameType,
  MAX_CONTROL_FRAME_BYTES,
  MAX_HELLO_ID_BYTES,
  RAFT_STREAM_MAGIC,
  RaftStreamProtocolError,
  RefusalCode,
  type Frame,
} from '../../src/server/raft-stream-wire.js';

const HTTP2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** A frame's 5-byte header: `length` (counting the type byte) and `type` (any byte). */
function header(length: number, type: number): Buffer {
  const b = Buffer.alloc(5);
  b.writeUInt32BE(length, 0);
  b[4] = type;
  return b;
}

function frame(type: number, body: Buffer): Buffer {
  return Buffer.concat([header(1 + body.length, type), body]);
}

/** A frame as comparable data. */
const plain = (f: Frame): { type: number; body: string } => ({ type: f.type, body: Buffer.from(f.body).toString('hex') });

/** Checks that `fn` throws a RaftStreamProtocolError of `code` whose message matches `message`. */
function assertProtocolError(fn: () => unknown, code: number, message?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof RaftStreamProtocolError, `expected a RaftStreamProtocolError, got ${String(err)}`);
    assert.equal(err.code, code, `code of "${err.message}"`);
    if (message !== undefined) assert.match(err.message, message);
    return true;
  });
}

const bytes = (n: number, seed: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff));

// ----- FrameReader: chunking -----

/** A client's stream: the opening, then frames of every client type, bodies of several sizes (one of 0 after the type). */
function clientStream(): { stream: Buffer; frames: Array<{ type: number; body: string }> } {
  const opening = encodeOpening('cluster-ü', 'scm1');
  const helloBody = opening.subarray(RAFT_STREAM_MAGIC.length + 5);
  const parts: Array<[number, Buffer]> = [
    [FrameType.Hello, helloBody],
    [FrameType.Ping, Buffer.alloc(0)],
    [FrameType.Messages, encodeMessages([bytes(1, 1)]).subarray(5)],
    [FrameType.Messages, encodeMessages([bytes(3, 2), bytes(17, 3), bytes(2, 4)]).subarray(5)],
    [FrameType.Ping, Buffer.alloc(0)],
    [FrameType.Hello, encodeOpening('c', '').subarray(RAFT_STREAM_MAGIC.length + 5)],
    [FrameType.Messages, encodeMessages([bytes(40, 5)]).subarray(5)],
    [FrameType.Ping, Buffer.alloc(0)],
  ];
  const stream = Buffer.concat([opening, ...parts.slice(1).map(([type, body]) => frame(type, body))]);
  return { stream, frames: parts.map(([type, body]) => ({ type, body: body.toString('hex') })) };
}

/** A server's answers: PONGs and a REFUSAL (no magic). */
function serverStream(): { stream: Buffer; frames: Array<{ type: number; body: string }> } {
  const refusal = encodeRefusal({ code: RefusalCode.FAILED_PRECONDITION, details: 'cluster id mismatch ✓' });
  const stream = Buffer.concat([emptyFrame(FrameType.Pong), emptyFrame(FrameType.Pong), refusal]);
  return {
    stream,
    frames: [
      { type: FrameType.Pong, body: '' },
      { type: FrameType.Pong, body: '' },
      { type: FrameType.Refusal, body: refusal.subarray(5).toString('hex') },
    ],
  };
}

const streams = [
  { name: 'a client stream (magic expected)', expectMagic: true, ...clientStream() },
  { name: 'a server stream (no magic)', expectMagic: false, ...serverStream() },
];

for (const { name, expectMagic, stream, frames } of streams) {
  const read = (chunks: Buffer[]): Array<{ type: number; body: string }> => {
    const reader = new FrameReader(MAX_CONTROL_FRAME_BYTES, expectMagic);
    const out = chunks.flatMap((chunk) => reader.push(chunk).map(plain));
    assert.equal(reader.bufferedBytes, 0, 'nothing left over');
    return out;
  };

  test(`${name}: the frame reader yields the same frames from the stream in one chunk, cut in two at every point, in three at every pair of points, and byte by byte`, () => {
    assert.equal(frames.length >= 3, true);
    assert.deepEqual(read([stream]), frames);
    // From 1: an empty first chunk is the test with empty chunks below.
    for (let i = 1; i <= stream.length; i++) {
      assert.deepEqual(read([stream.subarray(0, i), stream.subarray(i)]), frames, `cut at ${i}`);
    }
    for (let i = 1; i < stream.length; i++) {
      for (let j = i + 1; j < stream.length; j++) {
        const got = read([stream.subarray(0, i), stream.subarray(i, j), stream.subarray(j)]);
        if (JSON.stringify(got) !== JSON.stringify(frames)) assert.deepEqual(got, frames, `cut at ${i} and ${j}`);
      }
    }
    assert.deepEqual(read([...stream].map((b) => Buffer.from([b]))), frames);
  });

  test(`${name}: the frame reader holds the bytes of an incomplete frame and returns it once whole`, () => {
    const reader = new FrameReader(MAX_CONTROL_FRAME_BYTES, expectMagic);
    const last = stream.length - 1;
    const before = reader.push(stream.subarray(0, last)).map(plain);
    assert.deepEqual(before, frames.slice(0, -1));
    assert.ok(reader.bufferedBytes > 0);
    assert.deepEqual(reader.push(stream.subarray(last)).map(plain), frames.slice(-1));
    assert.equal(reader.bufferedBytes, 0);
  });
}

test('the frame reader takes an empty chunk at any point, even before the first byte', () => {
  const { stream, frames } = clientStream();
  const reader = new FrameReader(MAX_CONTROL_FRAME_BYTES, true);
  const out: Array<{ type: number; body: string }> = [];
  for (const b of [Buffer.alloc(0), stream.subarray(0, 3), Buffer.alloc(0), stream.subarray(3), Buffer.alloc(0)]) out.push(...reader.push(b).map(plain));
  assert.deepEqual(out, frames);
});

// ----- FrameReader: refusals -----

const rejects: Array<{ name: string; bytes: Buffer; code: number; message: RegExp }> = [
  { name: 'a frame of length 0', bytes: header(0, FrameType.Ping), code: RefusalCode.INVALID_ARGUMENT, message: /length 0/ },
  { name: 'a frame of length 0 and an unknown type', bytes: header(0, 0), code: RefusalCode.INVALID_ARGUMENT, message: /length 0/ },
  { name: 'the unknown type 0', bytes: header(1, 0), code: RefusalCode.INVALID_ARGUMENT, message: /unknown frame type 0/ },
  { name: 'the unknown type 6', bytes: header(1, 6), code: RefusalCode.INVALID_ARGUMENT, message: /unknown frame type 6/ },
  { name: 'the unknown type 255', bytes: header(3, 255), code: RefusalCode.INVALID_ARGUMENT, message: /unknown frame type 255/ },
  { name: 'a frame one byte over the limit', bytes: header(101, FrameType.Messages), code: RefusalCode.RESOURCE_EXHAUSTED, message: /101 bytes, above the 100/ },
  { name: 'a frame far over the limit', bytes: header(0xffffffff, FrameType.Hello), code: RefusalCode.RESOURCE_EXHAUSTED, message: /4294967295 bytes/ },
];

for (const { name, bytes: bad, code, message } of rejects) {
  test(`the frame reader refuses ${name} on its 5-byte header alone, after valid frames, however the header is cut`, () => {
    const good = Buffer.concat([emptyFrame(FrameType.Ping), frame(FrameType.Messages, Buffer.from([0, 0, 0, 1, 7]))]);
    // In one chunk with valid frames before it.
    assertProtocolError(() => new FrameReader(100, false).push(Buffer.concat([good, bad])), code, message);
    // The header alone, after the magic; no body follows.
    assertProtocolError(() => new FrameReader(100, true).push(Buffer.concat([RAFT_STREAM_MAGIC, bad])), code, message);
    // Byte by byte: nothing before its fifth byte, the error on it.
    const reader = new FrameReader(100, false);
    assert.equal(reader.push(good).length, 2);
    for (let i = 0; i < 4; i++) assert.deepEqual(reader.push(bad.subarray(i, i + 1)), []);
    assertProtocolError(() => reader.push(bad.subarray(4, 5)), code, message);
  });
}

test('the frame reader takes a frame of exactly maxFrameBytes', () => {
  const body = bytes(99, 9);
  const reader = new FrameReader(100, false);
  assert.deepEqual(reader.push(frame(FrameType.Messages, body)).map(plain), [{ type: FrameType.Messages, body: body.toString('hex') }]);
});

test('maxFrameBytes raised after construction takes effect for the next frame, lowered too', () => {
  const big = frame(FrameType.Messages, bytes(MAX_CONTROL_FRAME_BYTES + 100, 1));
  assertProtocolError(() => new FrameReader(MAX_CONTROL_FRAME_BYTES, true).push(Buffer.concat([encodeOpening('c', 's'), big])), RefusalCode.RESOURCE_EXHAUSTED);

  const reader = new FrameReader(MAX_CONTROL_FRAME_BYTES, true);
  assert.deepEqual(reader.push(encodeOpening('c', 's')).map((f) => f.type), [FrameType.Hello]);
  reader.maxFrameBytes = 2 * MAX_CONTROL_FRAME_BYTES;
  assert.deepEqual(reader.push(big).map(plain), [{ type: FrameType.Messages, body: big.subarray(5).toString('hex') }]);
  reader.maxFrameBytes = 10;
  assertProtocolError(() => reader.push(header(11, FrameType.Messages)), RefusalCode.RESOURCE_EXHAUSTED, /above the 10/);
});

test('a wrong magic is refused on its first differing byte, whichever it is, and not called HTTP/2', () => {
  for (let at = 0; at < RAFT_STREAM_MAGIC.length; at++) {
    const wrong = Buffer.from(RAFT_STREAM_MAGIC);
    wrong[at] = wrong[at]! ^ 0x20;
    // Byte by byte: the bytes before `at` are taken, the one at `at` refused.
    const reader = new FrameReader(MAX_CONTROL_FRAME_BYTES, true);
    for (let i = 0; i < at; i++) assert.deepEqual(reader.push(wrong.subarray(i, i + 1)), [], `byte ${i} of a magic wrong at ${at}`);
    assertProtocolError(() => reader.push(wrong.subarray(at, at + 1)), RefusalCode.INVALID_ARGUMENT, /does not open with an SCM Raft stream/);
    // In one chunk, with a valid frame after it.
    assert.throws(
      () => new FrameReader(MAX_CONTROL_FRAME_BYTES, true).push(Buffer.concat([wrong, emptyFrame(FrameType.Ping)])),
      (err: unknown) => err instanceof RaftStreamProtocolError && !/HTTP\/2/.test(err.message),
    );
  }
  // The magic of a later version: refused on its last byte.
  assertProtocolError(() => new FrameReader(MAX_CONTROL_FRAME_BYTES, true).push(Buffer.from('SCMRAFT2')), RefusalCode.INVALID_ARGUMENT);
  // A stream that has only begun with the right bytes is waited for.
  assert.deepEqual(new FrameReader(MAX_CONTROL_FRAME_BYTES, true).push(Buffer.from('SCMRAF')), []);
});

test('an HTTP/2 preface is refused as HTTP/2, in one chunk, with frames after it, or as soon as its first three bytes are in', () => {
  for (const chunk of [HTTP2_PREFACE, Buffer.concat([HTTP2_PREFACE, Buffer.alloc(9)]), HTTP2_PREFACE.subarray(0, 3), HTTP2_PREFACE.subarray(0, 8)]) {
    assertProtocolError(() => new FrameReader(MAX_CONTROL_FRAME_BYTES, true).push(chunk), RefusalCode.INVALID_ARGUMENT, /HTTP\/2/);
  }
  // Its first byte already differs from the magic: refused at once, without waiting for more.
  assert.throws(() => new FrameReader(MAX_CONTROL_FRAME_BYTES, true).push(HTTP2_PREFACE.subarray(0, 1)), RaftStreamProtocolError);
});

test('a reader without the magic takes a stream that opens with a frame, and refuses the magic as a frame', () => {
  assert.deepEqual(new FrameReader(100, false).push(emptyFrame(FrameType.Pong)).map(plain), [{ type: FrameType.Pong, body: '' }]);
  // "SCMR" read as a length, "A" as the type: an unknown type (checked before the length).
  assertProtocolError(() => new FrameReader(100, false).push(RAFT_STREAM_MAGIC), RefusalCode.INVALID_ARGUMENT, /unknown frame type/);
});

test('PING and PONG frames are a length of 1 and their type', () => {
  assert.deepEqual([...emptyFrame(FrameType.Ping)], [0, 0, 0, 1, FrameType.Ping]);
  assert.deepEqual([...emptyFrame(FrameType.Pong)], [0, 0, 0, 1, FrameType.Pong]);
});

// ----- HELLO -----

const hellos: Array<{ name: string; clusterId: string; from: string }> = [
  { name: 'ASCII ids', clusterId: 'CID-4fd0c9c6-0bb2-4b8a-8a34-1b2b1c7d3e5f', from: 'scm1' },
  { name: 'multi-byte ids', clusterId: 'cluster-ü-€-😀', from: 'scm-ø' },
  { name: 'an empty sender', clusterId: 'c', from: '' },
  { name: 'empty ids', clusterId: '', from: '' },
  { name: 'ids of exactly MAX_HELLO_ID_BYTES bytes', clusterId: 'é'.repeat(MAX_HELLO_ID_BYTES / 2), from: 'x'.repeat(MAX_HELLO_ID_BYTES) },
];

for (const { name, clusterId, from } of hellos) {
  test(`HELLO round trip: ${name}`, () => {
    const opening = encodeOpening(clusterId, from);
    assert.ok(opening.subarray(0, RAFT_STREAM_MAGIC.length).equals(RAFT_STREAM_MAGIC));
    assert.equal(opening.readUInt32BE(RAFT_STREAM_MAGIC.length), opening.length - RAFT_STREAM_MAGIC.length - 4);
    const frames = new FrameReader(MAX_CONTROL_FRAME_BYTES, true).push(opening);
    assert.equal(frames.length, 1);
    assert.equal(frames[0]!.type, FrameType.Hello);
    assert.deepEqual(decodeHello(frames[0]!.body), { clusterId, from });
  });
}

test('decodeHello refuses trailing bytes and a body cut at any point', () => {
  const body = encodeOpening('cluster-ü', 'scm1').subarray(RAFT_STREAM_MAGIC.length + 5);
  assert.deepEqual(decodeHello(body), { clusterId: 'cluster-ü', from: 'scm1' });
  assertProtocolError(() => decodeHello(Buffer.concat([body, Buffer.from([0])])), RefusalCode.INVALID_ARGUMENT, /1 bytes after its sender id/);
  assertProtocolError(() => decodeHello(Buffer.concat([body, Buffer.from('abc')])), RefusalCode.INVALID_ARGUMENT, /3 bytes after/);
  for (let n = 0; n < body.length; n++) {
    assertProtocolError(() => decodeHello(Buffer.from(body.subarray(0, n))), RefusalCode.INVALID_ARGUMENT, /HELLO ends/);
  }
});

test('decodeHello refuses an id longer than MAX_HELLO_ID_BYTES, even if the bytes are there', () => {
  const long = Buffer.alloc(MAX_HELLO_ID_BYTES + 1, 0x61);
  const id = (b: Buffer): Buffer => Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);
  assertProtocolError(() => decodeHello(Buffer.concat([id(long), id(Buffer.from('s'))])), RefusalCode.INVALID_ARGUMENT, /cluster id is 257 bytes long/);
  assertProtocolError(() => decodeHello(Buffer.concat([id(Buffer.from('c')), id(long)])), RefusalCode.INVALID_ARGUMENT, /sender id is 257 bytes long/);
  // The largest allowed.
  const max = long.subarray(1);
  assert.deepEqual(decodeHello(Buffer.concat([id(max), id(max)])), { clusterId: max.toString(), from: max.toString() });
});

test('decodeHello refuses ids that are not UTF-8', () => {
  const id = (b: number[]): number[] => [b.length >> 8, b.length & 0xff, ...b];
  for (const invalid of [[0xff], [0xc3, 0x28], [0xe2, 0x82], [0xed, 0xa0, 0x80], [0xc0, 0xaf]]) {
    assertProtocolError(() => decodeHello(Buffer.from([...id(invalid), ...id([0x73])])), RefusalCode.INVALID_ARGUMENT, /cluster id is not UTF-8/);
    assertProtocolError(() => decodeHello(Buffer.from([...id([0x63]), ...id(invalid)])), RefusalCode.INVALID_ARGUMENT, /sender id is not UTF-8/);
  }
});

test('encodeOpening refuses an id of more than MAX_HELLO_ID_BYTES bytes (counted in UTF-8, not in characters)', () => {
  const tooLong = 'é'.repeat(MAX_HELLO_ID_BYTES / 2 + 1); // fewer characters than the limit, more bytes
  assert.ok(tooLong.length < MAX_HELLO_ID_BYTES);
  assert.throws(() => encodeOpening(tooLong, 'scm1'), RangeError);
  assert.throws(() => encodeOpening('c', tooLong), RangeError);
  assert.throws(() => encodeOpening('x'.repeat(MAX_HELLO_ID_BYTES + 1), 'scm1'), /cluster id is 257 bytes long/);
  assert.throws(() => encodeOpening('c', 'x'.repeat(MAX_HELLO_ID_BYTES + 1)), /sender id is 257 bytes long/);
});

// ----- MESSAGES -----

const batches: Array<{ name: string; messages: Uint8Array[] }> = [
  { name: 'one message of one byte', messages: [new Uint8Array([42])] },
  { name: 'several messages', messages: [bytes(3, 1), bytes(1, 2), bytes(300, 3), bytes(70_000, 4)] },
  { name: 'one large message (3 MiB)', messages: [bytes(3 * 1024 * 1024, 5)] },
  { name: 'views into a larger buffer', messages: [bytes(100, 6).subarray(10, 20), new Uint8Array(bytes(64, 7).buffer, 8, 16)] },
];

for (const { name, messages } of batches) {
  test(`MESSAGES round trip: ${name}`, () => {
    const encoded = encodeMessages(messages);
    const total = messages.reduce((n, m) => n + 4 + m.byteLength, 0);
    assert.equal(encoded.length, 5 + total);
    const frames = new FrameReader(8 * 1024 * 1024, false).push(encoded);
    assert.equal(frames.length, 1);
    assert.equal(frames[0]!.type, FrameType.Messages);
    const decoded = decodeMessages(frames[0]!.body);
    assert.equal(decoded.length, messages.length);
    decoded.forEach((m, i) => assert.ok(Buffer.from(m).equals(Buffer.from(messages[i]!)), `message ${i}`));
  });
}

const badMessages: Array<{ name: string; body: number[]; message: RegExp }> = [
  { name: 'an empty body', body: [], message: /holds no message/ },
  { name: 'an empty message', body: [0, 0, 0, 0], message: /message 1 .* is empty/ },
  { name: 'an empty message after a valid one', body: [0, 0, 0, 1, 9, 0, 0, 0, 0], message: /message 2 .* is empty/ },
  { name: 'a length running past the body', body: [0, 0, 0, 5, 1, 2, 3], message: /message 1 .* claims 5 bytes; 3 are left/ },
  { name: 'a length running one byte past the body', body: [0, 0, 0, 1, 9, 0, 0, 0, 2, 1], message: /message 2 .* claims 2 bytes; 1 are left/ },
  { name: 'a body ending inside a length', body: [0, 0, 0], message: /ends inside the length of message 1/ },
  { name: 'a body ending inside the second length', body: [0, 0, 0, 1, 9, 0, 0], message: /ends inside the length of message 2/ },
];

for (const { name, body, message } of badMessages) {
  test(`decodeMessages refuses ${name}`, () => {
    assertProtocolError(() => decodeMessages(Buffer.from(body)), RefusalCode.INVALID_ARGUMENT, message);
  });
}

// ----- REFUSAL -----

const refusals = [
  { code: RefusalCode.FAILED_PRECONDITION, details: 'cluster id mismatch: this node belongs to a, the stream claims b' },
  { code: RefusalCode.PERMISSION_DENIED, details: 'scm9 is not a member ✗ 😀' },
  { code: RefusalCode.RESOURCE_EXHAUSTED, details: '' },
  { code: 255, details: 'x' },
];

for (const refusal of refusals) {
  test(`REFUSAL round trip: code ${refusal.code}, ${JSON.stringify(refusal.details).slice(0, 30)}`, () => {
    const frames = new FrameReader(MAX_CONTROL_FRAME_BYTES, false).push(encodeRefusal(refusal));
    assert.equal(frames.length, 1);
    assert.equal(frames[0]!.type, FrameType.Refusal);
    assert.deepEqual(decodeRefusal(frames[0]!.body), refusal);
  });
}

test('decodeRefusal refuses a body without a code, and details that are not UTF-8', () => {
  assertProtocolError(() => decodeRefusal(Buffer.alloc(0)), RefusalCode.INVALID_ARGUMENT, /without a status code/);
  assertProtocolError(() => decodeRefusal(Buffer.from([7, 0x61, 0xc3])), RefusalCode.INVALID_ARGUMENT, /not UTF-8/);
});

test('over-long REFUSAL details are cut to fit a control frame, never inside a character, wherever the cut falls', () => {
  for (const char of ['a', 'é', '€', '😀']) {
    for (let offset = 0; offset < 4; offset++) {
      const details = 'x'.repeat(offset) + char.repeat(2 * MAX_CONTROL_FRAME_BYTES);
      const encoded = encodeRefusal({ code: RefusalCode.INVALID_ARGUMENT, details });
      const what = `${char} after ${offset} bytes`;
      assert.ok(encoded.readUInt32BE(0) <= MAX_CONTROL_FRAME_BYTES, what);
      const frames = new FrameReader(MAX_CONTROL_FRAME_BYTES, false).push(encoded);
      assert.equal(frames.length, 1, what);
      const decoded = decodeRefusal(frames[0]!.body);
      assert.equal(decoded.code, RefusalCode.INVALID_ARGUMENT, what);
      assert.ok(details.startsWith(decoded.details), `${what}: the details are a prefix of the original`);
      // Cut by at most the 3 bytes of a partial character below the limit, not more.
      assert.ok(Buffer.byteLength(decoded.details) > MAX_CONTROL_FRAME_BYTES - 64, `${what}: ${Buffer.byteLength(decoded.details)} bytes kept`);
    }
  }
});

test('a frame still arriving is assembled in a buffer of its own; one over 64 KiB is charged to the budget as allocated (by doubling), and returned when it completes or the reader is discarded; a shorter one is not charged', () => {
  const budget = new FrameBudget(1024 * 1024, 'a test budget');
  const small = encodeMessages([Buffer.alloc(30_000, 1)]);
  assert.ok(small.length <= WHOLE_FRAME_BUFFER_BYTES);
  const a = new FrameReader(1024 * 1024, false, budget);
  // Byte by byte from its header: assembled whole, never charged.
  for (let i = 0; i < small.length - 1; i++) assert.deepEqual(a.push(small.subarray(i, i + 1)), []);
  assert.equal(a.bufferedBytes, small.length - 1);
  assert.equal(a.chargedBytes, 0);
  assert.equal(budget.held, 0);
  const [whole] = a.push(small.subarray(small.length - 1));
  assert.ok(whole !== undefined && whole.body.equals(small.subarray(5)));

  // Above 64 KiB: charged, never more than the frame's length, nor than twice what arrived (or 64 KiB).
  const large = encodeMessages([Buffer.alloc(1_000_000, 2)]);
  const b = new FrameReader(1024 * 1024, false, budget);
  for (let at = 0; at < large.length - 1000; at += 1000) {
    assert.deepEqual(b.push(large.subarray(at, at + 1000)), []);
    const arrived = at + 1000;
    assert.ok(b.chargedBytes >= arrived && b.chargedBytes <= Math.min(large.length, Math.max(2 * arrived, WHOLE_FRAME_BUFFER_BYTES)), `${b.chargedBytes} charged with ${arrived} bytes arrived`);
    assert.equal(budget.held, b.chargedBytes);
  }
  b.discard();
  assert.equal(budget.held, 0, 'returned when the reader is discarded');
  assert.equal(b.bufferedBytes, 0);
  // Completed: returned once the frame is handed out.
  const c = new FrameReader(1024 * 1024, false, budget);
  assert.deepEqual(c.push(large.subarray(0, 100_000)), []);
  assert.ok(budget.held > 0);
  const [out] = c.push(large.subarray(100_000));
  assert.ok(out !== undefined && out.body.equals(large.subarray(5)));
  assert.equal(budget.held, 0, 'returned once the frame is handed out');
});

test('readers share a budget: a frame over 64 KiB whose buffer would pass it is refused (FrameBudgetExceeded, RESOURCE_EXHAUSTED), taking nothing; one that fills it to its last byte is not; a frame of up to 64 KiB still arrives', () => {
  const frame = encodeMessages([Buffer.alloc(100_000, 1)]);
  // Room for two first allocations (64 KiB each) of frames over 64 KiB, and then exactly for one
  // of them to grow to its whole length.
  const budget = new FrameBudget(frame.length + WHOLE_FRAME_BUFFER_BYTES, 'the test budget');
  const a = new FrameReader(200_000, false, budget);
  const b = new FrameReader(200_000, false, budget);
  const c = new FrameReader(200_000, false, budget);
  a.push(frame.subarray(0, 100));
  b.push(frame.subarray(0, 100));
  assert.equal(budget.held, 2 * WHOLE_FRAME_BUFFER_BYTES);
  assert.throws(
    () => c.push(frame.subarray(0, 5)),
    (err: unknown) =>
      err instanceof FrameBudgetExceeded &&
      err.code === RefusalCode.RESOURCE_EXHAUSTED &&
      err.message === `a frame of ${frame.length} bytes would take the bytes held by frames still arriving on this node's Raft streams past ${budget.limit} (the test budget); ${2 * WHOLE_FRAME_BUFFER_BYTES} are held now; retry later`,
  );
  assert.equal(budget.held, 2 * WHOLE_FRAME_BUFFER_BYTES, 'the refused frame took nothing');
  assert.equal(c.chargedBytes, 0);
  // A frame of up to 64 KiB is not charged: it still arrives, in pieces, with no room left.
  const small = encodeMessages([Buffer.alloc(20_000, 3)]);
  const d = new FrameReader(200_000, false, budget);
  assert.deepEqual(d.push(small.subarray(0, 7)), []);
  assert.equal(d.push(small.subarray(7)).length, 1);
  // a's frame grows to its whole length, taking the budget to its last byte, and completes.
  assert.deepEqual(a.push(frame.subarray(100, frame.length - 1)), []);
  assert.equal(budget.held, budget.limit, 'filled to its last byte');
  assert.equal(a.push(frame.subarray(frame.length - 1)).length, 1);
  assert.equal(budget.held, WHOLE_FRAME_BUFFER_BYTES, 'a\'s bytes returned');
  const e = new FrameReader(200_000, false, budget);
  e.push(frame.subarray(0, 6));
  assert.equal(budget.held, 2 * WHOLE_FRAME_BUFFER_BYTES);
});

test('what a reader keeps between reads is its own copy, not a view of the socket read it came in', () => {
  // A frame in progress, and the few bytes of a header left over after a complete frame.
  const first = encodeMessages([Buffer.from('first')]);
  const second = encodeMessages([Buffer.from('second message')]);
  const read1 = Buffer.concat([first, second.subarray(0, 3)]);
  const reader = new FrameReader(1024, false, new FrameBudget(4096, 'b'));
  assert.deepEqual(reader.push(read1).map((f) => Buffer.from(f.body).toString('latin1', 4)), ['first']);
  read1.fill(0xee); // a socket read's memory, reused or not, is not the reader's
  const read2 = Buffer.from(second.subarray(3, 10));
  assert.deepEqual(reader.push(read2), []);
  read2.fill(0xee);
  assert.deepEqual(reader.push(Buffer.from(second.subarray(10))).map((f) => Buffer.from(f.body).toString('latin1', 4)), ['second message']);
});
