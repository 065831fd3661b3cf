// The peer ports' listener: grpc-js serves the connections it admits; past the limit, or past an
// address's share of it, a connection is closed as accepted and reported (a log line's worth once
// per episode, and once a minute while it goes on); a stop destroys sockets grpc-js never saw a
// session on; a connection from a member's address is admitted past the limit, not past its
// share. Remote addresses differ by connecting from 127.0.0.x.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureLocalCertificates } from '../../src/cli/local-certificates.js';
import { SERVER_TLS_HANDSHAKE_TIMEOUT_MS, TlsMaterial, type TlsMaterialOptions } from '../../src/server/tls.js';
import { grpcConnectionSink, PEER_CONNECTION_TIMING, PeerPortListener, peerServerOptions, REFUSAL_REPORT_MS, type PeerPortMembers, type PeerPortRefusal } from '../../src/server/peer-port-listener.js';
import { MemberAddresses } from '../../src/server/member-addresses.js';

const identity = (b: Buffer): Buffer => b;
const ECHO: grpc.ServiceDefinition = {
  Echo: { path: '/test.Peer/Echo', requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity },
  // A client stream answered at its end, as a member's Raft stream is one long call.
  Hold: { path: '/test.Peer/Hold', requestStream: true, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity },
};
const EchoClient = grpc.makeGenericClientConstructor(ECHO, 'Peer');

interface Started {
  readonly port: number;
  readonly listener: PeerPortListener;
  readonly refusals: Array<[PeerPortRefusal, string, boolean]>;
  readonly open: number[];
}

async function start(
  maxConnections: number,
  options: { credentials?: grpc.ServerCredentials; now?: () => number; members?: PeerPortMembers; host?: string; serverOptions?: grpc.ServerOptions } = {},
): Promise<Started> {
  const server = new grpc.Server(options.serverOptions ?? {});
  server.addService(ECHO, {
    Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, done: grpc.sendUnaryData<Buffer>) => done(null, call.request),
    Hold: (call: grpc.ServerReadableStream<Buffer, Buffer>, done: grpc.sendUnaryData<Buffer>) => {
      let count = 0;
      call.on('data', () => count++);
      call.on('end', () => done(null, Buffer.from(String(count))));
    },
  });
  const refusals: Array<[PeerPortRefusal, string, boolean]> = [];
  const open: number[] = [];
  const listener = new PeerPortListener(grpcConnectionSink(server, options.credentials ?? grpc.ServerCredentials.createInsecure()), {
    maxConnections,
    onRefused: (reason, address, first) => refusals.push([reason, address, first]),
    onOpenConnections: (n) => open.push(n),
    ...(options.now !== undefined ? { now: options.now } : {}),
    ...(options.members !== undefined ? { members: options.members } : {}),
  });
  const port = await listener.listen(options.host ?? '0.0.0.0', 0);
  return { port, listener, refusals, open };
}

function echo(port: number, text: string): Promise<string> {
  const client = new EchoClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  return new Promise<string>((resolve, reject) => {
    (client as unknown as { Echo: (b: Buffer, cb: (e: Error | null, r?: Buffer) => void) => void }).Echo(Buffer.from(text), (err, reply) => {
      client.close();
      if (err !== null) reject(err);
      else resolve(reply!.toString());
    });
  });
}

/** A raw connection from `localAddress`; resolves once connected, with a promise of its close. */
function rawConnection(port: number, localAddress: string, options: { allowHalfOpen?: boolean } = {}): Promise<{ socket: Socket; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, localAddress, allowHalfOpen: options.allowHalfOpen ?? false });
    const closed = new Promise<void>((done) => socket.once('close', () => done()));
    socket.on('error', () => undefined);
    // Reads (and drops) whatever comes, so that a close from the server is seen; sends nothing.
    socket.resume();
    socket.once('connect', () => resolve({ socket, closed }));
    socket.once('error', reject);
  });
}

const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 50));

/** Members whose addresses the test sets; counts the refreshes asked for; `changed()` tells the listeners. */
function fakeMembers(initial: readonly string[], asked: string[] = []): PeerPortMembers & { readonly addresses: Set<string>; refreshes: number; changed(): void } {
  const listeners = new Set<() => void>();
  return {
    addresses: new Set(initial),
    refreshes: 0,
    has(address) {
      asked.push(address);
      return this.addresses.has(address);
    },
    refreshOnDemand() {
      this.refreshes++;
    },
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    changed() {
      for (const l of listeners) l();
    },
  };
}

