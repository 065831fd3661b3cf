// The Ratis port's end of the Raft streams, on real sockets: a node:net server hands each connection
// to RaftStreamServer.inject, and raw clients write the bytes of raft-stream-wire.ts. An accepted
// stream answers PINGs and delivers its batches in order; every refused one gets a REFUSAL frame
// naming what was wrong, then the end of the server's side, and is reported (except the refusals
// of admitStream and onMessages, counted by their callers); a stop closes every stream.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureLocalCertificates } from '../../src/cli/local-certificates.js';
import { FRAME_BUDGET_FRAMES, RaftStreamServer, type RaftStreamServerOptions, type StreamConnection } from '../../src/server/raft-stream-server.js';
import { DEFAULT_RAFT_FRAME_BYTES, raftMessageSizes } from '../../src/server/raft-message-sizes.js';
import { encodeRaftMessage } from '../../src/server/raft-codec.js';
import {
  decodeRefusal,
  emptyFrame,
  encodeMessages,
  encodeOpening,
  encodeRefusal,
  FrameReader,
  FrameType,
  MAX_CONTROL_FRAME_BYTES,
  RAFT_STREAM_MAGIC,
  RefusalCode,
  type Frame,
  type Refusal,
} from '../../src/server/raft-stream-wire.js';
import type { RaftStreamRefusalReason } from '../../src/metrics/node-metrics.js';

const CLUSTER = 'CID-cluster-a';
const TIMING = { helloTimeoutMs: 300, idleMs: 600, frameMs: 60_000 };
const HTTP2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
/** The opening of a stream of this cluster from scm2. */
const opening = encodeOpening(CLUSTER, 'scm2');

async function until(what: string, timeoutMs: number, check: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function header(length: number, type: number): Buffer {
  const b = Buffer.alloc(5);
  b.writeUInt32BE(length, 0);
  b[4] = type;
  return b;
}

const frame = (type: number, body: Buffer): Buffer => Buffer.concat([header(1 + body.length, type), body]);
const ping = (): Buffer => emptyFrame(FrameType.Ping);
const messages = (...texts: string[]): Buffer => encodeMessages(texts.map((t) => Buffer.from(t)));
/** The HELLO frame of an opening, without the magic. */
const helloFrame = (clusterId: string, from: string): Buffer => encodeOpening(clusterId, from).subarray(RAFT_STREAM_MAGIC.length);

interface Started {
  readonly server: RaftStreamServer;
  readonly port: number;
  /** Every onMessages call: the sender and the messages as text. */
  readonly received: Array<[string, string[]]>;
  readonly refused: Array<[RaftStreamRefusalReason, string, string]>;
  /** The bytes frames still arriving held across the streams as each refusal was reported. */
  readonly heldAtRefusal: number[];
  /** The sizes of the chunks each connection's socket read, in order. */
  readonly chunks: number[];
  close(): Promise<void>;
}

async function start(
  options: Partial<Omit<RaftStreamServerOptions, 'onMessages'>> & { onMessages?: (from: string, messages: string[]) => string | Refusal | void } = {},
): Promise<Started> {
  const received: Array<[string, string[]]> = [];
  const refused: Array<[RaftStreamRefusalReason, string, string]> = [];
  const heldAtRefusal: number[] = [];
  const chunks: number[] = [];
  const { onMessages, ...rest } = options;
  const server: RaftStreamServer = new RaftStreamServer({
    clusterId: CLUSTER,
    timing: TIMING,
    maxMessageBytes: DEFAULT_RAFT_FRAME_BYTES,
    onRefused: (reason, peer, details) => {
      refused.push([reason, peer, details]);
      heldAtRefusal.push(server.frameBytesHeld);
    },
    ...rest,
    onMessages: (from, batch) => {
      const texts = batch.map((m) => Buffer.from(m).toString());
      received.push([from, texts]);
      return onMessages?.(from, texts);
    },
  });
  const listener: Server = createServer((socket) => {
    socket.on('data', (chunk: Buffer) => chunks.push(chunk.length));
    server.inject(socket);
  });
  await new Promise<void>((resolve, reject) => {
    listener.once('error', reject);
    listener.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (listener.address() as { port: number }).port;
  return {
    server,
    port,
    received,
    refused,
    heldAtRefusal,
    chunks,
    close: async () => {
      server.forceShutdown();
      await new Promise<void>((resolve) => listener.close(() => resolve()));
    },
  };
}

interface Client {
  readonly socket: Socket;
  /** The frames the server sent, in order. */
  readonly frames: Frame[];
  /** What the server sent that is not the protocol. */
  readonly errors: Error[];
  readonly closed: () => boolean;
  readonly address: string;
  write(bytes: Buffer): void;
}

function client(port: number): Promise<Client> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.setNoDelay(true);
    const frames: Frame[] = [];
    const errors: Error[] = [];
    const reader = new FrameReader(MAX_CONTROL_FRAME_BYTES, false);
    let closed = false;
    socket.on('data', (chunk: Buffer) => {
      try {
        frames.push(...reader.push(chunk));
      } catch (err) {
        errors.push(err as Error);
      }
    });
    socket.on('close', () => {
      closed = true;
    });
    socket.on('error', () => undefined);
    socket.once('connect', () =>
      resolve({
        socket,
        frames,
        errors,
        closed: () => closed,
        address: `127.0.0.1:${socket.localPort}`,
        write: (bytes) => {
          if (!socket.destroyed) socket.write(bytes);
        },
      }),
    );
    socket.once('error', reject);
  });
}

