// The client port's gRPC server on node:http2 (src/server/unary-grpc-server.ts): a grpc-js client
// (what our users' clients run) gets what a grpc-js server would give it: answers, statuses with
// their details and trailer metadata, UNIMPLEMENTED, DEADLINE_EXCEEDED, cancels; and a raw
// node:http2 client sends what grpc-js never would and gets a clear status, with no handler run.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { connect as netConnect, type Socket } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { deflateSync, gzipSync } from 'node:zlib';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { ensureLocalCertificates, type LocalTls } from '../../src/cli/local-certificates.js';
import { callIdentity } from '../../src/server/identity.js';
import { TlsMaterial } from '../../src/server/tls.js';
import { mulberry32 } from '../seeded-random.js';
import { INFLATER_OVERHEAD_BYTES, percentEncode, UnaryGrpcServer, type ConnectionRefusal, type UnaryCall, type UnaryGrpcServerOptions, type UnaryRefusal } from '../../src/server/unary-grpc-server.js';
import { DEFAULT_RETRY_AFTER_MS, RETRY_AFTER_METADATA } from '../../src/retry-after.js';

const identity = (b: Buffer): Buffer => b;
const method = (name: string, stream = false): grpc.MethodDefinition<Buffer, Buffer> => ({
  path: `/test.Svc/${name}`,
  requestStream: stream,
  responseStream: false,
  requestSerialize: identity,
  requestDeserialize: identity,
  responseSerialize: identity,
  responseDeserialize: identity,
});
const SERVICE: grpc.ServiceDefinition = { Echo: method('Echo'), Fail: method('Fail'), Slow: method('Slow'), Throw: method('Throw'), Peer: method('Peer') };

const FAIL_DETAILS = 'nicht gefunden: 100% sure, "quoted" \u00e9\u6f22\n';

/** A test server and what its handlers saw. */
class Fixture {
  readonly server: UnaryGrpcServer;
  /** Handler runs, by method name. */
  readonly calls: Record<string, number> = {};
  /** What Echo was handed, as handed (its backing store included). */
  readonly echoed: Buffer[] = [];
  /** Calls of Slow waiting to be answered. */
  readonly held: Array<{ call: UnaryCall; answer: grpc.sendUnaryData<Buffer> }> = [];
  readonly cancelled: UnaryCall[] = [];
  private waiters: Array<() => void> = [];
  port = 0;

  constructor(options: UnaryGrpcServerOptions = {}) {
    this.server = new UnaryGrpcServer(options);
    const count = (name: string): void => {
      this.calls[name] = (this.calls[name] ?? 0) + 1;
    };
    this.server.addService(SERVICE, {
      Echo: (call: UnaryCall<Buffer>, answer: grpc.sendUnaryData<Buffer>) => {
        count('Echo');
        this.echoed.push(call.request);
        const trailer = new grpc.Metadata();
        trailer.set('x-echo-length', String(call.request.length));
        answer(null, call.request, trailer);
      },
      Fail: (_call: UnaryCall<Buffer>, answer: grpc.sendUnaryData<Buffer>) => {
        count('Fail');
        const metadata = new grpc.Metadata();
        metadata.set('x-leader', 'scm2');
        metadata.set('x-blob-bin', Buffer.from([0, 1, 2, 255]));
        answer({ code: grpc.status.FAILED_PRECONDITION, details: FAIL_DETAILS, metadata });
      },
      Slow: (call: UnaryCall<Buffer>, answer: grpc.sendUnaryData<Buffer>) => {
        count('Slow');
        call.once('cancelled', () => this.cancelled.push(call));
        this.held.push({ call, answer });
        for (const w of this.waiters.splice(0)) w();
      },
      Throw: () => {
        count('Throw');
        throw new Error('boom');
      },
      Peer: (call: UnaryCall<Buffer>, answer: grpc.sendUnaryData<Buffer>) => {
        count('Peer');
        const identity = callIdentity(call);
        answer(null, Buffer.from(JSON.stringify({ peer: call.getPeer(), auth: call.getAuthContext().transportSecurityType ?? null, name: identity?.name ?? null })));
      },
    });
  }

  async start(): Promise<this> {
    this.port = await this.server.listen('127.0.0.1', 0);
    return this;
  }

  /** Resolves once `n` Slow calls are held. */
  async holding(n: number): Promise<void> {
    while (this.held.length < n) await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  stop(): Promise<void> {
    return new Promise((resolve) => this.server.tryShutdown(() => resolve()));
  }
}

interface Outcome {
  readonly error: grpc.ServiceError | null;
  readonly value: Buffer | undefined;
  readonly status: grpc.StatusObject;
}

function call(client: grpc.Client, name: string, payload: Buffer, options: grpc.CallOptions = {}, onCall?: (c: grpc.ClientUnaryCall) => void): Promise<Outcome> {
  return new Promise((resolve) => {
    let result: { error: grpc.ServiceError | null; value: Buffer | undefined } | undefined;
    let status: grpc.StatusObject | undefined;
    const done = (): void => {
      if (result !== undefined && status !== undefined) resolve({ ...result, status });
    };
    const c = client.makeUnaryRequest(`/test.Svc/${name}`, identity, identity, payload, new grpc.Metadata(), options, (error, value) => {
      result = { error, value };
      done();
    });
    c.on('status', (s: grpc.StatusObject) => {
      status = s;
      done();
    });
    onCall?.(c);
  });
}

async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
}

let plain: Fixture;
let client: grpc.Client;

before(async () => {
  plain = await new Fixture({ maxReceiveMessageBytes: 1024, maxConcurrentStreams: 4 }).start();
  client = new grpc.Client(`127.0.0.1:${plain.port}`, grpc.credentials.createInsecure());
});
after(async () => {
  client.close();
  await plain.stop();
});

test('a unary call is answered with its message and trailer metadata; the call knows its peer', { timeout: 10_000 }, async () => {
  const payload = Buffer.from('hello, server');
  const out = await call(client, 'Echo', payload);
  assert.equal(out.error, null);
  assert.deepEqual(out.value, payload);
  assert.equal(out.status.code, grpc.status.OK);
  assert.deepEqual(out.status.metadata.get('x-echo-length'), [String(payload.length)]);
  // An empty message is a message too.
  const empty = await call(client, 'Echo', Buffer.alloc(0));
  assert.equal(empty.error, null);
  assert.equal(empty.value?.length, 0);
  const peer = await call(client, 'Peer', Buffer.alloc(0));
  const seen = JSON.parse(String(peer.value)) as { peer: string; auth: string | null };
  assert.match(seen.peer, /^127\.0\.0\.1:\d+$/);
  assert.equal(seen.auth, null, 'no TLS state in plaintext');
});

test('an error reaches the client with its code, details and metadata, -bin values included', { timeout: 10_000 }, async () => {
  const out = await call(client, 'Fail', Buffer.from('x'));
  assert.equal(out.error?.code, grpc.status.FAILED_PRECONDITION);
  assert.equal(out.error?.details, FAIL_DETAILS);
  assert.deepEqual(out.error?.metadata.get('x-leader'), ['scm2']);
  assert.deepEqual(out.error?.metadata.get('x-blob-bin'), [Buffer.from([0, 1, 2, 255])]);
  assert.equal(percentEncode('plain text: ok'), 'plain text: ok');
  assert.equal(percentEncode('100% \u00e9\n'), '100%25 %C3%A9%0A');
});

test('a message over the receive limit is RESOURCE_EXHAUSTED for a grpc-js client; one of many frames is read whole', { timeout: 10_000 }, async () => {
  const before = plain.calls['Echo'];
  const big = await call(client, 'Echo', Buffer.alloc(64 * 1024, 7));
  assert.equal(big.error?.code, grpc.status.RESOURCE_EXHAUSTED);
  assert.equal(big.error?.details, `Received message larger than max (${64 * 1024} vs 1024)`);
  assert.equal(plain.calls['Echo'], before, 'no handler ran');
  // The default limit (4 MiB): a 1 MiB message crosses many HTTP/2 frames.
  const f = await new Fixture().start();
  const c = new grpc.Client(`127.0.0.1:${f.port}`, grpc.credentials.createInsecure());
  const payload = Buffer.from(Array.from({ length: 1024 * 1024 }, (_, i) => i % 253));
  const out = await call(c, 'Echo', payload);
  assert.equal(out.error, null);
  assert.ok(out.value?.equals(payload));
  c.close();
  await f.stop();
});

test('an unknown method is UNIMPLEMENTED; a streaming method cannot be added', { timeout: 10_000 }, async () => {
  const out = await call(client, 'Nope', Buffer.from('x'));
  assert.equal(out.error?.code, grpc.status.UNIMPLEMENTED);
  assert.equal(out.error?.details, 'The server does not implement the method /test.Svc/Nope');
  const server = new UnaryGrpcServer();
  assert.throws(() => server.addService({ Up: method('Up', true) }, { Up: () => {} }), /\/test\.Svc\/Up is a streaming method/);
  assert.throws(() => server.addService({ Echo: method('Echo') }, {}), /no handler for \/test\.Svc\/Echo/);
});

test('a deadline that passes: DEADLINE_EXCEEDED for the client, cancelled on the server, the late answer dropped', { timeout: 10_000 }, async () => {
  const before = plain.held.length;
  const out = await call(client, 'Slow', Buffer.from('late'), { deadline: Date.now() + 150 });
  assert.equal(out.error?.code, grpc.status.DEADLINE_EXCEEDED);
  const held = plain.held[before];
  assert.ok(held !== undefined);
  // The client gave up at its deadline; the server's own timer (or the client's reset) follows.
  await until(() => plain.cancelled.includes(held.call));
  assert.ok(held.call.cancelled);
  assert.ok(plain.cancelled.includes(held.call), "the call emitted 'cancelled'");
  held.answer(null, Buffer.from('too late'));
  held.answer({ code: grpc.status.INTERNAL, details: 'also too late' });
  // The server goes on.
  const after = await call(client, 'Echo', Buffer.from('after'));
  assert.equal(after.error, null);
});

test('a client cancel: cancelled on the server, the late answer dropped', { timeout: 10_000 }, async () => {
  const before = plain.held.length;
  let clientCall: grpc.ClientUnaryCall | undefined;
  const pending = call(client, 'Slow', Buffer.from('cancel me'), {}, (c) => (clientCall = c));
  await plain.holding(before + 1);
  clientCall?.cancel();
  const out = await pending;
  assert.equal(out.error?.code, grpc.status.CANCELLED);
  const held = plain.held[before]!;
  await until(() => plain.cancelled.includes(held.call));
  assert.ok(plain.cancelled.includes(held.call), "the call emitted 'cancelled'");
  held.answer(null, Buffer.from('nobody listens'));
  assert.equal((await call(client, 'Echo', Buffer.from('after'))).error, null);
});

test('a handler that throws is UNKNOWN, as grpc-js answers it, and the server goes on', { timeout: 10_000 }, async () => {
  const out = await call(client, 'Throw', Buffer.from('x'));
  assert.equal(out.error?.code, grpc.status.UNKNOWN);
  assert.equal(out.error?.details, 'Unknown error');
  assert.equal((await call(client, 'Echo', Buffer.from('after'))).error, null);
});

