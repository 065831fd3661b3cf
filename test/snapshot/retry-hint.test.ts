// A follower refused by a busy leader (RESOURCE_EXHAUSTED with the scm-retry-after-ms trailer)
// comes back when the leader said, not on its own backoff, and such a refusal is paid for from a
// time budget, not from the attempts kept for real failures. A hint is the peer's say-so: one that
// is not a plausible number of milliseconds is not believed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { RETRY_AFTER_METADATA } from '../../src/retry-after.js';
import { downloadCheckpoint } from '../../src/snapshot/download-client.js';
import { interScmServiceDefinition, type CopyDBCheckpointRequest, type CopyDBCheckpointResponse } from '../../src/snapshot/inter-scm-proto.js';
import { IN_PROGRESS_RETRY_AFTER_MS, type ResourceExhaustedError } from '../../src/snapshot/checkpoint-provider.js';
import { readRetryHint } from '../../src/snapshot/retry-hint.js';
import { ServeLimiter } from '../../src/snapshot/serve-limiter.js';
import { DEFAULT_BUSY_WAIT_TIMEOUT_MS, SnapshotDownloader, type SnapshotDownloaderOptions } from '../../src/snapshot/snapshot-downloader.js';
import { loadConfig } from '../../src/server/config.js';
import { CLUSTER_ID, startServer, withServingLeader, withTempDir, type Logged } from './helpers.js';

const TERM_INDEX = { term: 1, index: 20 };

/** A leader whose per-minute cap (1 per requester) runs on `clock`; records the time of every request it admits or refuses. */
function perMinuteLeader(clock: { now: number }, requestTimes: number[]) {
  return {
    containers: 50,
    termIndex: TERM_INDEX,
    service: {
      perRequester: { maxPerMinute: 1 },
      now: () => {
        requestTimes.push(clock.now);
        return clock.now;
      },
    },
  };
}

/**
 * An InterSCM service that refuses every download with `code` (default RESOURCE_EXHAUSTED) and the
 * trailer `hint`; `onCall` runs as each call arrives, before the refusal (a test's clock moves there).
 */
async function refusingLeader(hint: string, options: { code?: grpc.status; onCall?: () => void } = {}): Promise<{ address: string; calls: () => number; stop: () => Promise<void> }> {
  let calls = 0;
  const server = await startServer((s) =>
    s.addService(interScmServiceDefinition(), {
      download: (call: grpc.ServerWritableStream<CopyDBCheckpointRequest, CopyDBCheckpointResponse>) => {
        calls++;
        options.onCall?.();
        const metadata = new grpc.Metadata();
        metadata.set(RETRY_AFTER_METADATA, hint);
        call.emit('error', { code: options.code ?? grpc.status.RESOURCE_EXHAUSTED, details: 'busy; retry later', metadata });
      },
    }),
  );
  return { address: server.address, calls: () => calls, stop: server.stop };
}

/**
 * A fake sleep for the injected clock: records each wait and moves `clock` on by it. It fails after
 * `maxCalls` waits, so that retry logic that no longer ends fails the test at once instead of
 * spinning until the suite's timeout.
 */
function fakeSleep(clock: { now: number }, waits: number[], maxCalls = 10): (ms: number) => Promise<void> {
  return async (ms) => {
    if (waits.length >= maxCalls) throw new Error(`slept ${waits.length} times already (${waits.join(', ')} ms): the retries do not end`);
    waits.push(ms);
    clock.now += ms;
  };
}

function downloader(snapshotDir: string, address: string, options: Partial<SnapshotDownloaderOptions>): SnapshotDownloader {
  return new SnapshotDownloader({ leaderAddress: () => address, expectedClusterId: CLUSTER_ID, snapshotDir, deadlineMs: 10_000, requesterId: 'scm2', ...options });
}

/**
 * Two download attempts against a leader that refuses them, on a 10 ms backoff: the follower gives
 * up with `failure`; what it waited and logged meanwhile.
 */
