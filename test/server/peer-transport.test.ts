// PeerTransport's links against the real RaftStreamServer on loopback sockets: delivery, batching,
// reconnects, the bounded queue, refusals, and the link's own watch on a peer that stops answering.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureLocalCertificates } from '../../src/cli/local-certificates.js';
import { identityOf } from '../../src/server/identity.js';
import { TlsMaterial } from '../../src/server/tls.js';
import { PeerTransport, type LinkTiming } from '../../src/server/peer-transport.js';
import { raftMessageSizes } from '../../src/server/raft-message-sizes.js';
import { RaftStreamServer, type RaftStreamServerOptions } from '../../src/server/raft-stream-server.js';

/** A node's sizes at the default frame cap (raft-message-sizes.ts). */
const SIZES = raftMessageSizes();
const LINK = { maxBatchBytes: SIZES.batchBytes };

function waitFor(predicate: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const start = Date.now();
  return new Promise((resolve, reject) => {
    const poll = (): void => {
      if (predicate()) resolve();
      else if (Date.now() - start > timeoutMs) reject(new Error(`timed out waiting for ${what}`));
      else setTimeout(poll, 10);
    };
    poll();
  });
}

/**
 * Sends `text` to peer b every `everyMs` until `received` holds it. Messages written into a stream
 * that fails are lost (Raft tolerates that): like a leader's heartbeats, a test keeps sending until
 * a re-opened stream delivers.
 */
async function sendUntilReceived(a: PeerTransport, text: string, received: readonly string[], everyMs: number): Promise<void> {
  const heartbeat = setInterval(() => a.send('b', Buffer.from(text)), everyMs);
  try {
    await waitFor(() => received.includes(text), `${JSON.stringify(text)} to arrive`);
  } finally {
    clearInterval(heartbeat);
  }
}

/** A RaftStreamServer behind a plain listening socket on 127.0.0.1 (`port` 0: any). */
async function serve(options: Omit<RaftStreamServerOptions, 'maxMessageBytes'>, port = 0): Promise<{ server: RaftStreamServer; port: number; close: () => Promise<void> }> {
  const server = new RaftStreamServer({ maxMessageBytes: SIZES.frameBytes, ...options });
  const sockets = new Set<Socket>();
  const listener: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    server.inject(socket);
  });
  await new Promise<void>((resolve) => listener.listen(port, '127.0.0.1', resolve));
  return {
    server,
    port: (listener.address() as { port: number }).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.forceShutdown();
        for (const s of sockets) s.destroy();
        listener.close(() => resolve());
      }),
  };
}

test('messages flow to a peer in order, with its id, batched per turn; an unknown peer is refused', async () => {
  const received: Array<{ from: string; text: string }> = [];
  let batches = 0;
  const b = await serve({
    clusterId: 'CID-1',
    onMessages: (from, messages) => {
      batches++;
      for (const m of messages) received.push({ from, text: Buffer.from(m).toString() });
    },
  });
  const a = new PeerTransport({ ...LINK, selfId: 'a', clusterId: 'CID-1' });
  try {
    a.setPeers(new Map([['b', `127.0.0.1:${b.port}`]]));
    for (let i = 0; i < 500; i++) assert.equal(a.send('b', Buffer.from(`m${i}`)), true);
    await waitFor(() => received.length === 500, '500 messages');
    assert.deepEqual(received.map((r) => r.text), Array.from({ length: 500 }, (_, i) => `m${i}`));
    assert.ok(received.every((r) => r.from === 'a'));
    assert.equal(batches, 1, 'the 500 messages of one turn travel as one frame');
    await waitFor(() => a.stats().get('b')!.connected, 'the link to count the stream as accepted (its PONG)');
    assert.equal(a.send('nobody', Buffer.from('x')), false, 'an unknown peer is refused');
  } finally {
    a.close();
    await b.close();
  }
});

test('a stream from another cluster is refused and nothing is delivered; both sides say why', async () => {
  const refused: string[] = [];
  let delivered = 0;
  const b = await serve({ clusterId: 'CID-ours', onMessages: () => void delivered++, onRefused: (reason, _peer, details) => refused.push(`${reason}: ${details}`) });
  const warnings: string[] = [];
  const a = new PeerTransport({ ...LINK, selfId: 'a', clusterId: 'CID-theirs', onWarning: (w) => warnings.push(w) });
  try {
    a.setPeers(new Map([['b', `127.0.0.1:${b.port}`]]));
    a.send('b', Buffer.from('hello'));
    await waitFor(() => refused.length > 0 && warnings.length > 0, 'both sides to report');
    assert.equal(delivered, 0);
    assert.match(refused[0]!, /^foreign_cluster: cluster id mismatch: this node belongs to CID-ours, the stream claims CID-theirs/);
    assert.match(warnings[0]!, /peer b at 127\.0\.0\.1:\d+ refused our Raft stream \(FAILED_PRECONDITION\): cluster id mismatch.*CID-ours.*CID-theirs/);
  } finally {
    a.close();
    await b.close();
  }
});