// ---- a raw HTTP/2 client: what grpc-js would never send ----

interface RawAnswer {
  readonly headers: http2.IncomingHttpHeaders;
  readonly trailers: http2.IncomingHttpHeaders;
  readonly body: Buffer;
  readonly rstCode: number;
  /** Whether the request's side was still open when the answer came (the server did not wait for it). */
  readonly requestOpen: boolean;
}

function grpcHeaders(path = '/test.Svc/Echo', extra: http2.OutgoingHttpHeaders = {}): http2.OutgoingHttpHeaders {
  return { ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...extra };
}

function frame(message: Buffer, flag = 0): Buffer {
  const prefix = Buffer.alloc(5);
  prefix[0] = flag;
  prefix.writeUInt32BE(message.length, 1);
  return Buffer.concat([prefix, message]);
}

/** Sends `headers` and `body` (ending the request unless `end` is false) and collects the answer. */
function raw(port: number, headers: http2.OutgoingHttpHeaders, body: Buffer | undefined, end = true): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', reject);
    const stream = session.request(headers, { endStream: body === undefined && end });
    let responseHeaders: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    let requestOpen = false;
    const chunks: Buffer[] = [];
    stream.on('response', (h) => {
      responseHeaders = h;
      requestOpen = !stream.writableEnded;
    });
    stream.on('trailers', (t) => (trailers = t));
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('error', () => {});
    stream.on('close', () => {
      session.close();
      resolve({ headers: responseHeaders, trailers, body: Buffer.concat(chunks), rstCode: stream.rstCode ?? 0, requestOpen });
    });
    if (body !== undefined) {
      if (end) stream.end(body);
      else stream.write(body);
    }
  });
}

const statusOf = (a: RawAnswer): number => Number(a.trailers['grpc-status'] ?? a.headers['grpc-status']);
const messageOf = (a: RawAnswer): string => decodeURIComponent(String(a.trailers['grpc-message'] ?? a.headers['grpc-message']));
const retryHintOf = (a: RawAnswer): string | undefined => {
  const hint = a.trailers[RETRY_AFTER_METADATA] ?? a.headers[RETRY_AFTER_METADATA];
  return hint === undefined ? undefined : String(hint);
};

test('raw: a well-formed request is answered as the spec says', { timeout: 10_000 }, async () => {
  const a = await raw(plain.port, grpcHeaders(), frame(Buffer.from('abc')));
  assert.equal(a.headers[':status'], 200);
  assert.equal(a.headers['content-type'], 'application/grpc+proto');
  assert.deepEqual(a.body, frame(Buffer.from('abc')));
  assert.equal(a.trailers['grpc-status'], '0');
  assert.equal(a.trailers['grpc-message'], 'OK');
  assert.equal(a.trailers['x-echo-length'], '3');
});

