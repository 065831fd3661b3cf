// The leader's InterSCM service checks what a request carries and who sends it before it spends a
// checkpoint on it: a bad requesterId or checkpointId is INVALID_ARGUMENT (and never logged in
// full), and nothing is taken or streamed for it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as http2 from 'node:http2';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { CheckpointProvider } from '../../src/snapshot/checkpoint-provider.js';
import { registerInterScmService, type InterScmServiceOptions, type ServeRefusal } from '../../src/snapshot/download-service.js';
import { downloadCheckpoint } from '../../src/snapshot/download-client.js';
import { interScmClientConstructor } from '../../src/snapshot/inter-scm-proto.js';
import { peerHost } from '../../src/snapshot/serve-limiter.js';
import { RETRY_AFTER_METADATA } from '../../src/retry-after.js';
import { SnapshotDownloader } from '../../src/snapshot/snapshot-downloader.js';
import { CLUSTER_ID, createScmDb, startServer, unreadDownload, until, withServingLeader, withTempDir, type Logged, type ServingLeader } from './helpers.js';

type RawClient = grpc.Client & { download(r: unknown, o?: grpc.CallOptions): grpc.ClientReadableStream<Record<string, unknown>> };

function rawClient(address: string): RawClient {
  const Client = interScmClientConstructor();
  return new Client(address, grpc.credentials.createInsecure()) as unknown as RawClient;
}

/** Reads a whole download; resolves with the messages' byte count, or the gRPC error. */
async function drain(client: RawClient, request: Record<string, unknown>): Promise<{ bytes: number } | grpc.ServiceError> {
  let bytes = 0;
  try {
    for await (const m of client.download(request) as AsyncIterable<Record<string, unknown>>) bytes += (m['data'] as Buffer).length;
    return { bytes };
  } catch (err) {
    return err as grpc.ServiceError;
  }
}

async function withLeader(body: (leader: ServingLeader) => Promise<void>, options: Partial<InterScmServiceOptions> = {}): Promise<void> {
  await withServingLeader({ containers: 50, termIndex: { term: 1, index: 20 }, provider: { maxConcurrentTransfers: 8 }, service: options }, body);
}

test('a huge or malformed requesterId or checkpointId is refused with INVALID_ARGUMENT, never logged in full, and costs no checkpoint', async () => {
  await withLeader(async ({ address, provider, logs, served, refused }) => {
    const client = rawClient(address);
    try {
      const cases: Array<{ request: Record<string, unknown>; expected: RegExp }> = [
        { request: { flush: true, requesterId: 'x'.repeat(3 * 1024 * 1024) }, expected: /requesterId is 3145728 characters long, more than 128/ },
        { request: { flush: true, requesterId: 'scm2\n{"level":"fatal"}' }, expected: /requesterId has U\+000A at position 4; only printable ASCII/ },
        { request: { flush: true, requesterId: 'scm\u00e92' }, expected: /requesterId has U\+00E9 at position 3/ },
        { request: { flush: true, requesterId: '' }, expected: /requesterId is empty/ },
        { request: { flush: true, checkpointId: 'y'.repeat(100_000), resumeOffset: 10 }, expected: /checkpointId is 100000 characters long, more than 128/ },
      ];
      for (const c of cases) {
        const result = await drain(client, c.request);
        assert.ok(!('bytes' in result), `refused: ${String(c.expected)}`);
        assert.equal(result.code, grpc.status.INVALID_ARGUMENT, String(c.expected));
        assert.match(result.details, c.expected);
      }
      assert.equal(provider.created, 0, 'no checkpoint was taken for a refused request');
      assert.deepEqual(served, []);
      const logged = JSON.stringify(logs);
      assert.ok(logged.length < 4096, `the log holds what was wrong, not the values (${logged.length} characters)`);
      assert.ok(!logged.includes('"level":"fatal"'), 'a requesterId cannot forge a log line');
      assert.equal(logs.filter((l) => l.level === 'warn' && /refused/.test(l.message)).length, cases.length, 'each refusal is logged once');
      assert.deepEqual(refused, cases.map(() => 'invalid_request'), 'and counted');

      // A well-formed requesterId (the CLI sends this one) is served.
      const ok = await drain(client, { flush: true, requesterId: 'scm admin snapshot save' });
      assert.ok('bytes' in ok && ok.bytes > 0, `served: ${JSON.stringify(ok)}`);
      assert.equal(served.length, 1);
    } finally {
      client.close();
    }
  });
});