async function twoRefusedAttempts(address: string, failure: RegExp): Promise<{ waits: number[]; logs: Logged[] }> {
  return withTempDir('snap-hint-', async (dir) => {
    const waits: number[] = [];
    const logs: Logged[] = [];
    await assert.rejects(
      downloader(join(dir, 'snapshot'), address, {
        maxAttempts: 2,
        initialBackoffMs: 10,
        maxBackoffMs: 10,
        sleep: fakeSleep({ now: 0 }, waits),
        log: (level, message, fields) => logs.push({ level, message, fields }),
      }).fetch(1),
      failure,
    );
    return { waits, logs };
  });
}

test('a follower refused with a 3 s hint asks again exactly 3 s after the refusal and is served; the refusal used none of its attempts', async () => {
  const clock = { now: 1_000_000 };
  const requestTimes: number[] = [];
  await withServingLeader(perMinuteLeader(clock, requestTimes), async (leader) => {
    await withTempDir('snap-hint-', async (dir) => {
      // The follower's previous download, 57 s ago, used up its quota for 3 s more.
      await downloadCheckpoint({ address: leader.address, expectedClusterId: CLUSTER_ID, destDir: join(dir, 'earlier'), deadlineMs: 10_000, requesterId: 'scm2' });
      clock.now += 57_000;
      const waits: number[] = [];
      const ready = await downloader(join(dir, 'snapshot'), leader.address, {
        maxAttempts: 1,
        initialBackoffMs: 10,
        sleep: async (ms) => {
          waits.push(ms);
          clock.now += ms;
        },
      }).fetch(TERM_INDEX.index);
      assert.deepEqual(leader.refused, ['rate_limited']);
      assert.deepEqual(waits, [3000], 'one wait, as long as the leader asked');
      const [, refusedAt, retriedAt] = requestTimes;
      assert.equal(requestTimes.length, 3);
      assert.equal((retriedAt ?? 0) - (refusedAt ?? 0), 3000, 'the retry reached the leader 3 s after the refusal');
      assert.deepEqual(ready.termIndex, TERM_INDEX);
      assert.equal(ready.attempts, 2);
    });
  });
});

test('aborting cuts a hinted wait short: a follower aborted 100 ms into a 2 s wait stops then, without asking again', async () => {
  const leader = await refusingLeader('2000');
  try {
    await withTempDir('snap-hint-', async (dir) => {
      const abort = new AbortController();
      const logs: Logged[] = [];
      let abortedAt: number | undefined;
      // Node's own timers: the wait this test cuts short is the real one. The abort comes from a
      // timer, after the wait has begun (the wait starts in the same turn as the log line), not from
      // the log line itself: that would have it refused before the wait started. A budget of one
      // wait: were the abort lost, the fetch would end at the next refusal, not wait again.
      const fetching = downloader(join(dir, 'snapshot'), leader.address, {
        maxAttempts: 1,
        busyWaitTimeoutMs: 2_500,
        log: (level, message, fields) => {
          logs.push({ level, message, fields });
          if (message === 'snapshot download refused by a busy leader') {
            setTimeout(() => {
              abortedAt = performance.now();
              abort.abort(new Error('a newer term'));
            }, 100);
          }
        },
      }).fetch(1, abort.signal);
      await assert.rejects(fetching, (err: Error) => err.name === 'AbortError' && /a newer term/.test(err.message));
      const afterAbortMs = performance.now() - (abortedAt ?? Infinity);
      const refusal = logs.find((l) => l.message === 'snapshot download refused by a busy leader');
      assert.equal(refusal?.fields?.['retryInMs'], 2000);
      // The rest of the 2 s wait is 1.9 s: ending well before it is the wait cut short, not sat out.
      assert.ok(afterAbortMs < 1000, `the fetch ended ${Math.round(afterAbortMs)} ms after the abort, not at once`);
      assert.equal(leader.calls(), 1, 'it did not ask again');
    });
  } finally {
    await leader.stop();
  }
});