test('raw: a message in pieces (the prefix split, the body over several frames) is read whole', { timeout: 10_000 }, async () => {
  const message = Buffer.from(Array.from({ length: 1000 }, (_, i) => i % 251));
  const framed = frame(message);
  const session = http2.connect(`http://127.0.0.1:${plain.port}`);
  session.on('error', () => {});
  const stream = session.request(grpcHeaders());
  const chunks: Buffer[] = [];
  let trailers: http2.IncomingHttpHeaders = {};
  stream.on('data', (c: Buffer) => chunks.push(c));
  stream.on('trailers', (t) => (trailers = t));
  const closed = new Promise((resolve) => stream.on('close', resolve));
  for (const [from, to] of [[0, 2], [2, 5], [5, 6], [6, 400], [400, 1005]] as const) {
    stream.write(framed.subarray(from, to));
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  stream.end();
  await closed;
  session.close();
  assert.equal(trailers['grpc-status'], '0');
  assert.deepEqual(Buffer.concat(chunks), framed);
});

test('raw: not POST is 405, another content-type 415, and no handler runs', { timeout: 10_000 }, async () => {
  const before = plain.calls['Echo'];
  const get = await raw(plain.port, { ':method': 'GET', ':path': '/test.Svc/Echo', 'content-type': 'application/grpc' }, undefined);
  assert.equal(get.headers[':status'], 405);
  assert.equal(get.headers['allow'], 'POST');
  const json = await raw(plain.port, grpcHeaders('/test.Svc/Echo', { 'content-type': 'application/json' }), frame(Buffer.from('x')));
  assert.equal(json.headers[':status'], 415);
  const none = await raw(plain.port, { ':method': 'POST', ':path': '/test.Svc/Echo' }, frame(Buffer.from('x')));
  assert.equal(none.headers[':status'], 415);
  // Content types of the application/grpc family are all gRPC.
  const proto = await raw(plain.port, grpcHeaders('/test.Svc/Echo', { 'content-type': 'application/grpc+proto' }), frame(Buffer.from('x')));
  assert.equal(statusOf(proto), grpc.status.OK);
  assert.equal(plain.calls['Echo'], (before ?? 0) + 1);
});

test('raw: compression as grpc-js: gzip and deflate inflated, never past the limit; other encodings and flags refused', { timeout: 10_000 }, async () => {
  const before = plain.calls['Echo'] ?? 0;
  const text = Buffer.from('compressed request '.repeat(20));
  for (const [encoding, squeeze] of [['gzip', gzipSync], ['deflate', deflateSync]] as const) {
    const a = await raw(plain.port, grpcHeaders('/test.Svc/Echo', { 'grpc-encoding': encoding }), frame(squeeze(text), 1));
    assert.equal(statusOf(a), grpc.status.OK, `${encoding}: ${messageOf(a)}`);
    assert.deepEqual(a.body, frame(text), `${encoding}: the handler got the inflated bytes (the answer is not compressed)`);
    assert.equal(a.headers['grpc-accept-encoding'], 'identity,deflate,gzip');
    // An uncompressed message is read whatever grpc-encoding says.
    const plainFlag = await raw(plain.port, grpcHeaders('/test.Svc/Echo', { 'grpc-encoding': encoding }), frame(Buffer.from('x')));
    assert.equal(statusOf(plainFlag), grpc.status.OK);
  }
  const unknownButUncompressed = await raw(plain.port, grpcHeaders('/test.Svc/Echo', { 'grpc-encoding': 'br' }), frame(Buffer.from('x')));
  assert.equal(statusOf(unknownButUncompressed), grpc.status.OK);
  const served = before + 5;
  assert.equal(plain.calls['Echo'], served);

  // A small message that inflates past the receive limit (1024 here): refused, the handler not run.
  const bomb = await raw(plain.port, grpcHeaders('/test.Svc/Echo', { 'grpc-encoding': 'gzip' }), frame(gzipSync(Buffer.alloc(1_000_000)), 1));
  assert.equal(statusOf(bomb), grpc.status.RESOURCE_EXHAUSTED);
  assert.equal(messageOf(bomb), 'Received message that decompresses to a size larger than 1024');
  const atLimit = await raw(plain.port, grpcHeaders('/test.Svc/Echo', { 'grpc-encoding': 'gzip' }), frame(gzipSync(Buffer.alloc(1024, 7)), 1));
  assert.equal(statusOf(atLimit), grpc.status.OK);
  const garbage = await raw(plain.port, grpcHeaders('/test.Svc/Echo', { 'grpc-encoding': 'gzip' }), frame(Buffer.from('not gzip at all'), 1));
  assert.equal(statusOf(garbage), grpc.status.INTERNAL);
  assert.match(messageOf(garbage), /does not inflate \(gzip\)/);
  const brotli = await raw(plain.port, grpcHeaders('/test.Svc/Echo', { 'grpc-encoding': 'br' }), frame(Buffer.from('x'), 1));
  assert.equal(statusOf(brotli), grpc.status.UNIMPLEMENTED);
  assert.equal(messageOf(brotli), 'Received message compressed with unsupported encoding "br"');
  for (const name of ['constructor', 'toString', '__proto__']) {
    const property = await raw(plain.port, grpcHeaders('/test.Svc/Echo', { 'grpc-encoding': name }), frame(Buffer.from('x'), 1));
    assert.equal(statusOf(property), grpc.status.UNIMPLEMENTED, `grpc-encoding ${name}`);
  }
  const flagged = await raw(plain.port, grpcHeaders(), frame(Buffer.from('x'), 1));
  assert.equal(statusOf(flagged), grpc.status.INTERNAL);
  assert.match(messageOf(flagged), /compressed message but "grpc-encoding" is absent/);
  const flaggedIdentity = await raw(plain.port, grpcHeaders('/test.Svc/Echo', { 'grpc-encoding': 'identity' }), frame(Buffer.from('x'), 1));
  assert.equal(statusOf(flaggedIdentity), grpc.status.INTERNAL);
  const strange = await raw(plain.port, grpcHeaders(), frame(Buffer.from('x'), 7));
  assert.equal(statusOf(strange), grpc.status.INTERNAL);
  assert.equal(plain.calls['Echo'], served + 1, 'only the message at the limit reached the handler');
});

test('a grpc-js client that compresses (gzip, deflate) is served on every call', { timeout: 10_000 }, async () => {
  for (const algorithm of [1, 2]) {
    const client = new grpc.Client(`127.0.0.1:${plain.port}`, grpc.credentials.createInsecure(), { 'grpc.default_compression_algorithm': algorithm });
    try {
      for (let i = 0; i < 3; i++) {
        const payload = Buffer.alloc(600, 97 + i);
        const outcome = await call(client, 'Echo', payload);
        assert.equal(outcome.error, null, `algorithm ${algorithm}, call ${i + 1}: ${outcome.error?.details ?? ''}`);
        assert.deepEqual(outcome.value, payload);
      }
    } finally {
      client.close();
    }
  }
});

test('raw: a length prefix over the limit is RESOURCE_EXHAUSTED at once, without reading the rest', { timeout: 10_000 }, async () => {
  const before = plain.calls['Echo'];
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(100 * 1024 * 1024, 1);
  // The request never ends: the answer must not wait for it.
  const a = await raw(plain.port, grpcHeaders(), Buffer.concat([prefix, Buffer.alloc(100)]), false);
  assert.equal(statusOf(a), grpc.status.RESOURCE_EXHAUSTED);
  assert.equal(messageOf(a), 'Received message larger than max (104857600 vs 1024)');
  assert.ok(a.requestOpen, 'answered while the request was still open');
  // At the limit is fine.
  const atLimit = await raw(plain.port, grpcHeaders(), frame(Buffer.alloc(1024, 1)));
  assert.equal(statusOf(atLimit), grpc.status.OK);
  assert.equal(plain.calls['Echo'], (before ?? 0) + 1);
});

test('raw: not exactly one message is UNIMPLEMENTED (two, none, a truncated prefix, bytes after the message)', { timeout: 10_000 }, async () => {
  const before = plain.calls['Echo'];
  const two = await raw(plain.port, grpcHeaders(), Buffer.concat([frame(Buffer.from('one')), frame(Buffer.from('two'))]));
  assert.equal(statusOf(two), grpc.status.UNIMPLEMENTED);
  assert.match(messageOf(two), /second request message/);
  const none = await raw(plain.port, grpcHeaders(), undefined);
  assert.equal(statusOf(none), grpc.status.UNIMPLEMENTED);
  assert.match(messageOf(none), /no request message/);
  const truncated = await raw(plain.port, grpcHeaders(), Buffer.from([0, 0, 0]));
  assert.equal(statusOf(truncated), grpc.status.UNIMPLEMENTED);
  assert.match(messageOf(truncated), /no request message .*3 bytes of an incomplete one/);
  const short = await raw(plain.port, grpcHeaders(), frame(Buffer.from('abcdef')).subarray(0, 8));
  assert.equal(statusOf(short), grpc.status.UNIMPLEMENTED);
  const trailing = await raw(plain.port, grpcHeaders(), Buffer.concat([frame(Buffer.from('one')), Buffer.from([0, 0])]));
  assert.equal(statusOf(trailing), grpc.status.UNIMPLEMENTED);
  assert.equal(plain.calls['Echo'], before);
});

test('raw: a malformed grpc-timeout is INTERNAL; a valid one in every unit is taken', { timeout: 10_000 }, async () => {
  const before = plain.calls['Echo'];
  for (const bad of ['1x', '123456789S', '-1S', 'S', '1 S', '1.5S']) {
    const a = await raw(plain.port, grpcHeaders('/test.Svc/Echo', { 'grpc-timeout': bad }), frame(Buffer.from('x')));
    assert.equal(statusOf(a), grpc.status.INTERNAL, bad);
    assert.equal(messageOf(a), `Invalid grpc-timeout value "${bad}"`);
  }
  assert.equal(plain.calls['Echo'], before);
  for (const good of ['1H', '1M', '10S', '5000m', '99999999u', '99999999n']) {
    const a = await raw(plain.port, grpcHeaders('/test.Svc/Echo', { 'grpc-timeout': good }), frame(Buffer.from('x')));
    assert.equal(statusOf(a), grpc.status.OK, good);
  }
  // 1 ns has passed by the time the request is read.
  const expired = await raw(plain.port, grpcHeaders('/test.Svc/Slow', { 'grpc-timeout': '1n' }), frame(Buffer.from('x')));
  assert.equal(statusOf(expired), grpc.status.DEADLINE_EXCEEDED);
});

test('raw: grpc-timeout is read in its unit: the call expires when it says, not before', { timeout: 20_000 }, async () => {
  const f = await new Fixture().start();
  try {
    // Each in its own unit (nanoseconds: 8 digits at most, so 100 ms): DEADLINE_EXCEEDED after that long.
    for (const [value, ms] of [['300m', 300], ['300000u', 300], ['99999999n', 100]] as const) {
      const started = Date.now();
      const a = await raw(f.port, grpcHeaders('/test.Svc/Slow', { 'grpc-timeout': value }), frame(Buffer.from('x')));
      const elapsed = Date.now() - started;
      assert.equal(statusOf(a), grpc.status.DEADLINE_EXCEEDED, value);
      assert.ok(elapsed >= ms - 10 && elapsed < ms + 1_500, `${value} expired after ${elapsed} ms`);
    }
    const started = Date.now();
    const second = await raw(f.port, grpcHeaders('/test.Svc/Slow', { 'grpc-timeout': '1S' }), frame(Buffer.from('x')));
    assert.equal(statusOf(second), grpc.status.DEADLINE_EXCEEDED);
    assert.ok(Date.now() - started >= 990, '1S is a second');
    // Minutes and hours do not expire in the time a test runs: the handler's answer goes out.
    const held = f.held.length;
    const long = ['1M', '1H'].map((value) => raw(f.port, grpcHeaders('/test.Svc/Slow', { 'grpc-timeout': value }), frame(Buffer.from('x'))));
    await f.holding(held + 2);
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    for (const { answer } of f.held.slice(held)) answer(null, Buffer.from('late but in time'));
    for (const a of await Promise.all(long)) assert.equal(statusOf(a), grpc.status.OK);
  } finally {
    await f.stop();
  }
});

test('raw: streams beyond maxConcurrentStreams wait for a slot; at most that many calls run at once', { timeout: 10_000 }, async () => {
  const session = http2.connect(`http://127.0.0.1:${plain.port}`);
  session.on('error', () => {});
  await new Promise<void>((resolve) => session.once('remoteSettings', () => resolve()));
  assert.equal(session.remoteSettings.maxConcurrentStreams, 4);
  const base = plain.held.length;
  const answers = Array.from({ length: 12 }, () =>
    new Promise<string>((resolve) => {
      const s = session.request(grpcHeaders('/test.Svc/Slow'));
      let trailers: http2.IncomingHttpHeaders = {};
      s.on('trailers', (t) => (trailers = t));
      s.on('response', (h) => {
        if (h['grpc-status'] !== undefined) trailers = h;
      });
      s.on('data', () => {});
      s.on('error', () => {});
      s.on('close', () => resolve(String(trailers['grpc-status'])));
      s.end(frame(Buffer.from('x')));
    }),
  );
  await plain.holding(base + 4);
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(plain.held.length, base + 4, 'no more than 4 calls run at once');
  // Release calls as they come: every stream gets its turn.
  let released = base;
  while (released < base + 12) {
    await plain.holding(released + 1);
    const h = plain.held[released++]!;
    h.answer(null, Buffer.from('ok'));
  }
  assert.deepEqual(await Promise.all(answers), Array(12).fill('0'));
  session.close();
});

test('shutdown lets a call in progress finish, then closes; force cancels', { timeout: 10_000 }, async () => {
  const f = await new Fixture().start();
  const c = new grpc.Client(`127.0.0.1:${f.port}`, grpc.credentials.createInsecure());
  const pending = call(c, 'Slow', Buffer.from('x'));
  await f.holding(1);
  let closed = false;
  const shut = new Promise<void>((resolve) => f.server.tryShutdown(() => ((closed = true), resolve())));
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(closed, false, 'waits for the call in progress');
  f.held[0]!.answer(null, Buffer.from('finished'));
  assert.deepEqual((await pending).value, Buffer.from('finished'));
  await shut;
  c.close();

  const g = await new Fixture().start();
  const d = new grpc.Client(`127.0.0.1:${g.port}`, grpc.credentials.createInsecure());
  const cut = call(d, 'Slow', Buffer.from('x'));
  await g.holding(1);
  g.server.forceShutdown();
  assert.equal((await cut).error?.code, grpc.status.UNAVAILABLE);
  await new Promise((resolve) => setImmediate(resolve));
  assert.ok(g.held[0]!.call.cancelled);
  d.close();
});

// ---- mutual TLS ----

let dir: string;
let tls: LocalTls;

test('mutual TLS: a client of the CA is served and seen by its certificate; one without a certificate is refused', { timeout: 10_000 }, async (t) => {
  dir = await mkdtemp(join(tmpdir(), 'scm-unary-tls-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  tls = await ensureLocalCertificates({ dir, serviceId: 'svc', nodeIds: ['scm1'], hosts: () => ['127.0.0.1', 'localhost'] });
  const material = TlsMaterial.load({ caFile: tls.ca.cert, certFile: tls.nodes.get('scm1')!.cert, keyFile: tls.nodes.get('scm1')!.key }, { kind: 'node', serviceId: 'svc', nodeId: 'scm1', host: '127.0.0.1' });
  const f = await new Fixture({ tls: { contextOptions: () => material.secureContextOptions(), onChange: (l) => material.onReload(l) } }).start();
  t.after(() => f.stop());
  const clientMaterial = TlsMaterial.load({ caFile: tls.ca.cert, certFile: tls.client.cert, keyFile: tls.client.key }, { kind: 'client' });
  const channel = clientMaterial.channel(`127.0.0.1:${f.port}`, { serviceId: 'svc', nodeId: 'scm1' });
  const good = new grpc.Client(`127.0.0.1:${f.port}`, channel.credentials, channel.options);
  const out = await call(good, 'Peer', Buffer.alloc(0));
  assert.equal(out.error, null);
  const seen = JSON.parse(String(out.value)) as { auth: string; name: string };
  assert.equal(seen.auth, 'ssl');
  assert.equal(seen.name, 'client');
  good.close();

  const { readFile } = await import('node:fs/promises');
  const anonymous = new grpc.Client(`127.0.0.1:${f.port}`, grpc.credentials.createSsl(await readFile(tls.ca.cert), null, null, { checkServerIdentity: () => undefined }), {
    'grpc.ssl_target_name_override': 'localhost',
  });
  const refused = await call(anonymous, 'Peer', Buffer.alloc(0), { deadline: Date.now() + 5_000 });
  assert.equal(refused.error?.code, grpc.status.UNAVAILABLE);
  anonymous.close();
  const plaintext = new grpc.Client(`127.0.0.1:${f.port}`, grpc.credentials.createInsecure());
  assert.equal((await call(plaintext, 'Peer', Buffer.alloc(0), { deadline: Date.now() + 5_000 })).error?.code, grpc.status.UNAVAILABLE);
  plaintext.close();
  assert.equal(f.calls['Peer'], 1);
});

test('shutdown: a connection that never sends the HTTP/2 preface does not hold a forced shutdown open', { timeout: 10_000 }, async () => {
  const f = await new Fixture().start();
  const { connect } = await import('node:net');
  const idle = connect(f.port, '127.0.0.1');
  idle.on('error', () => {});
  // It never reads either, so it never answers the server's FIN with its own: the connection
  // does not close by itself, which is what held server.close() (and with it tryShutdown) open.
  await new Promise((resolve) => idle.once('connect', resolve));
  try {
    let done = false;
    const shut = new Promise<void>((resolve) => f.server.tryShutdown(() => ((done = true), resolve())));
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(done, false, 'a graceful shutdown waits for the connection');
    f.server.forceShutdown();
    await Promise.race([shut, new Promise((_, reject) => setTimeout(() => reject(new Error('tryShutdown never called back after forceShutdown')), 2_000))]);
  } finally {
    idle.destroy();
  }
});

test('answers that cannot be written as given are still answered: a Uint8Array answer, an error with a bad metadata, a serializer that fails', { timeout: 10_000 }, async () => {
  const bytes = (name: string, serialize: (v: unknown) => Buffer): grpc.MethodDefinition<Buffer, unknown> => ({
    path: `/test.Odd/${name}`,
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: serialize,
    responseDeserialize: identity,
  });
  const server = new UnaryGrpcServer();
  server.addService(
    {
      View: bytes('View', (v) => v as Buffer),
      BadMeta: bytes('BadMeta', (v) => v as Buffer),
      NoBytes: bytes('NoBytes', () => 'not bytes' as unknown as Buffer),
    },
    {
      View: (_call: UnaryCall, answer: grpc.sendUnaryData<unknown>) => answer(null, new Uint8Array([1, 2, 3])),
      BadMeta: (_call: UnaryCall, answer: grpc.sendUnaryData<unknown>) => answer({ code: grpc.status.NOT_FOUND, details: 'gone', metadata: {} as grpc.Metadata }),
      NoBytes: (_call: UnaryCall, answer: grpc.sendUnaryData<unknown>) => answer(null, {}),
    },
  );
  const port = await server.listen('127.0.0.1', 0);
  try {
    const view = await raw(port, grpcHeaders('/test.Odd/View'), frame(Buffer.from('x')));
    assert.equal(statusOf(view), grpc.status.OK);
    assert.deepEqual(view.body, frame(Buffer.from([1, 2, 3])));
    const badMeta = await raw(port, grpcHeaders('/test.Odd/BadMeta'), frame(Buffer.from('x')));
    assert.equal(statusOf(badMeta), grpc.status.NOT_FOUND);
    assert.equal(messageOf(badMeta), 'gone');
    const noBytes = await raw(port, grpcHeaders('/test.Odd/NoBytes'), frame(Buffer.from('x')));
    assert.equal(statusOf(noBytes), grpc.status.INTERNAL);
    assert.equal(messageOf(noBytes), 'Error serializing response');
  } finally {
    server.forceShutdown();
  }
});

// ---- the server-wide budget on request bytes held before a handler runs ----

/** A call whose answer is collected as it comes; `answered` says whether it has come. */
interface OpenCall {
  readonly stream: http2.ClientHttp2Stream;
  readonly done: Promise<RawAnswer>;
  answered: boolean;
}

function open(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, body: Buffer): OpenCall {
  const stream = session.request(headers);
  let responseHeaders: http2.IncomingHttpHeaders = {};
  let trailers: http2.IncomingHttpHeaders = {};
  let requestOpen = false;
  const chunks: Buffer[] = [];
  const c: OpenCall = {
    stream,
    answered: false,
    done: new Promise((resolve) => {
      stream.on('close', () => resolve({ headers: responseHeaders, trailers, body: Buffer.concat(chunks), rstCode: stream.rstCode ?? 0, requestOpen }));
    }),
  };
  stream.on('response', (h) => {
    responseHeaders = h;
    requestOpen = !stream.writableEnded;
    c.answered = true;
  });
  stream.on('trailers', (t) => (trailers = t));
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  stream.on('error', () => {});
  stream.write(body);
  return c;
}

/** Resolves once the server has read everything sent on `session` so far (client and server share this process). */
function settled(session: http2.ClientHttp2Session): Promise<void> {
  return new Promise((resolve, reject) => session.ping((err) => (err === null ? resolve() : reject(err))));
}

/** Session options that connect from the loopback address `from` (any of 127.0.0.0/8). */
function fromAddress(port: number, from: string): http2.ClientSessionOptions {
  return { createConnection: () => netConnect({ host: '127.0.0.1', port, localAddress: from }) };
}

/**
 * A session to the server on `port`, once its settings are exchanged (a ping before that is
 * cancelled); from the loopback address `from` (any of 127.0.0.0/8) when given.
 */
async function connect(port: number, from?: string): Promise<http2.ClientHttp2Session> {
  const session = http2.connect(`http://127.0.0.1:${port}`, from !== undefined ? fromAddress(port, from) : {});
  session.on('error', () => {});
  await new Promise((resolve) => session.once('remoteSettings', resolve));
  return session;
}

/** A length prefix announcing `length` bytes, and `sent` of them. */
function partial(length: number, sent: number): Buffer {
  return frame(Buffer.alloc(length, 3)).subarray(0, 5 + sent);
}

/** Runs `body` with a started Fixture and one connection to it, both closed after. */
async function withSession(options: UnaryGrpcServerOptions, body: (f: Fixture, session: http2.ClientHttp2Session) => Promise<void>): Promise<void> {
  const f = await new Fixture(options).start();
  const session = await connect(f.port);
  try {
    await body(f, session);
  } finally {
    session.destroy();
    await f.stop();
  }
}

/** The smallest budget for a receive limit: the worst single call (request-limits.ts). */
const minBudget = (maxReceive: number): number => 2 * maxReceive + INFLATER_OVERHEAD_BYTES;

test('raw: request bytes of unfinished calls are bounded server-wide: the call that would go over is RESOURCE_EXHAUSTED naming the budget, and not read', { timeout: 10_000 }, async () => {
  const refusals: unknown[] = [];
  // 40 KiB messages: each one started holds 40 KiB (its whole length at once); the budget holds
  // four and 1 KiB (each connection's share, the worst single call, holds two).
  const max = 40 * 1024;
  const budget = minBudget(max) + 1024;
  const f = await new Fixture({ maxReceiveMessageBytes: max, requestBufferBytes: budget, onRefused: (r) => refusals.push(r) }).start();
  const sessions = [await connect(f.port), await connect(f.port)];
  try {
    // Four calls over two connections, each 1000 bytes of a 40 KiB message that never ends.
    const held: OpenCall[] = [];
    for (let i = 0; i < 4; i++) {
      const session = sessions[i % 2]!;
      held.push(open(session, grpcHeaders(), partial(max, 1000)));
      await settled(session);
    }
    // A fifth would take it past the budget: refused at once, while its request is still open.
    const over = open(sessions[1]!, grpcHeaders(), partial(max, 1000));
    await settled(sessions[1]!);
    // (The PING's acknowledgement may overtake the answer: nghttp2 sends it first.)
    await until(() => over.answered);
    assert.ok(over.answered, 'the call over the budget was answered at once (before: it was read and held)');
    assert.equal(f.server.requestBytesHeld, 4 * max);
    const a = await over.done;
    assert.equal(statusOf(a), grpc.status.RESOURCE_EXHAUSTED);
    assert.equal(messageOf(a), `Request buffer full: /test.Svc/Echo would take the bytes held for requests not yet handed to their handler past ${budget} (ozone.scm.client.request.buffer.size); retry later`);
    assert.equal(retryHintOf(a), String(DEFAULT_RETRY_AFTER_MS), 'with the retry hint the TypeScript client honours');
    assert.ok(a.requestOpen, 'answered while the request was still open');
    assert.equal(a.rstCode, http2.constants.NGHTTP2_NO_ERROR);
    assert.equal(f.server.requestBytesHeld, 4 * max, 'the refused call holds nothing');
    assert.equal(refusals.length, 1);
    assert.deepEqual(refusals[0], { reason: 'request_buffer', method: '/test.Svc/Echo', peer: (refusals[0] as { peer: string }).peer, details: messageOf(a), first: true });
    assert.ok(held.every((c) => !c.answered), 'the calls within the budget are still being read');
    // A small call that fits is served meanwhile (and holds nothing after).
    const small = open(sessions[0]!, grpcHeaders(), frame(Buffer.from('fits')));
    small.stream.end();
    assert.equal(statusOf(await small.done), grpc.status.OK);
    // Finishing one: the handler runs, its bytes are released.
    held[0]!.stream.end(Buffer.alloc(max - 1000, 3));
    assert.equal(statusOf(await held[0]!.done), grpc.status.OK);
    assert.equal(f.server.requestBytesHeld, 3 * max);
    for (const c of held.slice(1)) c.stream.close(http2.constants.NGHTTP2_CANCEL);
    await Promise.all(held.map((c) => c.done));
    await until(() => f.server.requestBytesHeld === 0);
    assert.equal(f.server.requestBytesHeld, 0);
  } finally {
    for (const s of sessions) s.destroy();
    await f.stop();
  }
});

test('raw: the request budget is released on every path a call ends by', { timeout: 10_000 }, async () => {
  const refusals: Array<{ first: boolean }> = [];
  const f = await new Fixture({ maxReceiveMessageBytes: 1024, requestBufferBytes: minBudget(1024), onRefused: (r) => refusals.push(r) }).start();
  const session = await connect(f.port);
  const zero = async (what: string): Promise<void> => {
    await until(() => f.server.requestBytesHeld === 0);
    assert.equal(f.server.requestBytesHeld, 0, what);
  };
  try {
    // Complete, in pieces (the prefix split, the body over frames).
    const pieces = open(session, grpcHeaders(), partial(1000, 0).subarray(0, 2));
    await settled(session);
    assert.equal(f.server.requestBytesHeld, 2);
    pieces.stream.write(frame(Buffer.alloc(1000, 3)).subarray(2, 600));
    await settled(session);
    assert.equal(f.server.requestBytesHeld, 1000, 'the prefix is read: a buffer of the whole message (1000 bytes, under 64 KiB) is allocated, and charged');
    pieces.stream.end(frame(Buffer.alloc(1000, 3)).subarray(600));
    const piecesAnswer = await pieces.done;
    assert.equal(statusOf(piecesAnswer), grpc.status.OK);
    assert.deepEqual(piecesAnswer.body, frame(Buffer.alloc(1000, 3)));
    await zero('complete');
    // Complete but never half-closed: the message is held until the end comes.
    const whole = open(session, grpcHeaders(), frame(Buffer.alloc(500, 1)));
    await settled(session);
    assert.equal(f.server.requestBytesHeld, 500);
    whole.stream.end();
    assert.equal(statusOf(await whole.done), grpc.status.OK);
    await zero('complete, half-closed later');
    // The client cancels (RST_STREAM).
    const cancelled = open(session, grpcHeaders(), partial(1000, 500));
    await settled(session);
    assert.equal(f.server.requestBytesHeld, 1000);
    cancelled.stream.close(http2.constants.NGHTTP2_CANCEL);
    await cancelled.done;
    await zero('cancelled');
    // The deadline passes.
    const expired = open(session, grpcHeaders('/test.Svc/Echo', { 'grpc-timeout': '50m' }), partial(1000, 500));
    assert.equal(statusOf(await expired.done), grpc.status.DEADLINE_EXCEEDED);
    await zero('deadline');
    // An error: the request ends without its message, or with a second one.
    const short = open(session, grpcHeaders(), partial(1000, 500));
    short.stream.end();
    assert.equal(statusOf(await short.done), grpc.status.UNIMPLEMENTED);
    const second = open(session, grpcHeaders(), partial(1000, 500));
    await settled(session);
    second.stream.end(Buffer.concat([Buffer.alloc(500), frame(Buffer.from('two'))]));
    assert.equal(statusOf(await second.done), grpc.status.UNIMPLEMENTED);
    await zero('error');
    // Inflating: the compressed bytes and what they inflate to are held until the handler runs, and
    // released when the inflated size is over the limit or the budget.
    const inflated = open(session, grpcHeaders('/test.Svc/Echo', { 'grpc-encoding': 'gzip' }), frame(gzipSync(Buffer.alloc(1024, 5)), 1));
    inflated.stream.end();
    const inflatedAnswer = await inflated.done;
    assert.equal(statusOf(inflatedAnswer), grpc.status.OK);
    assert.deepEqual(inflatedAnswer.body, frame(Buffer.alloc(1024, 5)));
    const bomb = open(session, grpcHeaders('/test.Svc/Echo', { 'grpc-encoding': 'gzip' }), frame(gzipSync(Buffer.alloc(1_000_000)), 1));
    bomb.stream.end();
    assert.equal(statusOf(await bomb.done), grpc.status.RESOURCE_EXHAUSTED);
    await zero('inflating');
    // 1024 bytes held by another call: one that inflates to 1024 fits with its inflater, but would
    // go over the budget while inflating.
    const big = [open(session, grpcHeaders(), partial(1024, 700))];
    await settled(session);
    assert.equal(f.server.requestBytesHeld, 1024);
    const squeezed = open(session, grpcHeaders('/test.Svc/Echo', { 'grpc-encoding': 'gzip' }), frame(gzipSync(Buffer.alloc(1024, 6)), 1));
    squeezed.stream.end();
    const squeezedAnswer = await squeezed.done;
    assert.equal(statusOf(squeezedAnswer), grpc.status.RESOURCE_EXHAUSTED);
    assert.match(messageOf(squeezedAnswer), new RegExp(`^Request buffer full: /test\\.Svc/Echo would take .* past ${minBudget(1024)} `));
    assert.equal(f.server.requestBytesHeld, 1024);
    for (const c of big) c.stream.close(http2.constants.NGHTTP2_CANCEL);
    await zero('refused while inflating');
    // The connection closes with calls in it.
    const other = await connect(f.port);
    open(other, grpcHeaders(), partial(1000, 500));
    open(other, grpcHeaders(), partial(1000, 500));
    await settled(other);
    assert.equal(f.server.requestBytesHeld, 2000);
    other.destroy();
    await zero('connection closed');
    // A forced shutdown with calls in progress.
    open(session, grpcHeaders(), partial(1000, 500));
    await settled(session);
    assert.equal(f.server.requestBytesHeld, 1000);
    f.server.forceShutdown();
    await zero('forced shutdown');
    assert.equal(f.calls['Echo'], 3, 'the handler ran for the complete calls only');
    assert.deepEqual(refusals.map((r) => r.first), [true], 'one refusal, the first since the budget was half free');
  } finally {
    session.destroy();
    f.server.forceShutdown();
  }
});

test('the request budget must hold the worst single call: a compressed message of the largest size, what it inflates to, and its inflater', () => {
  assert.throws(
    () => new UnaryGrpcServer({ maxReceiveMessageBytes: 1024, requestBufferBytes: minBudget(1024) - 1 }),
    new RegExp(`request buffer \\(${minBudget(1024) - 1} bytes\\) is smaller than the worst single call \\(${minBudget(1024)} bytes: a compressed message of the largest size, 1024 bytes, what it inflates to, as much again, and its inflater, ${INFLATER_OVERHEAD_BYTES} bytes, held together\\)`),
  );
  assert.throws(() => new UnaryGrpcServer({ requestBufferBytes: 4 * 1024 * 1024 }), /smaller than the worst single call \(8470528 bytes/);
  assert.throws(() => new UnaryGrpcServer({ requestBufferBytes: -1 }), /request buffer/);
  new UnaryGrpcServer({ maxReceiveMessageBytes: 1024, requestBufferBytes: minBudget(1024) });
  new UnaryGrpcServer({ maxReceiveMessageBytes: -1, requestBufferBytes: 1024 });
  assert.throws(() => new UnaryGrpcServer({ requestReadTimeoutMs: -1 }), /read timeout/);
});

test('raw: one connection holds at most its share of the budget; the call past it is RESOURCE_EXHAUSTED, while other connections still fit', { timeout: 10_000 }, async () => {
  const refusals: UnaryRefusal[] = [];
  // 40 KiB messages: the worst single call is 160 KiB, the budget four times that, so a
  // connection's share (a quarter) holds four messages started.
  const max = 40 * 1024;
  const share = minBudget(max);
  const f = await new Fixture({ maxReceiveMessageBytes: max, requestBufferBytes: 4 * share, onRefused: (r) => refusals.push(r) }).start();
  const [greedy, other] = [await connect(f.port), await connect(f.port)];
  try {
    const held: OpenCall[] = [];
    for (let i = 0; i < 4; i++) {
      held.push(open(greedy, grpcHeaders(), partial(max, 10)));
      await settled(greedy);
    }
    assert.equal(f.server.requestBytesHeld, 4 * max);
    // A fifth on the same connection would take it past its share (not past the budget).
    const over = open(greedy, grpcHeaders(), partial(max, 10));
    const a = await over.done;
    assert.equal(statusOf(a), grpc.status.RESOURCE_EXHAUSTED);
    assert.equal(messageOf(a), `Connection's request buffer share full: /test.Svc/Echo would take the bytes its connection holds for requests not yet handed to their handler past ${share} (its share of ozone.scm.client.request.buffer.size); retry later`);
    assert.equal(retryHintOf(a), String(DEFAULT_RETRY_AFTER_MS), 'with the retry hint the TypeScript client honours');
    assert.deepEqual(
      refusals.map((r) => [r.reason, r.first]),
      [['connection_share', true]],
    );
    assert.equal(f.server.requestBytesHeld, 4 * max);
    // Another connection's calls still fit, a started one and a complete one.
    const elsewhere = open(other, grpcHeaders(), partial(max, 10));
    await settled(other);
    assert.equal(f.server.requestBytesHeld, 5 * max);
    const small = open(other, grpcHeaders(), frame(Buffer.from('fits')));
    small.stream.end();
    assert.equal(statusOf(await small.done), grpc.status.OK);
    // Again on the greedy connection: refused, not logged again; once one of its calls ends, it fits.
    assert.equal(statusOf(await open(greedy, grpcHeaders(), partial(max, 10)).done), grpc.status.RESOURCE_EXHAUSTED);
    assert.deepEqual(
      refusals.map((r) => r.first),
      [true, false],
    );
    held[0]!.stream.close(http2.constants.NGHTTP2_CANCEL);
    await held[0]!.done;
    await until(() => f.server.requestBytesHeld === 4 * max);
    const fits = open(greedy, grpcHeaders(), partial(max, 10));
    await settled(greedy);
    assert.equal(f.server.requestBytesHeld, 5 * max);
    assert.equal(fits.answered, false);
    for (const c of [...held, fits, elsewhere]) c.stream.close(http2.constants.NGHTTP2_CANCEL);
    await until(() => f.server.requestBytesHeld === 0);
    assert.equal(f.server.requestBytesHeld, 0);
  } finally {
    greedy.destroy();
    other.destroy();
    await f.stop();
  }
});

test('raw: a request that has not arrived within the read timeout is UNAVAILABLE naming the key, its bytes released; a running handler is not bounded by it', { timeout: 10_000 }, async () => {
  const refusals: UnaryRefusal[] = [];
  await withSession({ requestReadTimeoutMs: 50, onRefused: (r) => refusals.push(r) }, async (f, session) => {
    // A handler that runs (its request complete at once) and does not answer yet.
    const running = open(session, grpcHeaders('/test.Svc/Slow'), frame(Buffer.from('slow')));
    running.stream.end();
    await f.holding(1);
    // Requests that never finish: a partial message, headers only, a complete message never half-closed.
    const partialCall = open(session, grpcHeaders(), partial(1000, 500));
    const headersOnly = session.request(grpcHeaders());
    headersOnly.on('error', () => {});
    const headersOnlyDone = new Promise<http2.IncomingHttpHeaders>((resolve) => headersOnly.on('response', resolve));
    const notEnded = open(session, grpcHeaders(), frame(Buffer.from('never ends')));
    const a = await partialCall.done;
    assert.equal(statusOf(a), grpc.status.UNAVAILABLE);
    assert.equal(
      messageOf(a),
      'Request not received in time: /test.Svc/Echo did not send its whole request (message and end of stream) within 50 ms of opening the call (ozone.scm.client.request.read.timeout)',
    );
    assert.equal(Number((await headersOnlyDone)['grpc-status']), grpc.status.UNAVAILABLE);
    assert.equal(statusOf(await notEnded.done), grpc.status.UNAVAILABLE);
    await until(() => f.server.requestBytesHeld === 0);
    assert.equal(f.server.requestBytesHeld, 0);
    assert.deepEqual(
      refusals.map((r) => [r.reason, r.first]),
      [
        ['read_timeout', true],
        ['read_timeout', false],
        ['read_timeout', false],
      ],
    );
    // The handler started before all three timed out, and is still running: its answer goes out.
    assert.equal(running.answered, false);
    assert.equal(f.held[0]!.call.cancelled, false);
    f.held[0]!.answer(null, Buffer.from('done'));
    const done = await running.done;
    assert.equal(statusOf(done), grpc.status.OK);
    assert.deepEqual(done.body, frame(Buffer.from('done')));
    assert.equal(f.calls['Echo'], undefined);
  });
});

test('raw: a message of up to 64 KiB arriving in pieces gets a buffer of its whole length at once; a longer one grows by doubling; what is allocated is charged', { timeout: 10_000 }, async () => {
  await withSession({}, async (f, session) => {
    const small = open(session, grpcHeaders(), partial(60_000, 100));
    await settled(session);
    assert.equal(f.server.requestBytesHeld, 60_000, 'the whole message at once (before: 100, then doubling)');
    small.stream.close(http2.constants.NGHTTP2_CANCEL);
    await small.done;
    await until(() => f.server.requestBytesHeld === 0);
    const large = open(session, grpcHeaders(), partial(1_000_000, 10_000));
    await settled(session);
    assert.equal(f.server.requestBytesHeld, 10_000, 'above 64 KiB, what was sent');
    large.stream.write(Buffer.alloc(5_000, 3));
    await settled(session);
    assert.equal(f.server.requestBytesHeld, 20_000, 'doubled');
    large.stream.end(Buffer.alloc(1_000_000 - 15_000, 3));
    assert.equal(statusOf(await large.done), grpc.status.OK);
    assert.equal(f.server.requestBytesHeld, 0);
  });
});

test('raw: a complete message waiting for the end of its request is not kept as a view of a larger read', { timeout: 10_000 }, async () => {
  await withSession({}, async (f, session) => {
    // A small message, and in the same tick (one socket read at the server) another call's 60 KB.
    const waiting = open(session, grpcHeaders(), frame(Buffer.from('small message')));
    const big = open(session, grpcHeaders(), frame(Buffer.alloc(60_000, 1)));
    big.stream.end();
    assert.equal(statusOf(await big.done), grpc.status.OK);
    assert.equal(f.server.requestBytesHeld, 13);
    waiting.stream.end();
    assert.equal(statusOf(await waiting.done), grpc.status.OK);
    const handed = f.echoed.find((m) => m.length === 13)!;
    assert.equal(handed.toString(), 'small message');
    assert.ok(handed.buffer.byteLength <= 2 * 13 + 4096, `a backing store of ${handed.buffer.byteLength} bytes for 13`);
  });
});

test('raw: a compressed call holds its inflater too: at the smallest budget the largest compressed call fits alone, and not beside another call', { timeout: 10_000 }, async () => {
  const refusals: UnaryRefusal[] = [];
  await withSession({ maxReceiveMessageBytes: 1024, requestBufferBytes: minBudget(1024), onRefused: (r) => refusals.push(r) }, async (f, session) => {
    // Incompressible: about 1024 bytes compressed, 1000 inflated.
    const random = mulberry32(7);
    const message = Buffer.from(Array.from({ length: 1000 }, () => Math.floor(random() * 256)));
    const compressed = frame(gzipSync(message), 1);
    assert.ok(compressed.length - 5 <= 1024 && compressed.length - 5 > 1000, `${compressed.length - 5} bytes compressed`);
    const alone = open(session, grpcHeaders('/test.Svc/Echo', { 'grpc-encoding': 'gzip' }), compressed);
    alone.stream.end();
    const aloneAnswer = await alone.done;
    assert.equal(statusOf(aloneAnswer), grpc.status.OK);
    assert.deepEqual(aloneAnswer.body, frame(message));
    // Beside a started 1 KiB message, the inflater (INFLATER_OVERHEAD_BYTES) no longer fits.
    const other = open(session, grpcHeaders(), partial(1024, 10));
    await settled(session);
    const beside = open(session, grpcHeaders('/test.Svc/Echo', { 'grpc-encoding': 'gzip' }), compressed);
    beside.stream.end();
    const besideAnswer = await beside.done;
    assert.equal(statusOf(besideAnswer), grpc.status.RESOURCE_EXHAUSTED);
    assert.match(messageOf(besideAnswer), /^Request buffer full: .*; retry later$/);
    assert.deepEqual(
      refusals.map((r) => r.reason),
      ['request_buffer'],
    );
    assert.equal(f.server.requestBytesHeld, 1024);
    other.stream.close(http2.constants.NGHTTP2_CANCEL);
    await until(() => f.server.requestBytesHeld === 0);
    assert.equal(f.server.requestBytesHeld, 0);
  });
});

test('raw: without a receive limit, a message the budget could never hold is refused without "retry later"', { timeout: 10_000 }, async () => {
  const refusals: UnaryRefusal[] = [];
  const f = await new Fixture({ maxReceiveMessageBytes: -1, requestBufferBytes: 100_000, onRefused: (r) => refusals.push(r) }).start();
  try {
    const a = await raw(f.port, grpcHeaders(), partial(200_000, 50_000), false);
    assert.equal(statusOf(a), grpc.status.RESOURCE_EXHAUSTED);
    assert.equal(
      messageOf(a),
      'Request too large: /test.Svc/Echo needs at least 200000 bytes held before its handler runs, more than the whole request buffer (100000, ozone.scm.client.request.buffer.size)',
    );
    assert.equal(retryHintOf(a), undefined, 'no retry hint: it can never fit');
    assert.deepEqual(
      refusals.map((r) => r.reason),
      ['request_buffer'],
    );
    assert.equal(f.server.requestBytesHeld, 0);
  } finally {
    await f.stop();
  }
});

test('raw: an unknown grpc-encoding is named by its first 64 characters only', { timeout: 10_000 }, async () => {
  const a = await raw(plain.port, grpcHeaders('/test.Svc/Echo', { 'grpc-encoding': 'x'.repeat(1000) }), frame(Buffer.from('x'), 1));
  assert.equal(statusOf(a), grpc.status.UNIMPLEMENTED);
  assert.equal(messageOf(a), `Received message compressed with unsupported encoding "${'x'.repeat(64)}"… (1000 characters)`);
});

// ---- connections: how many at once, and how long one may stay silent ----

/** What became of a new connection: served (its settings came) or closed before that. */
function connectOutcome(port: number, from?: string): Promise<{ outcome: 'served' | 'closed'; session: http2.ClientHttp2Session }> {
  return new Promise((resolve) => {
    const session = http2.connect(`http://127.0.0.1:${port}`, from !== undefined ? fromAddress(port, from) : {});
    session.on('error', () => {});
    session.once('remoteSettings', () => resolve({ outcome: 'served', session }));
    session.once('close', () => resolve({ outcome: 'closed', session }));
  });
}

/**
 * A TCP connection that never sends a byte (nor, unless `reads`, reads one). Resolves with how long
 * the server took to close it, or 'open' if it had not within `withinMs` (then it is destroyed).
 */
async function silentConnection(port: number, withinMs: number, reads = true): Promise<number | 'open'> {
  const { connect: tcpConnect } = await import('node:net');
  return new Promise((resolve) => {
    const socket = tcpConnect(port, '127.0.0.1');
    socket.on('error', () => {});
    if (reads) socket.resume();
    let opened = 0;
    socket.once('connect', () => (opened = Date.now()));
    const giveUp = setTimeout(() => {
      socket.destroy();
      resolve('open');
    }, withinMs);
    socket.once('close', () => {
      clearTimeout(giveUp);
      resolve(Date.now() - opened);
    });
  });
}

/** Resolves once `session` is closed (by the server), or rejects after `withinMs`. */
function closedWithin(session: http2.ClientHttp2Session, withinMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    if (session.closed || session.destroyed) return resolve();
    const timer = setTimeout(() => reject(new Error(`the server did not close the connection within ${withinMs} ms`)), withinMs);
    session.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

test('raw: at maxConnections, each with a call in progress, a new connection is closed as accepted and reported once per fill; one that goes idle then makes room', { timeout: 10_000 }, async (t) => {
  const refusals: ConnectionRefusal[] = [];
  // Each address may hold a quarter of the limit (here 1): every connection comes from an address of its own.
  const f = await new Fixture({ maxConnections: 2, onConnectionRefused: (r) => refusals.push(r) }).start();
  t.after(() => f.server.forceShutdown());
  const sessions: http2.ClientHttp2Session[] = [];
  t.after(() => sessions.forEach((s) => s.destroy()));
  const a = await connect(f.port, '127.0.0.2');
  sessions.push(a);
  const heldA = open(a, grpcHeaders('/test.Svc/Slow'), frame(Buffer.from('a')));
  heldA.stream.end();
  await f.holding(1);
  const b = await connect(f.port, '127.0.0.3');
  sessions.push(b);
  const heldB = open(b, grpcHeaders('/test.Svc/Slow'), frame(Buffer.from('b')));
  heldB.stream.end();
  await f.holding(2);
  assert.equal(f.server.openConnections, 2);
  const over = await connectOutcome(f.port, '127.0.0.4');
  sessions.push(over.session);
  assert.equal(over.outcome, 'closed');
  assert.deepEqual(
    refusals.map((r) => [r.reason, r.first]),
    [['connection_limit', true]],
  );
  assert.equal(refusals[0]!.details, 'Connection refused: 2 connections are open, the most this server serves at once (ozone.scm.client.max.connections), each with a call in progress when the last was taken; closed as accepted');
  assert.match(refusals[0]!.peer, /^127\.0\.0\.4:\d+$/);
  // a's call ends: a is idle now. The next refusal closes it, so that the attempt after finds a slot.
  f.held[0]!.answer(null, Buffer.from('a done'));
  assert.equal(statusOf(await heldA.done), grpc.status.OK);
  const again = await connectOutcome(f.port, '127.0.0.5');
  sessions.push(again.session);
  assert.equal(again.outcome, 'closed');
  await closedWithin(a, 3_000);
  assert.deepEqual(
    refusals.map((r) => [r.reason, r.first]),
    [
      ['connection_limit', true],
      ['connection_limit', false],
      ['connection_evicted', true],
    ],
  );
  assert.match(refusals[2]!.details, /^Connection closed: idle for \d+ ms when another took the last of 2 connections \(ozone\.scm\.client\.max\.connections\); closed to make room$/);
  await until(() => f.server.openConnections === 1);
  const c = await connectOutcome(f.port, '127.0.0.6');
  sessions.push(c.session);
  assert.equal(c.outcome, 'served');
  const call = open(c.session, grpcHeaders(), frame(Buffer.from('in')));
  call.stream.end();
  assert.equal(statusOf(await call.done), grpc.status.OK);
  // b's call was never disturbed.
  f.held[1]!.answer(null, Buffer.from('b done'));
  assert.equal(statusOf(await heldB.done), grpc.status.OK);
});

test('raw: the connection that takes the last slot closes the one idle longest, one that only holds its slot included, even if it does not read', { timeout: 10_000 }, async (t) => {
  const refusals: ConnectionRefusal[] = [];
  const f = await new Fixture({ maxConnections: 2, onConnectionRefused: (r) => refusals.push(r) }).start();
  t.after(() => f.server.forceShutdown());
  const sessions: http2.ClientHttp2Session[] = [];
  t.after(() => sessions.forEach((s) => s.destroy()));
  // Silent, not reading: the GOAWAY cannot close it gracefully; its socket is destroyed after a
  // second (it does not read, so it cannot see that: the server's count says it).
  const { connect: tcpConnect } = await import('node:net');
  const silent = tcpConnect({ port: f.port, host: '127.0.0.1', localAddress: '127.0.0.2' });
  silent.on('error', () => {});
  t.after(() => silent.destroy());
  await until(() => f.server.openConnections === 1);
  const a = await connect(f.port, '127.0.0.3');
  sessions.push(a);
  assert.equal(f.server.openConnections, 2);
  await until(() => f.server.openConnections === 1);
  assert.equal(f.server.openConnections, 1, 'the silent connection was closed to make room');
  assert.deepEqual(
    refusals.map((r) => [r.reason, r.first]),
    [['connection_evicted', true]],
  );
  // a has been idle since it connected: the next connection takes the last slot and closes a.
  let goaway = false;
  a.once('goaway', () => (goaway = true));
  const b = await connect(f.port, '127.0.0.4');
  sessions.push(b);
  await closedWithin(a, 3_000);
  assert.equal(goaway, true, 'a polite client is told by GOAWAY');
  // Logged again: the connections were down to half the limit in between.
  assert.deepEqual(
    refusals.map((r) => [r.reason, r.first]),
    [
      ['connection_evicted', true],
      ['connection_evicted', true],
    ],
  );
  const call = open(b, grpcHeaders(), frame(Buffer.from('b')));
  call.stream.end();
  assert.equal(statusOf(await call.done), grpc.status.OK);
});

test('raw: one address holds at most a quarter of maxConnections: one more from it is closed as accepted, others are served, and an eviction takes from the address holding the most', { timeout: 10_000 }, async (t) => {
  const refusals: ConnectionRefusal[] = [];
  const f = await new Fixture({ maxConnections: 8, onConnectionRefused: (r) => refusals.push(r) }).start();
  t.after(() => f.server.forceShutdown());
  const sessions: http2.ClientHttp2Session[] = [];
  t.after(() => sessions.forEach((s) => s.destroy()));
  const greedy = [await connect(f.port, '127.0.0.2'), await connect(f.port, '127.0.0.2')];
  sessions.push(...greedy);
  for (let i = 0; i < 2; i++) {
    const over = await connectOutcome(f.port, '127.0.0.2');
    sessions.push(over.session);
    assert.equal(over.outcome, 'closed');
  }
  assert.deepEqual(
    refusals.map((r) => [r.reason, r.first]),
    [
      ['address_share', true],
      ['address_share', false],
    ],
  );
  assert.equal(refusals[0]!.details, 'Connection refused: 127.0.0.2 holds 2 connections already, its share (a quarter) of the 8 this server serves at once (ozone.scm.client.max.connections); closed as accepted');
  // Other addresses fill the rest: six, one each, the last taking the last slot. The idle
  // connection closed to make room is one of the address holding the most (127.0.0.2's first).
  const others: http2.ClientHttp2Session[] = [];
  for (let i = 3; i <= 8; i++) {
    const other = await connect(f.port, `127.0.0.${i}`);
    others.push(other);
    sessions.push(other);
  }
  await closedWithin(greedy[0]!, 3_000);
  assert.deepEqual(
    refusals.map((r) => r.reason),
    ['address_share', 'address_share', 'connection_evicted'],
  );
  assert.match(refusals[2]!.peer, /^127\.0\.0\.2:\d+$/);
  for (const other of others) assert.equal(other.closed, false);
  const call = open(others[5]!, grpcHeaders(), frame(Buffer.from('served')));
  call.stream.end();
  assert.equal(statusOf(await call.done), grpc.status.OK);
});

test('raw: a connection that sends no HTTP/2 preface within the read timeout is closed and reported; one that did may then stay idle; one that leaves first is not reported', { timeout: 15_000 }, async (t) => {
  const refusals: ConnectionRefusal[] = [];
  const f = await new Fixture({ requestReadTimeoutMs: 100, onConnectionRefused: (r) => refusals.push(r) }).start();
  t.after(() => f.server.forceShutdown());
  const healthy = await connect(f.port);
  t.after(() => healthy.destroy());
  const [first, second] = await Promise.all([silentConnection(f.port, 3_000), silentConnection(f.port, 3_000)]);
  assert.notEqual(first, 'open');
  assert.notEqual(second, 'open');
  assert.deepEqual(
    refusals.map((r) => [r.reason, r.first]),
    [
      ['handshake_timeout', true],
      ['handshake_timeout', false],
    ],
  );
  assert.equal(refusals[0]!.details, 'Connection closed: it did not send the HTTP/2 preface within 100 ms of being accepted (ozone.scm.client.request.read.timeout)');
  await until(() => f.server.openConnections === 1);
  // The connection that sent its preface was left open, idle as it was, and is served.
  await new Promise((resolve) => setTimeout(resolve, 300));
  const call = open(healthy, grpcHeaders(), frame(Buffer.from('idle is fine')));
  call.stream.end();
  assert.equal(statusOf(await call.done), grpc.status.OK);
  // A connection that closes before its preface (a port probe) is no timeout.
  const { connect: tcpConnect } = await import('node:net');
  const probe = tcpConnect(f.port, '127.0.0.1');
  probe.on('error', () => {});
  await new Promise((resolve) => probe.once('connect', resolve));
  probe.destroy();
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(refusals.length, 2);
  // A connection that finishes its handshake ends the quiet: the next timeout is logged again.
  const next = await connect(f.port);
  next.destroy();
  assert.notEqual(await silentConnection(f.port, 3_000), 'open');
  assert.deepEqual(
    refusals.map((r) => r.first),
    [true, false, true],
  );
});

test('raw: without a read timeout (0) a connection may take its time over the preface', { timeout: 10_000 }, async (t) => {
  const refusals: ConnectionRefusal[] = [];
  const f = await new Fixture({ requestReadTimeoutMs: 0, onConnectionRefused: (r) => refusals.push(r) }).start();
  t.after(() => f.server.forceShutdown());
  assert.equal(await silentConnection(f.port, 500), 'open');
  assert.deepEqual(refusals, []);
});

test('mutual TLS: a connection that does not finish its TLS handshake within the read timeout is closed and reported', { timeout: 10_000 }, async (t) => {
  const tlsDir = await mkdtemp(join(tmpdir(), 'scm-unary-tls-handshake-'));
  t.after(() => rm(tlsDir, { recursive: true, force: true }));
  const certs = await ensureLocalCertificates({ dir: tlsDir, serviceId: 'svc', nodeIds: ['scm1'], hosts: () => ['127.0.0.1', 'localhost'] });
  const material = TlsMaterial.load({ caFile: certs.ca.cert, certFile: certs.nodes.get('scm1')!.cert, keyFile: certs.nodes.get('scm1')!.key }, { kind: 'node', serviceId: 'svc', nodeId: 'scm1', host: '127.0.0.1' });
  const refusals: ConnectionRefusal[] = [];
  const f = await new Fixture({ requestReadTimeoutMs: 150, onConnectionRefused: (r) => refusals.push(r), tls: { contextOptions: () => material.secureContextOptions(), onChange: (l) => material.onReload(l) } }).start();
  t.after(() => f.server.forceShutdown());
  const closedAfter = await silentConnection(f.port, 5_000);
  assert.notEqual(closedAfter, 'open', "closed long before Node's own 120 s handshake timeout");
  assert.deepEqual(
    refusals.map((r) => [r.reason, r.first, r.details]),
    [['handshake_timeout', true, 'Connection closed: it did not finish its TLS handshake within 150 ms of being accepted (ozone.scm.client.request.read.timeout)']],
  );
  // Over TLS too, an idle connection that does not read is closed, socket and all, to make room: a
  // client sends the preface and an empty SETTINGS frame (33 bytes) and reads nothing more.
  const { readFile } = await import('node:fs/promises');
  const { connect: tlsConnect } = await import('node:tls');
  const [ca, cert, key] = await Promise.all([readFile(certs.ca.cert), readFile(certs.client.cert), readFile(certs.client.key)]);
  const evictions: ConnectionRefusal[] = [];
  const limited = await new Fixture({ maxConnections: 2, onConnectionRefused: (r) => evictions.push(r), tls: { contextOptions: () => material.secureContextOptions(), onChange: (l) => material.onReload(l) } }).start();
  t.after(() => limited.server.forceShutdown());
  const tlsFrom = (from: string): ReturnType<typeof tlsConnect> =>
    tlsConnect({ socket: netConnect({ host: '127.0.0.1', port: limited.port, localAddress: from }), ca, cert, key, ALPNProtocols: ['h2'], checkServerIdentity: () => undefined });
  const idle = tlsFrom('127.0.0.2');
  idle.on('error', () => {});
  t.after(() => idle.destroy());
  await new Promise((resolve) => idle.once('secureConnect', resolve));
  idle.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]));
  // The server's SETTINGS have come (left unread): its session exists. Until then the server is
  // still in the handshake (TLS 1.3 lets the client finish first), which no eviction can take.
  await new Promise((resolve) => idle.once('readable', resolve));
  assert.equal(limited.server.openConnections, 1);
  const other = http2.connect(`https://127.0.0.1:${limited.port}`, {
    createConnection: () => tlsFrom('127.0.0.3'),
  });
  other.on('error', () => {});
  t.after(() => other.destroy());
  await new Promise((resolve) => other.once('remoteSettings', resolve));
  assert.equal(limited.server.openConnections, 2);
  await until(() => limited.server.openConnections === 1);
  assert.equal(limited.server.openConnections, 1, 'the idle TLS connection was closed to make room');
  assert.deepEqual(
    evictions.map((r) => r.reason),
    ['connection_evicted'],
  );

  // A read timeout longer than a timer holds is none, for the handshake too: no timer overflows
  // (Node would warn once per accepted connection).
  const warnings: string[] = [];
  const onWarning = (w: Error): void => void warnings.push(w.name);
  process.on('warning', onWarning);
  t.after(() => process.off('warning', onWarning));
  const long = await new Fixture({ requestReadTimeoutMs: 30 * 24 * 3_600_000, tls: { contextOptions: () => material.secureContextOptions(), onChange: (l) => material.onReload(l) } }).start();
  t.after(() => long.server.forceShutdown());
  assert.equal(await silentConnection(long.port, 300), 'open');
  assert.deepEqual(warnings, []);
});

test('the connection limit is 0 (none) or a whole number of connections', () => {
  for (const bad of [-1, 1.5, Number.NaN, Infinity]) {
    assert.throws(() => new UnaryGrpcServer({ maxConnections: bad }), new RegExp(`^Error: the connection limit must be 0 \\(none\\) or a whole number of connections, not ${String(bad)}$`));
  }
  assert.doesNotThrow(() => new UnaryGrpcServer({ maxConnections: 0 }));
});

/** V8's full collection, for a test that must see what is unreachable go. */
function fullGc(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

test('a closed stream lets go of its call: what an answered or a cancelled call held can be collected while node:http2 still holds the stream', { timeout: 10_000 }, async (t) => {
  // node:http2 keeps a closed stream's object until V8's next full collection. Whatever the stream
  // still reaches survives every scavenge until then and is promoted to the old generation: under
  // load that was every call's request, its handler's cancel listeners and what they hold
  // (bench/results/2026-12-05-load-notes-round11.md). The test holds the streams as node:http2
  // does, and collects.
  const gc = fullGc();
  const server = new UnaryGrpcServer({});
  const streams: http2.ServerHttp2Stream[] = [];
  const held: Array<{ what: string; ref: WeakRef<object> }> = [];
  const remember = (name: string, call: UnaryCall<Buffer>): void => {
    // The call's private field: the stream node:http2 would keep.
    streams.push((call as unknown as { stream: http2.ServerHttp2Stream }).stream);
    held.push({ what: `${name}'s request`, ref: new WeakRef(call.request) });
    const payload = { bytes: Buffer.alloc(1024) };
    held.push({ what: `what ${name}'s cancel listener holds`, ref: new WeakRef(payload) });
    call.once('cancelled', () => void payload.bytes.length);
  };
  server.addService(
    { Keep: method('Keep'), Hang: method('Hang') },
    {
      Keep: (call: UnaryCall<Buffer>, answer: grpc.sendUnaryData<Buffer>) => {
        remember('Keep', call);
        answer(null, Buffer.from('ok'));
      },
      // Never answered: the client gives up on it.
      Hang: (call: UnaryCall<Buffer>) => remember('Hang', call),
    },
  );
  const port = await server.listen('127.0.0.1', 0);
  t.after(() => server.forceShutdown());

  const answered = await raw(port, grpcHeaders('/test.Svc/Keep'), frame(Buffer.from('abc')));
  assert.equal(statusOf(answered), grpc.status.OK);
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on('error', () => {});
  t.after(() => session.destroy());
  const hanging = session.request(grpcHeaders('/test.Svc/Hang'));
  hanging.on('error', () => {});
  hanging.end(frame(Buffer.from('def')));
  await until(() => streams.length === 2);
  hanging.close(http2.constants.NGHTTP2_CANCEL);
  await until(() => streams.every((s) => s.closed));
  assert.deepEqual(streams.map((s) => s.closed), [true, true]);

  for (let i = 0; i < 2; i++) {
    // A WeakRef holds its target until the job that made or read it ends.
    await new Promise((resolve) => setImmediate(resolve));
    gc();
  }
  assert.deepEqual(
    held.filter((h) => h.ref.deref() !== undefined).map((h) => h.what),
    [],
    'a closed stream still reaches these',
  );
  assert.equal(streams.length, 2, 'the streams themselves are still held');
});

test('raw: an answer the client does not take within the read timeout has its stream reset and is reported (write_timeout, the first per connection)', { timeout: 10_000 }, async () => {
  const refusals: UnaryRefusal[] = [];
  const f = await new Fixture({ requestReadTimeoutMs: 200, onRefused: (r) => refusals.push(r) }).start();
  // A client that takes no data at all: a window of 0 (HEADERS are not flow-controlled, DATA is).
  const session = http2.connect(`http://127.0.0.1:${f.port}`, { settings: { initialWindowSize: 0 } });
  session.on('error', () => {});
  try {
    await new Promise<void>((resolve) => session.once('remoteSettings', () => resolve()));
    const calls = [open(session, grpcHeaders(), frame(Buffer.from('first'))), open(session, grpcHeaders(), frame(Buffer.from('second')))];
    for (const c of calls) c.stream.end();
    const started = Date.now();
    const answers = await Promise.all(calls.map((c) => c.done));
    const took = Date.now() - started;
    assert.deepEqual(answers.map((a) => [a.headers[':status'], a.rstCode, a.body.length]), [
      [200, http2.constants.NGHTTP2_CANCEL, 0],
      [200, http2.constants.NGHTTP2_CANCEL, 0],
    ]);
    assert.ok(took >= 150 && took < 2_000, `reset ${took} ms after the calls`);
    assert.deepEqual(
      refusals.map((r) => [r.reason, r.first, r.method]),
      [
        ['write_timeout', true, '/test.Svc/Echo'],
        ['write_timeout', false, '/test.Svc/Echo'],
      ],
    );
    assert.equal(
      refusals[0]!.details,
      "Answer not taken in time: /test.Svc/Echo's answer was not received by the client within 200 ms of being sent, and its stream was reset (ozone.scm.client.request.read.timeout)",
    );
  } finally {
    session.destroy();
    await f.stop();
  }
});

// ---- connections that have seen a GOAWAY, or a protocol error: their slot comes back ----

/** An HTTP/2 frame: type, flags, stream id, payload. */
function h2Frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(9);
  header.writeUIntBE(payload.length, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(streamId, 5);
  return Buffer.concat([header, payload]);
}

/** A header block of literals without indexing (HPACK §6.2.2), names and values under 127 bytes. */
function headerBlock(headers: Record<string, string>): Buffer {
  return Buffer.concat(
    Object.entries(headers).map(([name, value]) => Buffer.concat([Buffer.from([0, name.length]), Buffer.from(name), Buffer.from([value.length]), Buffer.from(value)])),
  );
}

const H2_PREFACE = Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), h2Frame(4, 0, 0)]);
const [DATA, HEADERS, RST_STREAM, SETTINGS, GOAWAY] = [0, 1, 3, 4, 7];
const [END_STREAM, END_HEADERS] = [0x1, 0x4];
const errorCode = (code: number): Buffer => Buffer.from([code >>> 24, (code >>> 16) & 255, (code >>> 8) & 255, code & 255]);
const slowHeaders = headerBlock({ ':method': 'POST', ':scheme': 'http', ':path': '/test.Svc/Slow', ':authority': 'x', 'content-type': 'application/grpc' });

