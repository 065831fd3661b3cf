// A node's Raft messages fit the cap its peers put on a frame
// (ozone.scm.ha.ratis.log.appender.queue.byte-limit), whatever that is set to: a follower
// catching up gets its entries in appends small enough to be taken. A leader that sized its
// appends apart from the cap sent a restarted follower the whole gap in one append over a small
// cap; the follower refused it, with the stream it came on, and the leader sent it again, forever.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withCluster } from './harness.js';
import { allocate, openPipeline } from './workload.js';

test('with a small appender byte limit, a follower that was down catches up through appends under the cap', { timeout: 180_000 }, async () => {
  await withCluster(
    3,
    async (cluster) => {
      await cluster.bootstrapAll();
      const client = cluster.client(cluster.allClientAddresses(), 30_000);
      await openPipeline(client);
      const leader = await cluster.leaderIndex();
      const follower = leader === 1 ? 2 : 1;
      await cluster.kill(follower);
      // About 130 bytes an entry: these 3,000 are three times the cap, so the gap never fits one append.
      await allocate(client, 3_000, { inFlight: 16 });
      cluster.start(follower);
      await cluster.waitFor(`scm${follower} to catch up`, 60_000, () => cluster.appliedAlike([leader, follower]));
      assert.equal(await cluster.metric(follower, 'scm_raft_stream_refusals_total{reason="frame_too_large",'), 0, 'no frame was refused');
    },
    {
      'ozone.scm.ha.ratis.log.appender.queue.byte-limit': '128KB',
      // The follower catches up from the log: nothing is purged past it, so no snapshot is offered.
      'ozone.scm.ha.ratis.log.purge.enabled': 'false',
    },
  );
});