test('refusals with a hint are paid for from busyWaitTimeoutMs: once the next wait would pass it, the follower gives up saying so', async () => {
  const leader = await refusingLeader('5000');
  try {
    await withTempDir('snap-hint-', async (dir) => {
      const waits: number[] = [];
      const clock = { now: 1_000_000 };
      await assert.rejects(
        downloader(join(dir, 'snapshot'), leader.address, { maxAttempts: 1, busyWaitTimeoutMs: 12_000, now: () => clock.now, sleep: fakeSleep(clock, waits) }).fetch(1),
        /the leader at .* asks to retry in 5000 ms, but 2000 ms are left of the 12000 ms the follower spends on busy leaders \(10000 ms spent: refused attempts and the waits they asked for\)/,
      );
      assert.deepEqual(waits, [5000, 5000]);
      assert.equal(leader.calls(), 3);
    });
  } finally {
    await leader.stop();
  }
});

test('a busy leader is charged for the time its refused attempts took, not only for the waits it asked for: slow refusals with a short hint use up the budget', async () => {
  const clock = { now: 1_000_000 };
  // Each refusal arrives 4 s after the call (the leader held it: keepalives would keep the
  // no-progress timer quiet) and asks for 1 s: 5 s of the budget a time.
  const leader = await refusingLeader('1000', { onCall: () => void (clock.now += 4000) });
  try {
    await withTempDir('snap-hint-', async (dir) => {
      const waits: number[] = [];
      const logs: Logged[] = [];
      const started = clock.now;
      await assert.rejects(
        downloader(join(dir, 'snapshot'), leader.address, {
          maxAttempts: 1,
          busyWaitTimeoutMs: 12_000,
          now: () => clock.now,
          sleep: fakeSleep(clock, waits),
          log: (level, message, fields) => logs.push({ level, message, fields }),
        }).fetch(1),
        /the leader at .* asks to retry in 1000 ms, but 0 ms are left of the 12000 ms the follower spends on busy leaders \(14000 ms spent: refused attempts and the waits they asked for\)/,
      );
      assert.deepEqual(waits, [1000, 1000], 'two refusals fit the budget (5 s, then 10 s), the third does not (14 s before its wait)');
      assert.equal(leader.calls(), 3);
      assert.equal(clock.now - started, 14_000, 'the fetch took three attempts of 4 s and two waits of 1 s');
      const refusals = logs.filter((l) => l.message === 'snapshot download refused by a busy leader').map((l) => [l.fields?.['attemptMs'], l.fields?.['retryInMs'], l.fields?.['busySpentMs']]);
      assert.deepEqual(refusals, [
        [4000, 1000, 5000],
        [4000, 1000, 10_000],
      ]);
    });
  } finally {
    await leader.stop();
  }
});

test('a hint of "0" is waited no less than the first backoff (200 ms): refusals that take 100 ms end the fetch after about budget / (200 ms + 100 ms) of them', async () => {
  for (const { attemptMs, waits: expectedWaits, spentMs } of [
    { attemptMs: 100, waits: [200, 200, 200], spentMs: 1000 },
    // Refusals that take no time: budget / floor of them.
    { attemptMs: 0, waits: [200, 200, 200, 200, 200], spentMs: 1000 },
  ]) {
    const clock = { now: 1_000_000 };
    const leader = await refusingLeader('0', { onCall: () => void (clock.now += attemptMs) });
    try {
      await withTempDir('snap-hint-', async (dir) => {
        const waits: number[] = [];
        await assert.rejects(
          downloader(join(dir, 'snapshot'), leader.address, { maxAttempts: 1, busyWaitTimeoutMs: 1000, now: () => clock.now, sleep: fakeSleep(clock, waits) }).fetch(1),
          new RegExp(`asks to retry in 0 ms \\(the follower waits at least 200 ms\\), but 0 ms are left of the 1000 ms the follower spends on busy leaders \\(${spentMs} ms spent`),
        );
        assert.deepEqual(waits, expectedWaits, `refusals taking ${attemptMs} ms`);
        assert.equal(leader.calls(), expectedWaits.length + 1);
      });
    } finally {
      await leader.stop();
    }
  }
});