test('the link reconnects after the peer restarts, and the queue stays bounded while it is down', async () => {
  const received: string[] = [];
  const onMessages = (_from: string, ms: readonly Uint8Array[]): void => ms.forEach((m) => received.push(Buffer.from(m).toString()));
  let b = await serve({ clusterId: 'C', onMessages });
  const port = b.port;
  const a = new PeerTransport({ ...LINK, selfId: 'a', clusterId: 'C', maxQueuedBytes: 1000, initialBackoffMs: 20, maxBackoffMs: 100 });
  try {
    a.setPeers(new Map([['b', `127.0.0.1:${port}`]]));
    a.send('b', Buffer.from('before'));
    await waitFor(() => received.includes('before'), 'first message');
    await b.close();
    await waitFor(() => !a.stats().get('b')!.connected, 'the link to notice');
    // While b is down, queue far more than the bound.
    for (let i = 0; i < 200; i++) a.send('b', Buffer.alloc(100, 1));
    await new Promise((r) => setTimeout(r, 100));
    const stats = a.stats().get('b')!;
    assert.ok(stats.queuedBytes <= 1000, `queue bounded, holds ${stats.queuedBytes} bytes`);
    assert.ok(stats.droppedMessages > 0);

    b = await serve({ clusterId: 'C', onMessages }, port);
    await sendUntilReceived(a, 'after', received, 50);
  } finally {
    a.close();
    await b.close();
  }
});

test('flush() writes the queued messages at once, in order, in one frame; the turn after finds nothing left', async () => {
  const batches: string[][] = [];
  const b = await serve({ clusterId: 'C', onMessages: (_f, ms) => void batches.push(ms.map((m) => Buffer.from(m).toString())) });
  const a = new PeerTransport({ ...LINK, selfId: 'a', clusterId: 'C' });
  try {
    a.setPeers(new Map([['b', `127.0.0.1:${b.port}`]]));
    a.send('b', Buffer.from('x0'));
    await waitFor(() => batches.length === 1, 'the stream to open');
    a.send('b', Buffer.from('x1'));
    a.send('b', Buffer.from('x2'));
    assert.equal(a.stats().get('b')!.queuedMessages, 2, 'send() only queues');
    a.flush();
    // Handed to the socket in this very turn, not on the next one.
    assert.equal(a.stats().get('b')!.queuedMessages, 0);
    assert.equal(a.stats().get('b')!.sentMessages, 3);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(a.stats().get('b')!.sentMessages, 3, 'the scheduled write found the queue empty');
    await waitFor(() => batches.length === 2, 'the batch');
    assert.deepEqual(batches, [['x0'], ['x1', 'x2']]);
  } finally {
    a.close();
    await b.close();
  }
});

const FAST: LinkTiming = { connectTimeoutMs: 300, keepaliveMs: 100, keepaliveTimeoutMs: 200 };