/**
 * A raw connection from `from` that sends `bytes` and then ignores whatever it is told: it never
 * closes its side (a FIN from the server leaves it half open, so it cannot see the server's socket
 * go: the server's count says that), and reads only if `reads`.
 */
function stubbornConnection(port: number, from: string, bytes: Buffer, reads = true): { socket: Socket; received: () => number } {
  const socket = netConnect({ host: '127.0.0.1', port, localAddress: from, allowHalfOpen: true });
  socket.on('error', () => {});
  let received = 0;
  if (reads) socket.on('data', (chunk: Buffer) => (received += chunk.length));
  else socket.pause();
  socket.once('connect', () => socket.write(bytes));
  return { socket, received: () => received };
}

/** Resolves once `condition` holds; rejects naming `what` if it has not within `withinMs`. */
async function within(condition: () => boolean, withinMs: number, what: string): Promise<void> {
  const end = Date.now() + withinMs;
  while (!condition()) {
    if (Date.now() > end) throw new Error(`${what}: not within ${withinMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

test('raw: a connection node:http2 ends for a protocol error (a frame over the size limit, a rapid-reset flood, a SETTINGS frame on a stream) is destroyed though its client never closes it: its slot is freed and it is reported (protocol_error)', { timeout: 15_000 }, async (t) => {
  const refusals: ConnectionRefusal[] = [];
  let accepted = 0;
  let openNow = 0;
  const onOpenConnections = (n: number): void => {
    if (n > openNow) accepted += n - openNow;
    openNow = n;
  };
  const f = await new Fixture({ maxConnections: 8, closeGraceMs: 100, onConnectionRefused: (r) => refusals.push(r), onOpenConnections }).start();
  t.after(() => f.server.forceShutdown());
  const rapidReset: Buffer[] = [];
  for (let id = 1; id < 6_000; id += 2) rapidReset.push(h2Frame(HEADERS, END_HEADERS, id, slowHeaders), h2Frame(RST_STREAM, 0, id, errorCode(http2.constants.NGHTTP2_CANCEL)));
  const attacks = {
    // node:http2 (nghttp2) answers these with a GOAWAY and stops reading, and tells JavaScript nothing.
    'frame over the size limit': Buffer.concat([H2_PREFACE, h2Frame(HEADERS, END_HEADERS, 1, Buffer.alloc(20_000))]),
    'rapid reset': Buffer.concat([H2_PREFACE, ...rapidReset]),
    // This one it reports as a session 'error'.
    'SETTINGS on a stream': Buffer.concat([H2_PREFACE, h2Frame(SETTINGS, 0, 1, Buffer.alloc(6))]),
  };
  const connections = Object.entries(attacks).map(([what, bytes], i) => ({ what, ...stubbornConnection(f.port, `127.0.0.${2 + i}`, bytes, i !== 0) }));
  t.after(() => connections.forEach((c) => c.socket.destroy()));
  await within(() => accepted === 3, 5_000, 'the three accepted');
  await within(() => f.server.openConnections === 0, 5_000, 'the server closing their sockets, and so freeing their slots');
  await within(() => refusals.length === 3, 5_000, 'the three reported');
  assert.deepEqual(
    refusals.map((r) => r.reason),
    ['protocol_error', 'protocol_error', 'protocol_error'],
  );
  // One log line per quiet period, however many a flood ends.
  assert.deepEqual(
    refusals.map((r) => r.first),
    [true, false, false],
  );
  for (const r of refusals) assert.match(r.details, /^Connection closed: node:http2 ended it for a protocol error \(.+\); its socket is destroyed within 100 ms whether or not the client closes it$/);
  // The server goes on serving.
  const session = await connect(f.port, '127.0.0.9');
  t.after(() => session.destroy());
  const call = open(session, grpcHeaders(), frame(Buffer.from('still here')));
  call.stream.end();
  assert.equal(statusOf(await call.done), grpc.status.OK);
});

test('raw: a client that sends GOAWAY and never closes gets the answers to its open calls, then its connection is destroyed and its slot freed', { timeout: 10_000 }, async (t) => {
  const refusals: ConnectionRefusal[] = [];
  const f = await new Fixture({ maxConnections: 8, closeGraceMs: 100, onConnectionRefused: (r) => refusals.push(r) }).start();
  t.after(() => f.server.forceShutdown());
  const goaway = Buffer.concat([Buffer.from([0, 0, 0, 0]), errorCode(http2.constants.NGHTTP2_NO_ERROR)]);
  const c = stubbornConnection(
    f.port,
    '127.0.0.2',
    Buffer.concat([H2_PREFACE, h2Frame(HEADERS, END_HEADERS, 1, slowHeaders), h2Frame(DATA, END_STREAM, 1, frame(Buffer.from('held'))), h2Frame(GOAWAY, 0, 0, goaway)]),
  );
  t.after(() => c.socket.destroy());
  await f.holding(1);
  // Several graces pass with the call still open: the connection must wait for it, not for the grace.
  await new Promise((resolve) => setTimeout(resolve, 500));
  assert.equal(f.server.openConnections, 1, 'the connection is kept while its call is open');
  const before = c.received();
  // The call the client opened before its GOAWAY is still answered.
  f.held[0]!.answer(null, Buffer.from('answer'));
  await within(() => f.server.openConnections === 0, 5_000, 'the server closing its socket after its last call, and so freeing its slot');
  assert.ok(c.received() > before, 'the answer was sent before the connection was closed');
  assert.equal(f.cancelled.length, 0, 'the call was not cancelled');
  // A client's own GOAWAY is its goodbye, not a refusal.
  assert.deepEqual(refusals, []);
});

// ---- a client that reads nothing at all: its answer is not reset, its connection is destroyed ----

test('raw: an answer not taken within the read timeout on a connection whose client reads nothing at all (a write waiting on its socket) closes the connection, reported once (write_timeout); the server goes on', { timeout: 15_000 }, async () => {
  const refusals: UnaryRefusal[] = [];
  const server = new UnaryGrpcServer({ requestReadTimeoutMs: 200, onRefused: (r) => refusals.push(r) });
  // More than the kernel's buffers on both sides take: node:http2's write to the socket waits.
  const big = Buffer.alloc(32 * 1024 * 1024, 7);
  let handled = 0;
  server.addService({ Big: method('Big'), Echo: method('Echo') }, {
    Big: (_call: UnaryCall<Buffer>, answer: grpc.sendUnaryData<Buffer>) => {
      handled++;
      answer(null, big);
    },
    Echo: (call: UnaryCall<Buffer>, answer: grpc.sendUnaryData<Buffer>) => answer(null, call.request),
  });
  const port = await server.listen('127.0.0.1', 0);
  const socket = netConnect({ host: '127.0.0.1', port });
  socket.on('error', () => {});
  // It never reads: what the server writes fills the kernel's buffers, then waits in node:http2.
  socket.pause();
  try {
    await new Promise((resolve) => socket.once('connect', resolve));
    // The largest windows, stream and connection, so that flow control never holds the answers back.
    const settings = Buffer.alloc(6);
    settings.writeUInt16BE(4, 0);
    settings.writeUInt32BE(2 ** 31 - 1, 2);
    const increment = Buffer.alloc(4);
    increment.writeUInt32BE(2 ** 31 - 1 - 65_535, 0);
    const bigHeaders = headerBlock({ ':method': 'POST', ':scheme': 'http', ':path': '/test.Svc/Big', ':authority': 'x', 'content-type': 'application/grpc' });
    socket.write(
      Buffer.concat([
        Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'),
        h2Frame(SETTINGS, 0, 0, settings),
        h2Frame(8 /* WINDOW_UPDATE */, 0, 0, increment),
        h2Frame(HEADERS, END_HEADERS, 1, bigHeaders),
        h2Frame(DATA, END_STREAM, 1, frame(Buffer.from('big'))),
      ]),
    );
    await within(() => refusals.length > 0, 5_000, 'the answer timing out');
    assert.equal(handled, 1);
    // Not a reset of the stream: node:http2 would only queue it behind the waiting write, and Node
    // 20 loses it when that write ends, then writes empty DATA frames for the stream without end.
    await within(() => server.openConnections === 0, 5_000, 'the server destroying the connection');
    assert.deepEqual(
      refusals.map((r) => [r.reason, r.first, r.method]),
      [['write_timeout', true, '/test.Svc/Big']],
    );
    assert.equal(
      refusals[0]!.details,
      "Answer not taken in time: /test.Svc/Big's answer was not received by the client within 200 ms of being sent, and its connection was closed: the client was not reading it at all (data was still waiting to be written to its socket) (ozone.scm.client.request.read.timeout)",
    );
    assert.match(refusals[0]!.peer, /^127\.0\.0\.1:\d+$/);
    // The server goes on serving.
    const a = await raw(port, grpcHeaders(), frame(Buffer.from('after')));
    assert.equal(statusOf(a), grpc.status.OK);
    assert.deepEqual(a.body, frame(Buffer.from('after')));
  } finally {
    // The server first: its sessions destroyed, node:http2 writes nothing more, whatever the
    // client's socket does after.
    server.forceShutdown();
    socket.destroy();
  }
});