test('our client checks its own requesterId before it asks', async () => {
  await withTempDir('snap-serve-', async (dir) => {
    await assert.rejects(
      downloadCheckpoint({ address: '127.0.0.1:1', expectedClusterId: CLUSTER_ID, destDir: join(dir, 'snapshot'), deadlineMs: 1000, requesterId: 'scm2\r\n' }),
      /requesterId has U\+000D at position 4/,
    );
    assert.throws(
      () => new SnapshotDownloader({ leaderAddress: () => undefined, expectedClusterId: CLUSTER_ID, snapshotDir: join(dir, 'snapshot'), deadlineMs: 1000, requesterId: 'n'.repeat(129) }),
      /requesterId is 129 characters long, more than 128/,
    );
  });
});

/** A provider whose acquire waits for `gate`: the downloads it admits stay in progress until the test opens it. */
function gated(provider: CheckpointProvider): { provider: CheckpointProvider; open: () => void; waiting: () => number } {
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  let waiting = 0;
  const wrapper = {
    acquire: async (id?: string) => {
      waiting++;
      await gate;
      return provider.acquire(id);
    },
  };
  return { provider: wrapper as unknown as CheckpointProvider, open, waiting: () => waiting };
}

test('seven downloads sent together by one requester: two are served, the rest get RESOURCE_EXHAUSTED naming the requester', async () => {
  await withTempDir('snap-serve-', async (dir) => {
    const db = await createScmDb(join(dir, 'scm.db'), 50, { term: 1, index: 20 });
    // Room for all seven in the leader's global transfer slots: only the per-requester cap can refuse.
    const real = new CheckpointProvider({ db: () => db, checkpointsDir: join(dir, 'db.checkpoints'), maxConcurrentTransfers: 8 });
    const g = gated(real);
    const served: number[] = [];
    const refused: ServeRefusal[] = [];
    const { address, stop } = await startServer((s) =>
      registerInterScmService(s, { clusterId: CLUSTER_ID, provider: g.provider, perRequester: { maxConcurrent: 2 }, onServed: (b) => served.push(b), onRefused: (r) => refused.push(r) }),
    );
    const client = rawClient(address);
    try {
      // Started in one tick on one connection: they leave in the same packets.
      const results = Array.from({ length: 7 }, () => drain(client, { flush: true, requesterId: 'scm9' }));
      await until('five refusals and two admitted', () => refused.length === 5 && g.waiting() === 2);
      g.open();
      const settled = await Promise.all(results);
      const ok = settled.filter((r) => 'bytes' in r);
      const errors = settled.filter((r): r is grpc.ServiceError => !('bytes' in r));
      assert.equal(ok.length, 2);
      assert.equal(served.length, 2, 'the leader streamed two checkpoints, not seven');
      assert.equal(errors.length, 5);
      for (const e of errors) {
        assert.equal(e.code, grpc.status.RESOURCE_EXHAUSTED);
        assert.match(e.details, /requester "scm9" from 127\.0\.0\.1 has 2 checkpoint downloads in progress, at most 2 at once; retry when one ends/);
      }
      assert.deepEqual(refused, Array(5).fill('rate_limited'));
      // Both ended: the requester may download again.
      const again = await drain(client, { flush: true, requesterId: 'scm9' });
      assert.ok('bytes' in again, JSON.stringify(again));
    } finally {
      client.close();
      await stop();
      await db.close();
    }
  });
});