test('grpc-js serves the connections the listener admits, and stops through it', { timeout: 10_000 }, async () => {
  const { port, listener } = await start(8);
  assert.equal(await echo(port, 'over an injected connection'), 'over an injected connection');
  await new Promise<void>((resolve, reject) => listener.tryShutdown((err) => (err === undefined ? resolve() : reject(err))));
  await assert.rejects(echo(port, 'after the stop'), (err: grpc.ServiceError) => err.code === grpc.status.UNAVAILABLE);
});

test('past its share an address is closed as accepted; past the limit any address is; a freed slot admits again', { timeout: 10_000 }, async () => {
  // Limit 4: each address may hold one.
  const { port, listener, refusals, open } = await start(4);
  try {
    const first = await rawConnection(port, '127.0.0.1');
    const sameAddress = await rawConnection(port, '127.0.0.1');
    await sameAddress.closed;
    assert.deepEqual(refusals, [['address_share', '127.0.0.1', true]]);
    const others = await Promise.all(['127.0.0.2', '127.0.0.3', '127.0.0.4'].map((a) => rawConnection(port, a)));
    await settle();
    assert.equal(listener.openConnections, 4);
    const fifth = await rawConnection(port, '127.0.0.5');
    await fifth.closed;
    assert.deepEqual(refusals.at(-1), ['connection_limit', '127.0.0.5', true]);
    assert.equal(listener.openConnections, 4, 'the refused ones never counted');

    first.socket.destroy();
    await settle();
    assert.equal(listener.openConnections, 3);
    const again = await rawConnection(port, '127.0.0.5');
    await settle();
    assert.equal(listener.openConnections, 4, 'the freed slot admits a new connection');
    assert.deepEqual(open.slice(0, 4), [1, 2, 3, 4]);
    for (const c of [...others, again]) c.socket.destroy();
  } finally {
    listener.forceShutdown();
  }
});

test('0 is no limit: one address may open many', { timeout: 10_000 }, async () => {
  const { port, listener, refusals } = await start(0);
  try {
    const many = await Promise.all(Array.from({ length: 40 }, () => rawConnection(port, '127.0.0.1')));
    // A client's connect completes in the kernel before the listener accepts: on a busy machine
    // the accepts take longer than any fixed wait (15 of 40 after 50 ms, once).
    await until('all 40 to be accepted', 5_000, () => listener.openConnections >= 40);
    await settle();
    assert.equal(listener.openConnections, 40);
    assert.deepEqual(refusals, []);
    for (const c of many) c.socket.destroy();
  } finally {
    listener.forceShutdown();
  }
});