/** A TCP server on 127.0.0.1 that accepts connections, reads and discards everything, and answers nothing. */
async function muteServer(): Promise<{ readonly port: number; connections: () => number; close: () => Promise<void> }> {
  let connections = 0;
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on('data', () => undefined);
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    connections: () => connections,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

test('a peer that accepts the connection but never answers a PING is given up and connected to again', async () => {
  // A process that hangs, or a machine gone behind a connection the kernel still holds.
  const mute = await muteServer();
  const a = new PeerTransport({ ...LINK, selfId: 'a', clusterId: 'C', timing: FAST, initialBackoffMs: 10, maxBackoffMs: 20 });
  const heartbeat = setInterval(() => a.send('b', Buffer.from('hb')), 20);
  try {
    a.setPeers(new Map([['b', `127.0.0.1:${mute.port}`]]));
    await waitFor(() => mute.connections() >= 3, 'the link to give up on the mute peer and connect again, twice');
  } finally {
    clearInterval(heartbeat);
    a.close();
    await mute.close();
  }
});

test('a live peer answers every PING: the link keeps its one connection', async () => {
  const received: string[] = [];
  const b = await serve({ clusterId: 'C', onMessages: (_f, ms) => ms.forEach((m) => received.push(Buffer.from(m).toString())) });
  const a = new PeerTransport({ ...LINK, selfId: 'a', clusterId: 'C', timing: FAST });
  try {
    a.setPeers(new Map([['b', `127.0.0.1:${b.port}`]]));
    a.send('b', Buffer.from('one'));
    await waitFor(() => received.length === 1, 'the first message');
    const connections = b.server.openStreams;
    // Ten keepalive periods, two timeouts each over.
    await new Promise((r) => setTimeout(r, 1_000));
    a.send('b', Buffer.from('two'));
    await waitFor(() => received.length === 2, 'the second message');
    assert.equal(connections, 1);
    assert.equal(b.server.openStreams, 1, 'still the one stream');
    assert.equal(a.stats().get('b')!.droppedMessages, 0);
  } finally {
    a.close();
    await b.close();
  }
});

test('a TLS link whose handshake never completes is given up after connectTimeoutMs and tried again', async () => {
  // A plain TCP server: the TLS client's ClientHello is never answered.
  const silent = await muteServer();
  const a = new PeerTransport({ ...LINK, selfId: 'a', clusterId: 'C', timing: { ...FAST, keepaliveTimeoutMs: 60_000 }, initialBackoffMs: 10, maxBackoffMs: 20, connectOptions: () => ({ rejectUnauthorized: true }) });
  const heartbeat = setInterval(() => a.send('b', Buffer.from('hb')), 20);
  try {
    a.setPeers(new Map([['b', `127.0.0.1:${silent.port}`]]));
    await waitFor(() => silent.connections() >= 3, 'the link to give up on the handshake and connect again, twice');
    assert.equal(a.stats().get('b')!.connected, false);
  } finally {
    clearInterval(heartbeat);
    a.close();
    await silent.close();
  }
});

test('under TLS a link delivers only to the node it expects, and the server sees the certificate of the node that connected', { timeout: 30_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'peer-transport-tls-'));
  try {
    const certificates = await ensureLocalCertificates({ dir, serviceId: 'svc', nodeIds: ['scm1', 'scm2'], hosts: () => ['127.0.0.1'] });
    const materialOf = (nodeId: string): TlsMaterial => {
      const node = certificates.nodes.get(nodeId)!;
      return TlsMaterial.load({ caFile: certificates.ca.cert, certFile: node.cert, keyFile: node.key }, { kind: 'node', serviceId: 'svc', nodeId, host: '127.0.0.1' });
    };
    const scm1 = materialOf('scm1');
    const scm2 = materialOf('scm2');
    const received: string[] = [];
    const callers: string[] = [];
    // scm2's Ratis port.
    const b = await serve({
      clusterId: 'C',
      onMessages: (_f, ms) => ms.forEach((m) => received.push(Buffer.from(m).toString())),
      admitStream: (from, connection) => {
        const cert = connection.getAuthContext()?.sslPeerCertificate;
        callers.push(`${from} as ${cert?.raw !== undefined ? identityOf(new X509Certificate(cert.raw)).node?.nodeId : 'nobody'}`);
        return undefined;
      },
      tls: { contextOptions: () => scm2.secureContextOptions(), onChange: () => () => undefined, handshakeTimeoutMs: 500 },
    });
    const address = `127.0.0.1:${b.port}`;
    const warnings: string[] = [];
    // scm1 dialing it, once expecting scm2 (right) and once expecting scm3 (wrong: must not send).
    const right = new PeerTransport({ ...LINK, selfId: 'scm1', clusterId: 'C', connectOptions: () => scm1.connectOptions(address, { serviceId: 'svc', nodeId: 'scm2' }) });
    const wrong = new PeerTransport({ ...LINK, selfId: 'scm1', clusterId: 'C', timing: FAST, initialBackoffMs: 10, maxBackoffMs: 20, connectOptions: () => scm1.connectOptions(address, { serviceId: 'svc', nodeId: 'scm3' }), onWarning: (w) => warnings.push(w) });
    try {
      wrong.setPeers(new Map([['scm3', address]]));
      wrong.send('scm3', Buffer.from('to the wrong node'));
      right.setPeers(new Map([['scm2', address]]));
      right.send('scm2', Buffer.from('to scm2'));
      await waitFor(() => received.includes('to scm2'), 'the message to scm2');
      assert.deepEqual(callers, ['scm1 as scm1'], 'the server saw the verified certificate, and only the right link got past its own check');
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(received, ['to scm2']);
      assert.equal(wrong.stats().get('scm3')!.connected, false);
      // The handshake deadline is cleared once the handshake is done: past it, the stream that
      // finished its handshake is still the one open.
      await new Promise((r) => setTimeout(r, 700));
      right.send('scm2', Buffer.from('after the deadline'));
      await waitFor(() => received.includes('after the deadline'), 'a message past the handshake deadline');
      assert.equal(b.server.openStreams, 1);
      assert.deepEqual(callers, ['scm1 as scm1'], 'no second stream was opened');
    } finally {
      right.close();
      wrong.close();
      await b.close();
      scm1.close();
      scm2.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('messages queued for a peer that is down are dropped when a connection attempt fails, not delivered when it is back', async () => {
  const received: string[] = [];
  const onMessages = (_from: string, ms: readonly Uint8Array[]): void => ms.forEach((m) => received.push(Buffer.from(m).toString()));
  // A port with nothing listening: take one, then close it.
  const probe = await serve({ clusterId: 'C', onMessages });
  const port = probe.port;
  await probe.close();
  const a = new PeerTransport({ ...LINK, selfId: 'a', clusterId: 'C', initialBackoffMs: 20, maxBackoffMs: 40 });
  let b: Awaited<ReturnType<typeof serve>> | undefined;
  try {
    a.setPeers(new Map([['b', `127.0.0.1:${port}`]]));
    for (let i = 0; i < 10; i++) a.send('b', Buffer.from(`stale ${i}`));
    await waitFor(() => a.stats().get('b')!.droppedMessages === 10, 'the failed attempt to drop the queued messages');
    assert.equal(a.stats().get('b')!.queuedMessages, 0);
    b = await serve({ clusterId: 'C', onMessages }, port);
    await sendUntilReceived(a, 'fresh', received, 20);
    assert.deepEqual(received.filter((m) => m.startsWith('stale')), []);
  } finally {
    a.close();
    await b?.close();
  }
});

test('a peer that accepts the stream and then refuses each batch is connected to with a growing backoff, and the refusal is reported once', async () => {
  let streams = 0;
  const b = await serve({
    clusterId: 'C',
    admitStream: () => {
      streams++;
      return undefined;
    },
    onMessages: () => 'this batch is refused',
  });
  const warnings: string[] = [];
  const a = new PeerTransport({ ...LINK, selfId: 'a', clusterId: 'C', initialBackoffMs: 20, maxBackoffMs: 2_000, onWarning: (w) => warnings.push(w) });
  const heartbeat = setInterval(() => a.send('b', Buffer.from('hb')), 10);
  try {
    a.setPeers(new Map([['b', `127.0.0.1:${b.port}`]]));
    await new Promise((r) => setTimeout(r, 1_500));
    // 20, 40, 80, 160, 320, 640 ms: about six streams in 1.5 s. A backoff reset by each PONG
    // would connect again every 20 ms or so.
    assert.ok(streams >= 2 && streams <= 8, `${streams} streams in 1.5 s`);
    assert.deepEqual(warnings, [`peer b at 127.0.0.1:${b.port} refused our Raft stream (INVALID_ARGUMENT): this batch is refused`]);
  } finally {
    clearInterval(heartbeat);
    a.close();
    await b.close();
  }
});

test('refusals whose details change from one to the next (a full frame budget names the bytes it holds) are reported once a minute per code, not once each', async () => {
  let refusals = 0;
  const b = await serve({ clusterId: 'C', onMessages: () => `batch ${++refusals} refused` });
  const warnings: string[] = [];
  const a = new PeerTransport({ ...LINK, selfId: 'a', clusterId: 'C', initialBackoffMs: 10, maxBackoffMs: 20, onWarning: (w) => warnings.push(w) });
  const heartbeat = setInterval(() => a.send('b', Buffer.from('hb')), 10);
  try {
    a.setPeers(new Map([['b', `127.0.0.1:${b.port}`]]));
    for (let i = 0; i < 500 && refusals < 4; i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(refusals >= 4, `${refusals} refusals`);
    assert.deepEqual(warnings, [`peer b at 127.0.0.1:${b.port} refused our Raft stream (INVALID_ARGUMENT): batch 1 refused`]);
  } finally {
    clearInterval(heartbeat);
    a.close();
    await b.close();
  }
});