test('a requester over its downloads per minute is refused until the window has passed; other requesters are not', async () => {
  let clock = 1_000_000;
  await withLeader(
    async ({ address, logs, refused }) => {
      const client = rawClient(address);
      try {
        for (let i = 0; i < 3; i++) {
          const r = await drain(client, { flush: true, requesterId: 'scm2' });
          assert.ok('bytes' in r, `download ${i + 1}: ${JSON.stringify(r)}`);
          clock += 10_000;
        }
        const over = await drain(client, { flush: true, requesterId: 'scm2' });
        assert.ok(!('bytes' in over));
        assert.equal(over.code, grpc.status.RESOURCE_EXHAUSTED);
        assert.match(over.details, /requester "scm2" from 127\.0\.0\.1 started 3 checkpoint downloads in the last 60 s, at most 3 per minute; retry in 30 s/);
        assert.deepEqual(refused, ['rate_limited']);
        assert.ok(logs.some((l) => l.level === 'warn' && l.message === 'checkpoint download refused' && l.fields?.['requester'] === 'scm2'), 'the refusal is logged with the requester');
        assert.ok('bytes' in (await drain(client, { flush: true, requesterId: 'scm3' })), 'another requester is served');
        clock += 30_000;
        assert.ok('bytes' in (await drain(client, { flush: true, requesterId: 'scm2' })), 'a minute after its first download scm2 is served again');
      } finally {
        client.close();
      }
    },
    { perRequester: { maxPerMinute: 3 }, now: () => clock },
  );
});

/** The retry hint a refusal carries in its trailing metadata, as sent (undefined without one). */
function retryHint(refusal: { bytes: number } | grpc.ServiceError): string | undefined {
  assert.ok(!('bytes' in refusal), `refused, not served: ${JSON.stringify(refusal)}`);
  const values = refusal.metadata.get(RETRY_AFTER_METADATA);
  return values.length === 0 ? undefined : String(values[0]);
}

test('a refusal over the per-minute cap carries, in the scm-retry-after-ms trailer, the milliseconds until the window admits the requester again', async () => {
  let clock = 1_000_000;
  await withLeader(
    async ({ address }) => {
      const client = rawClient(address);
      try {
        assert.ok('bytes' in (await drain(client, { flush: true, requesterId: 'scm2' })));
        clock += 23_000;
        const over = await drain(client, { flush: true, requesterId: 'scm2' });
        assert.ok(!('bytes' in over));
        assert.equal(over.code, grpc.status.RESOURCE_EXHAUSTED);
        assert.match(over.details, /retry in 37 s/);
        assert.equal(retryHint(over), '37000', 'the first download leaves the 60 s window 37 s after the refusal');
        clock += 36_999;
        assert.equal(retryHint(await drain(client, { flush: true, requesterId: 'scm2' })), '1', 'and 1 ms before it does');
        clock += 1;
        assert.ok('bytes' in (await drain(client, { flush: true, requesterId: 'scm2' })), 'at the hinted time the requester is served');
      } finally {
        client.close();
      }
    },
    { perRequester: { maxPerMinute: 1 }, now: () => clock },
  );
});

test('a refusal while the requester\'s downloads are in progress, or while every transfer slot is taken, hints a fixed 5 s: when one ends is unknown', async () => {
  await withTempDir('snap-serve-', async (dir) => {
    const db = await createScmDb(join(dir, 'scm.db'), 50, { term: 1, index: 20 });
    const real = new CheckpointProvider({ db: () => db, checkpointsDir: join(dir, 'db.checkpoints'), maxConcurrentTransfers: 2 });
    const g = gated(real);
    const refused: ServeRefusal[] = [];
    const { address, stop } = await startServer((s) =>
      registerInterScmService(s, { clusterId: CLUSTER_ID, provider: g.provider, perRequester: { maxConcurrent: 1 }, onRefused: (r) => refused.push(r) }),
    );
    const client = rawClient(address);
    try {
      const admitted = drain(client, { flush: true, requesterId: 'scm2' });
      await until('the first download to be admitted', () => g.waiting() === 1);
      const inProgress = await drain(client, { flush: true, requesterId: 'scm2' });
      assert.match((inProgress as grpc.ServiceError).details, /in progress, at most 1 at once; retry when one ends/);
      assert.equal(retryHint(inProgress), '5000');
      // The leader's own slots: one held by scm2's download, one by a lease taken here.
      const held = await real.acquire();
      try {
        g.open();
        const busy = await drain(client, { flush: true, requesterId: 'scm3' });
        assert.match((busy as grpc.ServiceError).details, /too many checkpoint transfers in progress/);
        assert.equal(retryHint(busy), '5000');
      } finally {
        await held.release();
      }
      assert.ok('bytes' in (await admitted));
      assert.deepEqual(refused, ['rate_limited', 'busy']);
    } finally {
      g.open(); // a failed assertion must not leave the first download waiting for ever
      client.close();
      await stop();
      await db.close();
    }
  });
});

