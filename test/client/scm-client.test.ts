// ScmClient against fake servers over real gRPC: leader hints, retries that reuse the callId,
// giving up at the deadline, and no retry for errors that retrying cannot fix.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_RETRY_BACKOFF, ScmClient, ScmClientError, parseAddressList } from '../../src/client/scm-client.js';
import { Backoff } from '../../src/client/retry-policy.js';
import { UnavailableError } from '../../src/errors.js';
import { FakeScm, notLeader, serve, type ServedFake } from './fake-scm.js';

const servers: ServedFake[] = [];
const clients: ScmClient[] = [];
after(async () => {
  for (const client of clients) client.close();
  await Promise.all(servers.map((s) => s.stop()));
});

async function start(fake: FakeScm): Promise<ServedFake> {
  const served = await serve(fake);
  servers.push(served);
  return served;
}

function client(addresses: string[], extra: Partial<ConstructorParameters<typeof ScmClient>[0]> = {}): ScmClient {
  const c = new ScmClient({ addresses, initialBackoffMs: 5, maxBackoffMs: 20, deadlineMs: 5000, ...extra });
  clients.push(c);
  return c;
}

test('follows the leader hint from a follower and then stays with the leader', async () => {
  const leaderFake = new FakeScm();
  leaderFake.addOpenPipeline('ONE');
  const leader = await start(leaderFake);
  const followerFake = new FakeScm();
  followerFake.failWith = notLeader('scm2', leader.address);
  const follower = await start(followerFake);

  const c = client([follower.address]);
  const first = await c.allocateContainer({ replicationType: 'RATIS', replicationFactor: 'ONE', owner: 'test' });
  assert.equal(first.container.containerId, 1);
  assert.equal(followerFake.calls.length, 1);
  assert.equal(leaderFake.calls.length, 1);
  assert.equal(c.currentAddress, leader.address);
  await c.getContainer(1);
  assert.equal(followerFake.calls.length, 1, 'the second call goes straight to the leader');
  assert.deepEqual(leaderFake.calls[1], { method: 'getContainer', request: { consistency: 'LINEARIZABLE', containerId: 1 } });
});

test('retries UNAVAILABLE with the same clientId and callId; the next call gets a new callId', async () => {
  const fake = new FakeScm();
  fake.addOpenPipeline('ONE');
  fake.failNext = { count: 3, error: () => new UnavailableError('commit timed out') };
  const served = await start(fake);
  const c = client([served.address], { clientId: 'retry-client' });
  const allocated = await c.allocateContainer({ replicationType: 'RATIS', replicationFactor: 'ONE', owner: 'o' });
  assert.equal(fake.calls.length, 4);
  const headers = fake.calls.map((call) => {
    const r = call.request as { clientId: string; callId: number };
    return `${r.clientId}#${r.callId}`;
  });
  assert.deepEqual(headers, ['retry-client#1', 'retry-client#1', 'retry-client#1', 'retry-client#1']);
  assert.equal(fake.containers.size, 1);
  assert.equal(allocated.container.containerId, 1);
  await c.updateContainerState(1, 'FINALIZE');
  assert.equal((fake.calls[4]?.request as { callId: number }).callId, 2);
});

test('a retried mutation that the server already applied returns the original result', async () => {
  const fake = new FakeScm();
  fake.addOpenPipeline('ONE');
  const served = await start(fake);
  const c = client([served.address], { clientId: 'dup' });
  const first = await c.allocateContainer({ replicationType: 'RATIS', replicationFactor: 'ONE', owner: 'o' });
  // Simulate "applied, but the answer was lost": the same pair again must not allocate twice.
  const again = await fake.allocateContainer({ clientId: 'dup', callId: 1, replicationType: 'RATIS', replicationFactor: 'ONE', owner: 'o' });
  assert.equal(again.container.containerId, first.container.containerId);
  assert.equal(fake.containers.size, 1);
});

test('a caller re-sending a call after the client gave up passes its callId; the retry cache answers it', async () => {
  const fake = new FakeScm();
  fake.addOpenPipeline('ONE');
  const served = await start(fake);
  const c = client([served.address], { clientId: 'resend' });
  const first = await c.allocateContainer({ replicationType: 'RATIS', replicationFactor: 'ONE', owner: 'o' }, { callId: 7 });
  const again = await c.allocateContainer({ replicationType: 'RATIS', replicationFactor: 'ONE', owner: 'o' }, { callId: 7 });
  assert.deepEqual(
    fake.calls.map((call) => (call.request as { callId: number }).callId),
    [7, 7],
  );
  assert.equal(again.container.containerId, first.container.containerId);
  assert.equal(fake.containers.size, 1, 'the re-sent call did not allocate again');
  await c.updateContainerState(1, 'FINALIZE', { callId: 8 });
  assert.equal((fake.calls[2]?.request as { callId: number }).callId, 8);
  await assert.rejects(() => c.updateContainerState(1, 'CLOSE', { callId: 0 }), /callId must be a positive integer/);
});

