// Taking back a transfer slot from a reader that does not read: one that stops (no progress for
// idleTimeoutMs), one that drips a message at a time just under that timeout (slower than the
// minimum rate), how its call then ends, and that nothing of the download stays pinned on the
// leader. Time on the leader is a manual clock (ManualTimers): the tests move it, never wait on it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as http2 from 'node:http2';
import { readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { ReaderPace } from '../../src/snapshot/reader-pace.js';
import { SnapshotDownloader } from '../../src/snapshot/snapshot-downloader.js';
import { DEFAULT_MIN_READ_BYTES, DEFAULT_READ_WINDOW_MS, SERVE_REFUSALS, type InterScmServiceOptions } from '../../src/snapshot/download-service.js';
import { NodeMetrics, SERVE_REFUSAL_REASONS } from '../../src/metrics/node-metrics.js';
import { loadConfig } from '../../src/server/config.js';
import { CLUSTER_ID, ManualTimers, unreadDownload, until, withServingLeader, withTempDir, type Logged, type ServingLeader } from './helpers.js';

/** Far beyond any time a test moves the clock: the leader's keepalives never fire. */
const NO_KEEPALIVE_MS = 3_600_000;

const CHUNK = 64 * 1024;
/** One data message on the wire: the gRPC frame header and the response fields around a chunk. */
const MESSAGE_BYTES = CHUNK + 128;

interface Leader extends ServingLeader {
  readonly timers: ManualTimers;
}

/** A leader on loopback whose checkpoint is far larger than the HTTP/2 windows, on a manual clock. */
async function withLeader(options: Partial<InterScmServiceOptions>, body: (leader: Leader) => Promise<void>, containers = 20_000): Promise<void> {
  const timers = new ManualTimers();
  const service = { chunkSize: CHUNK, keepaliveIntervalMs: NO_KEEPALIVE_MS, perPeer: { maxConcurrent: 8 }, timers, ...options };
  await withServingLeader({ containers, termIndex: { term: 2, index: 300 }, service }, (leader) => body({ ...leader, timers }));
}

/** How many calls the leader is waiting on for their reader (its no-progress timers). */
function waitingCalls(timers: ManualTimers): number {
  return timers.pending().filter((ms) => ms < NO_KEEPALIVE_MS).length;
}

/** Files this process holds open under `dir` (Linux). */
function openFilesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      if (target.startsWith(dir)) out.push(target);
    } catch {
      // closed meanwhile
    }
  }
  return out;
}

/** Takes up to `n` bytes from what a paused stream has buffered; returns how many it took. */
function take(stream: http2.ClientHttp2Stream, n: number): number {
  let got = 0;
  while (got < n) {
    const chunk = stream.read() as Buffer | null;
    if (chunk === null) break;
    if (chunk.length > n - got) stream.unshift(chunk.subarray(n - got));
    got += Math.min(chunk.length, n - got);
  }
  return got;
}

test('a reader that takes one message every 9 s, just under the 10 s no-progress timeout, loses its slot once it reads slower than the minimum rate; its call ends RESOURCE_EXHAUSTED naming the rate', async () => {
  await withLeader({ minReadBytes: 1024 * 1024, readWindowMs: 60_000 }, async ({ address, provider, timers, refused, logs }) => {
    const session = http2.connect(`http://${address}`);
    try {
      const stream = unreadDownload(session);
      let trailers: http2.IncomingHttpHeaders | undefined;
      stream.on('trailers', (t) => (trailers = t));
      let drips = 0;
      // 64 KiB every 9 s is about 430 KiB a minute, under the 1 MiB asked for.
      await until('the transfer to start', () => provider.activeTransfers === 1);
      const served = (): boolean => provider.activeTransfers === 0;
      while (drips < 60 && refused.length === 0 && !served()) {
        await until('the leader to wait for the reader', () => waitingCalls(timers) > 0 || refused.length > 0 || served());
        // Take a message's worth until the leader sees one taken (one, once the windows are full).
        const before = timers.cancelled;
        while (timers.cancelled === before && refused.length === 0 && !served()) {
          take(stream, MESSAGE_BYTES);
          for (let i = 0; i < 100 && timers.cancelled === before; i++) await new Promise((r) => setTimeout(r, 5));
        }
        await until('the leader to wait again', () => waitingCalls(timers) > 0 || refused.length > 0 || served());
        timers.advance(9_000);
        drips++;
      }
      await until('a reclaim or the end of the stream', () => refused.length > 0 || served());
      assert.deepEqual(refused, ['slow'], `after ${drips} drips of one message per 9 s (${drips * 9} s), the reader still held its slot or was served to the end`);
      await until('the slot to be free again', served);
      const line = logs.find((l) => l.level === 'warn' && /reclaimed/.test(l.message));
      assert.ok(line !== undefined, JSON.stringify(logs));
      assert.equal(line.fields?.['reason'], 'slow');
      // A reader that reads what was sent gets the status, naming why.
      stream.resume();
      await until('the status', () => trailers !== undefined);
      assert.equal(trailers?.['grpc-status'], String(grpc.status.RESOURCE_EXHAUSTED));
      assert.match(decodeURIComponent(String(trailers?.['grpc-message'])), /read slower than 1048576 bytes per 60 s/);
    } finally {
      session.destroy();
    }
  }, 80_000);
});

