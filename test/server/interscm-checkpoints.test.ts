// The node's checkpoint source (InterScmCheckpoints) decides the reason a failed snapshot download
// is counted under in scm_snapshot_download_failures_total; these tests drive it against a real
// InterSCM service on loopback.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createLogger } from '../../src/metrics/logger.js';
import { NodeMetrics } from '../../src/metrics/node-metrics.js';
import { RaftEvents } from '../../src/metrics/raft-events.js';
import { InterScmCheckpoints } from '../../src/server/interscm-checkpoints.js';
import { BusyLeaderError, downloadCheckpoint } from '../../src/snapshot/index.js';
import type { ScmStateMachine } from '../../src/statemachine/index.js';
import { samplesOf } from '../metrics/fixtures.js';
import { CLUSTER_ID, withServingLeader, withTempDir } from '../snapshot/helpers.js';

const TERM_INDEX = { term: 1, index: 20 };

test('a download given up on a busy leader (its busy budget spent) is counted as reason="busy", not "transport", and logged so', async () => {
  // One download per minute per requester: the follower's previous one used it up, so the leader
  // refuses the next with a hint of about 60 s, past a busy budget of 0.
  await withServingLeader({ containers: 50, termIndex: TERM_INDEX, service: { perRequester: { maxPerMinute: 1 } } }, async (leader) => {
    await withTempDir('interscm-busy-', async (dir) => {
      await downloadCheckpoint({ address: leader.address, expectedClusterId: CLUSTER_ID, destDir: join(dir, 'earlier'), deadlineMs: 10_000, requesterId: 'scm2' });
      const lines: string[] = [];
      const out = new Writable({
        write(chunk: Buffer, _enc, cb) {
          lines.push(chunk.toString('utf8'));
          cb();
        },
      });
      const metrics = new NodeMetrics({ nodeId: 'scm2', peers: ['scm1'] });
      const checkpoints = new InterScmCheckpoints({
        dbParentDir: dir,
        clusterId: CLUSTER_ID,
        requesterId: 'scm2',
        deadlineMs: 10_000,
        busyWaitTimeoutMs: 0,
        leaderGrpcAddress: () => leader.address,
        // Used only to install a downloaded checkpoint, which this download never gets to.
        sm: undefined as unknown as ScmStateMachine,
        events: new RaftEvents(metrics, createLogger({ nodeId: 'scm2', destination: out, env: {} })),
        log: () => undefined,
      });
      await assert.rejects(
        checkpoints.fetch({ leaderId: 'scm1', term: 3, noticeId: 1, firstIndex: TERM_INDEX.index }, new AbortController().signal),
        (err: Error) => err instanceof BusyLeaderError && /asks to retry in \d+ ms, but 0 ms are left of the 0 ms/.test(err.message),
      );
      assert.deepEqual(leader.refused, ['rate_limited']);
      const exposition = await metrics.render();
      const failures = samplesOf(exposition, 'scm_snapshot_download_failures_total').filter((l) => !l.endsWith(' 0'));
      assert.deepEqual(failures, ['scm_snapshot_download_failures_total{reason="busy",scm_node_id="scm2"} 1']);
      const failed = lines
        .join('')
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .find((l) => l['event'] === 'snapshot_download_failed');
      assert.equal(failed?.['reason'], 'busy');
    });
  });
});
