// Taking back a transfer slot from a reader that does not read, and what it leaves on the leader.
// Time on the leader is a manual clock (ManualTimers): the tests move it, never wait on it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as http2 from 'node:http2';
import { readdirSync, readlinkSync } from 'node:fs';
import { type InterScmServiceOptions } from '../../src/snapshot/download-service.js';
import { ManualTimers, unreadDownload, until, withServingLeader, type ServingLeader } from './helpers.js';

/** Far beyond any time a test moves the clock: the leader's keepalives never fire. */
const NO_KEEPALIVE_MS = 3_600_000;

const CHUNK = 64 * 1024;

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