test('not-leader without a hint moves on to the next address', async () => {
  const lostFake = new FakeScm();
  lostFake.failWith = notLeader();
  const lost = await start(lostFake);
  const goodFake = new FakeScm();
  const good = await start(goodFake);
  const c = client([lost.address, good.address]);
  assert.deepEqual(await c.listDatanodes(), []);
  assert.equal(lostFake.calls.length, 1);
  assert.equal(goodFake.calls.length, 1);
});

test('gives up at the overall deadline with a clear DEADLINE_EXCEEDED error', async () => {
  const fake = new FakeScm();
  fake.failWith = new UnavailableError('no quorum');
  const served = await start(fake);
  const c = client([served.address], { deadlineMs: 300 });
  await assert.rejects(c.listDatanodes(), (err: unknown) => {
    assert.ok(err instanceof ScmClientError);
    assert.equal(err.codeName, 'DEADLINE_EXCEEDED');
    assert.match(err.message, /^ListDatanodes failed: DEADLINE_EXCEEDED: gave up after \d+ attempt\(s\) in \d+ ms \(deadline 300 ms\); last error from 127\.0\.0\.1:\d+: UNAVAILABLE: no quorum/);
    assert.ok(err.attempts > 1);
    return true;
  });
  assert.ok(fake.calls.length > 1);
});

test('an attempt cut short by the overall deadline does not hide the last real answer', async () => {
  // Answers UNAVAILABLE once, then takes longer than the whole call may: the second attempt can only
  // time out at the overall deadline, and the error still reports what the server said.
  class SlowAfterFirst extends FakeScm {
    override async listDatanodes(request: Parameters<FakeScm['listDatanodes']>[0]): ReturnType<FakeScm['listDatanodes']> {
      if (this.calls.length === 0) {
        this.calls.push({ method: 'listDatanodes', request });
        throw new UnavailableError('no quorum');
      }
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      return super.listDatanodes(request);
    }
  }
  const served = await start(new SlowAfterFirst());
  const c = client([served.address], { deadlineMs: 400, attemptTimeoutMs: 5_000 });
  await assert.rejects(c.listDatanodes(), (err: unknown) => {
    assert.ok(err instanceof ScmClientError);
    assert.equal(err.codeName, 'DEADLINE_EXCEEDED');
    assert.equal(err.attempts, 2);
    assert.match(err.message, /gave up after 2 attempt\(s\) in \d+ ms \(deadline 400 ms\); last error from 127\.0\.0\.1:\d+: UNAVAILABLE: no quorum/);
    return true;
  });
});

test('an error retrying cannot fix fails at once', async () => {
  const fake = new FakeScm();
  const served = await start(fake);
  const c = client([served.address]);
  await assert.rejects(c.getContainer(99), (err: unknown) => err instanceof ScmClientError && err.codeName === 'NOT_FOUND' && err.attempts === 1);
  await assert.rejects(c.allocateContainer({ replicationType: 'RATIS', replicationFactor: 'THREE', owner: 'o' }), (err: unknown) => err instanceof ScmClientError && err.codeName === 'FAILED_PRECONDITION');
  assert.equal(fake.calls.length, 2);
});

test('an unreachable address is skipped for a reachable one', async () => {
  const fake = new FakeScm();
  const served = await start(fake);
  const c = client(['127.0.0.1:1', served.address]);
  assert.equal((await c.getClusterInfo()).clusterId, 'CID-2a3f36e8-506f-40eb-986e-bb79d188fd55');
  assert.equal(c.currentAddress, served.address);
});

test('backoff doubles up to the maximum, with equal jitter', () => {
  const low = new Backoff({ initialBackoffMs: 100, maxBackoffMs: 500 });
  assert.deepEqual([1, 2, 3, 4, 5].map(() => low.next(() => 0)), [50, 100, 200, 250, 250]);
  const high = new Backoff({ initialBackoffMs: 100, maxBackoffMs: 500 });
  assert.deepEqual([1, 2, 3, 4].map(() => high.next(() => 0.999999)), [100, 200, 400, 500]);
  assert.throws(() => new Backoff({ initialBackoffMs: 0, maxBackoffMs: 1 }), /invalid backoff/);
});

test('by default a client looking for a leader tries again at least every 250 ms', () => {
  // An election after a leader died takes about one election timeout (1-1.2 s with 1 s): waits
  // that grew to 2 s kept callers away for up to that long after the new leader was elected.
  assert.deepEqual(DEFAULT_RETRY_BACKOFF, { initialBackoffMs: 50, maxBackoffMs: 250 });
  const b = new Backoff(DEFAULT_RETRY_BACKOFF);
  const waits = Array.from({ length: 10 }, () => b.next(() => 0.999999));
  assert.deepEqual(waits, [50, 100, 200, 250, 250, 250, 250, 250, 250, 250]);
});

test('address lists are validated', () => {
  assert.deepEqual(parseAddressList('a:1, b.example:9860,[::1]:9860'), ['a:1', 'b.example:9860', '[::1]:9860']);
  assert.throws(() => parseAddressList(''), /no SCM address given/);
  assert.throws(() => parseAddressList('host'), /invalid SCM address "host": expected host:port/);
  assert.throws(() => parseAddressList('host:70000'), /invalid SCM address/);
  assert.throws(() => new ScmClient({ addresses: [] }), /at least one SCM address/);
});
