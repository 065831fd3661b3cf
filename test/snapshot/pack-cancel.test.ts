// A leader's checkpoint stream that its reader gives up on (a follower that cancels or loses the
// download mid-transfer) must end quietly. tar-stream's pack is read through its async iterator;
// destroying it while a read is pending rejects that read with "Stream was destroyed", and the
// stream reading it must not turn that into an unhandled 'error': in the node, an uncaught error
// logs fatal and exits, so a follower could stop the leader by hanging up at the wrong moment.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createCheckpoint } from '../../src/snapshot/checkpoint.js';
import { packCheckpoint } from '../../src/snapshot/tarball.js';
import { createScmDb, CLUSTER_ID, withTempDir } from './helpers.js';

test('a checkpoint stream destroyed by its reader at any point ends without an uncaught error', async () => {
  await withTempDir('pack-cancel-', async (dir) => {
    const db = await createScmDb(join(dir, 'scm.db'), 3000, { term: 2, index: 400 });
    const checkpoint = await createCheckpoint(db, join(dir, 'db.checkpoints'));
    await db.close();
    const uncaught: unknown[] = [];
    let destroyedMidStream = 0;
    const record = (err: unknown): void => void uncaught.push(err);
    process.on('uncaughtException', record);
    try {
      // Give up after 0..7 pieces, on the piece's own turn or a little later: the pending read the
      // destroy meets differs from one to the next.
      for (let round = 0; round < 4; round++) for (let pieces = 0; pieces < 8; pieces++) {
        for (const wait of [0, 1, 5]) {
          const stream = packCheckpoint(checkpoint, CLUSTER_ID, { gzipLevel: 0 });
          let seen = 0;
          await new Promise<void>((resolve) => {
            const stop = (): void => {
              stream.destroy();
              resolve();
            };
            if (pieces === 0) return setImmediate(stop);
            stream.on('close', resolve); // a stream shorter than `pieces` ends by itself
            stream.on('data', () => {
              if (++seen === pieces) {
                stream.pause();
                if (wait === 0) stop();
                else setTimeout(stop, wait);
              }
            });
          });
          await sleep(20);
          if (seen >= pieces) destroyedMidStream++;
        }
      }
    } finally {
      process.off('uncaughtException', record);
    }
    assert.deepEqual(uncaught.map(String), []);
    assert.ok(destroyedMidStream >= 48, `only ${destroyedMidStream} streams were destroyed before their end`);
  });
});
