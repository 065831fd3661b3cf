import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { PeerTransport } from '../../src/server/peer-transport.js';

async function listen(server: grpc.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port)));
  });
}

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

test('messages flow both ways between two peers, in order, batched per turn', async () => {
  const received: Array<{ from: string; text: string }> = [];
  const a = new PeerTransport({ selfId: 'a', clusterId: 'CID-1', onMessages: () => {} });
  const b = new PeerTransport({
    selfId: 'b',
    clusterId: 'CID-1',
    onMessages: (from, messages) => {
      for (const m of messages) received.push({ from, text: Buffer.from(m).toString() });
    },
  });
  const serverB = new grpc.Server();
  b.registerOn(serverB);
  const portB = await listen(serverB);
  try {
    a.setPeers(new Map([['b', `127.0.0.1:${portB}`]]));
    for (let i = 0; i < 500; i++) assert.equal(a.send('b', Buffer.from(`m${i}`)), true);
    await waitFor(() => received.length === 500, '500 messages');
    assert.deepEqual(received.map((r) => r.text), Array.from({ length: 500 }, (_, i) => `m${i}`));
    assert.ok(received.every((r) => r.from === 'a'));
    assert.equal(a.send('nobody', Buffer.from('x')), false, 'an unknown peer is refused');
  } finally {
    a.close();
    b.close();
    serverB.forceShutdown();
  }
});

test('a stream from another cluster is refused and nothing is delivered', async () => {
  const warnings: string[] = [];
  let delivered = 0;
  const b = new PeerTransport({ selfId: 'b', clusterId: 'CID-ours', onMessages: () => {
    delivered++;
  }, onWarning: (w) => warnings.push(w) });
  const aWarnings: string[] = [];
  const a = new PeerTransport({ selfId: 'a', clusterId: 'CID-theirs', onMessages: () => {}, onWarning: (w) => aWarnings.push(w) });
  const serverB = new grpc.Server();
  b.registerOn(serverB);
  const portB = await listen(serverB);
  try {
    a.setPeers(new Map([['b', `127.0.0.1:${portB}`]]));
    a.send('b', Buffer.from('hello'));
    await waitFor(() => warnings.length > 0 && aWarnings.length > 0, 'both sides to warn');
    assert.equal(delivered, 0);
    assert.match(warnings[0]!, /CID-theirs/);
    assert.match(aWarnings[0]!, /cluster id mismatch.*CID-ours.*CID-theirs/);
  } finally {
    a.close();
    b.close();
    serverB.forceShutdown();
  }
});

test('the link reconnects after the peer restarts, and the queue stays bounded while it is down', async () => {
  const received: string[] = [];
  const makeB = () =>
    new PeerTransport({ selfId: 'b', clusterId: 'C', onMessages: (_f, ms) => ms.forEach((m) => received.push(Buffer.from(m).toString())) });
  let b = makeB();
  let serverB = new grpc.Server();
  b.registerOn(serverB);
  const port = await listen(serverB);
  const a = new PeerTransport({ selfId: 'a', clusterId: 'C', onMessages: () => {}, maxQueuedBytes: 1000, initialBackoffMs: 20, maxBackoffMs: 100 });
  try {
    a.setPeers(new Map([['b', `127.0.0.1:${port}`]]));
    a.send('b', Buffer.from('before'));
    await waitFor(() => received.includes('before'), 'first message');
    serverB.forceShutdown();
    b.close();
    // While b is down, queue far more than the bound.
    for (let i = 0; i < 200; i++) a.send('b', Buffer.alloc(100, 1));
    await new Promise((r) => setTimeout(r, 100));
    const stats = a.stats().get('b')!;
    assert.ok(stats.queuedBytes <= 1000, `queue bounded, holds ${stats.queuedBytes} bytes`);
    assert.ok(stats.droppedMessages > 0);

    b = makeB();
    serverB = new grpc.Server();
    b.registerOn(serverB);
    await new Promise<void>((resolve, reject) =>
      serverB.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
    );
    // Messages written into a stream that fails are lost (Raft tolerates that); like a leader's
    // heartbeats, keep sending until the re-opened stream delivers.
    const heartbeat = setInterval(() => a.send('b', Buffer.from('after')), 50);
    try {
      await waitFor(() => received.includes('after'), 'message after restart');
    } finally {
      clearInterval(heartbeat);
    }
  } finally {
    a.close();
    b.close();
    serverB.forceShutdown();
  }
});

test('flush() writes the queued messages at once, in order, in one batch; the turn after finds nothing left', async () => {
  const batches: string[][] = [];
  const a = new PeerTransport({ selfId: 'a', clusterId: 'C', onMessages: () => {} });
  const b = new PeerTransport({ selfId: 'b', clusterId: 'C', onMessages: (_f, ms) => void batches.push(ms.map((m) => Buffer.from(m).toString())) });
  const serverB = new grpc.Server();
  b.registerOn(serverB);
  const portB = await listen(serverB);
  try {
    a.setPeers(new Map([['b', `127.0.0.1:${portB}`]]));
    a.send('b', Buffer.from('x1'));
    a.send('b', Buffer.from('x2'));
    assert.equal(a.stats().get('b')!.queuedMessages, 2, 'send() only queues');
    a.flush();
    // Handed to the stream in this very turn, not on the next one.
    assert.equal(a.stats().get('b')!.queuedMessages, 0);
    assert.equal(a.stats().get('b')!.sentMessages, 2);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(a.stats().get('b')!.sentMessages, 2, 'the scheduled write found the queue empty');
    await waitFor(() => batches.length > 0, 'the batch');
    assert.deepEqual(batches, [['x1', 'x2']]);
  } finally {
    a.close();
    b.close();
    serverB.forceShutdown();
  }
});