/** Writes `bytes` one byte a write, letting each go out on its own. */
async function writeByteByByte(c: Client, bytes: Buffer): Promise<void> {
  for (const b of bytes) {
    c.write(Buffer.from([b]));
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

const pongs = (c: Client): number => c.frames.filter((f) => f.type === FrameType.Pong).length;

/** Waits for the stream's close and checks that its last (and only non-PONG) frame was a REFUSAL of `code` with details matching `details`. */
async function refusalOf(c: Client, code: number, details: RegExp): Promise<Refusal> {
  await until('the server to close the stream', 3_000, () => c.closed());
  assert.deepEqual(c.errors, []);
  const last = c.frames.at(-1);
  assert.ok(last !== undefined, 'a REFUSAL frame before the close');
  assert.equal(last.type, FrameType.Refusal);
  assert.ok(c.frames.slice(0, -1).every((f) => f.type === FrameType.Pong), 'nothing but PONGs before the REFUSAL');
  const refusal = decodeRefusal(last.body);
  assert.equal(refusal.code, code, `code of "${refusal.details}"`);
  assert.match(refusal.details, details);
  return refusal;
}

test('an accepted stream: each PING gets a PONG, batches reach onMessages in order with the HELLO\'s sender, and the HELLO timeout no longer applies', { timeout: 10_000 }, async () => {
  const s = await start();
  try {
    const c = await client(s.port);
    c.write(Buffer.concat([encodeOpening(CLUSTER, 'scm2'), ping()]));
    await until('a PONG', 2_000, () => pongs(c) === 1);
    await until('the stream to count as open', 2_000, () => s.server.openStreams === 1);
    c.write(messages('a1'));
    c.write(Buffer.concat([messages('b1', 'b2', 'b3'), ping(), messages('c1')]));
    await until('three batches', 2_000, () => s.received.length === 3);
    await until('a second PONG', 2_000, () => pongs(c) === 2);
    // Past the HELLO timeout (not the idle one): the stream stays.
    await sleep(TIMING.helloTimeoutMs + 100);
    c.write(Buffer.concat([ping(), messages('d1')]));
    await until('a third PONG', 2_000, () => pongs(c) === 3);
    await until('a fourth batch', 2_000, () => s.received.length === 4);
    assert.deepEqual(s.received, [
      ['scm2', ['a1']],
      ['scm2', ['b1', 'b2', 'b3']],
      ['scm2', ['c1']],
      ['scm2', ['d1']],
    ]);
    assert.equal(c.closed(), false);
    assert.deepEqual(c.frames.map((f) => f.type), [FrameType.Pong, FrameType.Pong, FrameType.Pong]);
    assert.deepEqual(s.refused, []);
    assert.equal(s.server.openStreams, 1);
    c.socket.destroy();
    await until('the stream to be forgotten', 2_000, () => s.server.openStreams === 0);
  } finally {
    await s.close();
  }
});

test('two streams of different senders are told apart', { timeout: 10_000 }, async () => {
  const s = await start();
  try {
    const a = await client(s.port);
    const b = await client(s.port);
    a.write(Buffer.concat([encodeOpening(CLUSTER, 'scm2'), ping()]));
    b.write(Buffer.concat([encodeOpening(CLUSTER, 'scm3'), ping()]));
    await until('both PONGs', 2_000, () => pongs(a) === 1 && pongs(b) === 1);
    a.write(messages('from a'));
    await until('a\'s batch', 2_000, () => s.received.length === 1);
    b.write(messages('from b'));
    await until('b\'s batch', 2_000, () => s.received.length === 2);
    assert.deepEqual(s.received, [
      ['scm2', ['from a']],
      ['scm3', ['from b']],
    ]);
    assert.equal(s.server.openStreams, 2);
  } finally {
    await s.close();
  }
});

test('a frame of exactly maxMessageBytes after the HELLO is taken (above the control frames\' limit); one byte more is refused as too large', { timeout: 10_000 }, async () => {
  const maxMessageBytes = 2 * MAX_CONTROL_FRAME_BYTES;
  const s = await start({ maxMessageBytes });
  try {
    const c = await client(s.port);
    c.write(Buffer.concat([encodeOpening(CLUSTER, 'scm2'), ping()]));
    await until('a PONG', 2_000, () => pongs(c) === 1);
    const atLimit = encodeMessages([Buffer.alloc(maxMessageBytes - 5, 0x61)]);
    assert.equal(atLimit.readUInt32BE(0), maxMessageBytes);
    c.write(atLimit);
    await until('the batch at the limit', 2_000, () => s.received.length === 1);
    assert.equal(s.received[0]![1][0]!.length, maxMessageBytes - 5);
    // The header alone: refused before the body comes.
    c.write(header(maxMessageBytes + 1, FrameType.Messages));
    await refusalOf(c, RefusalCode.RESOURCE_EXHAUSTED, new RegExp(`${maxMessageBytes + 1} bytes, above the ${maxMessageBytes}`));
    assert.deepEqual(s.refused.map(([reason, peer]) => [reason, peer]), [['frame_too_large', 'scm2']]);
    assert.equal(s.received.length, 1);
  } finally {
    await s.close();
  }
});

test(
  'a batch larger than a control frame, written with the opening, is taken',
  { timeout: 10_000 },
  async () => {
    const s = await start();
    try {
      const c = await client(s.port);
      const big = 'x'.repeat(2 * MAX_CONTROL_FRAME_BYTES);
      // What PeerTransport does when messages are queued as it connects: opening, PING and a batch, back to back.
      c.write(Buffer.concat([encodeOpening(CLUSTER, 'scm2'), ping(), messages(big)]));
      await until('the batch, or the stream\'s end', 2_000, () => s.received.length === 1 || c.closed());
      assert.deepEqual(s.refused, []);
      assert.deepEqual(s.received, [['scm2', [big]]]);
      assert.equal(c.closed(), false);
    } finally {
      await s.close();
    }
  },
);

interface RefusalCase {
  readonly name: string;
  /** Bytes written at once after connecting (after the opening and a PING, and their PONG, if `afterHello`). */
  readonly bytes: Buffer;
  readonly reason: RaftStreamRefusalReason;
  readonly code: number;
  readonly details: RegExp;
  /** Whether the bytes follow an accepted HELLO (onRefused names the sender, not the address). */
  readonly afterHello?: boolean;
}


const refusalCases: RefusalCase[] = [
  { name: 'an HTTP/2 preface (a gRPC client)', bytes: Buffer.concat([HTTP2_PREFACE, Buffer.alloc(9)]), reason: 'protocol', code: RefusalCode.INVALID_ARGUMENT, details: /HTTP\/2/ },
  { name: 'another magic', bytes: Buffer.from('SCMRAFT2'), reason: 'protocol', code: RefusalCode.INVALID_ARGUMENT, details: /does not open with an SCM Raft stream/ },
  { name: 'a PING as first frame', bytes: Buffer.concat([RAFT_STREAM_MAGIC, ping()]), reason: 'protocol', code: RefusalCode.INVALID_ARGUMENT, details: /first frame is of type 3, not a HELLO/ },
  { name: 'MESSAGES as first frame', bytes: Buffer.concat([RAFT_STREAM_MAGIC, messages('m'), helloFrame(CLUSTER, 'scm2')]), reason: 'protocol', code: RefusalCode.INVALID_ARGUMENT, details: /first frame is of type 2, not a HELLO/ },
  {
    name: 'a control frame over MAX_CONTROL_FRAME_BYTES before the HELLO (its header alone)',
    bytes: Buffer.concat([RAFT_STREAM_MAGIC, header(MAX_CONTROL_FRAME_BYTES + 1, FrameType.Hello)]),
    reason: 'frame_too_large',
    code: RefusalCode.RESOURCE_EXHAUSTED,
    details: new RegExp(`${MAX_CONTROL_FRAME_BYTES + 1} bytes, above the ${MAX_CONTROL_FRAME_BYTES}`),
  },
  {
    name: 'a MESSAGES frame over MAX_CONTROL_FRAME_BYTES before the HELLO',
    bytes: Buffer.concat([RAFT_STREAM_MAGIC, header(MAX_CONTROL_FRAME_BYTES + 1, FrameType.Messages)]),
    reason: 'frame_too_large',
    code: RefusalCode.RESOURCE_EXHAUSTED,
    details: /above the/,
  },
  { name: 'an unknown frame type', bytes: header(1, 9), reason: 'protocol', code: RefusalCode.INVALID_ARGUMENT, details: /unknown frame type 9/, afterHello: true },
  {
    name: 'a HELLO of another cluster',
    bytes: encodeOpening('CID-cluster-b', 'scm2'),
    reason: 'foreign_cluster',
    code: RefusalCode.FAILED_PRECONDITION,
    details: new RegExp(`belongs to ${CLUSTER}, the stream claims CID-cluster-b`),
  },
  { name: 'a HELLO without a cluster id', bytes: encodeOpening('', 'scm2'), reason: 'foreign_cluster', code: RefusalCode.FAILED_PRECONDITION, details: /claims \(none\)/ },
  { name: 'a HELLO without a sender', bytes: Buffer.concat([encodeOpening(CLUSTER, ''), ping()]), reason: 'unnamed', code: RefusalCode.INVALID_ARGUMENT, details: /names no sender/ },
  { name: 'a malformed HELLO', bytes: Buffer.concat([RAFT_STREAM_MAGIC, frame(FrameType.Hello, Buffer.from([0, 5, 0x61]))]), reason: 'protocol', code: RefusalCode.INVALID_ARGUMENT, details: /HELLO ends inside its cluster id/ },
  { name: 'a PONG from the client', bytes: emptyFrame(FrameType.Pong), reason: 'protocol', code: RefusalCode.INVALID_ARGUMENT, details: /type 4 from a client/, afterHello: true },
  { name: 'a second HELLO', bytes: helloFrame(CLUSTER, 'scm2'), reason: 'protocol', code: RefusalCode.INVALID_ARGUMENT, details: /type 1 from a client/, afterHello: true },
  {
    name: 'a REFUSAL from the client',
    bytes: encodeRefusal({ code: 3, details: 'no' }),
    reason: 'protocol',
    code: RefusalCode.INVALID_ARGUMENT,
    details: /type 5 from a client/,
    afterHello: true,
  },
  {
    name: 'a malformed MESSAGES body (a length past its end)',
    bytes: frame(FrameType.Messages, Buffer.from([0, 0, 0, 5, 1, 2])),
    reason: 'protocol',
    code: RefusalCode.INVALID_ARGUMENT,
    details: /claims 5 bytes; 2 are left/,
    afterHello: true,
  },
  { name: 'an empty MESSAGES frame', bytes: header(1, FrameType.Messages), reason: 'protocol', code: RefusalCode.INVALID_ARGUMENT, details: /holds no message/, afterHello: true },
];

for (const { name, bytes, reason, code, details, afterHello } of refusalCases) {
  test(`refused: ${name} (${reason})`, { timeout: 10_000 }, async () => {
    const s = await start();
    try {
      const c = await client(s.port);
      if (afterHello === true) {
        c.write(Buffer.concat([opening, ping()]));
        await until('a PONG', 2_000, () => pongs(c) === 1);
      }
      c.write(bytes);
      const refusal = await refusalOf(c, code, details);
      assert.deepEqual(s.refused, [[reason, afterHello === true ? 'scm2' : c.address, refusal.details]]);
      assert.deepEqual(s.received, []);
      // Nothing before the HELLO is answered (no PONG to a PING of an unaccepted stream).
      assert.deepEqual(c.frames.map((f) => f.type), afterHello === true ? [FrameType.Pong, FrameType.Refusal] : [FrameType.Refusal]);
      await until('the stream to be forgotten', 2_000, () => s.server.openStreams === 0);
    } finally {
      await s.close();
    }
  });
}

test('refused: frames that break the protocol in the HELLO\'s own write (a PONG, a malformed MESSAGES body), after the HELLO was accepted', { timeout: 10_000 }, async () => {
  const s = await start();
  try {
    const cases: Array<[Buffer, RegExp]> = [
      [emptyFrame(FrameType.Pong), /type 4 from a client/],
      [frame(FrameType.Messages, Buffer.from([0, 0, 0])), /ends inside the length of message 1/],
    ];
    for (const [bad, details] of cases) {
      s.refused.length = 0;
      const c = await client(s.port);
      c.write(Buffer.concat([opening, ping(), bad]));
      const refusal = await refusalOf(c, RefusalCode.INVALID_ARGUMENT, details);
      assert.deepEqual(c.frames.map((f) => f.type), [FrameType.Pong, FrameType.Refusal]);
      assert.deepEqual(s.refused, [['protocol', 'scm2', refusal.details]]);
    }
    assert.deepEqual(s.received, []);
  } finally {
    await s.close();
  }
});

test('refused: no HELLO within helloTimeoutMs (hello_timeout), even with part of one sent', { timeout: 10_000 }, async () => {
  const s = await start();
  try {
    for (const sent of [Buffer.alloc(0), opening.subarray(0, opening.length - 1)]) {
      s.refused.length = 0;
      const c = await client(s.port);
      const started = Date.now();
      c.write(sent);
      await until('the stream to be closed', 3_000, () => c.closed());
      const elapsed = Date.now() - started;
      assert.ok(elapsed >= TIMING.helloTimeoutMs - 20, `closed after ${elapsed} ms`);
      assert.ok(elapsed < TIMING.idleMs, `closed after ${elapsed} ms: the HELLO timeout, not the idle one`);
      const refusal = await refusalOf(c, RefusalCode.INVALID_ARGUMENT, new RegExp(`no HELLO within ${TIMING.helloTimeoutMs} ms`));
      assert.deepEqual(s.refused, [['hello_timeout', c.address, refusal.details]]);
    }
    assert.deepEqual(s.received, []);
  } finally {
    await s.close();
  }
});

test('refused: a stream silent for idleMs after its HELLO (idle); its PINGs keep it open', { timeout: 10_000 }, async () => {
  const s = await start();
  try {
    const c = await client(s.port);
    c.write(opening);
    // PINGs more often than idleMs, for longer than it: the stream stays.
    const pingsUntil = Date.now() + TIMING.idleMs * 2;
    while (Date.now() < pingsUntil) {
      c.write(ping());
      await sleep(TIMING.idleMs / 4);
    }
    await until('the PONGs', 2_000, () => pongs(c) >= 6);
    assert.equal(c.closed(), false);
    assert.deepEqual(s.refused, []);
    // Then silence.
    const silent = Date.now();
    await until('the stream to be closed', 3_000, () => c.closed());
    const elapsed = Date.now() - silent;
    assert.ok(elapsed >= TIMING.idleMs - 20 - TIMING.idleMs / 4, `closed after ${elapsed} ms of silence`);
    const refusal = await refusalOf(c, RefusalCode.UNAVAILABLE, new RegExp(`nothing received for ${TIMING.idleMs} ms`));
    assert.deepEqual(s.refused, [['idle', 'scm2', refusal.details]]);
    assert.deepEqual(s.received, []);
  } finally {
    await s.close();
  }
});

test('admitStream is asked first: its refusal is sent (not the cluster id check\'s, nor our cluster id), and is not reported through onRefused', { timeout: 10_000 }, async () => {
  const asked: Array<[string, string, unknown]> = [];
  const s = await start({
    admitStream: (from: string, connection: StreamConnection) => {
      asked.push([from, connection.getPeer(), connection.getAuthContext()]);
      return from === 'scm2' ? undefined : { code: RefusalCode.PERMISSION_DENIED, details: `${from} may not send Raft messages` };
    },
  });
  try {
    const c = await client(s.port);
    c.write(Buffer.concat([encodeOpening('CID-cluster-b', 'intruder'), ping()]));
    const refusal = await refusalOf(c, RefusalCode.PERMISSION_DENIED, /^intruder may not send Raft messages$/);
    assert.ok(!refusal.details.includes(CLUSTER));
    assert.deepEqual(c.frames.map((f) => f.type), [FrameType.Refusal]);
    assert.deepEqual(asked, [['intruder', c.address, null]]);
    assert.equal(s.refused.length, 0, 'an admitStream refusal is not reported here');

    // An admitted sender of another cluster: the cluster id check follows.
    const other = await client(s.port);
    other.write(encodeOpening('CID-cluster-b', 'scm2'));
    await refusalOf(other, RefusalCode.FAILED_PRECONDITION, /cluster id mismatch/);
    assert.deepEqual(s.refused.map(([reason]) => reason), ['foreign_cluster']);

    // An admitted sender of this cluster is served.
    const ok = await client(s.port);
    ok.write(Buffer.concat([encodeOpening(CLUSTER, 'scm2'), ping(), messages('m')]));
    await until('a PONG', 2_000, () => pongs(ok) === 1);
    await until('the batch', 2_000, () => s.received.length === 1);
    assert.deepEqual(s.received, [['scm2', ['m']]]);
    assert.deepEqual(asked.map(([from]) => from), ['intruder', 'scm2', 'scm2']);
  } finally {
    await s.close();
  }
});

test('onMessages returning a text ends the stream with INVALID_ARGUMENT and that text; the frames after it are not delivered', { timeout: 10_000 }, async () => {
  const s = await start({ onMessages: (_from, texts) => (texts[0] === 'bad' ? 'message 1 does not decode' : undefined) });
  try {
    const c = await client(s.port);
    c.write(Buffer.concat([opening, ping(), messages('good')]));
    await until('the first batch', 2_000, () => s.received.length === 1);
    c.write(Buffer.concat([messages('bad'), messages('after'), ping()]));
    await refusalOf(c, RefusalCode.INVALID_ARGUMENT, /^message 1 does not decode$/);
    assert.deepEqual(s.received, [
      ['scm2', ['good']],
      ['scm2', ['bad']],
    ]);
    assert.equal(pongs(c), 1);
    assert.deepEqual(s.refused, []);
  } finally {
    await s.close();
  }
});

test('onMessages returning a refusal ends the stream with its code and details', { timeout: 10_000 }, async () => {
  const s = await start({ onMessages: (from) => ({ code: RefusalCode.PERMISSION_DENIED, details: `${from} sends as scm3` }) });
  try {
    const c = await client(s.port);
    c.write(Buffer.concat([opening, messages('m1'), messages('m2')]));
    await refusalOf(c, RefusalCode.PERMISSION_DENIED, /^scm2 sends as scm3$/);
    assert.deepEqual(s.received, [['scm2', ['m1']]]);
    assert.deepEqual(s.refused, []);
  } finally {
    await s.close();
  }
});

test('forceShutdown closes every open stream, and a connection injected later is destroyed at once', { timeout: 10_000 }, async () => {
  const s = await start();
  try {
    const a = await client(s.port);
    const b = await client(s.port);
    a.write(Buffer.concat([encodeOpening(CLUSTER, 'scm2'), ping()]));
    b.write(RAFT_STREAM_MAGIC); // not yet past its HELLO
    await until('a PONG', 2_000, () => pongs(a) === 1);
    await until('both streams to be open', 2_000, () => s.server.openStreams === 2);
    s.server.forceShutdown();
    assert.equal(s.server.openStreams, 0);
    await until('both clients to see the close', 2_000, () => a.closed() && b.closed());
    const late = await client(s.port);
    late.write(Buffer.concat([encodeOpening(CLUSTER, 'scm2'), ping()]));
    await until('the late client to see the close', 2_000, () => late.closed());
    assert.deepEqual(late.frames, []);
    assert.equal(s.server.openStreams, 0);
    assert.deepEqual(s.refused, []);
    assert.deepEqual(s.received, []);
  } finally {
    await s.close();
  }
});

test('tryShutdown closes every open stream and calls back', { timeout: 10_000 }, async () => {
  const s = await start();
  try {
    const a = await client(s.port);
    a.write(Buffer.concat([opening, ping()]));
    await until('a PONG', 2_000, () => pongs(a) === 1);
    let called = 0;
    s.server.tryShutdown((err) => {
      assert.equal(err, undefined);
      called++;
    });
    assert.equal(called, 1);
    await until('the client to see the close', 2_000, () => a.closed());
  } finally {
    await s.close();
  }
});

test('a client writing one byte at a time is served: PONGs, its batches delivered', { timeout: 20_000 }, async () => {
  const s = await start();
  try {
    const c = await client(s.port);
    await writeByteByByte(c, Buffer.concat([opening, ping(), messages('one', 'two'), messages('three'), ping()]));
    await until('two PONGs', 2_000, () => pongs(c) === 2);
    await until('both batches', 2_000, () => s.received.length === 2);
    assert.deepEqual(s.received, [
      ['scm2', ['one', 'two']],
      ['scm2', ['three']],
    ]);
    // The bytes did arrive in many pieces.
    assert.ok(s.chunks.length > 10, `read in ${s.chunks.length} chunks`);
    assert.equal(c.closed(), false);
    assert.deepEqual(s.refused, []);
  } finally {
    await s.close();
  }
});

test('a refusal in 1-byte writes: an HTTP/2 preface is refused before its first three bytes are all in, or with them', { timeout: 10_000 }, async () => {
  const s = await start();
  try {
    const c = await client(s.port);
    await writeByteByByte(c, HTTP2_PREFACE.subarray(0, 3));
    await refusalOf(c, RefusalCode.INVALID_ARGUMENT, /Raft stream|HTTP\/2/);
    assert.deepEqual(s.refused.map(([reason]) => reason), ['protocol']);
  } finally {
    await s.close();
  }
});

test('a client that sends PINGs and never reads gets at most one PONG held for it: the node does not buffer the rest', { timeout: 30_000 }, async () => {
  const server = new RaftStreamServer({ clusterId: CLUSTER, timing: TIMING, maxMessageBytes: DEFAULT_RAFT_FRAME_BYTES, onMessages: () => undefined });
  let accepted: Socket | undefined;
  let read = 0;
  const listener = createServer((socket) => {
    accepted = socket;
    socket.on('data', (chunk: Buffer) => (read += chunk.length));
    server.inject(socket);
  });
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', () => resolve()));
  const c = connect({ host: '127.0.0.1', port: (listener.address() as { port: number }).port });
  try {
    await new Promise((resolve) => c.once('connect', resolve));
    c.pause(); // never reads a PONG
    // 24 MB of PONGs would not fit in the sockets' kernel buffers (loopback grows them to a few MB):
    // without the bound, most of them would wait in the server's own write buffer.
    const pings = 24 * 1024 * 1024 / 5;
    const flood = Buffer.concat([opening, Buffer.alloc(pings * 5).fill(ping())]);
    c.write(flood);
    await until('the server to read every PING', 20_000, () => read === flood.length);
    await sleep(100);
    assert.ok(accepted!.writableLength <= 5, `the server holds ${accepted!.writableLength} bytes of PONGs for a client that does not read`);
    assert.equal(server.openStreams, 1, 'the stream itself is not refused');
  } finally {
    c.destroy();
    server.forceShutdown();
    await new Promise<void>((resolve) => listener.close(() => resolve()));
  }
});

test('an exception thrown while a batch is handled ends that stream with INTERNAL and is reported; the server goes on', async () => {
  let calls = 0;
  const s = await start({
    onMessages: () => {
      calls++;
      if (calls === 1) throw new TypeError('a bug the batch ran into');
    },
  });
  try {
    const bad = await client(s.port);
    bad.write(Buffer.concat([opening, messages('x')]));
    await until('the stream to close', 5_000, bad.closed);
    const refusal = bad.frames.find((f) => f.type === FrameType.Refusal);
    assert.ok(refusal !== undefined, 'a REFUSAL came back');
    assert.deepEqual(decodeRefusal(refusal.body), { code: RefusalCode.INTERNAL, details: 'internal error: a bug the batch ran into' });
    assert.deepEqual(s.refused.map(([reason, peer]) => [reason, peer]), [['internal', 'scm2']]);
    const good = await client(s.port);
    good.write(Buffer.concat([opening, messages('y')]));
    await until('the next stream to be served', 5_000, () => s.received.length === 2);
    good.socket.destroy();
  } finally {
    await s.close();
  }
});

test('under TLS: a failed handshake is reported, and one that has not finished by the deadline is closed even when the client keeps sending bytes', { timeout: 30_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'raft-stream-tls-'));
  try {
    const certificates = await ensureLocalCertificates({ dir, serviceId: 'svc', nodeIds: ['scm1'], hosts: () => ['127.0.0.1'] });
    const node = certificates.nodes.get('scm1')!;
    const contextOptions = { ca: await readFile(certificates.ca.cert), cert: await readFile(node.cert), key: await readFile(node.key) };
    const s = await start({ tls: { contextOptions: () => contextOptions, onChange: () => () => undefined, handshakeTimeoutMs: 600 } });
    try {
      // Plaintext bytes where a ClientHello should be.
      const plain = await client(s.port);
      plain.write(opening);
      await until('the plaintext connection to be closed', 5_000, plain.closed);
      await until('the failed handshake to be reported', 5_000, () => s.refused.some(([reason]) => reason === 'tls_handshake'));
      // A ClientHello one byte every 100 ms: Node's own handshake timer would restart at each.
      const trickle = await client(s.port);
      const opened = Date.now();
      const hello = Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, ...Array.from({ length: 200 }, () => 0)]);
      let at = 0;
      const dribble = setInterval(() => {
        if (at < hello.length) trickle.write(hello.subarray(at, ++at));
      }, 100);
      try {
        await until('the trickling handshake to be closed', 5_000, trickle.closed);
      } finally {
        clearInterval(dribble);
        trickle.socket.destroy();
      }
      const took = Date.now() - opened;
      assert.ok(took >= 500 && took < 2_000, `closed ${took} ms after it opened, against a 600 ms deadline`);
      assert.ok(s.refused.some(([reason, , details]) => reason === 'handshake_timeout' && details === 'TLS handshake not finished within 600 ms of the connection'), JSON.stringify(s.refused));
      assert.equal(s.received.length, 0);
    } finally {
      await s.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

/** The bytes every connection's socket has read so far, together. */
const readBytes = (s: Started): number => s.chunks.reduce((a, b) => a + b, 0);

/** Opens an accepted stream from `from` (its PONG back). */
async function acceptedStream(s: Started, from: string): Promise<Client> {
  const c = await client(s.port);
  c.write(Buffer.concat([encodeOpening(CLUSTER, from), ping()]));
  await until(`${from}'s PONG`, 2_000, () => pongs(c) === 1);
  return c;
}

test('frames still arriving on all the streams hold at most the budget: the stream whose frame would pass it is refused (frame_budget); the bytes come back when a frame completes, a stream is refused or closes', { timeout: 20_000 }, async () => {
  // A cap of 256 KiB: a frame over 64 KiB held with all but its last bytes sent has grown to its
  // whole length, so each one held is charged exactly that.
  const maxMessageBytes = 256 * 1024;
  // Streams holding a frame stay past the test's steps.
  const s = await start({ maxMessageBytes, timing: { ...TIMING, idleMs: 10_000 } });
  try {
    const budget = s.server.frameBudgetBytes;
    assert.equal(budget, FRAME_BUDGET_FRAMES * maxMessageBytes);
    // Frames of 80 % of the cap, each held with all but its last 10 bytes sent: as many as fit.
    const full = messages('m'.repeat(Math.floor(0.8 * maxMessageBytes) - 9));
    const fit = Math.floor(budget / full.length);
    assert.ok(fit >= 2 && fit < 8, `${fit} frames fit`);
    const holders: Client[] = [];
    for (let i = 0; i < fit; i++) {
      const c = await acceptedStream(s, `holder${i}`);
      c.write(full.subarray(0, full.length - 10));
      await until(`holder${i}'s frame to be held`, 2_000, () => s.server.frameBytesHeld === (i + 1) * full.length);
      holders.push(c);
    }
    // One more: its frame would take the bytes held past the budget.
    const over = await acceptedStream(s, 'over');
    over.write(full.subarray(0, full.length - 10));
    const refusal = await refusalOf(over, RefusalCode.RESOURCE_EXHAUSTED, new RegExp(`a frame of ${full.length} bytes would take the bytes held by frames still arriving .* past ${budget} \\(${FRAME_BUDGET_FRAMES} times the largest frame a stream may send\\); \\d+ are held now`));
    assert.deepEqual(s.refused, [['frame_budget', 'over', refusal.details]]);
    // Returned as the stream is refused, not once its socket has closed.
    assert.deepEqual(s.heldAtRefusal, [fit * full.length]);
    assert.equal(s.server.frameBytesHeld, fit * full.length, 'the refused frame holds nothing');
    assert.ok(holders.every((c) => !c.closed()), 'the streams holding frames go on');

    // While the budget refuses frames like these, a member's frame of up to 64 KiB that spans reads
    // still arrives, and holds nothing against it (raft-stream-wire.test.ts: such frames are not charged).
    const member = await acceptedStream(s, 'member');
    const small = messages('s'.repeat(20_000));
    member.write(small.subarray(0, 1_000));
    await sleep(20);
    member.write(small.subarray(1_000));
    await until('the member\'s batch', 2_000, () => s.received.some(([from]) => from === 'member'));
    assert.equal(s.server.frameBytesHeld, fit * full.length);

    // A frame completed: delivered, its bytes returned, and the room taken by another stream.
    holders[0]!.write(full.subarray(full.length - 10));
    await until('the completed batch', 2_000, () => s.received.length === 2);
    assert.equal(s.received[1]![1][0]!.length, full.length - 9);
    assert.equal(s.server.frameBytesHeld, (fit - 1) * full.length);
    const again = await acceptedStream(s, 'over');
    again.write(full.subarray(0, full.length - 10));
    await until('its frame to be held', 2_000, () => s.server.frameBytesHeld === fit * full.length);

    // A stream closed mid-frame: its bytes returned.
    holders[1]!.socket.destroy();
    await until('the closed stream\'s bytes to be returned', 2_000, () => s.server.frameBytesHeld === (fit - 1) * full.length);
    // A stream refused (a frame over the cap after the one it completes): nothing left held for it.
    again.write(Buffer.concat([full.subarray(full.length - 10), header(maxMessageBytes + 1, FrameType.Messages)]));
    await until('the refusal', 2_000, () => again.closed());
    assert.equal(s.refused.at(-1)![0], 'frame_too_large');
    assert.equal(s.server.frameBytesHeld, (fit - 2) * full.length);
  } finally {
    await s.close();
  }
  await until('nothing held once every stream is closed', 2_000, () => s.server.frameBytesHeld === 0);
});

test('a frame above 64 KiB grows by doubling as it arrives; one whose growth would pass the budget is refused part-way, and what it held comes back', { timeout: 20_000 }, async () => {
  const maxMessageBytes = 256 * 1024;
  const s = await start({ maxMessageBytes, timing: { ...TIMING, idleMs: 10_000 } });
  try {
    const budget = s.server.frameBudgetBytes;
    const cap = messages('c'.repeat(maxMessageBytes - 5));
    assert.equal(cap.length, maxMessageBytes + 4);
    // Two frames of the cap held, all but their last 2 bytes: each charged its length.
    for (const from of ['a', 'b']) {
      const c = await acceptedStream(s, from);
      const held = s.server.frameBytesHeld;
      const before = readBytes(s);
      c.write(cap.subarray(0, cap.length - 2));
      await until(`${from}'s frame to be read`, 2_000, () => readBytes(s) === before + cap.length - 2);
      assert.equal(s.server.frameBytesHeld - held, cap.length);
    }
    const heldByTwo = s.server.frameBytesHeld;
    assert.ok(budget - heldByTwo < cap.length, 'a third frame of the cap cannot fit whole');
    // A third, sent 10 KB at a time: charged as its buffer grows (never more than twice what
    // arrived, or 64 KiB), refused when the next growth would pass the budget.
    const third = await acceptedStream(s, 'third');
    const charges: number[] = [];
    let sent = 0;
    for (; sent < cap.length - 10 && !third.closed(); sent += 10_000) {
      const before = readBytes(s);
      third.write(cap.subarray(sent, Math.min(sent + 10_000, cap.length - 10)));
      await until('the piece to be read', 2_000, () => readBytes(s) > before || third.closed());
      await sleep(5);
      const charged = s.server.frameBytesHeld - heldByTwo;
      if (third.closed()) break;
      charges.push(charged);
      assert.ok(charged <= Math.max(2 * (sent + 10_000), 64 * 1024) && s.server.frameBytesHeld <= budget, `${charged} charged after ${sent + 10_000} bytes sent`);
    }
    await refusalOf(third, RefusalCode.RESOURCE_EXHAUSTED, new RegExp(`a frame of ${cap.length} bytes would take .* past ${budget}`));
    assert.ok(charges.some((c) => c > 64 * 1024), `the third frame held ${Math.max(...charges)} bytes before its refusal`);
    assert.equal(s.server.frameBytesHeld, heldByTwo, 'the refused frame\'s bytes came back');
    assert.deepEqual(s.refused.map(([reason, peer]) => [reason, peer]), [['frame_budget', 'third']]);
  } finally {
    await s.close();
  }
});

test('a frame not whole within frameMs of its first byte is refused (frame_timeout) though bytes keep coming, and its bytes come back', { timeout: 20_000 }, async () => {
  const frameMs = 500;
  // The quick stream goes quiet once its frame is in, and must outlive the slow one's refusal: an
  // idle time of its own, well past that, so a loaded machine does not close it as idle first.
  const idleMs = 5_000;
  const s = await start({ maxMessageBytes: 1024 * 1024, timing: { ...TIMING, idleMs, frameMs } });
  try {
    const full = messages('x'.repeat(200_000));
    // A frame sent in pieces well within the deadline is taken.
    const quick = await acceptedStream(s, 'quick');
    for (let at = 0; at < full.length; at += 50_000) {
      quick.write(full.subarray(at, at + 50_000));
      await sleep(frameMs / 10);
    }
    await until('the batch sent in pieces', 2_000, () => s.received.length === 1);
    // One whose last bytes trickle, a byte every 100 ms (each refreshing its idle timer).
    const slow = await acceptedStream(s, 'slow');
    const started = Date.now();
    slow.write(full.subarray(0, full.length - 20));
    await until('its frame to be held', 2_000, () => s.server.frameBytesHeld > 0);
    let at = full.length - 20;
    const trickle = setInterval(() => slow.write(full.subarray(at, ++at)), 100);
    try {
      await refusalOf(slow, RefusalCode.UNAVAILABLE, new RegExp(`a frame not received whole within ${frameMs} ms of its first byte`));
    } finally {
      clearInterval(trickle);
    }
    const took = Date.now() - started;
    assert.ok(took >= frameMs - 20 && took < idleMs, `refused ${took} ms after its first byte`);
    assert.deepEqual(s.refused.map(([reason, peer]) => [reason, peer]), [['frame_timeout', 'slow']]);
    assert.equal(s.server.frameBytesHeld, 0);
    assert.equal(s.received.length, 1);
    assert.equal(quick.closed(), false);
  } finally {
    await s.close();
  }
});

test('the largest frames members send flow with the budget: four streams each holding one at once all deliver, and a frame of the whole cap alone', { timeout: 30_000 }, async () => {
  const sizes = raftMessageSizes(256 * 1024);
  const s = await start({ maxMessageBytes: sizes.frameBytes });
  try {
    // The largest frame a link writes (peer-transport.ts): a batch of batchBytes in the smallest
    // Raft messages (10 bytes: a heartbeat response between one-letter ids), each with its length.
    const smallest = encodeRaftMessage({ type: 'heartbeat-response', from: 'a', to: 'b', term: 1, readRound: 0, sentTick: 0 });
    assert.equal(smallest.length, 10);
    const batch = encodeMessages(Array.from({ length: Math.floor(sizes.batchBytes / smallest.length) }, () => smallest));
    assert.ok(batch.length > 0.69 * sizes.frameBytes && batch.length <= sizes.frameBytes, `a frame of ${batch.length} bytes`);
    const senders = ['scm2', 'scm3', 'scm4', 'scm5'];
    const streams = await Promise.all(senders.map((from) => acceptedStream(s, from)));
    const before = readBytes(s);
    for (const c of streams) c.write(batch.subarray(0, batch.length - 10));
    let peak = 0;
    await until('every frame but its last bytes to be read', 10_000, () => {
      peak = Math.max(peak, s.server.frameBytesHeld);
      return readBytes(s) === before + streams.length * (batch.length - 10);
    });
    assert.ok(s.server.frameBytesHeld >= streams.length * (batch.length - 10), `${s.server.frameBytesHeld} bytes held for ${streams.length} frames in progress`);
    assert.ok(peak <= s.server.frameBudgetBytes);
    for (const c of streams) c.write(batch.subarray(batch.length - 10));
    await until('every batch', 10_000, () => s.received.length === streams.length || s.refused.length > 0);
    assert.deepEqual(s.refused, []);
    assert.deepEqual(s.received.map(([from, texts]) => [from, texts.length]).sort(), senders.map((from) => [from, Math.floor(sizes.batchBytes / smallest.length)]));
    assert.equal(s.server.frameBytesHeld, 0);
    // A frame of the whole cap, in pieces.
    const whole = encodeMessages([Buffer.alloc(sizes.frameBytes - 5, 0x62)]);
    for (let at = 0; at < whole.length; at += 10_000) streams[0]!.write(whole.subarray(at, at + 10_000));
    await until('the frame of the cap', 10_000, () => s.received.length === streams.length + 1 || s.refused.length > 0);
    assert.deepEqual(s.refused, []);
    assert.equal(s.server.frameBytesHeld, 0);
  } finally {
    await s.close();
  }
});

test('a stream whose every read completes one frame and begins the next is never late: each frame\'s deadline runs from its own first byte', { timeout: 20_000 }, async () => {
  // The replication of a steady load: frames back to back, each read straddling two of them.
  const frameMs = 300;
  const s = await start({ maxMessageBytes: 1024 * 1024, timing: { ...TIMING, frameMs } });
  try {
    const frame = messages('y'.repeat(2_000));
    const c = await acceptedStream(s, 'member');
    const frames = 20;
    const stream = Buffer.concat(Array.from({ length: frames }, () => frame));
    // Every write ends half-way into the next frame; 60 ms apart, 1.2 s in all: four deadlines.
    const half = Math.floor(frame.length / 2);
    let at = 0;
    for (let k = 0; k < frames; k++) {
      const end = k === frames - 1 ? stream.length : (k + 1) * frame.length + half;
      c.write(stream.subarray(at, end));
      at = end;
      await sleep(60);
    }
    await until('every batch', 3_000, () => s.received.length === frames);
    assert.deepEqual(s.refused, []);
    assert.ok(!c.closed());
  } finally {
    await s.close();
  }
});