test('one peer address is limited whatever requesterIds it sends', async () => {
  await withTempDir('snap-serve-', async (dir) => {
    const db = await createScmDb(join(dir, 'scm.db'), 50, { term: 1, index: 20 });
    const real = new CheckpointProvider({ db: () => db, checkpointsDir: join(dir, 'db.checkpoints'), maxConcurrentTransfers: 8 });
    const g = gated(real);
    const refused: ServeRefusal[] = [];
    const { address, stop } = await startServer((s) =>
      registerInterScmService(s, { clusterId: CLUSTER_ID, provider: g.provider, perPeer: { maxConcurrent: 2 }, onRefused: (r) => refused.push(r) }),
    );
    const client = rawClient(address);
    try {
      const results = ['a', 'b', 'c', 'd'].map((id) => drain(client, { flush: true, requesterId: id }));
      await until('two refusals and two admitted', () => refused.length === 2 && g.waiting() === 2);
      g.open();
      const settled = await Promise.all(results);
      const errors = settled.filter((r): r is grpc.ServiceError => !('bytes' in r));
      assert.equal(errors.length, 2);
      for (const e of errors) assert.match(e.details, /peer 127\.0\.0\.1 has 2 checkpoint downloads in progress, at most 2 at once/);
    } finally {
      client.close();
      await stop();
      await db.close();
    }
  });
});

test('the peer key is the host grpc-js reports, without the port', () => {
  assert.equal(peerHost('127.0.0.1:50512'), '127.0.0.1');
  assert.equal(peerHost('::1:50512'), '::1');
  assert.equal(peerHost('[::1]:50512'), '::1');
  assert.equal(peerHost('::ffff:10.0.0.7:9895'), '::ffff:10.0.0.7');
  assert.equal(peerHost('unknown'), 'unknown');
});

test('four downloads that never read lose their transfer slots once idle, and a real follower gets one', async () => {
  await withTempDir('snap-serve-', async (dir) => {
    // Big enough that a stream cannot fit in the HTTP/2 windows of a client that never reads.
    const db = await createScmDb(join(dir, 'leader', 'scm.db'), 20_000, { term: 2, index: 300 });
    const provider = new CheckpointProvider({ db: () => db, checkpointsDir: join(dir, 'leader', 'db.checkpoints') });
    const refused: ServeRefusal[] = [];
    const logs: Logged[] = [];
    const { address, stop } = await startServer((s) =>
      registerInterScmService(s, {
        clusterId: CLUSTER_ID,
        provider,
        chunkSize: 64 * 1024,
        // Not the subject here: the four idle calls come from one address.
        perPeer: { maxConcurrent: 8 },
        idleTimeoutMs: 200,
        onRefused: (r) => refused.push(r),
        log: (level, message, fields) => logs.push({ level, message, fields }),
      }),
    );
    const session = http2.connect(`http://${address}`);
    try {
      const idle = Array.from({ length: 4 }, () => unreadDownload(session));
      await until('the four idle calls to hold every slot, then lose them', () => refused.filter((r) => r === 'idle').length === 4);
      assert.equal(provider.activeTransfers, 0, 'every slot is free again');
      assert.equal(logs.filter((l) => l.level === 'warn' && l.message === 'checkpoint download reclaimed' && l.fields?.['reason'] === 'idle').length, 4);
      // Not left open either: a call that takes neither its messages nor its status is reset.
      await until('the idle calls to be reset', () => idle.every((s) => s.closed));
      assert.ok(idle.every((s) => s.rstCode === http2.constants.NGHTTP2_ENHANCE_YOUR_CALM));

      const ready = await new SnapshotDownloader({ leaderAddress: () => address, expectedClusterId: CLUSTER_ID, snapshotDir: join(dir, 'follower', 'snapshot'), deadlineMs: 60_000, maxAttempts: 1 }).fetch(300);
      assert.deepEqual(ready.termIndex, { term: 2, index: 300 });
    } finally {
      session.destroy();
      await stop();
      await db.close();
    }
  });
});