test('the first backoff, which is also the shortest hinted wait, must be a positive finite number, and the longest backoff at least as long', () => {
  const base = { leaderAddress: () => undefined, expectedClusterId: CLUSTER_ID, snapshotDir: '/nonexistent', deadlineMs: 1000 };
  for (const initialBackoffMs of [0, -200, Number.NaN, Infinity]) {
    assert.throws(() => new SnapshotDownloader({ ...base, initialBackoffMs }), /initialBackoffMs must be a positive finite number of ms/, String(initialBackoffMs));
  }
  for (const maxBackoffMs of [100, Number.NaN, Infinity]) {
    assert.throws(() => new SnapshotDownloader({ ...base, maxBackoffMs }), /maxBackoffMs must be a finite number of ms no less than initialBackoffMs \(200\)/, String(maxBackoffMs));
  }
  assert.doesNotThrow(() => new SnapshotDownloader({ ...base, initialBackoffMs: 10, maxBackoffMs: 10 }));
});

for (const hint of ['-3000', 'NaN', '1000000000000', '3e3', '1.5', '12abc', '9'.repeat(2000)]) {
  test(`a hint of ${JSON.stringify(hint.slice(0, 16))}${hint.length > 16 ? '…' : ''} is not believed: the refusal is a failed attempt, on the follower's own backoff, and the hint is logged (shortened)`, async () => {
    const leader = await refusingLeader(hint);
    try {
      const { waits, logs } = await twoRefusedAttempts(leader.address, /snapshot download failed after 2 /);
      assert.equal(leader.calls(), 2, 'the attempts were spent');
      const distrust = logs.filter((l) => l.level === 'warn' && l.message === 'snapshot download ignored a retry hint it does not believe');
      assert.equal(distrust.length, 2, JSON.stringify(logs).slice(0, 2000));
      const shown = String(distrust[0]?.fields?.['hint']);
      assert.ok(shown.includes(hint.slice(0, 16)) && shown.length < 80, `logged as ${shown}`);
      assert.equal(waits.length, 1);
      assert.ok((waits[0] ?? Infinity) <= 10, `waited ${waits[0]} ms, the backoff, not the hint`);
    } finally {
      await leader.stop();
    }
  });
}

test('a refusal with another code (UNAVAILABLE) is a failed attempt even with a hint: the hint is not read, on the follower\'s own backoff', async () => {
  const leader = await refusingLeader('5000', { code: grpc.status.UNAVAILABLE });
  try {
    const { waits, logs } = await twoRefusedAttempts(leader.address, /snapshot download failed after 2 failed attempts: .*UNAVAILABLE/);
    assert.equal(leader.calls(), 2, 'both attempts were spent');
    assert.equal(waits.length, 1);
    assert.ok((waits[0] ?? Infinity) <= 10, `waited ${waits[0]} ms, the backoff, not the hint`);
    const read = logs.filter((l) => /retry hint|busy leader/.test(l.message));
    assert.deepEqual(read, [], 'the hint was neither honoured nor weighed');
  } finally {
    await leader.stop();
  }
});

test('a hint is read for its value: leading zeros change nothing, so a zero-padded 5000 is 5 s and a padded 300001 is refused as more than 5 minutes', () => {
  assert.deepEqual(readRetryHint('0000000000000000005000'), { kind: 'believed', ms: 5000 });
  assert.deepEqual(readRetryHint(`${'0'.repeat(500)}300000`), { kind: 'believed', ms: 300_000 });
  assert.deepEqual(readRetryHint('0'), { kind: 'believed', ms: 0 });
  assert.deepEqual(readRetryHint('000'), { kind: 'believed', ms: 0 });
  for (const raw of [`${'0'.repeat(20)}300001`, `1${'0'.repeat(20)}`]) {
    const hint = readRetryHint(raw);
    assert.equal(hint.kind, 'not-believed', raw);
    assert.equal(hint.kind === 'not-believed' ? hint.why : '', 'more than 300000 ms', raw);
  }
  assert.deepEqual(readRetryHint(undefined), { kind: 'none' });
});