test('a reclaimed call that is never read is reset with ENHANCE_YOUR_CALM (which gRPC maps to RESOURCE_EXHAUSTED) once given as long again, not left open', async () => {
  await withLeader({}, async ({ address, timers, refused, logs }) => {
    const session = http2.connect(`http://${address}`);
    try {
      const raw = unreadDownload(session);
      await until('the call to stall', () => waitingCalls(timers) === 1);
      timers.advance(10_000);
      await until('a reclaim', () => refused.length > 0);
      assert.deepEqual(refused, ['idle']);
      // Given as long again to take what was sent and the status; then reset.
      timers.advance(10_000);
      await until('the stream to be reset', () => raw.closed);
      assert.equal(raw.rstCode, http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
      assert.equal(logs.filter((l) => l.level === 'warn' && /reclaimed/.test(l.message) && l.fields?.['reason'] === 'idle').length, 1);
    } finally {
      session.destroy();
    }
  });
});

test('a reclaimed download pins no checkpoint file on the leader: no file left open, the checkpoint removed once unused', { skip: process.platform !== 'linux' && 'reads /proc/self/fd' }, async () => {
  await withLeader({}, async ({ address, provider, checkpointsDir, timers, refused }) => {
    const session = http2.connect(`http://${address}`);
    try {
      unreadDownload(session);
      await until('the call to stall', () => waitingCalls(timers) === 1);
      assert.ok(openFilesUnder(checkpointsDir).length > 0, 'while it streams, the leader reads the checkpoint');
      timers.advance(10_000);
      await until('a reclaim', () => refused.length > 0);
      assert.deepEqual(refused, ['idle']);
      await until('the checkpoint files to be closed', () => openFilesUnder(checkpointsDir).length === 0);
      await provider.removeUnused();
      assert.deepEqual(readdirSync(checkpointsDir), []);
    } finally {
      session.destroy();
    }
  });
});

test('a follower whose download is reclaimed gets RESOURCE_EXHAUSTED naming why, and resumes from its verified offset on the next attempt', async () => {
  // Every window of waiting fails the rate rule; the idle rule is out of the way.
  await withLeader({ idleTimeoutMs: 3_000_000, minReadBytes: 1024 * 1024 * 1024, readWindowMs: 60_000 }, async ({ address, timers, refused }) => {
    // Once the follower has taken a few messages, move the clock a window on while the leader waits
    // for it (a wait still pending in a microtask's time: the reader has not taken that message yet).
    const setTimer = timers.setTimeout.bind(timers);
    let waits = 0;
    let moved = false;
    timers.setTimeout = (fn, ms) => {
      const cancel = setTimer(fn, ms);
      if (ms < NO_KEEPALIVE_MS && ++waits >= 6 && !moved) {
        queueMicrotask(() => {
          if (moved || waitingCalls(timers) === 0) return;
          moved = true;
          timers.advance(60_000);
        });
      }
      return cancel;
    };
    const logs: Logged[] = [];
    await withTempDir('snap-follower-', async (dir) => {
      const downloader = new SnapshotDownloader({
        leaderAddress: () => address,
        expectedClusterId: CLUSTER_ID,
        snapshotDir: join(dir, 'snapshot'),
        deadlineMs: 60_000,
        maxAttempts: 2,
        initialBackoffMs: 1,
        log: (level, message, fields) => logs.push({ level, message, fields }),
      });
      const ready = await downloader.fetch(300);
      assert.deepEqual(refused, ['slow']);
      assert.deepEqual(ready.termIndex, { term: 2, index: 300 });
      assert.equal(ready.attempts, 2);
      assert.ok(ready.resumedFrom > 0, `resumed from ${ready.resumedFrom}`);
      const failed = logs.find((l) => l.message === 'snapshot download attempt failed');
      assert.match(String(failed?.fields?.['error']), /RESOURCE_EXHAUSTED: checkpoint \S+ download reclaimed: read slower than 1073741824 bytes per 60 s/);
      assert.equal(failed?.fields?.['resumeOffset'], ready.resumedFrom);
    });
  }, 80_000);
});

test('a node counts each refusal and reclaim by reason in scm_snapshot_serve_refusals_total, every reason at 0 from the first scrape', async () => {
  // The node passes the service's reasons to the metric, which may not import it: the lists agree.
  assert.deepEqual([...SERVE_REFUSAL_REASONS], [...SERVE_REFUSALS]);
  const metrics = new NodeMetrics({ nodeId: 'scm1', peers: [] });
  metrics.checkpointServeRefused('slow');
  const samples = (await metrics.render()).split('\n').filter((l) => l.startsWith('scm_snapshot_serve_refusals_total{'));
  assert.equal(samples.length, SERVE_REFUSALS.length);
  assert.ok(samples.some((l) => /reason="slow".* 1$/.test(l)), samples.join('\n'));
  assert.ok(samples.some((l) => /reason="idle".* 0$/.test(l)), samples.join('\n'));
});

test('ozone.scm.ha.grpc.checkpoint.min.read.bytes / .window set the minimum rate (default 8MB per 60s, the service defaults); 0 bytes turns it off, a 0 window is refused', () => {
  const base = { 'ozone.metadata.dirs': '/var/lib/scm' };
  assert.deepEqual(loadConfig({ overrides: base }).checkpointMinRead, { bytes: DEFAULT_MIN_READ_BYTES, windowMs: DEFAULT_READ_WINDOW_MS });
  assert.deepEqual(loadConfig({ overrides: { ...base, 'ozone.scm.ha.grpc.checkpoint.min.read.bytes': '2MB', 'ozone.scm.ha.grpc.checkpoint.min.read.window': '30s' } }).checkpointMinRead, { bytes: 2 * 1024 * 1024, windowMs: 30_000 });
  assert.equal(loadConfig({ overrides: { ...base, 'ozone.scm.ha.grpc.checkpoint.min.read.bytes': '0' } }).checkpointMinRead.bytes, 0);
  assert.throws(() => loadConfig({ overrides: { ...base, 'ozone.scm.ha.grpc.checkpoint.min.read.window': '0s' } }), /ozone\.scm\.ha\.grpc\.checkpoint\.min\.read\.window.*must be positive/);
});

test('the rate rule counts only time spent waiting for the reader: a leader busy packing never makes its reader look slow', async () => {
  const timers = new ManualTimers();
  const pace = new ReaderPace(timers, { idleTimeoutMs: 10_000, minReadBytes: 2000, readWindowMs: 60_000 });
  const never = new Promise<void>(() => undefined);
  /** One wait that the reader ends after `ms` by taking `bytes`. */
  const waitTaking = async (ms: number, bytes: number): Promise<string> => {
    let take!: () => void;
    const outcome = pace.wait(new Promise<void>((resolve) => (take = resolve)), never);
    timers.advance(ms);
    pace.took(bytes);
    take();
    return outcome;
  };
  // Ten minutes of the leader's own work between waits count for nothing.
  for (let i = 0; i < 10; i++) {
    assert.equal(await waitTaking(100, 100), 'progress');
    timers.advance(60_000);
  }
  // 9 s waits, 100 bytes each: the first 60 s of waiting (1 s above, then 59 s) end in the 7th,
  // with 1600 bytes < 2000.
  const outcomes: string[] = [];
  for (let i = 0; i < 8 && !outcomes.includes('slow'); i++) outcomes.push(await waitTaking(9_000, 100));
  assert.deepEqual(outcomes, ['progress', 'progress', 'progress', 'progress', 'progress', 'progress', 'slow']);
  assert.equal(pace.lastWindowBytes, 1600, 'the ten quick waits count in the window too');
});