/** Runs `body` with a node's TLS material from a fresh local CA, whose directory is removed after. */
async function withNodeTls(options: TlsMaterialOptions, body: (material: TlsMaterial) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'peer-port-tls-'));
  try {
    const certificates = await ensureLocalCertificates({ dir, serviceId: 'svc', nodeIds: ['scm1'], hosts: () => ['127.0.0.1'] });
    const node = certificates.nodes.get('scm1')!;
    const files = { caFile: certificates.ca.cert, certFile: node.cert, keyFile: node.key };
    const material = TlsMaterial.load(files, { kind: 'node', serviceId: 'svc', nodeId: 'scm1', host: '127.0.0.1' }, options);
    try {
      await body(material);
    } finally {
      material.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('a stop closes every connection it accepted, one that sent nothing too; forced or not, in plaintext and under TLS', { timeout: 30_000 }, async () => {
  // Under TLS a connection still in its handshake has no HTTP/2 session: grpc-js never closes it.
  await withNodeTls({}, async (material) => {
    for (const credentials of [grpc.ServerCredentials.createInsecure(), material.serverCredentials()]) {
      for (const stop of ['graceful', 'forced'] as const) {
        const { port, listener } = await start(4, { credentials });
        const silent = await rawConnection(port, '127.0.0.1');
        await settle();
        if (stop === 'graceful') await new Promise<void>((resolve) => listener.tryShutdown(() => resolve()));
        else listener.forceShutdown();
        await silent.closed;
        await settle();
        assert.equal(listener.openConnections, 0, stop);
      }
    }
  });
});

test('while refusals of a kind go on, one is reported as the first again a minute later; a freed share re-arms at once', { timeout: 10_000 }, async () => {
  let now = 1_000_000;
  const { port, listener, refusals } = await start(32, { now: () => now });
  try {
    // 127.0.0.1 may hold 8.
    const held = await Promise.all(Array.from({ length: 8 }, () => rawConnection(port, '127.0.0.1')));
    for (let i = 0; i < 2; i++) await (await rawConnection(port, '127.0.0.1')).closed;
    now += REFUSAL_REPORT_MS - 1;
    await (await rawConnection(port, '127.0.0.1')).closed;
    now += 1;
    await (await rawConnection(port, '127.0.0.1')).closed;
    assert.deepEqual(refusals.map(([, , first]) => first), [true, false, false, true]);
    // Down to half its share: the next refusal is a first again.
    for (const c of held.slice(0, 4)) c.socket.destroy();
    await Promise.all(held.slice(0, 4).map((c) => c.closed));
    await settle();
    await Promise.all(Array.from({ length: 4 }, () => rawConnection(port, '127.0.0.1')));
    await (await rawConnection(port, '127.0.0.1')).closed;
    assert.deepEqual(refusals.at(-1), ['address_share', '127.0.0.1', true]);
  } finally {
    listener.forceShutdown();
  }
});

test('with the limit full of other addresses, a member\'s address is still admitted and served, up to its share; others are still refused', { timeout: 10_000 }, async () => {
  // Limit 4: each address may hold one. 127.0.0.1 (where echo() connects from) is a member's.
  const asked: string[] = [];
  const members = fakeMembers(['127.0.0.1'], asked);
  const { port, listener, refusals } = await start(4, { members });
  try {
    const flood = await Promise.all(['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5'].map((a) => rawConnection(port, a)));
    await settle();
    assert.equal(listener.openConnections, 4);
    await (await rawConnection(port, '127.0.0.6')).closed;
    assert.deepEqual(refusals, [['connection_limit', '127.0.0.6', true]], 'a non-member is refused at the limit');

    assert.equal(await echo(port, 'from a member past the limit'), 'from a member past the limit');
    await settle();
    assert.equal(listener.openConnections, 4, 'the member\'s connection closed with its client');

    const member = await rawConnection(port, '127.0.0.1');
    await settle();
    assert.equal(listener.openConnections, 5, 'limit + the member address\'s share');
    await (await rawConnection(port, '127.0.0.1')).closed;
    assert.deepEqual(refusals.at(-1), ['address_share', '127.0.0.1', true], 'a member is held to its share');
    await (await rawConnection(port, '127.0.0.7')).closed;
    assert.deepEqual(refusals.at(-1), ['connection_limit', '127.0.0.7', false]);
    assert.equal(listener.openConnections, 5);
    assert.ok(asked.includes('127.0.0.1') && asked.includes('127.0.0.7'), `asked about ${asked.join(', ')}`);
    for (const c of [...flood, member]) c.socket.destroy();
  } finally {
    listener.forceShutdown();
  }
});

test('an IPv4-mapped remote address (a dual-stack listener) is matched, counted and reported as the IPv4 address', { timeout: 10_000 }, async () => {
  const asked: string[] = [];
  // On '::' an IPv4 connection's remoteAddress is ::ffff:127.0.0.x.
  const { port, listener, refusals } = await start(4, { host: '::', members: fakeMembers(['127.0.0.1'], asked) });
  try {
    const flood = await Promise.all(['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5'].map((a) => rawConnection(port, a)));
    await settle();
    assert.equal(listener.openConnections, 4);
    await (await rawConnection(port, '127.0.0.6')).closed;
    const member = await rawConnection(port, '127.0.0.1');
    await settle();
    assert.equal(listener.openConnections, 5, 'the member\'s address, mapped, is admitted past the limit');
    await (await rawConnection(port, '127.0.0.1')).closed;
    assert.deepEqual(refusals, [
      ['connection_limit', '127.0.0.6', true],
      ['address_share', '127.0.0.1', true],
    ]);
    assert.ok(!asked.some((a) => a.startsWith('::ffff:')), `asked about ${asked.join(', ')}`);
    for (const c of [...flood, member]) c.socket.destroy();
  } finally {
    listener.forceShutdown();
  }
});

test('a connection admitted past the limit closes when its address stops being a member\'s; one within the limit stays', { timeout: 10_000 }, async () => {
  const members = fakeMembers(['127.0.0.1', '127.0.0.9']);
  const { port, listener } = await start(4, { members });
  try {
    const within = await rawConnection(port, '127.0.0.9');
    const flood = await Promise.all(['127.0.0.2', '127.0.0.3', '127.0.0.4'].map((a) => rawConnection(port, a)));
    await until('the limit to be full', 5_000, () => listener.openConnections === 4);
    const past = await rawConnection(port, '127.0.0.1');
    await until('a member past the limit', 5_000, () => listener.openConnections === 5);

    // Both addresses stop being members' (a pod's new IP, a removed member).
    members.addresses.clear();
    members.changed();
    await past.closed;
    await until('back within the limit', 5_000, () => listener.openConnections === 4);
    assert.ok(!within.socket.destroyed, 'the connection admitted within the limit stays');

    // Once the open connections fit the limit, none counts as past it any more.
    members.addresses.add('127.0.0.8');
    flood[0]!.socket.destroy();
    await until('a slot to free', 5_000, () => listener.openConnections === 3);
    const again = await rawConnection(port, '127.0.0.1');
    await until('the limit to be full again', 5_000, () => listener.openConnections === 4);
    const past2 = await rawConnection(port, '127.0.0.8');
    await until('a member past the limit again', 5_000, () => listener.openConnections === 5);
    flood[1]!.socket.destroy();
    await until('back within the limit again', 5_000, () => listener.openConnections === 4);
    members.addresses.clear();
    members.changed();
    await settle();
    assert.equal(listener.openConnections, 4, 'nothing is past the limit any more: nothing to close');
    assert.ok(!again.socket.destroyed && !past2.socket.destroyed);
    for (const c of [within, ...flood, again, past2]) c.socket.destroy();
  } finally {
    listener.forceShutdown();
  }
});

test('under TLS, a connection that does not finish its handshake within the handshake timeout is closed and frees its slot', { timeout: 30_000 }, async () => {
  assert.equal(SERVER_TLS_HANDSHAKE_TIMEOUT_MS, 10_000, 'the default (Node alone gives 120 s)');
  await withNodeTls({ handshakeTimeoutMs: 300 }, async (material) => {
    const { port, listener } = await start(4, { credentials: material.serverCredentials() });
    try {
      const started = Date.now();
      const silent = await rawConnection(port, '127.0.0.2');
      await silent.closed;
      const took = Date.now() - started;
      assert.ok(took >= 250 && took < 5_000, `closed after ${took} ms`);
      await settle();
      assert.equal(listener.openConnections, 0, 'its slot is free');
    } finally {
      listener.forceShutdown();
    }
  });
});

/** A client stream on `client` (answered with the count of its messages at its end); writes one now. */
function holdStream(client: grpc.Client): { readonly end: () => Promise<string> } {
  let call!: grpc.ClientWritableStream<Buffer>;
  const answer = new Promise<string>((resolve, reject) => {
    call = (client as unknown as { Hold: (cb: (e: Error | null, r?: Buffer) => void) => grpc.ClientWritableStream<Buffer> }).Hold((err, reply) => (err !== null ? reject(err) : resolve(reply!.toString())));
  });
  call.write(Buffer.from('a'));
  return {
    end: () => {
      call.write(Buffer.from('b'));
      call.end();
      return answer;
    },
  };
}

async function until(what: string, timeoutMs: number, check: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

test('with the peer ports\' server options, a connection with no call open is closed once idle, one that never ends its side too; one with a stream open is not', { timeout: 30_000 }, async () => {
  assert.deepEqual(PEER_CONNECTION_TIMING, { idleMs: 60_000, keepaliveMs: 30_000, keepaliveTimeoutMs: 10_000 });
  const idleMs = 1_000;
  // Keepalive far off: what closes here is the idle timeout.
  const { port, listener } = await start(8, { serverOptions: peerServerOptions({}, { idleMs, keepaliveMs: 60_000, keepaliveTimeoutMs: 60_000 }) });
  const client = new EchoClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  try {
    const started = Date.now();
    const stream = holdStream(client);
    const silent = await rawConnection(port, '127.0.0.2');
    // Never ends its side: the server's graceful close alone would leave its socket open.
    await rawConnection(port, '127.0.0.3', { allowHalfOpen: true });
    await until('the three connections to be open', 5_000, () => listener.openConnections === 3);
    await silent.closed;
    const took = Date.now() - started;
    assert.ok(took >= idleMs - 50 && took < 5_000, `the silent connection closed after ${took} ms`);
    await until('the half-open connection to be destroyed', 5_000, () => listener.openConnections === 1);
    // The stream's connection outlives several more idle timeouts while its call is open.
    await new Promise((resolve) => setTimeout(resolve, idleMs * 3));
    assert.equal(listener.openConnections, 1, 'the stream\'s connection is open');
    // A graceful close would keep the socket until the stream ends: the client must not have been told to go away either.
    assert.equal(client.getChannel().getConnectivityState(false), grpc.connectivityState.READY, 'no GOAWAY on the stream\'s connection');
    assert.equal(await stream.end(), '2');
  } finally {
    client.close();
    listener.forceShutdown();
  }
});

test('with the peer ports\' server options, a connection that answers no keepalive ping is destroyed; a client that answers keeps its connection', { timeout: 30_000 }, async () => {
  // The client answers pings from this same process: its loop gets 2 s to, however loaded the machine.
  const timing = { idleMs: 60_000, keepaliveMs: 500, keepaliveTimeoutMs: 2_000 };
  const { port, listener } = await start(8, { serverOptions: peerServerOptions({}, timing) });
  const client = new EchoClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  try {
    const stream = holdStream(client);
    const started = Date.now();
    // Never speaks HTTP/2, so answers no ping; never ends its side either.
    await rawConnection(port, '127.0.0.2', { allowHalfOpen: true });
    await until('both connections to be open', 5_000, () => listener.openConnections === 2);
    await until('the mute connection to be destroyed', 20_000, () => listener.openConnections === 1);
    const took = Date.now() - started;
    assert.ok(took >= timing.keepaliveMs, `destroyed after ${took} ms`);
    // The grpc-js client answers every ping: its stream's connection stays through several.
    await new Promise((resolve) => setTimeout(resolve, (timing.keepaliveMs + timing.keepaliveTimeoutMs) * 2));
    assert.equal(listener.openConnections, 1, 'the stream\'s connection is open');
    assert.equal(client.getChannel().getConnectivityState(false), grpc.connectivityState.READY);
    assert.equal(await stream.end(), '2');
  } finally {
    client.close();
    listener.forceShutdown();
  }
});

test('with MemberAddresses: a refusal at the limit has the hosts resolved again, so a member\'s new address gets in; a changed address closes the old one\'s connection past the limit', { timeout: 10_000 }, async () => {
  const dns = new Map([['scm2.test', '127.0.0.8']]);
  const looked: string[] = [];
  let now = 1_000_000;
  const members = new MemberAddresses({
    lookup: (host) => {
      looked.push(host);
      return Promise.resolve([{ address: dns.get(host)!, family: 4 }]);
    },
    now: () => now,
    log: { warn: () => undefined, info: () => undefined },
  });
  await members.setHosts(['scm2.test']);
  const { port, listener, refusals } = await start(4, { members });
  try {
    const flood = await Promise.all(['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5'].map((a) => rawConnection(port, a)));
    await until('the limit to be full', 5_000, () => listener.openConnections === 4);
    // scm2 came back on a new address, not resolved yet: refused, and the refusal resolves again.
    dns.set('scm2.test', '127.0.0.9');
    const lookedBefore = looked.length;
    await (await rawConnection(port, '127.0.0.9')).closed;
    assert.deepEqual(refusals.at(-1)?.slice(0, 2), ['connection_limit', '127.0.0.9']);
    await settle();
    assert.equal(looked.length, lookedBefore + 1, 'looked up again on the refusal');
    const member = await rawConnection(port, '127.0.0.9');
    await until('its next attempt to get in, past the limit', 5_000, () => listener.openConnections === 5);

    // It moves again: the connection from the old address is closed, through onChange.
    dns.set('scm2.test', '127.0.0.10');
    now += 60_000;
    await members.refresh();
    await member.closed;
    await until('the old address\'s connection to be gone', 5_000, () => listener.openConnections === 4);
    for (const c of flood) c.socket.destroy();
  } finally {
    listener.forceShutdown();
    members.stop();
  }
});

test('a limit that is not a whole number of connections is refused, naming it', () => {
  for (const bad of [-1, 1.5, Number.NaN]) {
    assert.throws(() => new PeerPortListener(grpcConnectionSink(new grpc.Server(), grpc.ServerCredentials.createInsecure()), { maxConnections: bad }), /the connection limit must be 0 \(none\) or a whole number of connections/);
  }
});