/**
 * A follower polling a leader whose transfer slots are all taken, as the limiter sees it: each
 * admitted call is refused `busy` (after admission, so it counts) and waited 5 s; a call over the
 * per-minute cap is waited as its hint says. `earlier` are starts of its own before the polling.
 */
function pollBusyLeader(earlier: readonly number[], untilMs: number): { refusals: Array<{ at: number; hintMs: number }>; twiceInARow: boolean } {
  let now = 0;
  const limiter = new ServeLimiter({ now: () => now });
  for (const at of earlier) {
    now = at;
    limiter.admit('scm2', '10.0.0.2:40000').release();
  }
  const refusals: Array<{ at: number; hintMs: number }> = [];
  let refusedLast = false;
  let twiceInARow = false;
  while (now < untilMs) {
    try {
      limiter.admit('scm2', '10.0.0.2:40000').release();
      refusedLast = false;
      now += IN_PROGRESS_RETRY_AFTER_MS;
    } catch (err) {
      const hintMs = (err as ResourceExhaustedError).retryAfterMs ?? Infinity;
      refusals.push({ at: now, hintMs });
      twiceInARow ||= refusedLast;
      refusedLast = true;
      now += Math.max(hintMs, 200);
    }
  }
  return { refusals, twiceInARow };
}

test('a follower polling a busy leader every 5 s is never refused over the per-minute cap (12); starts of its own before that get it refused only while they are in the window, never twice in a row', () => {
  assert.deepEqual(pollBusyLeader([], 600_000).refusals, [], 'polling alone: 12 a minute at most');
  const quick = pollBusyLeader([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 600_000);
  assert.deepEqual(quick.refusals, [{ at: 5010, hintMs: 54_990 }], 'one refusal (the poll after the 12th start), until the first start leaves the window');
  const spread = [2923, 8692, 9557, 10702, 30514, 37088, 42808, 45746, 54368, 55219, 56219];
  const mixed = pollBusyLeader(spread, 600_000);
  assert.equal(mixed.twiceInARow, false, 'each hint is exact: the call after it is admitted');
  assert.ok(mixed.refusals.length > 1, JSON.stringify(mixed.refusals));
  assert.ok(mixed.refusals.every((r) => r.at < 56_219 + 60_000), `refused only while its earlier starts are in the window: ${JSON.stringify(mixed.refusals)}`);
});

test('ozone.scm.ha.grpc.checkpoint.busy.wait.timeout sets how long a follower waits for busy leaders in one catch-up (default 5m, the downloader\'s); 0 gives up at the first busy refusal', () => {
  const base = { 'ozone.metadata.dirs': '/var/lib/scm' };
  assert.equal(loadConfig({ overrides: base }).checkpointBusyWaitTimeoutMs, DEFAULT_BUSY_WAIT_TIMEOUT_MS);
  assert.equal(DEFAULT_BUSY_WAIT_TIMEOUT_MS, 300_000);
  assert.equal(loadConfig({ overrides: { ...base, 'ozone.scm.ha.grpc.checkpoint.busy.wait.timeout': '90s' } }).checkpointBusyWaitTimeoutMs, 90_000);
  assert.equal(loadConfig({ overrides: { ...base, 'ozone.scm.ha.grpc.checkpoint.busy.wait.timeout': '0' } }).checkpointBusyWaitTimeoutMs, 0);
  assert.throws(() => loadConfig({ overrides: { ...base, 'ozone.scm.ha.grpc.checkpoint.busy.wait.timeout': 'soon' } }), /ozone\.scm\.ha\.grpc\.checkpoint\.busy\.wait\.timeout/);
});
